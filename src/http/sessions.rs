//! `/api/v1/sessions` (one's own sign-in sessions; an admin may end anyone's) and
//! `/api/v1/users/{login}/sessions` (an admin ends all of a user's sessions).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::error::ErrorBody;
use super::extract::ApiPath;
use crate::error::Result;
use crate::model::SessionView;
use crate::sessions::{self, SessionInfo};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(end_sessions_of_user))
}

/// The caller's live sign-in sessions, newest first; `current` marks the one this request
/// came with. Never a session's secret.
#[utoipa::path(get, path = "/sessions", tag = "sessions",
    responses((status = 200, body = Vec<SessionView>)))]
async fn list_sessions(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    current: Option<Extension<SessionInfo>>,
) -> Result<Json<Vec<SessionView>>> {
    let current = current.map(|Extension(info)| info.id);
    let listed = sessions::list(&state.store, &state.config, &access.principal, current).await?;
    Ok(Json(listed))
}

/// End one of the caller's sessions (an admin: anyone's); it stops working at once.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    sessions::revoke(&state.store, &access.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions were ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndedSessions {
    pub ended: u64,
}

/// End every sign-in session of a user (admin).
#[utoipa::path(delete, path = "/users/{login}/sessions", tag = "users",
    responses((status = 200, body = EndedSessions), (status = 404, body = ErrorBody)))]
async fn end_sessions_of_user(
    State(state): State<AppState>,
    ApiPath(login): ApiPath<String>,
) -> Result<Json<EndedSessions>> {
    let ended = sessions::end_all_of(&state.store, &login).await?;
    Ok(Json(EndedSessions { ended }))
}
