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

/// Ready: the store answers, its migrations are current, and agents can start (the sandbox
/// is enforced, or explicitly off). The answer names the sandbox's mode and Landlock ABI.
async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    let sandbox = state.engine.sandbox_status();
    let store = match state.store.is_ready().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("migrations are not current; run `aiops migrate`".to_owned()),
        Err(e) => Err(format!("store unreachable: {e}")),
    };
    // A node without workers runs no agent; its sandbox does not matter.
    let agents_ok = sandbox.allows_agents() || state.config.engine.workers == 0;
    let reason = match (&store, agents_ok) {
        (Err(why), _) => Some(why.clone()),
        (Ok(()), false) => Some(format!(
            "the agent sandbox cannot be applied: {}; set engine.sandbox = \"off\" to run agents unconfined",
            sandbox.reason.as_deref().unwrap_or_default()
        )),
        (Ok(()), true) => None,
    };
    let mut body = json!({
        "status": if reason.is_none() { "ready" } else { "not_ready" },
        "store": if store.is_ok() { "ok" } else { "unavailable" },
        "sandbox": sandbox,
    });
    let code = match reason {
        Some(reason) => {
            body["reason"] = json!(reason);
            StatusCode::SERVICE_UNAVAILABLE
        }
        None => StatusCode::OK,
    };
    (code, axum::Json(body))
}
