//! `/api/v1/schedules`: cron schedules that create tasks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::auth::AuditTarget;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use crate::error::Result;
use crate::schedules::{self, NewSchedule, Origin, Schedule, SchedulePatch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_schedule, list_schedules))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
}

/// Create a schedule; the answer says when it first fires (`next_run_at`).
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = NewSchedule,
    responses((status = 201, body = Schedule), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_schedule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(new): ApiJson<NewSchedule>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Schedule>)> {
    access.on_project_named(&state.store, &new.project).await?;
    let spec = new.into_spec(&state.config.tasks)?;
    let schedule = schedules::create(&state.store, &spec, Origin::Api).await?;
    let target = AuditTarget(format!("schedules/{}", schedule.name));
    Ok((StatusCode::CREATED, Extension(target), Json(schedule)))
}

/// Every schedule, by name, from the API and from `jobs/`.
#[utoipa::path(get, path = "/schedules", tag = "schedules", responses((status = 200, body = Vec<Schedule>)))]
async fn list_schedules(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<Vec<Schedule>>> {
    let visible = access.visible();
    let schedules = state.store.list_schedules().await?;
    Ok(Json(
        schedules
            .into_iter()
            .filter(|s| crate::permissions::sees(&visible, s.project_id))
            .collect(),
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/schedules/{name}", tag = "schedules",
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
async fn get_schedule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Schedule>> {
    let schedule = state.store.schedule(&name).await?;
    access.on_project(schedule.project_id)?;
    Ok(Json(schedule))
}

/// Change a schedule; only the fields given change. A new cron expression, time zone or
/// enabled flag counts the next run from now. Schedules from `jobs/` are changed there (409).
#[utoipa::path(patch, path = "/schedules/{name}", tag = "schedules", request_body = SchedulePatch,
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_schedule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<SchedulePatch>,
) -> Result<Json<Schedule>> {
    access.on_project(state.store.schedule(&name).await?.project_id)?;
    Ok(Json(schedules::update(&state.store, &name, patch).await?))
}

/// Remove a schedule; the tasks it created stay. Schedules from `jobs/` are removed there (409).
#[utoipa::path(delete, path = "/schedules/{name}", tag = "schedules",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_schedule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode> {
    access.on_project(state.store.schedule(&name).await?.project_id)?;
    schedules::delete(&state.store, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
