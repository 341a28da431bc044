//! The OAuth 2.1 authorization server's endpoints for `/mcp` (the rules are in `oauth`):
//! its metadata (RFC 8414), dynamic client registration (RFC 7591), the token endpoint and
//! revocation (RFC 7009). The person's side, `/oauth/authorize` with sign-in and consent, is
//! a page (`web`). Every answer is JSON, never cached, errors as `{error, error_description}`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::McpState;
use crate::oauth::{self, BasicAuth, OAuthError, Registration, Site, TokenRequest};

/// The endpoints, ready to merge into the service's router.
pub fn router() -> Router<McpState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/register", post(register))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
}

/// The site a request reaches (issuer and resource).
pub(super) fn site(state: &McpState, headers: &HeaderMap) -> Site {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    Site::for_host(&state.config, host)
}

/// RFC 8414 authorization-server metadata.
async fn metadata(State(state): State<McpState>, headers: HeaderMap) -> Response {
    let site = site(&state, &headers);
    let issuer = &site.issuer;
    no_store(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "registration_endpoint": format!("{issuer}/oauth/register"),
            "revocation_endpoint": format!("{issuer}/oauth/revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "scopes_supported": ["read", "write", "approve"],
            "authorization_response_iss_parameter_supported": true,
            "service_documentation": format!("{issuer}/"),
        }),
    )
}

/// RFC 7591 dynamic client registration: open, bounded by `mcp.max_clients`.
async fn register(State(state): State<McpState>, body: axum::body::Bytes) -> Response {
    let request: Registration = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(&OAuthError {
                code: "invalid_client_metadata",
                description: format!("the body must be a JSON client registration: {e}"),
                status: 400,
            });
        }
    };
    match oauth::register(&state.store, &state.config, request).await {
        Ok(registered) => no_store(StatusCode::CREATED, json!(registered)),
        Err(e) => error(&e),
    }
}

/// The token endpoint: `authorization_code` with PKCE, `refresh_token` with rotation.
async fn token(
    State(state): State<McpState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return error(&bad_form());
    };
    let site = site(&state, &headers);
    let basic = basic_auth(&headers);
    match oauth::token(&state.store, &state.config, &site, request, basic).await {
        Ok(tokens) => no_store(StatusCode::OK, json!(tokens)),
        Err(e) => error(&e),
    }
}

/// RFC 7009 revocation of an access or refresh token (and so its grant).
async fn revoke(
    State(state): State<McpState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return error(&bad_form());
    };
    let token = request.token.clone().unwrap_or_default();
    match oauth::revoke(&state.store, &request, &token, basic_auth(&headers)).await {
        Ok(()) => no_store(StatusCode::OK, json!({})),
        Err(e) => error(&e),
    }
}

fn bad_form() -> OAuthError {
    OAuthError {
        code: "invalid_request",
        description: "the body must be application/x-www-form-urlencoded".into(),
        status: 400,
    }
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1: each part form-encoded).
fn basic_auth(headers: &HeaderMap) -> BasicAuth {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let plain = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((plain(id), plain(secret)))
}

fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = no_store(
        status,
        json!({ "error": e.code, "error_description": e.description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"aiops\""),
        );
    }
    response
}
