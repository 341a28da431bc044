//! `/mcp` on the service: the Streamable HTTP transport behind a bearer check (a user's API
//! token, or an OAuth access token issued for this resource by `authorization.rs`), and the
//! OAuth protected-resource metadata (RFC 9728) a client discovers from a 401.
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

use super::authorization::site;
use super::{Aiops, Caller, McpState};
use crate::auth;
use crate::error::Result;
use crate::model::Principal;
use crate::oauth;

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
        .merge(super::authorization::router())
        .merge(mcp)
        .with_state(state)
}

/// RFC 9728 protected-resource metadata of `/mcp`: aiops is its own authorization server.
async fn metadata(State(state): State<McpState>, headers: HeaderMap) -> Response {
    let site = site(&state, &headers);
    axum::Json(json!({
        "resource": site.resource,
        "authorization_servers": [site.issuer],
        "scopes_supported": ["read", "write", "approve"],
        "bearer_methods_supported": ["header"],
        "resource_name": "aiops",
        "resource_documentation": format!("{}/", site.issuer),
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
    let site = site(&state, request.headers());
    let refusal = match &token {
        None => {
            "send Authorization: Bearer <token>; create one with `aiops token create`".to_string()
        }
        Some(token) => match bearer(&state, &site, token).await {
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
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}{METADATA_PATH}\", scope=\"read write approve\"",
        site.issuer
    );
    if token.is_some() {
        challenge.push_str(
            ", error=\"invalid_token\", error_description=\"the token is unknown, expired, revoked or for another resource\"",
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

/// The principal of a bearer token: an OAuth access token must have been issued for this
/// site's `/mcp`; anything else is a user's API token.
async fn bearer(state: &McpState, site: &oauth::Site, token: &str) -> Result<Principal> {
    if token.starts_with(oauth::ACCESS_PREFIX) {
        oauth::authenticate(&state.store, token, &site.resource).await
    } else {
        auth::authenticate(&state.store, token).await
    }
}
