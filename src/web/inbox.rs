//! `/inbox`: the approvals inbox. Everything waiting that the reader may decide, oldest
//! first, with risk, project, age and deadline, decided in place (`POST /inbox/{id}`, channel
//! `dashboard`); then the decision history of the reader's projects, filterable by project.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::approval_view::{self, DecideForm};
use super::components::empty;
use super::layout::{Nav, Page, PageError};
use super::overview::short;
use super::task_list::status_of;
use super::viewer::Viewer;
use crate::approvals::{self, DecisionRequest};
use crate::error::Error;
use crate::model::{ApprovalFilter, ApprovalStatus, Channel, Decider, Decision, InboxItem};
use crate::permissions::{On, sees, visible_projects};

/// Most pending approvals and history rows shown.
const SHOWN: i64 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    /// Only this project's history.
    #[serde(default)]
    project: String,
    /// The approval just decided, to say so.
    #[serde(default)]
    decided: Option<i64>,
}

/// The decision form as posted.
#[derive(Debug, Default, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    csrf: Option<String>,
    /// Where to go afterwards (a path of this site).
    #[serde(default)]
    next: String,
}

/// A refused decision to show at its form.
struct Refusal {
    approval_id: i64,
    message: String,
    comment: String,
}

pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(query): Query<InboxQuery>,
) -> Response {
    render(&state, &viewer, &query, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| e.into_page(&viewer.locale))
}

pub async fn decide(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let locale = viewer.locale;
    let outcome = decide_as_viewer(&state, &viewer, &headers, id, &form).await;
    let target = format!("approvals/{id}");
    match outcome {
        Ok(()) => {
            let next = safe_next(&form.next).unwrap_or_else(|| format!("/inbox?decided={id}"));
            Redirect::to(&next).into_response()
        }
        Err(Error::Invalid { message, .. }) => {
            viewer
                .audit(&state, "POST /inbox/{id}", &target, "422")
                .await;
            let refusal = Refusal {
                approval_id: id,
                message,
                comment: form.comment.clone(),
            };
            render(
                &state,
                &viewer,
                &InboxQuery::default(),
                Some(refusal),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
            .unwrap_or_else(|e| e.into_page(&locale))
        }
        Err(e) => {
            if !matches!(e, Error::Conflict(_)) {
                viewer
                    .audit(&state, "POST /inbox/{id}", &target, &status_of(&e))
                    .await;
            }
            PageError(e).into_page(&locale)
        }
    }
}

/// Checks the form and the reader's right, then decides through `approvals::decide` (which
/// writes the audit entry of the decision).
async fn decide_as_viewer(
    state: &WebState,
    viewer: &Viewer,
    headers: &HeaderMap,
    id: i64,
    form: &DecisionForm,
) -> crate::Result<()> {
    viewer.check_form(headers, form.csrf.as_deref())?;
    let approval = state.store.approval(id).await?;
    let task = state.store.task(approval.task_id).await?;
    let project = state.store.project(&task.project).await?;
    viewer.require_form(On::Project(project.id))?;
    let decision = form.decision.parse::<Decision>()?;
    let request = DecisionRequest {
        decision,
        comment: Some(form.comment.clone()),
    };
    let decider = Decider {
        name: viewer.principal.name.clone(),
        principal_id: viewer.principal.id,
        channel: Channel::Dashboard,
        source: viewer.source.clone(),
    };
    approvals::decide(&state.store, id, &request, &decider)
        .await
        .map(|_| ())
}

/// `next` when it is a path of this site (not `//host`, not a URL).
fn safe_next(next: &str) -> Option<String> {
    (next.starts_with('/') && !next.starts_with("//") && !next.contains('\\'))
        .then(|| next.to_string())
}

async fn render(
    state: &WebState,
    viewer: &Viewer,
    query: &InboxQuery,
    refusal: Option<Refusal>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let locale = &viewer.locale;
    let scope = visible_projects(&viewer.principal);
    let mine: Vec<InboxItem> = state
        .store
        .pending_inbox(&scope, SHOWN)
        .await?
        .into_iter()
        .filter(|item| viewer.may_post("/inbox/{id}", On::Project(item.project_id)))
        .collect();
    let project_id = match query.project.as_str() {
        "" => None,
        name => state
            .store
            .find_project(name)
            .await?
            .map(|p| p.id)
            .filter(|id| sees(&scope, *id)),
    };
    let filter = ApprovalFilter {
        status: Some(ApprovalStatus::Decided),
        project_id,
        task_id: None,
        before_id: None,
        limit: SHOWN,
    };
    let decided = state.store.list_approvals_in(&filter, &scope).await?;
    let mut items = Vec::with_capacity(mine.len());
    for item in &mine {
        items.push(inbox_item(state, viewer, item, refusal.as_ref()).await);
    }
    let body = html! {
        h1 { (locale.t("inbox.title")) }
        @if let Some(id) = query.decided {
            p.notice role="status" #decided-notice { (locale.tf("inbox.decided", &[("id", &id.to_string())])) }
        }
        @if mine.is_empty() { (empty(&locale.t("inbox.empty"))) }
        @for item in items { (item) }
        h2 { (locale.t("approval.history")) }
        form.filters method="get" action="/inbox" {
            label for="history-project" {
                (locale.t("field.project"))
                input #history-project name="project" value=(query.project);
            }
            button type="submit" { (locale.t("list.filter")) }
        }
        (approval_view::history(locale, &decided.iter().collect::<Vec<_>>()))
    };
    Ok(Page {
        title: locale.t("inbox.title"),
        nav: Nav::Approvals,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(status, body))
}

async fn inbox_item(
    state: &WebState,
    viewer: &Viewer,
    item: &InboxItem,
    refusal: Option<&Refusal>,
) -> Markup {
    let locale = &viewer.locale;
    let approval = &item.approval;
    let snapshot = match approval.snapshot_at {
        Some(_) => state.store.approval_snapshot(approval.id).await.ok(),
        None => None,
    };
    let refused = refusal.filter(|r| r.approval_id == approval.id);
    let form = DecideForm {
        action: format!("/inbox/{}", approval.id),
        hidden: vec![("csrf", viewer.csrf().to_string())],
        error: refused.map(|r| r.message.clone()),
        comment: refused.map(|r| r.comment.clone()).unwrap_or_default(),
    };
    html! {
        section.inbox-item data-approval=(approval.id) {
            p {
                strong { (item.project) } " · "
                a href={ "/tasks/" (approval.task_id) } { "#" (approval.task_id) " " (short(&item.prompt)) }
                " · " span.muted { (locale.tf("inbox.waiting_for", &[("age", &locale.span((Utc::now() - approval.requested_at).num_seconds()))])) }
            }
            (approval_view::approval(locale, approval, snapshot.as_ref(), Some(form)))
        }
    }
}
