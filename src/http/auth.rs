//! Bearer authentication and the audit trail of every mutating API request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::audit::NewAuditEntry;
use crate::auth;
use crate::error::Error;
use crate::model::Actor;

/// Set on a response by a handler that created something, to name it in the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// Resolves the bearer token to a principal (401 otherwise), runs the handler, and for
/// every request that is not a read appends an audit entry with the outcome, whether
/// the request succeeded, failed or was refused.
pub async fn authenticate_and_audit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().path().to_string(),
        |uri| uri.path().to_string(),
    );
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_string());
    let authenticated = match bearer_token(&request) {
        Some(token) => auth::authenticate(&state.store, token).await,
        None => Err(Error::Unauthorized(
            "send Authorization: Bearer <token>; create one with `aiops token create`".into(),
        )),
    };
    let (principal, response) = match authenticated {
        Ok(principal) => {
            request.extensions_mut().insert(principal.clone());
            (Some(principal), next.run(request).await)
        }
        Err(e) => (None, e.into_response()),
    };
    if is_mutation(&method) {
        let target = response
            .extensions()
            .get::<AuditTarget>()
            .map_or_else(|| target_of(&path), |t| t.0.clone());
        let entry = NewAuditEntry {
            principal: principal.map(Actor::from),
            action: format!("{method} {route}"),
            target,
            source: peer.ip().to_string(),
            outcome: response.status().as_u16().to_string(),
            detail: json!({ "path": path }),
        };
        if let Err(e) = state.store.append_audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "could not write the audit log");
        }
    }
    response
}

fn bearer_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `/api/v1/projects/shop` → `projects/shop`.
fn target_of(path: &str) -> String {
    path.trim_start_matches("/api/v1/")
        .trim_end_matches('/')
        .to_string()
}
