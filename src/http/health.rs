//! Liveness and readiness probes; no token needed.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// The store answers and its migrations are current.
async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    match state.store.is_ready().await {
        Ok(true) => (StatusCode::OK, axum::Json(json!({ "status": "ready" }))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "status": "not_ready", "reason": "migrations are not current; run `aiops migrate`" }),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "status": "not_ready", "reason": format!("store unreachable: {e}") }),
            ),
        ),
    }
}
