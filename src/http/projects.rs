//! `/api/v1/projects`: the project registry.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, AuditTarget};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use crate::budgets::{self, BudgetChange, BudgetStatus};
use crate::error::Result;
use crate::projects::{self, NewProject, Project, ProjectPatch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(get_budget, set_budget))
}

/// How the project's monthly budget stands: spent this month, the limit and its source.
#[utoipa::path(get, path = "/projects/{name}/budget", tag = "projects",
    responses((status = 200, body = BudgetStatus), (status = 404, body = ErrorBody)))]
async fn get_budget(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<BudgetStatus>> {
    access.on_project_named(&state.store, &name).await?;
    let project = state.store.project(&name).await?;
    let costs = &state.config.costs;
    Ok(Json(
        budgets::project_status(&state.store, costs, &project).await?,
    ))
}

/// Set (raise) the project's monthly budget; its tasks waiting for money start if it has
/// room now.
#[utoipa::path(put, path = "/projects/{name}/budget", tag = "projects", request_body = BudgetChange,
    responses((status = 200, body = BudgetStatus), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_budget(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
    ApiJson(change): ApiJson<BudgetChange>,
) -> Result<(Extension<AuditTarget>, Json<BudgetStatus>)> {
    access.on_project_named(&state.store, &name).await?;
    let project = state.store.project(&name).await?;
    let costs = &state.config.costs;
    let by = &access.principal.name;
    let status = budgets::set(&state.store, costs, &project, change, by).await?;
    let target = AuditTarget(format!("projects/{name}/budget"));
    Ok((Extension(target), Json(status)))
}

/// Register a project.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_project(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(new): ApiJson<NewProject>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Project>)> {
    access.on_every_project()?;
    let spec = new.into_spec(&state.config.inputs)?;
    let project = projects::shown(state.store.insert_project(&spec).await?);
    let target = AuditTarget(format!("projects/{}", project.name));
    Ok((StatusCode::CREATED, Extension(target), Json(project)))
}

/// Every project.
#[utoipa::path(get, path = "/projects", tag = "projects", responses((status = 200, body = Vec<Project>)))]
async fn list_projects(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<Vec<Project>>> {
    let visible = access.visible();
    let projects = state.store.list_projects().await?;
    Ok(Json(
        projects
            .into_iter()
            .filter(|p| crate::permissions::sees(&visible, p.id))
            .map(projects::shown)
            .collect(),
    ))
}

/// One project.
#[utoipa::path(get, path = "/projects/{name}", tag = "projects",
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
async fn get_project(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Project>> {
    access.on_project_named(&state.store, &name).await?;
    Ok(Json(projects::shown(state.store.project(&name).await?)))
}

/// Change a project; only the fields given change.
#[utoipa::path(patch, path = "/projects/{name}", tag = "projects", request_body = ProjectPatch,
    responses((status = 200, body = Project), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_project(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<ProjectPatch>,
) -> Result<Json<Project>> {
    access.on_project_named(&state.store, &name).await?;
    let inputs = &state.config.inputs;
    let project = projects::update(&state.store, inputs, &name, patch).await?;
    Ok(Json(projects::shown(project)))
}

/// Remove a project and its credentials; refused (409) while tasks refer to it.
#[utoipa::path(delete, path = "/projects/{name}", tag = "projects",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_project(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode> {
    access.on_project_named(&state.store, &name).await?;
    projects::remove(&state.store, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
