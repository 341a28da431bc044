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

/// Most bytes of a request path kept in an audit entry; a longer one is cut and says so.
const MAX_AUDITED_PATH_BYTES: usize = 256;

/// Set on a response by a handler that created something, to name it in the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// Resolves the bearer token to a principal (401 otherwise), runs the handler, and for
/// every request that is not a read appends an audit entry with the outcome, whether
/// the request succeeded, failed or was refused. The entry is bounded (paths cut at
/// `MAX_AUDITED_PATH_BYTES`), and refusals of requests without a valid token are written at
/// most `intake.refusals_audited_per_minute` times a minute per client address.
pub async fn authenticate_and_audit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| capped(request.uri().path()), |uri| capped(uri.path()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| capped(m.as_str()));
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
    let audited = || principal.is_some() || state.guards.audit_refusal(peer.ip());
    if is_mutation(&method) && audited() {
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

/// `path` cut to `MAX_AUDITED_PATH_BYTES` (at a character boundary), marked when cut.
fn capped(path: &str) -> String {
    if path.len() <= MAX_AUDITED_PATH_BYTES {
        return path.to_string();
    }
    let mut end = MAX_AUDITED_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &path[..end], path.len())
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
