//! Every HTML page the service serves: the dashboard (server-rendered with maud, readable
//! without JavaScript; one layout, one stylesheet, one small script that swaps fragments on
//! live events) and the approval page behind a signed link.
//!
//! Boundary: pages read through the store and act through the use cases (`tasks`,
//! `approvals`, `analytics`), checking every permission with `permissions::authorize`, the check the API
//! uses; they never import the JSON API (`http`), which mounts them. A page resolves its
//! reader from the session cookie (`sessions`) and redirects to `/sign-in` without one;
//! every state-changing form carries the session's CSRF token and is declared with its
//! guard in `permissions::FORMS` (a `POST` to a route not declared there is refused).

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::config::Config;
use crate::store::Store;
use crate::teams::Teams;
use crate::vault::Vault;

mod account;
mod action;
mod analytics_agents;
mod analytics_page;
mod approval_page;
mod approval_view;
mod assets;
mod audit_log;
mod charts;
mod components;
mod deliveries;
mod i18n;
mod inbox;
mod layout;
mod link_page;
mod live;
mod notifications;
mod oauth_consent;
mod overview;
mod people;
mod project_forms;
mod project_parts;
mod project_secrets;
mod projects;
mod schedules;
mod sign_in;
mod sso;
mod task_list;
mod task_page;
mod teams;
mod viewer;

/// What the pages can reach.
#[derive(Clone)]
pub struct WebState {
    pub config: Arc<Config>,
    pub store: Store,
    pub vault: Vault,
    pub teams: Arc<Teams>,
    /// The open `/live` streams, at most `intake.max_sse_streams`.
    pub live_streams: Arc<tokio::sync::Semaphore>,
}

impl WebState {
    pub fn new(config: Arc<Config>, store: Store, vault: Vault, teams: Arc<Teams>) -> Self {
        let streams = config.intake.max_sse_streams;
        WebState {
            config,
            store,
            vault,
            teams,
            live_streams: Arc::new(tokio::sync::Semaphore::new(streams)),
        }
    }
}

/// The pages' routes, served with `state`.
pub fn router<S: Clone + Send + Sync + 'static>(state: WebState) -> Router<S> {
    Router::new()
        .route("/", get(overview::show))
        .route("/tasks", get(task_list::list).post(task_list::create))
        .route("/tasks/{id}", get(task_page::show))
        .route("/tasks/{id}/part/{part}", get(task_page::part))
        .route("/tasks/{id}/findings/{name}", get(task_page::finding))
        .route("/tasks/{id}/cancel", post(task_list::cancel))
        .route("/tasks/{id}/retry", post(task_list::retry))
        .route("/inbox", get(inbox::show))
        .route("/inbox/{id}", post(inbox::decide))
        .route("/account", get(account::show).post(account::save))
        .route("/live", get(live::stream))
        .route("/analytics", get(analytics_page::show))
        .route("/analytics.csv", get(analytics_page::csv))
        .route("/analytics/agents.csv", get(analytics_agents::csv))
        .route("/projects", get(projects::list))
        .route("/projects/{name}", get(projects::show).post(projects::save))
        .route(
            "/projects/{name}/credentials",
            post(project_secrets::add_credential),
        )
        .route(
            "/projects/{name}/credentials/{id}/delete",
            post(project_secrets::delete_credential),
        )
        .route(
            "/projects/{name}/channels",
            post(project_secrets::add_channel),
        )
        .route(
            "/projects/{name}/channels/{id}/delete",
            post(project_secrets::delete_channel),
        )
        .route("/schedules", get(schedules::list))
        .route("/schedules/{name}/enabled", post(schedules::set_enabled))
        .route("/schedules/{name}/run", post(schedules::run_now))
        .route("/audit", get(audit_log::list))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}/replay", post(deliveries::replay))
        .route("/notifications", get(notifications::list))
        .route("/notifications/{id}/retry", post(notifications::retry))
        .route("/users", get(people::list))
        .route("/users/{login}/status", post(people::set_status))
        .route("/users/{login}/sign-out", post(people::end_sessions))
        .route("/tokens/{name}/revoke", post(people::revoke_token))
        .route("/account/sessions/{id}/revoke", post(account::end_session))
        .route("/account/apps/{id}/revoke", post(account::revoke_app))
        .route(
            "/oauth/authorize",
            get(oauth_consent::show).post(oauth_consent::decide),
        )
        .route(
            "/account/link",
            get(link_page::show).post(link_page::confirm),
        )
        .route("/teams", get(teams::list).post(teams::create))
        .route("/teams/{name}", post(teams::update))
        .route("/teams/{name}/copy", post(teams::copy))
        .route("/teams/{name}/delete", post(teams::delete))
        .route("/static/{version}/{file}", get(assets::serve))
        .merge(approval_page::router())
        .merge(sign_in::router())
        .merge(sso::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            action::admit_declared_forms,
        ))
        .with_state(state)
}
