//! Every HTML page the service serves: the dashboard (one static page that logs in with an
//! API token and reads the API) and the approval page behind a signed link.
//!
//! Boundary: pages read and decide through the use cases (`approvals`, `tasks`, the
//! store's reads); they never import the JSON API (`http`), which mounts them.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::config::Config;
use crate::store::Store;
use crate::vault::Vault;

mod approval_page;
mod sign_in;

/// What the pages can reach.
#[derive(Clone)]
pub struct WebState {
    pub config: std::sync::Arc<Config>,
    pub store: Store,
    pub vault: Vault,
}

const DASHBOARD: &str = include_str!("dashboard.html");

/// The pages' routes.
pub fn router() -> Router<WebState> {
    Router::new()
        .route("/", get(dashboard))
        .merge(approval_page::router())
        .merge(sign_in::router())
}

async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        DASHBOARD,
    )
}
