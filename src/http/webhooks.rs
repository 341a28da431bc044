//! Inbound webhooks (`/webhooks/…`, authenticated by signature or token, not by API
//! token) and the deliveries API (`/api/v1/deliveries`).
//!
//! Each webhook answers right after the delivery and its task are durably stored.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::error::ErrorBody;
use super::extract::header;
use super::extract::{ApiPath, ApiQuery};
use super::page::{next_cursor, page_limit, parse_cursor};
use crate::error::{Error, Result};
use crate::model::{Delivery, DeliveryOutcome};
use crate::triggers::alerts;
use crate::triggers::intake::{
    self, AlertReceipt, AlertRequest, GithubReceipt, GithubRequest, Intake,
};

/// The webhook endpoints; outside `/api/v1` and its token check.
pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/webhooks/github", post(github_webhook))
        .route("/webhooks/alertmanager", post(alertmanager_webhook))
        .route("/webhooks/grafana", post(grafana_webhook))
        .route("/webhooks/generic/{source}", post(generic_webhook))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// The deliveries API, under `/api/v1`.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
}

fn body_of(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(Error::from)
}

/// The intake use cases' view of the service.
fn intake(state: &AppState) -> Intake<'_> {
    Intake {
        store: &state.store,
        vault: &state.vault,
        config: &state.config,
        teams: &state.teams,
    }
}

/// `POST /webhooks/github`: verify `X-Hub-Signature-256`, dedupe on `X-GitHub-Delivery`,
/// route, and store the delivery with its task.
async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_of(body)?;
    let request = GithubRequest {
        event: header(&headers, "x-github-event")
            .ok_or_else(|| Error::BadRequest("missing X-GitHub-Event header".into()))?,
        delivery_id: header(&headers, "x-github-delivery")
            .ok_or_else(|| Error::BadRequest("missing X-GitHub-Delivery header".into()))?,
        signature: header(&headers, "x-hub-signature-256")
            .ok_or_else(|| Error::Unauthorized("missing X-Hub-Signature-256 header".into()))?,
        body: &body,
    };
    Ok(
        match intake::receive_github(intake(&state), request).await? {
            GithubReceipt::Pong(pong) => (StatusCode::OK, Json(pong)).into_response(),
            GithubReceipt::Delivered(outcome) => {
                (StatusCode::ACCEPTED, Json(outcome)).into_response()
            }
        },
    )
}

/// `POST /webhooks/alertmanager` (webhook version 4).
async fn alertmanager_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AlertReceipt>)> {
    receive_alerts(&state, "alertmanager", &headers, body, |v| {
        alerts::parse_grouped(v, Some("4"))
    })
    .await
}

/// `POST /webhooks/grafana` (unified alerting).
async fn grafana_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AlertReceipt>)> {
    receive_alerts(&state, "grafana", &headers, body, |v| {
        alerts::parse_grouped(v, None)
    })
    .await
}

/// `POST /webhooks/generic/{source}`: `{title, body, severity, fingerprint}`.
async fn generic_webhook(
    State(state): State<AppState>,
    ApiPath(source): ApiPath<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AlertReceipt>)> {
    if matches!(source.as_str(), "alertmanager" | "grafana") {
        return Err(Error::NotFound(format!(
            "generic alert source {source:?}; use /webhooks/{source}"
        )));
    }
    receive_alerts(&state, &source, &headers, body, alerts::parse_generic).await
}

async fn receive_alerts(
    state: &AppState,
    source_name: &str,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    parse: intake::AlertParser,
) -> Result<(StatusCode, Json<AlertReceipt>)> {
    let body = body_of(body)?;
    let request = AlertRequest {
        authorization: header(headers, "authorization"),
        signature: header(headers, "x-signature-256"),
        body: &body,
    };
    let receipt = intake::receive_alerts(intake(state), source_name, request, parse).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// Only deliveries from this source, e.g. `github`.
    source: Option<String>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,18}$")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A page of deliveries, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

/// Inbound webhook deliveries and what became of each.
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, body = DeliveryPage)))]
async fn list_deliveries(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>> {
    let limit = page_limit(query.limit, state.config.tasks.page_size)?;
    let items = state
        .store
        .list_deliveries_in(
            query.source.as_deref(),
            parse_cursor(query.cursor.as_deref())?,
            limit,
            &access.visible(),
        )
        .await?;
    let next_cursor = next_cursor(&items, limit, |d| d.id);
    Ok(Json(DeliveryPage { items, next_cursor }))
}

/// Route a stored GitHub delivery again (e.g. after registering its repository); it is
/// recorded as a new delivery. A task that already exists for it is not created twice.
#[utoipa::path(post, path = "/deliveries/{id}/replay", tag = "deliveries",
    responses((status = 202, body = DeliveryOutcome), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replay_delivery(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<DeliveryOutcome>)> {
    match state.store.delivery_payload(id).await?.0.task_id {
        Some(task_id) => access.on_task(&state.store, task_id).await?,
        None => access.on_every_project()?,
    }
    let outcome = intake::replay_github(intake(&state), id).await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}
