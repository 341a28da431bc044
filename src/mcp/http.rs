//! `/mcp` on the service: the Streamable HTTP transport behind a bearer check, and the OAuth
//! protected-resource metadata (RFC 9728) a client discovers from a 401.
//!
//! The transport is stateless (no `Mcp-Session-Id`): each request is answered on its own,
//! by whichever node receives it, and carries its own token. Host checking is off because
//! every request needs a bearer token, which a browser never attaches on its own, so a DNS
//! rebinding page gets nothing but 401s; the service is reached under names only its
//! operator knows (`public_url`, a proxy's).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use super::{Aiops, Caller, McpState};
use crate::auth;

/// Where the protected-resource metadata of `/mcp` is (RFC 9728 §3.1: the resource's path
/// after the well-known prefix).
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// `/mcp` and its protected-resource metadata, ready to merge into the service's router.
pub fn router<S: Clone + Send + Sync + 'static>(state: McpState) -> Router<S> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts();
    let handler_state = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(Aiops::new(handler_state.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let mcp =
        Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                authenticate,
            ));
    Router::new()
        .route("/.well-known/oauth-protected-resource", get(metadata))
        .route(METADATA_PATH, get(metadata))
        .merge(mcp)
        .with_state(state)
}

/// The address clients reach the service at: `public_url`, else the request's `Host`.
fn base_url(state: &McpState, headers: &HeaderMap) -> String {
    if !state.config.public_url.is_empty() {
        return state.config.public_base_url();
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(
            || state.config.public_base_url(),
            |host| format!("http://{host}"),
        )
}

/// RFC 9728 protected-resource metadata of `/mcp`. No `authorization_servers` yet: tokens
/// come from `aiops token create` until aiops signs people in (issue 12) and issues them.
async fn metadata(State(state): State<McpState>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    axum::Json(json!({
        "resource": format!("{base}/mcp"),
        "bearer_methods_supported": ["header"],
        "resource_name": "aiops",
        "resource_documentation": format!("{base}/"),
    }))
    .into_response()
}

/// Resolves the bearer token to a caller, or answers 401 with a `WWW-Authenticate` challenge
/// naming the metadata (RFC 9728 §5.1, RFC 6750 §3).
async fn authenticate(
    State(state): State<McpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let refusal = match &token {
        None => {
            "send Authorization: Bearer <token>; create one with `aiops token create`".to_string()
        }
        Some(token) => match auth::authenticate(&state.store, token).await {
            Ok(principal) => {
                request.extensions_mut().insert(Caller {
                    principal,
                    source: peer.ip().to_string(),
                });
                return next.run(request).await;
            }
            Err(e) => e.to_string(),
        },
    };
    let base = base_url(&state, request.headers());
    let mut challenge = format!("Bearer resource_metadata=\"{base}{METADATA_PATH}\"");
    if token.is_some() {
        challenge.push_str(
            ", error=\"invalid_token\", error_description=\"the token is unknown or revoked\"",
        );
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": { "code": "unauthorized", "message": refusal } })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
