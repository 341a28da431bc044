//! `/deliveries`: the webhook log (source, event, what it became and why), newest first,
//! paged by cursor; operators replay a GitHub delivery (`triggers::intake::replay_github`,
//! the API's use case). A reader sees the deliveries that made tasks of their projects;
//! those that made none only someone who sees every project.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::components::{badge, empty, list_pager, list_url};
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::error::Result;
use crate::model::Delivery;
use crate::permissions::{On, visible_projects};
use crate::triggers::intake::{self, Intake};

/// Deliveries on one page.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct DeliveryQuery {
    #[serde(default)]
    source: String,
    #[serde(default)]
    before: Option<i64>,
}

pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(query): Query<DeliveryQuery>,
) -> Response {
    let locale = &viewer.locale;
    let scope = visible_projects(&viewer.principal);
    let source = (!query.source.is_empty()).then_some(query.source.as_str());
    let deliveries = match state
        .store
        .list_deliveries_in(source, query.before, PAGE_SIZE, &scope)
        .await
    {
        Ok(deliveries) => deliveries,
        Err(e) => return PageError(e).into_page(locale),
    };
    let projects = match projects_of(&state, &deliveries).await {
        Ok(projects) => projects,
        Err(e) => return PageError(e).into_page(locale),
    };
    let body = html! {
        h1 { (locale.t("nav.deliveries")) }
        form.filters method="get" action="/deliveries" role="search" {
            label for="source" {
                (locale.t("field.source"))
                select #source name="source" {
                    option value="" { (locale.t("list.any")) }
                    @for source in ["github", "alertmanager", "grafana"] {
                        option value=(source) selected[query.source == source] { (source) }
                    }
                }
            }
            button type="submit" { (locale.t("list.filter")) }
        }
        @if deliveries.is_empty() {
            (empty(&locale.t("deliveries.none")))
        } @else {
            (delivery_table(&viewer, &deliveries, &projects))
        }
        (list_pager(locale, deliveries.len(), deliveries.last().map(|d| d.id), query.before, PAGE_SIZE,
            |before| list_url("/deliveries", &[("source", &query.source)], before)))
    };
    Page {
        title: locale.t("nav.deliveries"),
        nav: Nav::Deliveries,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

fn delivery_table(
    viewer: &Viewer,
    deliveries: &[Delivery],
    projects: &HashMap<i64, i64>,
) -> Markup {
    let locale = &viewer.locale;
    let now = Utc::now();
    html! {
        div.table-wrap { table.stack-small #delivery-list {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (locale.t("deliveries.received")) }
                th scope="col" { (locale.t("field.source")) }
                th scope="col" { (locale.t("deliveries.event")) }
                th scope="col" { (locale.t("deliveries.outcome")) }
                th scope="col" { (locale.t("deliveries.task")) }
                th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
            } }
            tbody { @for delivery in deliveries {
                tr data-id=(delivery.id) data-outcome=(delivery.outcome.as_str()) {
                    td { (delivery.id) }
                    td data-label=(locale.t("deliveries.received")) { time datetime=(delivery.received_at.to_rfc3339()) title=(locale.time(delivery.received_at)) { (locale.ago(delivery.received_at, now)) } }
                    td data-label=(locale.t("field.source")) { (delivery.source) }
                    td data-label=(locale.t("deliveries.event")) {
                        code { (delivery.event) @if let Some(action) = &delivery.action { "." (action) } }
                        @if let Some(repo) = &delivery.repository { " " span.muted { (repo) } }
                    }
                    td data-label=(locale.t("deliveries.outcome")) {
                        (badge(delivery.outcome.as_str(), &locale.t(&format!("delivery_outcome.{}", delivery.outcome.as_str()))))
                        @if let Some(reason) = &delivery.reason { " " span.muted { (reason) } }
                    }
                    td data-label=(locale.t("deliveries.task")) {
                        @if let Some(task) = delivery.task_id { a href={ "/tasks/" (task) } { "#" (task) } }
                    }
                    td.actions {
                        @if delivery.source == "github" && viewer.may_post("/deliveries/{id}/replay", replay_scope(delivery.task_id.and_then(|t| projects.get(&t).copied()))) {
                            form.inline method="post" action={ "/deliveries/" (delivery.id) "/replay" } {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                button.replay type="submit" { (locale.t("deliveries.replay")) }
                            }
                        }
                    }
                }
            } }
        } }
    }
}

/// Where a replay needs its declared permission, as on the API: the project of the
/// delivery's task, or every project for a delivery that made none.
fn replay_scope(project_id: Option<i64>) -> On {
    project_id.map_or(On::EveryProject, On::Project)
}

/// The project of each delivery's task, by task id.
async fn projects_of(state: &WebState, deliveries: &[Delivery]) -> Result<HashMap<i64, i64>> {
    let ids: HashMap<String, i64> = state
        .store
        .list_projects()
        .await?
        .into_iter()
        .map(|p| (p.name, p.id))
        .collect();
    let mut projects = HashMap::new();
    for task_id in deliveries.iter().filter_map(|d| d.task_id) {
        let task = state.store.task(task_id).await?;
        if let Some(id) = ids.get(&task.project) {
            projects.insert(task_id, *id);
        }
    }
    Ok(projects)
}

pub async fn replay(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = async {
        let delivery = state.store.delivery_payload(id).await?.0;
        let project_id = match delivery.task_id {
            Some(task) => Some(
                state
                    .store
                    .project(&state.store.task(task).await?.project)
                    .await?
                    .id,
            ),
            None => None,
        };
        viewer.require_form(replay_scope(project_id))?;
        let intake = Intake {
            store: &state.store,
            vault: &state.vault,
            config: &state.config,
            teams: &state.teams,
        };
        intake::replay_github(intake, id).await.map(|_| ())
    };
    posted
        .act(
            "POST /deliveries/{id}/replay",
            &format!("deliveries/{id}"),
            "/deliveries",
            work,
        )
        .await
}
