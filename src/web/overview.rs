//! `/`: the overview. Per project the tasks running, queued, awaiting approval and failed
//! today; the approvals waiting for the reader; the last failures with their reason; what
//! today and this month cost. Only the reader's projects count.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::WebState;
use super::components::{dollars, empty};
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::model::Task;
use crate::permissions::{Permission, visible_projects};

/// Most approvals and failures listed.
const LISTED: i64 = 10;

pub async fn show(State(state): State<WebState>, viewer: Viewer) -> Response {
    match render(&state, &viewer).await {
        Ok(response) => response,
        Err(e) => e.into_page(&viewer.locale),
    }
}

async fn render(state: &WebState, viewer: &Viewer) -> Result<Response, PageError> {
    let locale = &viewer.locale;
    let now = Utc::now();
    let scope = visible_projects(&viewer.principal);
    let counts = state
        .store
        .project_counts(locale.day_start(now), &scope)
        .await?;
    let today = state
        .store
        .cost_since(locale.day_start(now), &scope)
        .await?;
    let month = state
        .store
        .cost_since(locale.month_start(now), &scope)
        .await?;
    let mine: Vec<_> = state
        .store
        .pending_inbox(&scope, 500)
        .await?
        .into_iter()
        .filter(|item| viewer.may(Permission::Decide, item.project_id))
        .collect();
    let failures = state.store.recent_failures(&scope, LISTED).await?;
    let body = html! {
        h1 { (locale.t("overview.title")) }
        div.cards {
            div.card #waiting-count { div.big { (mine.len()) } (locale.t("overview.waiting_for_me")) }
            div.card #cost-today { div.big { (dollars(today)) } (locale.t("overview.cost_today")) }
            div.card #cost-month { div.big { (dollars(month)) } (locale.t("overview.cost_month")) }
        }
        h2 { (locale.t("overview.projects")) }
        @if counts.is_empty() {
            (empty(&locale.t("overview.no_projects")))
        } @else {
            div.table-wrap { table #project-counts {
                thead { tr {
                    th scope="col" { (locale.t("field.project")) }
                    th.num scope="col" { (locale.t("status.running")) }
                    th.num scope="col" { (locale.t("status.queued")) }
                    th.num scope="col" { (locale.t("status.awaiting_approval")) }
                    th.num scope="col" { (locale.t("overview.failed_today")) }
                } }
                tbody { @for line in &counts {
                    tr data-project=(line.project) {
                        td { a href={ "/tasks?project=" (line.project) } { (line.project) } }
                        td.num { (line.running) } td.num { (line.queued) }
                        td.num { (line.awaiting) } td.num { (line.failed_today) }
                    }
                } }
            } }
        }
        h2 { (locale.t("overview.waiting_for_me")) }
        @if mine.is_empty() {
            (empty(&locale.t("inbox.empty")))
        } @else {
            ul #waiting { @for item in mine.iter().take(LISTED as usize) {
                li {
                    a href={ "/tasks/" (item.approval.task_id) "#approvals" } {
                        (item.project) " #" (item.approval.task_id) ": " (short(&item.prompt))
                    }
                    " " span.muted { (locale.ago(item.approval.requested_at, now)) }
                }
            } }
            p { a href="/inbox" { (locale.t("overview.open_inbox")) } }
        }
        h2 { (locale.t("overview.failures")) }
        (failure_list(viewer, &failures, now))
    };
    Ok(Page {
        title: locale.t("overview.title"),
        nav: Nav::Overview,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body))
}

fn failure_list(viewer: &Viewer, failures: &[Task], now: chrono::DateTime<Utc>) -> Markup {
    let locale = &viewer.locale;
    if failures.is_empty() {
        return empty(&locale.t("overview.no_failures"));
    }
    html! {
        ul #failures { @for task in failures {
            li {
                a href={ "/tasks/" (task.id) } { (task.project) " #" (task.id) ": " (short(&task.prompt)) }
                " — " (task.status_reason.as_deref().unwrap_or("")) " "
                span.muted { (locale.ago(task.completed_at.unwrap_or(task.created_at), now)) }
            }
        } }
    }
}

/// The first line of `text`, cut to 80 characters.
pub fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_string()
    }
}
