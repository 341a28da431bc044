//! Inbound webhooks (`/webhooks/…`, authenticated by signature or token, not by API
//! token) and the deliveries API (`/api/v1/deliveries`).
//!
//! Each webhook answers right after the delivery and its task are durably stored.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{ApiPath, ApiQuery};
use super::page::{next_cursor, page_limit, parse_cursor};
use crate::auth::{Principal, Role};
use crate::config::{AlertAuth, AlertRule, AlertSource};
use crate::credentials::{self, CredentialKind};
use crate::error::{Error, Result};
use crate::store::deliveries::{AlertEffect, Delivery, DeliveryOutcome, NewDelivery};
use crate::tasks::{Source, TaskSpec};
use crate::triggers::{self, Routing, alerts, github};

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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn accepted(outcome: &DeliveryOutcome) -> (StatusCode, Json<Value>) {
    (StatusCode::ACCEPTED, Json(json!(outcome)))
}

/// `POST /webhooks/github`: verify `X-Hub-Signature-256`, dedupe on `X-GitHub-Delivery`,
/// route, and store the delivery with its task.
async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let body = body_of(body)?;
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| Error::BadRequest("missing X-GitHub-Event header".into()))?;
    let delivery_id = header(&headers, "x-github-delivery")
        .ok_or_else(|| Error::BadRequest("missing X-GitHub-Delivery header".into()))?;
    let signature = header(&headers, "x-hub-signature-256")
        .ok_or_else(|| Error::Unauthorized("missing X-Hub-Signature-256 header".into()))?;
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    let repository = payload["repository"]["full_name"]
        .as_str()
        .map(str::to_string);
    let project = match &repository {
        Some(repo) => state.store.project_by_github_repo(repo).await?,
        None => None,
    };
    let mut secrets = Vec::new();
    if let Some(project) = &project {
        secrets.extend(
            credentials::reveal_project_kind(
                &state.store,
                &state.vault,
                project.id,
                CredentialKind::WebhookSecret,
            )
            .await?,
        );
    }
    if let Some(app_secret) = credentials::reveal_global(
        &state.store,
        &state.vault,
        &state.config.github.app_secret_credential,
    )
    .await?
    {
        secrets.push(app_secret);
    }
    if secrets.is_empty() {
        return Err(Error::Unauthorized(format!(
            "no webhook secret is configured for {}; store one as a webhook_secret credential",
            repository.as_deref().unwrap_or("this sender")
        )));
    }
    if !secrets
        .iter()
        .any(|secret| triggers::verify_sha256_signature(secret.as_bytes(), &body, signature))
    {
        tracing::warn!(
            delivery = delivery_id,
            event,
            "GitHub delivery with a wrong signature refused"
        );
        return Err(Error::Unauthorized(
            "X-Hub-Signature-256 does not match the body".into(),
        ));
    }
    let delivery = NewDelivery {
        source: "github".into(),
        delivery_id: delivery_id.to_string(),
        event: event.to_string(),
        action: payload["action"].as_str().map(str::to_string),
        repository: repository.clone(),
        payload: payload.clone(),
    };
    if event == "ping" {
        let outcome = state
            .store
            .record_delivery(&delivery, None, Some("ping"))
            .await?;
        return Ok((
            StatusCode::OK,
            Json(json!({"outcome": "pong", "id": outcome.id})),
        ));
    }
    let outcome = route_github_delivery(&state, &delivery, project.as_ref()).await?;
    Ok(accepted(&outcome))
}

/// Routes a GitHub delivery and stores it (with its task, if any).
async fn route_github_delivery(
    state: &AppState,
    delivery: &NewDelivery,
    project: Option<&crate::projects::Project>,
) -> Result<DeliveryOutcome> {
    let Some(project) = project else {
        let reason = format!(
            "repository {} is not registered (no project has github_repo set to it)",
            delivery.repository.as_deref().unwrap_or("(none)")
        );
        return state
            .store
            .record_delivery(delivery, None, Some(&reason))
            .await;
    };
    let defaults =
        github::Triggers::from_config(&state.config.github, &state.config.tasks.default_team);
    let rules: Vec<github::Triggers> = state
        .store
        .github_routing_rules(project.id)
        .await?
        .iter()
        .map(|rule| rule.triggers(&defaults))
        .collect();
    let routing = github::route(
        &delivery.event,
        &delivery.payload,
        &rules,
        &defaults,
        &state.teams,
    );
    match routing {
        Routing::Ignore(reason) => {
            state
                .store
                .record_delivery(delivery, None, Some(&reason))
                .await
        }
        Routing::Task(request) => {
            let spec = TaskSpec {
                project_id: project.id,
                team: request.team,
                prompt: request.prompt,
                source: Source::Github,
                priority: request.priority,
                dedup_key: Some(request.dedup_key),
                source_ref: request.source_ref,
                created_by: format!(
                    "github:{}",
                    delivery.payload["sender"]["login"].as_str().unwrap_or("?")
                ),
            };
            state
                .store
                .record_delivery(delivery, Some(&spec), None)
                .await
        }
    }
}

/// `POST /webhooks/alertmanager` (webhook version 4).
async fn alertmanager_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>)> {
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
) -> Result<(StatusCode, Json<Value>)> {
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
) -> Result<(StatusCode, Json<Value>)> {
    if matches!(source.as_str(), "alertmanager" | "grafana") {
        return Err(Error::NotFound(format!(
            "generic alert source {source:?}; use /webhooks/{source}"
        )));
    }
    receive_alerts(&state, &source, &headers, body, alerts::parse_generic).await
}

/// Checks the sender's token or signature against its configured credential.
async fn authenticate_alert_source(
    state: &AppState,
    source: &AlertSource,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<()> {
    let secret = credentials::reveal_global(&state.store, &state.vault, &source.credential)
        .await?
        .ok_or_else(|| {
            Error::Unauthorized(format!(
                "no credential {:?} is configured for alert source {:?}; store it as a global credential",
                source.credential, source.name
            ))
        })?;
    let ok = match source.auth {
        AlertAuth::Bearer => {
            let presented = header(headers, "authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| Error::Unauthorized("send Authorization: Bearer <token>".into()))?;
            triggers::tokens_equal(presented.trim(), &secret)
        }
        AlertAuth::Hmac => {
            let signature = header(headers, "x-signature-256")
                .ok_or_else(|| Error::Unauthorized("missing X-Signature-256 header".into()))?;
            triggers::verify_sha256_signature(secret.as_bytes(), body, signature)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Unauthorized(format!(
            "the {} alert credentials do not match",
            source.name
        )))
    }
}

async fn receive_alerts(
    state: &AppState,
    source_name: &str,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    parse: impl Fn(&Value) -> std::result::Result<Vec<alerts::AlertOccurrence>, String>,
) -> Result<(StatusCode, Json<Value>)> {
    let body = body_of(body)?;
    let source = state
        .config
        .alerts
        .sources
        .iter()
        .find(|s| s.name == source_name)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "alert source {source_name:?}; configure it under [[alerts.sources]]"
            ))
        })?;
    authenticate_alert_source(state, source, headers, &body).await?;
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    let occurrences = parse(&payload).map_err(|e| Error::invalid("alerts", e))?;
    let rules: Vec<AlertRule> = state
        .store
        .alert_routing_rules()
        .await?
        .iter()
        .map(|rule| rule.as_alert_rule())
        .collect();
    let mut results = Vec::with_capacity(occurrences.len());
    for alert in &occurrences {
        results.push(apply_alert(state, source_name, alert, &rules).await?);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"alerts": results}))))
}

/// Routes one alert by `rules` (the stored alert rules, in order), then `[[alerts.rules]]`,
/// and records it.
async fn apply_alert(
    state: &AppState,
    source: &str,
    alert: &alerts::AlertOccurrence,
    rules: &[AlertRule],
) -> Result<Value> {
    let fingerprint = &alert.fingerprint;
    let Some(route) = alerts::route(source, alert, rules, &state.config.alerts) else {
        return Ok(
            json!({"fingerprint": fingerprint, "outcome": "ignored", "reason": "no routing rule and no [[alerts.rules]] entry matches its labels"}),
        );
    };
    let Some(project) = state.store.find_project(&route.project).await? else {
        return Ok(
            json!({"fingerprint": fingerprint, "outcome": "ignored", "reason": format!("rule names unknown project {:?}", route.project)}),
        );
    };
    let spec = TaskSpec {
        project_id: project.id,
        team: route.team,
        prompt: alerts::prompt(source, alert),
        source: Source::Alert,
        priority: route.priority,
        dedup_key: Some(format!(
            "alert:{source}:{fingerprint}:{}",
            ulid::Ulid::generate()
        )),
        source_ref: alerts::source_ref(source, alert),
        created_by: format!("alert:{source}"),
    };
    let firing = alert.status == alerts::AlertStatus::Firing;
    let effect = state
        .store
        .record_alert(
            source,
            fingerprint,
            firing,
            &spec,
            state.config.alerts.cancel_queued_on_resolve,
        )
        .await?;
    Ok(match effect {
        AlertEffect::Created(task) => {
            json!({"fingerprint": fingerprint, "outcome": "task_created", "task_id": task})
        }
        AlertEffect::Coalesced(task) => {
            json!({"fingerprint": fingerprint, "outcome": "coalesced", "task_id": task})
        }
        AlertEffect::Resolved(task, cancelled) => {
            json!({"fingerprint": fingerprint, "outcome": "resolved", "task_id": task, "cancelled": cancelled})
        }
        AlertEffect::NothingOpen => {
            json!({"fingerprint": fingerprint, "outcome": "resolved", "task_id": null})
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// Only deliveries from this source, e.g. `github`.
    source: Option<String>,
    cursor: Option<String>,
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
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>> {
    let limit = page_limit(query.limit, state.config.tasks.page_size)?;
    let items = state
        .store
        .list_deliveries(
            query.source.as_deref(),
            parse_cursor(query.cursor.as_deref())?,
            limit,
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
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<DeliveryOutcome>)> {
    principal.require(Role::Operator)?;
    let (original, payload) = state.store.delivery_payload(id).await?;
    if original.source != "github" || payload.is_null() {
        return Err(Error::invalid(
            "id",
            "only stored GitHub deliveries (not duplicates) can be replayed",
        ));
    }
    let project = match &original.repository {
        Some(repo) => state.store.project_by_github_repo(repo).await?,
        None => None,
    };
    let delivery = NewDelivery {
        source: original.source.clone(),
        delivery_id: format!("{}#replay-{}", original.delivery_id, ulid::Ulid::generate()),
        event: original.event.clone(),
        action: original.action.clone(),
        repository: original.repository.clone(),
        payload,
    };
    let outcome = route_github_delivery(&state, &delivery, project.as_ref()).await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}
