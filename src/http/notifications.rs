//! `/api/v1/projects/{name}/channels` (where a project's notifications go) and
//! `/api/v1/notifications` (how each delivery went; `status=dead` lists the dead letters).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::auth::AuditTarget;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::page::{next_cursor, page_limit, parse_cursor};
use crate::auth::Role;
use crate::error::Result;
use crate::notify::{self, NewChannel, Notification, NotificationChannel};
use crate::permissions;
use crate::store::notifications::NotificationFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(delete_channel))
        .routes(routes!(list_notifications))
        .routes(routes!(retry_notification))
}

/// A project's notification channels.
#[utoipa::path(get, path = "/projects/{name}/channels", tag = "notifications",
    responses((status = 200, body = Vec<NotificationChannel>), (status = 404, body = ErrorBody)))]
async fn list_channels(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<NotificationChannel>>> {
    let project_id = access.on_project_named(&state.store, &name).await?;
    let channels = state.store.channels(project_id).await?;
    // Only those who may change a channel see its URL (it may hold a secret).
    let maintains = permissions::authorize(
        &access.principal,
        permissions::Permission::Maintain,
        permissions::On::Project(project_id),
    );
    let role = if maintains.is_ok() {
        Role::Operator
    } else {
        Role::Viewer
    };
    let shown = |channel| notify::shown_to(channel, role);
    Ok(Json(channels.into_iter().map(shown).collect()))
}

/// Add a notification channel to a project. Its secret is a credential, named here and
/// stored with the credentials API.
#[utoipa::path(post, path = "/projects/{name}/channels", tag = "notifications", request_body = NewChannel,
    responses((status = 201, body = NotificationChannel), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_channel(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
    ApiJson(new): ApiJson<NewChannel>,
) -> Result<(
    StatusCode,
    Extension<AuditTarget>,
    Json<NotificationChannel>,
)> {
    let project_id = access.on_project_named(&state.store, &name).await?;
    let channel = state
        .store
        .insert_channel(project_id, &new.into_spec(&state.config.inputs)?)
        .await?;
    let target = AuditTarget(format!("projects/{name}/channels/{}", channel.id));
    Ok((StatusCode::CREATED, Extension(target), Json(channel)))
}

/// Remove a channel and the record of its notifications.
#[utoipa::path(delete, path = "/projects/{name}/channels/{id}", tag = "notifications",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_channel(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> Result<StatusCode> {
    let project_id = access.on_project_named(&state.store, &name).await?;
    state.store.delete_channel(project_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct NotificationQuery {
    /// queued | sent | dead
    #[param(value_type = Option<crate::model::NotificationStatus>)]
    status: Option<String>,
    /// Only this project's notifications.
    project: Option<String>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,18}$")]
    cursor: Option<String>,
    /// Page size, at most 200.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// Notifications, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Present when there may be more than `limit` items.
    pub next_cursor: Option<String>,
}

/// Notifications and how their delivery went; `status=dead` lists the ones given up.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = NotificationPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_notifications(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiQuery(query): ApiQuery<NotificationQuery>,
) -> Result<Json<NotificationPage>> {
    let status = query.status.as_deref().map(str::parse).transpose()?;
    let project_id = crate::projects::filter_id(&state.store, query.project.as_deref()).await?;
    let limit = page_limit(query.limit, state.config.tasks.page_size)?;
    let items = state
        .store
        .list_notifications_in(
            &NotificationFilter {
                status,
                project_id,
                before: parse_cursor(query.cursor.as_deref())?,
                limit,
            },
            &access.visible(),
        )
        .await?;
    let next_cursor = next_cursor(&items, limit, |n| n.id);
    Ok(Json(NotificationPage { items, next_cursor }))
}

/// Send a dead letter again, from its first attempt (after fixing what its `last_error`
/// names). Anything but a dead letter is 409.
#[utoipa::path(post, path = "/notifications/{id}/retry", tag = "notifications",
    responses((status = 202, body = Notification), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_notification(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Notification>)> {
    let project = state.store.notification(id).await?.project;
    access.on_project_named(&state.store, &project).await?;
    let notification = notify::requeue_dead(&state.store, id).await?;
    Ok((StatusCode::ACCEPTED, Json(notification)))
}
