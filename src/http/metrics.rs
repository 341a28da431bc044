//! `GET /metrics` in the Prometheus text format, and the middleware that counts every HTTP
//! request by route and status.
//!
//! On the service's listener `/metrics` needs its own bearer token (the global credential
//! named by `metrics.token_credential`), not an API token; with `metrics.listen` set it is
//! served there instead, without a token, and the service's listener has none.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::extract;
use crate::credentials;
use crate::error::{Error, Result};
use crate::store::Store;

/// `/metrics` on the service's listener, behind the scrape token.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape_with_token))
}

/// Serves `/metrics` alone, without a token, on `listener` (the `metrics.listen` address)
/// until `shutdown` resolves.
pub async fn serve_separately(
    listener: tokio::net::TcpListener,
    store: Store,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(store);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape_with_token(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let name = &state.config.metrics.token_credential;
    let expected = credentials::reveal_global(&state.store, &state.vault, name)
        .await?
        .ok_or_else(|| {
            Error::Unauthorized(format!(
                "no scrape token is configured; store one as the global credential {name:?} (kind webhook_secret), or serve /metrics on metrics.listen"
            ))
        })?;
    let presented = extract::header(&headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Error::Unauthorized("send Authorization: Bearer <scrape token>".into()))?;
    if !crate::signing::tokens_equal(presented.trim(), &expected) {
        return Err(Error::Unauthorized(format!(
            "the scrape token does not match the credential {name:?}"
        )));
    }
    scrape(State(state.store)).await
}

async fn scrape(State(store): State<Store>) -> Result<Response> {
    let page = crate::metrics::render(&store).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], page).into_response())
}

/// Counts the request by method, route template and status, and times it.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(request).await;
    crate::metrics::http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
