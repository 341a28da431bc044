//! The HTTP server: one router, one state struct, one error type.
//!
//! Handlers only connect a request to a domain function; parsing is in `extract`, rules
//! are in the domain modules, SQL is in `store`. Reading `router()` tells every route.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::store::Store;
use crate::vault::Vault;
use crate::web::WebState;

mod analytics;
mod approvals;
mod audit;
mod auth;
mod contract;
mod credentials;
pub mod error;
mod events;
mod extract;
mod guard;
mod health;
mod kakaowork;
pub mod metrics;
mod notifications;
mod page;
mod projects;
mod routing_rules;
mod schedules;
mod serve;
mod sessions;
mod slack;
mod tasks;
mod teams;
mod users;
mod webhooks;

pub use guard::Guards;
pub use serve::serve;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub vault: Vault,
    pub engine: Arc<crate::engine::Engine>,
    pub teams: Arc<crate::teams::Teams>,
    pub notifier: Arc<crate::notify::Notifier>,
    /// Bounds on event streams and on per-client request rates.
    pub guards: Arc<Guards>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "aiops", description = "Operate Claude Code + ai-party pipelines: projects, credentials, tasks, audit."),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = [])),
    components(schemas(
        error::ErrorBody,
        crate::model::DeliveryOutcome,
        crate::triggers::intake::Pong,
        crate::triggers::intake::AlertReceipt,
        crate::triggers::intake::AlertResult,
        crate::triggers::intake::AlertOutcome,
    ))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme,
        };
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        // A signed-in browser: the session cookie, and on every mutation the session's
        // CSRF token in the X-CSRF-Token header.
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "session",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::sessions::COOKIE))),
            );
    }
}

/// The whole service: `/api/v1` (token required), `/mcp` (the MCP server, token required),
/// the health probes, the pages, the webhooks and, unless it has a listener of its own, `/metrics` (its own token).
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(projects::router())
        .merge(credentials::router())
        .merge(tasks::router())
        .merge(approvals::router())
        .merge(audit::router())
        .merge(events::router())
        .merge(webhooks::api_router())
        .merge(teams::router())
        .merge(schedules::router())
        .merge(notifications::router())
        .merge(routing_rules::router())
        .merge(analytics::router())
        .merge(users::router())
        .merge(sessions::router())
        .split_for_parts();
    let openapi = Arc::new(contract::finish(openapi));
    let api = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate_and_audit,
        ));
    let metrics_here = state.config.metrics.listen.is_empty();
    Router::new()
        .nest("/api/v1", api)
        .merge(health::router())
        .merge(if metrics_here {
            metrics::router()
        } else {
            Router::new()
        })
        .merge(crate::mcp::router(crate::mcp::McpState {
            config: state.config.clone(),
            store: state.store.clone(),
            teams: state.teams.clone(),
            engine: state.engine.clone(),
        }))
        .merge(crate::web::router(WebState::new(
            state.config.clone(),
            state.store.clone(),
            state.vault.clone(),
            state.teams.clone(),
        )))
        .merge(
            webhooks::router(state.config.github.max_body_bytes)
                .merge(slack::router())
                .merge(kakaowork::router())
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    guard::limit_webhooks,
                )),
        )
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.config.http.request_timeout_secs),
        ))
        .layer(axum::middleware::from_fn(metrics::count_requests))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// A request's log span: its method and the route it matched, never the path itself, whose
/// segments can be secrets (an approval link's token, the KakaoWork callback's secret).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |path| path.as_str());
    tracing::debug_span!("request", method = %request.method(), route)
}
