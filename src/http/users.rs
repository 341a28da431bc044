//! `/api/v1/users` (admin) and `/api/v1/tokens` (one's own; an admin's, everyone's).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, AuditTarget};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use crate::auth::{self, TokenGrant};
use crate::error::{Error, Result};
use crate::identities::{self, LinkedAccount};
use crate::model::{ApiToken, ChatProvider, ProjectRole, Scope, Scopes, User, UserStatus};
use crate::users::{self, UserDetail, UserSpec};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_user, list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(grant_role, revoke_role))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(confirm_identity_link))
}

/// Link the chat account a one-time link from chat was offered to (an unknown Slack or
/// KakaoWork user's click) to the caller. A link works once, within 15 minutes: a used one is
/// 409, an expired one 422, a changed one 404. A chat account linked to someone else is 409.
#[utoipa::path(post, path = "/me/identity-links/{token}", tag = "users",
    responses((status = 200, body = LinkedAccount), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn confirm_identity_link(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(token): ApiPath<String>,
) -> Result<(Extension<AuditTarget>, Json<LinkedAccount>)> {
    let linked = identities::confirm_link(
        &state.store,
        state.notifier.link_signer(),
        &token,
        &access.principal,
        Utc::now(),
    )
    .await?;
    // The audit entry names the account, never the token.
    let target = AuditTarget(format!("users/{}/chat/{}", linked.login, linked.provider));
    Ok((Extension(target), Json(linked)))
}

/// A user to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub login: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub github_login: Option<String>,
    /// A global admin.
    #[serde(default)]
    pub admin: bool,
    /// A service account (never signs in).
    #[serde(default)]
    pub service: bool,
    /// Write-only; at least 12 characters.
    #[schema(min_length = 12)]
    pub password: Option<String>,
}

/// Add a user or service account.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_user(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<User>)> {
    let spec = UserSpec {
        login: new.login,
        display_name: new.display_name,
        email: new.email,
        github_login: new.github_login,
        admin: new.admin,
        service: new.service,
        password: new.password,
    };
    let user = users::add(&state.store, &spec).await?;
    let target = AuditTarget(format!("users/{}", user.login));
    Ok((StatusCode::CREATED, Extension(target), Json(user)))
}

/// Every user and service account.
#[utoipa::path(get, path = "/users", tag = "users", responses((status = 200, body = Vec<User>)))]
async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<User>>> {
    Ok(Json(state.store.list_users().await?))
}

/// One user and its memberships.
#[utoipa::path(get, path = "/users/{login}", tag = "users",
    responses((status = 200, body = UserDetail), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    ApiPath(login): ApiPath<String>,
) -> Result<Json<UserDetail>> {
    Ok(Json(users::detail(&state.store, &login).await?))
}

/// What may change on a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// `disabled` stops every token and session of the user at its next request.
    pub status: Option<UserStatus>,
    /// Write-only; at least 12 characters.
    pub password: Option<String>,
    /// Link this Slack user id (`U…`) to the user; "" unlinks it.
    pub slack_user_id: Option<String>,
    /// Link this KakaoWork user id to the user; "" unlinks it.
    pub kakaowork_user_id: Option<String>,
}

/// Disable or enable a user, set its password, or link and unlink its chat accounts.
#[utoipa::path(patch, path = "/users/{login}", tag = "users", request_body = UserPatch,
    responses((status = 200, body = UserDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(login): ApiPath<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<UserDetail>> {
    // Nobody locks themselves out; another admin can disable an admin.
    if patch.status == Some(UserStatus::Disabled) && access.principal.name == login {
        return Err(Error::Conflict(
            "you cannot disable your own account; ask another admin".into(),
        ));
    }
    if let Some(password) = &patch.password {
        users::set_password(&state.store, &login, password).await?;
    }
    if let Some(status) = patch.status {
        users::set_status(&state.store, &login, status).await?;
    }
    for (provider, id) in [
        (ChatProvider::Slack, &patch.slack_user_id),
        (ChatProvider::Kakaowork, &patch.kakaowork_user_id),
    ] {
        match id.as_deref().map(str::trim) {
            Some("") => match identities::unlink(&state.store, &login, provider).await {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            },
            Some(id) => identities::link(&state.store, &login, provider, id).await?,
            None => {}
        }
    }
    Ok(Json(users::detail(&state.store, &login).await?))
}

/// A role to give.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    pub role: ProjectRole,
}

/// Give a user a role in a project (`*`: in every project), replacing the one it had there.
#[utoipa::path(put, path = "/users/{login}/projects/{project}", tag = "users", request_body = RoleGrant,
    responses((status = 200, body = UserDetail), (status = 404, body = ErrorBody)))]
async fn grant_role(
    State(state): State<AppState>,
    ApiPath((login, project)): ApiPath<(String, String)>,
    ApiJson(grant): ApiJson<RoleGrant>,
) -> Result<Json<UserDetail>> {
    let project = (project != "*").then_some(project.as_str());
    Ok(Json(
        users::grant(&state.store, &login, project, grant.role).await?,
    ))
}

/// Take a user's role in a project (`*`: its every-project role) away.
#[utoipa::path(delete, path = "/users/{login}/projects/{project}", tag = "users",
    responses((status = 200, body = UserDetail), (status = 404, body = ErrorBody)))]
async fn revoke_role(
    State(state): State<AppState>,
    ApiPath((login, project)): ApiPath<(String, String)>,
) -> Result<Json<UserDetail>> {
    let project = (project != "*").then_some(project.as_str());
    Ok(Json(users::revoke(&state.store, &login, project).await?))
}

/// A token to create for oneself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// At most the scopes of the credential making the request.
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Scopes,
    /// Restrict the token to this project.
    pub project: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new token: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub meta: ApiToken,
}

/// Create a token for the caller; it never has more scopes than the credential making it,
/// nor more rights than the caller.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<CreatedToken>)> {
    let principal = &access.principal;
    let owner = principal
        .id
        .ok_or_else(|| Error::Forbidden("only a user or service account owns tokens".into()))?;
    if new
        .scopes
        .to_vec()
        .iter()
        .any(|s| !principal.scopes.contains(*s))
    {
        return Err(Error::Forbidden(format!(
            "a token may carry only the scopes of the credential that makes it ({})",
            principal.scopes
        )));
    }
    let project_id = match &new.project {
        Some(name) => Some(state.store.project(name).await?.id),
        None => principal.project_id,
    };
    let grant = TokenGrant {
        name: new.name,
        scopes: new.scopes,
        project_id,
        expires_at: new.expires_at,
        service: principal.service,
    };
    let (token, meta) = auth::create_token_for(&state.store, owner, &grant).await?;
    let target = AuditTarget(format!("tokens/{}", meta.name));
    Ok((
        StatusCode::CREATED,
        Extension(target),
        Json(CreatedToken { token, meta }),
    ))
}

/// The caller's tokens (an admin's: every token), newest first; never a token itself.
#[utoipa::path(get, path = "/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiToken>)))]
async fn list_tokens(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<Vec<ApiToken>>> {
    let owner = if is_admin(&access) {
        None
    } else {
        Some(access.principal.id.unwrap_or(-1))
    };
    Ok(Json(state.store.list_tokens_of(owner).await?))
}

/// Revoke one of the caller's tokens (an admin: anyone's); it stops working at once.
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode> {
    let by = access.principal.id;
    crate::auth::revoke_token(&state.store, by, is_admin(&access), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn is_admin(access: &Access) -> bool {
    crate::permissions::authorize(
        &access.principal,
        crate::permissions::Permission::Admin,
        crate::permissions::On::AnyProject,
    )
    .is_ok()
}
