//! `/notifications`: what the channels were sent and how it went, failed ones (still being
//! retried) and dead letters first by filter, newest first, paged by cursor; operators send
//! a dead letter again (`notify::requeue_dead`, the API's use case). Only the reader's
//! projects are listed.

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
use super::components::{badge, empty, field_error, list_pager, list_url};
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::model::{Notification, NotificationStatus};
use crate::permissions::{On, sees, visible_projects};
use crate::store::notifications::NotificationFilter;

/// Notifications on one page.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct NotificationQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    before: Option<i64>,
}

pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(query): Query<NotificationQuery>,
) -> Response {
    let locale = &viewer.locale;
    let scope = visible_projects(&viewer.principal);
    let status = match query.status.as_str() {
        "" => Ok(None),
        text => text.parse::<NotificationStatus>().map(Some),
    };
    let (items, status_error) = match status {
        Ok(status) => {
            let filter = NotificationFilter {
                status,
                project_id: None,
                before: query.before,
                limit: PAGE_SIZE,
            };
            match state.store.list_notifications_in(&filter, &scope).await {
                Ok(items) => (items, None),
                Err(e) => return PageError(e).into_page(locale),
            }
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let project_ids: HashMap<String, i64> = match state.store.list_projects().await {
        Ok(projects) => projects
            .into_iter()
            .filter(|p| sees(&scope, p.id))
            .map(|p| (p.name, p.id))
            .collect(),
        Err(e) => return PageError(e).into_page(locale),
    };
    let body = html! {
        h1 { (locale.t("nav.notifications")) }
        form.filters method="get" action="/notifications" role="search" {
            label for="status" {
                (locale.t("field.status"))
                select #status name="status" aria-invalid=[status_error.as_ref().map(|_| "true")] {
                    option value="" { (locale.t("list.any")) }
                    @for status in ["queued", "sent", "dead"] {
                        option value=(status) selected[query.status == status] { (locale.t(&format!("notification_status.{status}"))) }
                    }
                }
                (field_error("status", status_error.as_deref()))
            }
            button type="submit" { (locale.t("list.filter")) }
        }
        @if items.is_empty() {
            (empty(&locale.t("notifications.none")))
        } @else {
            (notification_table(&viewer, &items, &project_ids))
        }
        (list_pager(locale, items.len(), items.last().map(|n| n.id), query.before, PAGE_SIZE,
            |before| list_url("/notifications", &[("status", &query.status)], before)))
    };
    Page {
        title: locale.t("nav.notifications"),
        nav: Nav::Notifications,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

fn notification_table(
    viewer: &Viewer,
    items: &[Notification],
    project_ids: &HashMap<String, i64>,
) -> Markup {
    let locale = &viewer.locale;
    let now = Utc::now();
    html! {
        div.table-wrap { table.stack-small #notification-list {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (locale.t("field.project")) }
                th scope="col" { (locale.t("notifications.event")) }
                th scope="col" { (locale.t("projects.kind")) }
                th scope="col" { (locale.t("field.status")) }
                th.num scope="col" { (locale.t("notifications.attempts")) }
                th scope="col" { (locale.t("notifications.last_error")) }
                th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
            } }
            tbody { @for item in items {
                tr data-id=(item.id) data-status=(item.status.as_str()) {
                    td { (item.id) " " span.muted { (locale.ago(item.created_at, now)) } }
                    td data-label=(locale.t("field.project")) { a href={ "/projects/" (item.project) } { (item.project) } }
                    td data-label=(locale.t("notifications.event")) {
                        (item.event.as_str()) " " a href={ "/tasks/" (item.task_id) } { "#" (item.task_id) }
                    }
                    td data-label=(locale.t("projects.kind")) { (item.channel_kind.as_str()) }
                    td data-label=(locale.t("field.status")) { (badge(item.status.as_str(), &locale.t(&format!("notification_status.{}", item.status.as_str())))) }
                    td.num data-label=(locale.t("notifications.attempts")) { (item.attempts) }
                    td data-label=(locale.t("notifications.last_error")) { span.wrap { (item.last_error.as_deref().unwrap_or("")) } }
                    td.actions {
                        @if item.status == NotificationStatus::Dead
                            && project_ids.get(&item.project).is_some_and(|id| viewer.may_post("/notifications/{id}/retry", On::Project(*id))) {
                            form.inline method="post" action={ "/notifications/" (item.id) "/retry" } {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                button.retry type="submit" { (locale.t("notifications.retry")) }
                            }
                        }
                    }
                }
            } }
        } }
    }
}

pub async fn retry(
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
        let project = state.store.notification(id).await?.project;
        viewer.require_form(On::Project(state.store.project(&project).await?.id))?;
        crate::notify::requeue_dead(&state.store, id)
            .await
            .map(|_| ())
    };
    posted
        .act(
            "POST /notifications/{id}/retry",
            &format!("notifications/{id}"),
            "/notifications?status=dead",
            work,
        )
        .await
}
