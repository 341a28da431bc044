//! How people sign in (`[auth]`): how long a session lasts, what slows down guessing
//! passwords, and the sign-in providers (`[auth.github]`, `[auth.oidc]`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};

/// Sessions and sign-in limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session unused this long ends.
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, however much it is used.
    pub session_absolute_secs: u64,
    /// Consecutive wrong passwords after which an account is locked.
    pub lockout_after_failures: u32,
    /// The first lock's length; each further failure doubles it, up to `lockout_max_secs`.
    pub lockout_base_secs: u64,
    pub lockout_max_secs: u64,
    /// Sign-in attempts each client address may make per minute; past it: 429.
    pub sign_in_per_minute: u32,
    /// Sign-in with a GitHub OAuth App; None: not offered.
    pub github: Option<GithubSignIn>,
    /// Sign-in with an OpenID Connect provider; None: not offered.
    pub oidc: Option<OidcSignIn>,
}

/// Where a provider's client secret comes from: an environment variable, else a global
/// credential in the vault. Never from this file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecretSource {
    /// The variable read first (unset or empty: the credential).
    pub client_secret_env: String,
    /// The global credential (`aiops secret set --name …`) holding the secret.
    pub client_secret_credential: String,
}

/// `[auth.github]`: a GitHub OAuth App.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSignIn {
    pub client_id: String,
    #[serde(flatten)]
    pub secret: ClientSecretSource,
    /// Where people authorize the app (`https://github.com`, or a GitHub Enterprise host).
    #[serde(default = "github_web_url")]
    pub web_url: String,
    /// GitHub's REST API (`https://api.github.com`).
    #[serde(default = "github_api_url")]
    pub api_url: String,
    /// Only members of one of these organisations may sign in (empty: any GitHub user).
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
    /// Only members of one of these teams (`org/team-slug`) may sign in (empty: no team check).
    #[serde(default)]
    pub allowed_teams: Vec<String>,
    /// A GitHub user no aiops user is linked to (by `github_login`) becomes a new member;
    /// false: refused until an admin adds them.
    #[serde(default)]
    pub create_users: bool,
}

/// `[auth.oidc]`: an OpenID Connect provider (Google Workspace, Okta, Keycloak, Entra…).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSignIn {
    /// The name on the sign-in button ("Sign in with <name>").
    pub name: String,
    /// The issuer; its discovery document is `<issuer>/.well-known/openid-configuration`.
    pub issuer_url: String,
    pub client_id: String,
    #[serde(flatten)]
    pub secret: ClientSecretSource,
    /// Scopes asked for besides `openid`.
    #[serde(default = "oidc_scopes")]
    pub scopes: Vec<String>,
    /// A first sign-in of someone no aiops user is linked to (nor has their verified email)
    /// creates a member; false: refused until an admin adds them.
    #[serde(default)]
    pub create_users: bool,
    /// Roles given at each sign-in when an ID-token claim holds a value.
    #[serde(default)]
    pub roles: Vec<ClaimRole>,
}

/// One claim → role rule: when claim `claim` (a string or a list of strings) holds `value`,
/// the user becomes a global admin (`admin = true`) or gets `role` in `project` (absent:
/// every project). Rules only add: a role is never lowered or taken away at sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRole {
    pub claim: String,
    pub value: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub role: Option<crate::model::ProjectRole>,
}

fn github_web_url() -> String {
    "https://github.com".into()
}

fn github_api_url() -> String {
    "https://api.github.com".into()
}

fn oidc_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 8 * 3600,
            session_absolute_secs: 7 * 24 * 3600,
            lockout_after_failures: 5,
            lockout_base_secs: 60,
            lockout_max_secs: 3600,
            sign_in_per_minute: 20,
            github: None,
            oidc: None,
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle_secs == 0 || self.session_absolute_secs < self.session_idle_secs {
            return bad(
                "auth.session_idle_secs / session_absolute_secs",
                "the idle time must be at least 1 and the absolute lifetime at least the idle time"
                    .into(),
            );
        }
        if self.lockout_after_failures == 0
            || self.lockout_base_secs == 0
            || self.lockout_max_secs < self.lockout_base_secs
        {
            return bad(
                "auth.lockout_after_failures / lockout_base_secs / lockout_max_secs",
                "must be at least 1, and the longest lock at least the first".into(),
            );
        }
        if self.sign_in_per_minute == 0 {
            return bad("auth.sign_in_per_minute", "must be at least 1".into());
        }
        if let Some(github) = &self.github {
            github.validate()?;
        }
        if let Some(oidc) = &self.oidc {
            oidc.validate()?;
        }
        Ok(())
    }
}

impl GithubSignIn {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.client_id.trim().is_empty() {
            return bad(
                "auth.github.client_id",
                "must be the OAuth App's client id (GitHub → Settings → Developer settings)".into(),
            );
        }
        self.secret.validate("auth.github")?;
        for (key, url) in [("web_url", &self.web_url), ("api_url", &self.api_url)] {
            http_url(&format!("auth.github.{key}"), url)?;
        }
        if self.allowed_teams.iter().any(|t| t.split('/').count() != 2) {
            return bad(
                "auth.github.allowed_teams",
                "each team is written `org/team-slug`".into(),
            );
        }
        Ok(())
    }
}

impl OidcSignIn {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() || self.client_id.trim().is_empty() {
            return bad(
                "auth.oidc.name / client_id",
                "both are required: the button's name and the client id the provider gave".into(),
            );
        }
        http_url("auth.oidc.issuer_url", &self.issuer_url)?;
        self.secret.validate("auth.oidc")?;
        for rule in &self.roles {
            if rule.admin == rule.role.is_some() {
                return bad(
                    "auth.oidc.roles",
                    format!(
                        "the rule for {}={} must give either `admin = true` or a `role`",
                        rule.claim, rule.value
                    ),
                );
            }
        }
        Ok(())
    }
}

impl ClientSecretSource {
    fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.client_secret_env.trim().is_empty()
            && self.client_secret_credential.trim().is_empty()
        {
            return bad(
                &format!("{section}.client_secret_env / client_secret_credential"),
                "name the environment variable or the global credential holding the client secret"
                    .into(),
            );
        }
        Ok(())
    }
}

fn http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => bad(key, format!("{value:?} must be an http(s) URL")),
    }
}

/// `[mcp]`: aiops as the OAuth 2.1 authorization server of `/mcp`, for Claude's custom
/// connectors and other remote MCP clients (a bearer token of a user works without it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// How long an access token lasts; a client refreshes it with its refresh token.
    pub access_token_secs: u64,
    /// How long a refresh token lasts unused (each use rotates it).
    pub refresh_token_days: u64,
    /// The hosts an `https` redirect URI of a registering client may name (exactly).
    pub redirect_hosts: Vec<String>,
    /// Whether `http://127.0.0.1`, `http://[::1]` and `http://localhost` (any port) may be
    /// redirect URIs, for a client on the person's own machine.
    pub loopback_redirects: bool,
    /// Registered clients kept at most; past it a registration answers 503. A client that
    /// never got a grant is deleted a day after it registered.
    pub max_clients: u32,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            access_token_secs: 3600,
            refresh_token_days: 30,
            redirect_hosts: vec!["claude.ai".into(), "claude.com".into()],
            loopback_redirects: true,
            max_clients: 1000,
        }
    }
}

impl McpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=86_400).contains(&self.access_token_secs) {
            return bad(
                "mcp.access_token_secs",
                "must be 1 to 86400 (a day); an hour is usual".into(),
            );
        }
        if !(1..=365).contains(&self.refresh_token_days) || self.max_clients == 0 {
            return bad(
                "mcp.refresh_token_days / max_clients",
                "refresh tokens last 1 to 365 days, and at least one client must fit".into(),
            );
        }
        for host in &self.redirect_hosts {
            let plain = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !plain {
                return bad(
                    "mcp.redirect_hosts",
                    format!("{host:?} must be a host name alone, like \"claude.ai\""),
                );
            }
        }
        Ok(())
    }
}
