//! Users and their roles: adding, disabling, passwords, memberships, and the first admin.
//!
//! The CLI (`aiops user …`) and the API (`/api/v1/users`) call these same functions; who
//! may call them is checked by `permissions::authorize` (admin only) before.

use crate::auth::{self, TokenGrant};
use crate::error::{Error, Result};
use crate::model::{
    ChatIdentity, GlobalRole, Membership, PrincipalKind, ProjectRole, Scopes, User, UserStatus,
};
use crate::store::Store;
use crate::store::users::NewUser;

/// The login (and token name) of the admin the first start creates.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// A user to add.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    pub login: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub github_login: Option<String>,
    pub admin: bool,
    /// A service account: never signs in, holds tokens for automation.
    pub service: bool,
    pub password: Option<String>,
}

/// A user with its memberships.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: User,
    pub memberships: Vec<Membership>,
    /// The chat accounts (Slack, KakaoWork) whose clicks act as this user.
    pub chat_identities: Vec<ChatIdentity>,
}

/// Adds a user (or service account) after checking its login, email and password.
pub async fn add(store: &Store, spec: &UserSpec) -> Result<User> {
    if !crate::model::is_slug(&spec.login) {
        return Err(Error::invalid(
            "login",
            "must be 1-63 lower-case letters, digits or '-'",
        ));
    }
    if spec.email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(Error::invalid("email", "must be an email address"));
    }
    let hash = match &spec.password {
        Some(_) if spec.service => {
            return Err(Error::invalid(
                "password",
                "a service account never signs in",
            ));
        }
        Some(password) => {
            auth::check_password_policy(password, &spec.login)?;
            Some(auth::hash_password(password)?)
        }
        None => None,
    };
    let mut tx = store.begin().await?;
    let id = crate::store::users::insert(
        &mut tx,
        &NewUser {
            kind: if spec.service {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            },
            login: &spec.login,
            display_name: spec.display_name.as_deref().unwrap_or(&spec.login),
            email: spec.email.as_deref(),
            github_login: spec.github_login.as_deref(),
            global_role: if spec.admin {
                GlobalRole::Admin
            } else {
                GlobalRole::Member
            },
            password_hash: hash.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    store.user_by_id(id).await
}

/// A user and its memberships.
pub async fn detail(store: &Store, login: &str) -> Result<UserDetail> {
    let user = store.user(login).await?;
    let memberships = store.memberships(user.id).await?;
    let chat_identities = store.chat_identities(user.id).await?;
    Ok(UserDetail {
        user,
        memberships,
        chat_identities,
    })
}

/// Sets a user's password after checking it against the policy.
pub async fn set_password(store: &Store, login: &str, password: &str) -> Result<()> {
    let user = store.user(login).await?;
    if user.kind == PrincipalKind::Service {
        return Err(Error::invalid(
            "password",
            "a service account never signs in",
        ));
    }
    auth::check_password_policy(password, login)?;
    store
        .set_password_hash(user.id, &auth::hash_password(password)?)
        .await?;
    // A new password lifts a lock that guessing the old one caused.
    store.clear_sign_in_failures(user.id).await
}

/// Disables or enables a user; a disabled user's tokens stop at their next request, and
/// its sessions end.
pub async fn set_status(store: &Store, login: &str, status: UserStatus) -> Result<User> {
    let user = store.user(login).await?;
    store.set_user_status(user.id, status).await?;
    if status == UserStatus::Disabled {
        store.revoke_sessions_of(user.id).await?;
    }
    store.user_by_id(user.id).await
}

/// Gives a user `role` in `project` (None: every project), replacing its role there.
pub async fn grant(
    store: &Store,
    login: &str,
    project: Option<&str>,
    role: ProjectRole,
) -> Result<UserDetail> {
    let user = store.user(login).await?;
    let project_id = match project {
        Some(name) => Some(store.project(name).await?.id),
        None => None,
    };
    let mut tx = store.begin().await?;
    crate::store::users::grant(&mut tx, user.id, project_id, role).await?;
    tx.commit().await?;
    detail(store, login).await
}

/// Takes a user's role in `project` (None: its every-project role) away.
pub async fn revoke(store: &Store, login: &str, project: Option<&str>) -> Result<UserDetail> {
    let user = store.user(login).await?;
    let project_id = match project {
        Some(name) => Some(store.project(name).await?.id),
        None => None,
    };
    store.revoke_membership(user.id, project_id).await?;
    detail(store, login).await
}

/// What the first start of an empty store tells its operator once.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The admin user's API token.
    pub token: String,
    /// The admin user's one-time password, to sign in and change.
    pub password: String,
}

/// On a store with no token at all, creates the admin user with a random password and an
/// admin token; None when the store already has tokens (or another node just made them).
pub async fn bootstrap_admin(store: &Store) -> Result<Option<Bootstrap>> {
    if store.count_tokens().await? > 0 {
        return Ok(None);
    }
    let password = auth::generate_password();
    let spec = UserSpec {
        login: BOOTSTRAP_ADMIN.into(),
        admin: true,
        ..UserSpec::default()
    };
    let user = match add(store, &spec).await {
        Ok(user) => user,
        // Another node bootstrapped the same store at the same moment.
        Err(Error::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    // The generated password is random, so only the hash is set, outside the policy check
    // meant for passwords people choose.
    store
        .set_password_hash(user.id, &auth::hash_password(&password)?)
        .await?;
    let grant = TokenGrant {
        name: BOOTSTRAP_ADMIN.into(),
        scopes: Scopes::ALL,
        project_id: None,
        expires_at: None,
        service: false,
    };
    match auth::create_token_for(store, user.id, &grant).await {
        Ok((token, _)) => Ok(Some(Bootstrap { token, password })),
        Err(Error::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
