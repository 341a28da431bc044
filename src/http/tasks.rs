//! `/api/v1/tasks`: requests to run a team on a project.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, AuditTarget};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::page::{next_cursor, page_limit, parse_cursor};
use crate::error::Result;
use crate::model::TaskStatus;
use crate::tasks::{self, NewTask, Source, Task, TaskDetail, TaskFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_task, list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(get_finding))
        .routes(routes!(cancel_task))
        .routes(routes!(retry_task))
        .routes(routes!(deliver_task))
        .routes(routes!(run_log))
}

/// One finding of a task, whole (a task's detail carries each finding's beginning).
#[utoipa::path(get, path = "/tasks/{id}/findings/{name}", tag = "tasks",
    responses((status = 200, body = crate::model::FindingRecord), (status = 404, body = ErrorBody)))]
async fn get_finding(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath((id, name)): ApiPath<(i64, String)>,
) -> Result<Json<crate::model::FindingRecord>> {
    access.on_task(&state.store, id).await?;
    Ok(Json(state.store.finding(id, &name).await?))
}

/// Create a task.
#[utoipa::path(post, path = "/tasks", tag = "tasks", request_body = NewTask,
    responses((status = 201, body = Task), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_task(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(new): ApiJson<NewTask>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Task>)> {
    // An unknown project is a bad field of this request (422), as `task_spec` says it.
    match access.on_project_named(&state.store, &new.project).await {
        Err(crate::error::Error::NotFound(_)) => {}
        checked => checked.map(|_| ())?,
    }
    let spec = tasks::task_spec(
        &state.store,
        &state.config.tasks,
        &state.teams,
        new,
        Source::Api,
        &access.principal.name,
        access.principal.id,
    )
    .await?;
    let task = tasks::enqueue(&state.store, &spec).await?;
    let target = AuditTarget(format!("tasks/{}", task.id));
    Ok((StatusCode::CREATED, Extension(target), Json(task)))
}

/// One task: status and phase, findings, tickets, approval requests and runs.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks",
    responses((status = 200, body = TaskDetail), (status = 404, body = ErrorBody)))]
async fn get_task(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TaskDetail>> {
    access.on_task(&state.store, id).await?;
    Ok(Json(tasks::detail(&state.store, id).await?))
}

/// Outcome of a cancel request.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelOutcome {
    pub id: i64,
    /// `cancelled` when it took effect at once; otherwise the current status, and the
    /// worker running the pipeline stops it within a moment.
    pub status: TaskStatus,
}

/// Cancel a task: a queued or waiting task ends at once; a running pipeline's whole
/// process group is stopped.
#[utoipa::path(post, path = "/tasks/{id}/cancel", tag = "tasks",
    responses((status = 202, body = CancelOutcome), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_task(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<CancelOutcome>)> {
    access.on_task(&state.store, id).await?;
    let status = tasks::request_cancel(&state.store, id).await?;
    state.engine.cancel_local(id);
    Ok((StatusCode::ACCEPTED, Json(CancelOutcome { id, status })))
}

/// Run a failed or cancelled task again: it is queued with a new job and runs in its
/// worktree when that still exists.
#[utoipa::path(post, path = "/tasks/{id}/retry", tag = "tasks",
    params(("id" = i64, Path, description = "Task id")),
    responses((status = 202, body = Task), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_task(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Task>)> {
    access.on_task(&state.store, id).await?;
    let task = tasks::retry(&state.store, id, &access.principal.name).await?;
    Ok((StatusCode::ACCEPTED, Json(task)))
}

/// Deliver a done task's approved work again (commit, push, pull request) after its first
/// delivery failed; the task's `change_note` said why, and its worktree was kept.
#[utoipa::path(post, path = "/tasks/{id}/deliver", tag = "tasks",
    responses((status = 200, body = Task), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn deliver_task(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Task>> {
    access.on_task(&state.store, id).await?;
    state.engine.deliver_again(id).await?;
    Ok(Json(state.store.task(id).await?))
}

/// The redacted output of one run.
#[utoipa::path(get, path = "/tasks/{id}/runs/{run_id}/log", tag = "tasks",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = ErrorBody)))]
async fn run_log(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath((id, run_id)): ApiPath<(i64, i64)>,
) -> Result<String> {
    access.on_task(&state.store, id).await?;
    state.store.run_log(id, run_id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TaskQuery {
    /// Only this project's tasks.
    project: Option<String>,
    /// Only tasks in this status.
    #[param(value_type = Option<crate::model::TaskStatus>)]
    status: Option<String>,
    /// `next_cursor` of the previous page.
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,18}$")]
    cursor: Option<String>,
    /// Page size, at most 200.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A page of tasks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Tasks, newest first, filtered and paginated.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(TaskQuery),
    responses((status = 200, body = TaskPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_tasks(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<Json<TaskPage>> {
    let status = query.status.as_deref().map(str::parse).transpose()?;
    let project_id = crate::projects::filter_id(&state.store, query.project.as_deref()).await?;
    let limit = page_limit(query.limit, state.config.tasks.page_size)?;
    let filter = TaskFilter {
        project_id,
        status,
        before_id: parse_cursor(query.cursor.as_deref())?,
        limit,
    };
    let items = state
        .store
        .list_tasks_in(&filter, &access.visible())
        .await?;
    let next_cursor = next_cursor(&items, limit, |t| t.id);
    Ok(Json(TaskPage { items, next_cursor }))
}
