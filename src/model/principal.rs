//! Principals: who acts on the service (users and service accounts), their roles per
//! project, and the tokens that carry scopes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::text_enum;
use crate::error::{Error, Result};

text_enum! {
    /// The role a token had before people existed; kept as a shorthand that maps onto the
    /// model below (`Principal::require`, `auth::create_token`).
    #[derive(PartialOrd, Ord, clap::ValueEnum)]
    Role("role") {
        /// Read only.
        Viewer = "viewer",
        /// Read, and create or change projects, credentials and tasks.
        Operator = "operator",
        /// Everything, including tokens and the audit log.
        Admin = "admin",
    }
}

text_enum! {
    /// A principal's role across the service: an admin may do everything, a member what
    /// their memberships allow.
    #[derive(clap::ValueEnum)]
    GlobalRole("global_role") {
        Admin = "admin",
        Member = "member",
    }
}

text_enum! {
    /// A member's role in one project; each includes the ones before it.
    #[derive(PartialOrd, Ord, clap::ValueEnum)]
    ProjectRole("role") {
        /// Read the project, its tasks, approvals and events.
        Viewer = "viewer",
        /// And create or cancel tasks, replay deliveries.
        Operator = "operator",
        /// And decide approvals.
        Approver = "approver",
        /// And edit the project, its channels, schedules, routing rules and credentials.
        Maintainer = "maintainer",
    }
}

text_enum! {
    /// Whether a principal may act at all.
    UserStatus("status") {
        Active = "active",
        /// Every token and session of the principal stops at its next request.
        Disabled = "disabled",
    }
}

text_enum! {
    /// A person (who may sign in) or an account for automation.
    PrincipalKind("kind") {
        User = "user",
        Service = "service",
    }
}

text_enum! {
    /// A chat service whose accounts users link to themselves.
    #[derive(clap::ValueEnum)]
    ChatProvider("provider") {
        Slack = "slack",
        Kakaowork = "kakaowork",
    }
}

text_enum! {
    /// What a token may be used for; a permission needs its scope and the role.
    #[derive(PartialOrd, Ord, clap::ValueEnum)]
    Scope("scope") {
        Read = "read",
        Write = "write",
        Approve = "approve",
        Admin = "admin",
    }
}

/// A set of scopes, stored as their names separated by spaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope: what a session (a person at the keyboard) carries.
    pub const ALL: Scopes = Scopes(0b1111);

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | Self::bit(*s)))
    }

    fn bit(scope: Scope) -> u8 {
        1 << Scope::ALL.iter().position(|s| *s == scope).unwrap_or(0)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    pub fn to_vec(self) -> Vec<Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(|s| self.contains(*s))
            .collect()
    }

    /// The scopes the old role meant.
    pub fn of_role(role: Role) -> Scopes {
        match role {
            Role::Viewer => Scopes::of(&[Scope::Read]),
            Role::Operator => Scopes::of(&[Scope::Read, Scope::Write, Scope::Approve]),
            Role::Admin => Scopes::ALL,
        }
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.to_vec().iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(" "))
    }
}

impl std::str::FromStr for Scopes {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let scopes: Vec<Scope> = text
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_>>()?;
        Ok(Scopes::of(&scopes))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.to_vec().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Scopes::of(&Vec::<Scope>::deserialize(d)?))
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for Scopes
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Scopes
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(self.to_string(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Scopes
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
    }
}

/// A role in one project, or in every project (`project_id` None).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, ToSchema)]
pub struct Membership {
    #[serde(skip)]
    pub project_id: Option<i64>,
    /// The project's name; absent: every project.
    pub project: Option<String>,
    pub role: ProjectRole,
}

/// What a request was authenticated with, for the audit log (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The local command line.
    Cli,
    /// A bearer token: its id and name.
    Token { id: i64, name: String },
    /// A sign-in session: its row id.
    Session { id: i64 },
    /// A click in a chat service by the chat account linked to the principal.
    Chat {
        provider: ChatProvider,
        user_id: String,
    },
    /// An OAuth access token an MCP client got through the person's consent: the grant's
    /// id and the client's name.
    OAuth { grant: i64, client: String },
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Cli => f.write_str("cli"),
            Via::Token { name, .. } => write!(f, "token:{name}"),
            Via::Session { id } => write!(f, "session:{id}"),
            Via::Chat { provider, user_id } => write!(f, "{provider}:{user_id}"),
            Via::OAuth { grant, .. } => write!(f, "oauth:{grant}"),
        }
    }
}

/// Someone acting on the service: a user or service account, through a token, a session or
/// the local CLI, with the rights of both (a token never has more than its principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// None for the local CLI, which acts with the operating system's authority.
    pub id: Option<i64>,
    /// The login.
    pub name: String,
    /// The old role this principal amounts to (for `require`).
    pub role: Role,
    /// A global admin.
    pub admin: bool,
    pub memberships: Vec<Membership>,
    /// The scopes of the token (every scope for a session and the CLI).
    pub scopes: Scopes,
    /// The one project a restricted token may touch.
    pub project_id: Option<i64>,
    /// A service account (no human).
    pub service: bool,
    pub via: Via,
}

impl Principal {
    /// The local command line, acting as the operating system user who runs it.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Principal {
            id: None,
            name: format!("cli:{user}"),
            role: Role::Admin,
            admin: true,
            memberships: Vec::new(),
            scopes: Scopes::ALL,
            project_id: None,
            service: false,
            via: Via::Cli,
        }
    }

    /// The role this principal holds in project `project_id` (None: in every project),
    /// before a token's scopes and restriction apply; an admin maintains every project.
    pub fn role_in(&self, project_id: Option<i64>) -> Option<ProjectRole> {
        if self.admin {
            return Some(ProjectRole::Maintainer);
        }
        self.memberships
            .iter()
            .filter(|m| {
                m.project_id.is_none() || (project_id.is_some() && m.project_id == project_id)
            })
            .map(|m| m.role)
            .max()
    }

    /// Fails with Forbidden unless this principal amounts to at least the old `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{} has role {} and this needs {}",
                self.name,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}

/// The old role a principal amounts to: admin with the admin scope, operator with write
/// and an operator's role somewhere, viewer otherwise.
pub fn summary_role(admin: bool, memberships: &[Membership], scopes: Scopes) -> Role {
    let best = memberships.iter().map(|m| m.role).max();
    if admin && scopes.contains(Scope::Admin) {
        Role::Admin
    } else if scopes.contains(Scope::Write)
        && (admin || best.is_some_and(|r| r >= ProjectRole::Operator))
    {
        Role::Operator
    } else {
        Role::Viewer
    }
}

/// A user or service account (a row of `principals`, without the password hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub kind: PrincipalKind,
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
    pub github_login: Option<String>,
    pub global_role: GlobalRole,
    pub status: UserStatus,
    /// Whether the user can sign in with a password (the hash itself is never shown).
    pub has_password: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A chat account linked to a user (a row of `chat_identities`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, ToSchema)]
pub struct ChatIdentity {
    pub provider: ChatProvider,
    /// The chat service's user id (Slack `U…`, KakaoWork's numeric id).
    pub external_id: String,
    pub linked_at: DateTime<Utc>,
}

/// A token's metadata; never the token (a row of `api_tokens`, without the hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The login of the user or service account the token belongs to.
    pub owner: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Scopes,
    /// The one project the token may touch; absent: every project of its owner.
    pub project: Option<String>,
    pub service: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}
