//! `/api/v1/routing-rules`: rules that turn GitHub events and alerts into tasks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::AuditTarget;
use super::auth::{Access, visible_names};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use crate::error::Result;
use crate::routing::{self, RoutingRule, RoutingRuleSpec};
use crate::schedules::Origin;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_rule, list_rules))
        .routes(routes!(get_rule, update_rule, delete_rule))
}

/// Create a routing rule: `kind` `github` (which issue and workflow events start tasks) or
/// `alert` (which alerts go to which project). It applies to the next delivery.
#[utoipa::path(post, path = "/routing-rules", tag = "routing-rules", request_body = RoutingRuleSpec,
    responses((status = 201, body = RoutingRule), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_rule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<RoutingRule>)> {
    let spec = RoutingRuleSpec::from_json(body)?;
    // A rule naming an unknown project needs what one for every project needs; the use
    // case then refuses the name (422).
    let known = match spec.project() {
        Some(name) => state.store.find_project(name).await?.map(|p| p.id),
        None => None,
    };
    match known {
        Some(id) => access.on_project(id)?,
        None => access.on_every_project()?,
    }
    spec.validate(&state.teams, &state.config.alerts)?;
    let rule = routing::create(&state.store, &spec, Origin::Api, None).await?;
    let target = AuditTarget(format!("routing-rules/{}", rule.spec.name()));
    Ok((StatusCode::CREATED, Extension(target), Json(rule)))
}

/// Every routing rule, from the API and from `jobs/`: by kind, then in the order routing
/// tries them (position, then name).
#[utoipa::path(get, path = "/routing-rules", tag = "routing-rules", responses((status = 200, body = Vec<RoutingRule>)))]
async fn list_rules(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<Vec<RoutingRule>>> {
    let visible = visible_names(&state, &access).await?;
    let rules = state.store.list_routing_rules().await?;
    Ok(Json(
        rules
            .into_iter()
            .filter(|r| visible.sees(r.spec.project()))
            .collect(),
    ))
}

/// One routing rule.
#[utoipa::path(get, path = "/routing-rules/{name}", tag = "routing-rules",
    responses((status = 200, body = RoutingRule), (status = 404, body = ErrorBody)))]
async fn get_rule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RoutingRule>> {
    let rule = state.store.routing_rule(&name).await?;
    access
        .on_project_or_every(&state.store, rule.spec.project())
        .await?;
    Ok(Json(rule))
}

/// Change a routing rule: the fields given replace the rule's (`null` clears an optional
/// one), e.g. `{"enabled": false}`; its name and kind stay. Rules from `jobs/` are changed
/// there (409).
#[utoipa::path(patch, path = "/routing-rules/{name}", tag = "routing-rules",
    request_body(content = Object, description = "Fields of the rule's kind to replace"),
    responses((status = 200, body = RoutingRule), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_rule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<Map<String, Value>>,
) -> Result<Json<RoutingRule>> {
    let rule = state.store.routing_rule(&name).await?;
    access
        .on_project_or_every(&state.store, rule.spec.project())
        .await?;
    let rule = routing::update(
        &state.store,
        &name,
        patch,
        &state.teams,
        &state.config.alerts,
    )
    .await?;
    Ok(Json(rule))
}

/// Remove a routing rule. Rules from `jobs/` are removed there (409).
#[utoipa::path(delete, path = "/routing-rules/{name}", tag = "routing-rules",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_rule(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode> {
    let rule = state.store.routing_rule(&name).await?;
    access
        .on_project_or_every(&state.store, rule.spec.project())
        .await?;
    routing::delete(&state.store, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
