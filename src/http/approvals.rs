//! `/api/v1/approvals`: pending requests of pipelines and the human decisions on them.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::page::{next_cursor, page_limit};
use crate::approvals::{self, Channel, Decider, DecisionRequest};
use crate::error::Result;
use crate::model::ApprovalFilter;
use crate::model::{ApprovalRecord, ApprovalSnapshot, ApprovalVote};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(get_approval))
        .routes(routes!(decide_approval))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ApprovalQuery {
    /// pending | decided | expired
    #[param(value_type = Option<crate::model::ApprovalStatus>)]
    status: Option<String>,
    /// Only this project's approvals.
    project: Option<String>,
    /// Only this task's approvals.
    task: Option<i64>,
    /// Page size, at most 200.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// Approvals, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPage {
    pub items: Vec<ApprovalRecord>,
    /// Present when there may be more than `limit` items.
    pub next_cursor: Option<String>,
}

/// Approval requests, newest first; `status=pending` lists what waits for a human.
#[utoipa::path(get, path = "/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = ApprovalPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_approvals(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiQuery(query): ApiQuery<ApprovalQuery>,
) -> Result<Json<ApprovalPage>> {
    let status = query.status.as_deref().map(str::parse).transpose()?;
    let project_id = crate::projects::filter_id(&state.store, query.project.as_deref()).await?;
    let limit = page_limit(query.limit, state.config.tasks.page_size)?;
    let items = state
        .store
        .list_approvals_in(
            &ApprovalFilter {
                status,
                project_id,
                task_id: query.task,
                before_id: None,
                limit,
            },
            &access.visible(),
        )
        .await?;
    let next_cursor = next_cursor(&items, limit, |a| a.id);
    Ok(Json(ApprovalPage { items, next_cursor }))
}

/// An approval with what the human is shown: the diff and the findings at request time.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDetail {
    #[serde(flatten)]
    pub approval: ApprovalRecord,
    #[serde(flatten)]
    pub snapshot: ApprovalSnapshot,
    /// The votes so far (who approved, rejected or revised, through which channel, when).
    pub votes: Vec<ApprovalVote>,
}

/// One approval request, its diff, findings and decision.
#[utoipa::path(get, path = "/approvals/{id}", tag = "approvals",
    responses((status = 200, body = ApprovalDetail), (status = 404, body = ErrorBody)))]
async fn get_approval(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ApprovalDetail>> {
    let approval = state.store.approval(id).await?;
    access.on_task(&state.store, approval.task_id).await?;
    Ok(Json(ApprovalDetail {
        approval,
        snapshot: state.store.approval_snapshot(id).await?,
        votes: state.store.approval_votes(id).await?,
    }))
}

/// Decide a pending approval. Exactly once: a later decision on any channel is 409 and
/// names the first. `revise` needs a comment (422 without). The project's approval policy
/// applies: 403 naming the rule for a role below `decide_role` or for approving one's own
/// request without `self_approval`; with `required_approvals` above 1, an approve before the
/// last is counted and the approval stays pending (a second approve by the same person is
/// 409). The pipeline resumes with the decision in the same worktree.
#[utoipa::path(post, path = "/approvals/{id}/decision", tag = "approvals", request_body = DecisionRequest,
    responses((status = 200, body = ApprovalRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn decide_approval(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<DecisionRequest>,
) -> Result<Json<ApprovalRecord>> {
    let task_id = state.store.approval(id).await?.task_id;
    access.on_task(&state.store, task_id).await?;
    let principal = &access.principal;
    let decider = Decider {
        name: principal.name.clone(),
        principal_id: principal.id,
        channel: Channel::Api,
        source: peer.ip().to_string(),
    };
    // The decision's own audit entry (target approvals/{id}) is written with it, in one
    // transaction; this request is logged as approvals/{id}/decision like every other.
    Ok(Json(
        approvals::decide(&state.store, id, &request, &decider).await?,
    ))
}
