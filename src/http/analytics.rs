//! `/api/v1/analytics/…`: history as figures per time bucket and group; any role may read,
//! and each reader sees only the projects in its scope.

use axum::extract::State;
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::ApiQuery;
use crate::analytics::{
    self, AgentAnalytics, AnalyticsRequest, ApprovalAnalytics, ExpensiveTasks, TaskAnalytics,
};
use crate::auth::Principal;
use crate::error::Result;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(task_figures))
        .routes(routes!(approval_figures))
        .routes(routes!(expensive_tasks))
        .routes(routes!(agent_figures))
}

/// Tasks per bucket and group: started, done, failed, cancelled, rolled back, success rate,
/// duration percentiles, tokens and cost (per task and per successful task).
#[utoipa::path(get, path = "/analytics/tasks", tag = "analytics", params(AnalyticsRequest),
    responses((status = 200, body = TaskAnalytics), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn task_figures(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(request): ApiQuery<AnalyticsRequest>,
) -> Result<Json<TaskAnalytics>> {
    Ok(Json(
        analytics::tasks(&state.store, &principal, &request).await?,
    ))
}

/// Approval requests per bucket and group: decisions and their shares, expired, pending,
/// time-to-decision percentiles.
#[utoipa::path(get, path = "/analytics/approvals", tag = "analytics", params(AnalyticsRequest),
    responses((status = 200, body = ApprovalAnalytics), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn approval_figures(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(request): ApiQuery<AnalyticsRequest>,
) -> Result<Json<ApprovalAnalytics>> {
    Ok(Json(
        analytics::approvals(&state.store, &principal, &request).await?,
    ))
}

/// The tasks created in the range whose runs cost the most, dearest first.
#[utoipa::path(get, path = "/analytics/expensive-tasks", tag = "analytics", params(AnalyticsRequest),
    responses((status = 200, body = ExpensiveTasks), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn expensive_tasks(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(request): ApiQuery<AnalyticsRequest>,
) -> Result<Json<ExpensiveTasks>> {
    Ok(Json(
        analytics::expensive_tasks(&state.store, &principal, &request).await?,
    ))
}

/// Per agent (a ticket's assignee, a member of the plugin's team), over the whole range: the
/// tickets opened, done, blocked, failed and reopened, the share failed or reopened, and the
/// time from opened to done (p50, p90).
#[utoipa::path(get, path = "/analytics/agents", tag = "analytics", params(AnalyticsRequest),
    responses((status = 200, body = AgentAnalytics), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn agent_figures(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(request): ApiQuery<AnalyticsRequest>,
) -> Result<Json<AgentAnalytics>> {
    Ok(Json(
        analytics::agents(&state.store, &principal, &request).await?,
    ))
}
