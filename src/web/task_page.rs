//! `/tasks/{id}`: one task. Header (status, phase, team, source with its link, elapsed, cost),
//! phase timeline, agents, tickets as a kanban board, findings (sanitized markdown), events
//! filterable by kind, runs, and the approvals: pending ones with the diff and the findings
//! beside the decision buttons, then the history. Two parts of it are fragments the script
//! fetches again when the task's events move: `/tasks/{id}/part/state` and `…/part/approvals`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::approval_view::{self, DecideForm};
use super::components::{self, dollars, empty, markdown, phase_name, task_status};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError, secure};
use super::overview::short;
use super::viewer::{Viewer, urlencode};
use crate::model::{ApprovalSnapshot, ApprovalStatus, Event, TicketRecord};
use crate::permissions::{On, Permission};
use crate::tasks::{self, TaskDetail};

/// Events shown at once.
const EVENTS_SHOWN: i64 = 100;
/// Columns of the kanban board, in order.
const COLUMNS: [&str; 4] = ["BLOCKED", "TODO", "IN_PROGRESS", "DONE"];

#[derive(Debug, Default, Deserialize)]
pub struct TaskQuery {
    /// Only events of this kind.
    #[serde(default)]
    kind: String,
}

/// What the page shows of a task, read once per request.
struct TaskView {
    detail: TaskDetail,
    project_id: i64,
    phases: Vec<Event>,
    agents: Vec<Event>,
    events: Vec<Event>,
    kinds: Vec<String>,
    /// The snapshot of each pending approval, by approval id.
    snapshots: BTreeMap<i64, ApprovalSnapshot>,
}

async fn load(state: &WebState, viewer: &Viewer, id: i64, kind: &str) -> crate::Result<TaskView> {
    let detail = tasks::detail(&state.store, id).await?;
    let project_id = state.store.project(&detail.task.project).await?.id;
    viewer.require(Permission::Read, project_id)?;
    let store = &state.store;
    let mut phases = store.task_events(id, Some("phase_changed"), 500).await?;
    phases.reverse();
    let mut agents = store.task_events(id, Some("agent_spawned"), 100).await?;
    agents.extend(store.task_events(id, Some("agent_completed"), 100).await?);
    agents.sort_by_key(|e| e.id);
    let kind = (!kind.is_empty()).then_some(kind);
    let events = store.task_events(id, kind, EVENTS_SHOWN).await?;
    let kinds = store.task_event_kinds(id).await?;
    let mut snapshots = BTreeMap::new();
    for approval in detail.approvals.iter().filter(|a| a.snapshot_at.is_some()) {
        snapshots.insert(approval.id, store.approval_snapshot(approval.id).await?);
    }
    Ok(TaskView {
        detail,
        project_id,
        phases,
        agents,
        events,
        kinds,
        snapshots,
    })
}

pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(query): Query<TaskQuery>,
) -> Response {
    let view = match load(&state, &viewer, id, &query.kind).await {
        Ok(view) => view,
        Err(e) => return PageError(e).into_page(&viewer.locale),
    };
    let locale = &viewer.locale;
    let task = &view.detail.task;
    let body = html! {
        h1 { "#" (task.id) " " (short(&task.prompt)) }
        (actions(&viewer, &view))
        (state_part(&viewer, &view, &query.kind))
        (approvals_part(&viewer, &view))
    };
    Page {
        title: format!("#{} {}", task.id, short(&task.prompt)),
        nav: Nav::Tasks,
        locale,
        viewer: Some(viewer.signed_in()),
        live: Some(format!("/live?task={id}")),
    }
    .render(body)
}

/// `GET /tasks/{id}/part/{state|approvals}`: one live part of the page, alone.
pub async fn part(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((id, part)): Path<(i64, String)>,
    Query(query): Query<TaskQuery>,
) -> Response {
    let view = match load(&state, &viewer, id, &query.kind).await {
        Ok(view) => view,
        Err(e) => return PageError(e).into_page(&viewer.locale),
    };
    let markup = match part.as_str() {
        "state" => state_part(&viewer, &view, &query.kind),
        "approvals" => approvals_part(&viewer, &view),
        _ => {
            return PageError(crate::Error::NotFound(format!("part {part}")))
                .into_page(&viewer.locale);
        }
    };
    secure(markup.into_response())
}

/// Cancel and Retry, for those who may operate the project.
fn actions(viewer: &Viewer, view: &TaskView) -> Markup {
    let task = &view.detail.task;
    if !viewer.may_post("/tasks/{id}/cancel", On::Project(view.project_id)) {
        return html! {};
    }
    let locale = &viewer.locale;
    html! {
        div.decide #task-actions {
            @if !task.status.has_ended() {
                form method="post" action={ "/tasks/" (task.id) "/cancel" } {
                    input type="hidden" name="csrf" value=(viewer.csrf());
                    button.danger #cancel type="submit" { (locale.t("task.cancel")) }
                }
            }
            @if tasks::RETRYABLE.contains(&task.status) {
                form method="post" action={ "/tasks/" (task.id) "/retry" } {
                    input type="hidden" name="csrf" value=(viewer.csrf());
                    button.primary #retry type="submit" { (locale.t("task.retry")) }
                }
            }
        }
    }
}

/// Everything that moves while the pipeline runs, except the approvals.
fn state_part(viewer: &Viewer, view: &TaskView, kind: &str) -> Markup {
    let locale = &viewer.locale;
    let task = &view.detail.task;
    let now = Utc::now();
    let spans = components::phases_from_events(&view.phases);
    let ended = task.status.has_ended();
    let url = format!("/tasks/{}/part/state?kind={}", task.id, urlencode(kind));
    html! {
        div #task-state data-fragment=(url) {
            (header(locale, view))
            h2 { (locale.t("task.timeline")) }
            div #timeline { (components::timeline(locale, &spans, now, ended)) }
            h2 { (locale.t("task.agents")) }
            (agents(locale, view))
            h2 { (locale.t("task.tickets")) }
            (kanban(locale, &view.detail.tickets))
            h2 { (locale.t("task.findings")) }
            div #findings {
                @if view.detail.findings.is_empty() { (empty(&locale.t("task.no_findings"))) }
                @for finding in &view.detail.findings {
                    section.markdown.finding data-name=(finding.name) {
                        p.muted { code { (finding.name) } " · " (locale.ago(finding.changed_at, now)) }
                        (markdown(&finding.content))
                        @if finding.truncated {
                            p { a href=(finding_href(task.id, &finding.name)) {
                                (locale.tf("task.whole_finding", &[("size", &finding.size.to_string())]))
                            } }
                        }
                    }
                }
            }
            h2 { (locale.t("task.runs")) }
            (runs(locale, view))
            h2 { (locale.t("task.events")) }
            (events(locale, view, kind))
        }
    }
}

/// Where the dashboard shows one finding whole.
pub(super) fn finding_href(task: i64, name: &str) -> String {
    format!("/tasks/{task}/findings/{}", urlencode(name))
}

/// `GET /tasks/{id}/findings/{name}`: one finding, whole.
pub async fn finding(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((id, name)): Path<(i64, String)>,
) -> Response {
    let found = async {
        let exec = state.store.task_exec(id).await?;
        viewer.require(Permission::Read, exec.project_id)?;
        state.store.finding(id, &name).await
    };
    let finding = match found.await {
        Ok(finding) => finding,
        Err(e) => return PageError(e).into_page(&viewer.locale),
    };
    let locale = &viewer.locale;
    let body = html! {
        h1 { code { (finding.name) } }
        p.muted {
            a href=(format!("/tasks/{id}")) { "#" (id) }
            " · " (locale.ago(finding.changed_at, Utc::now()))
        }
        section.markdown.finding { (markdown(&finding.content)) }
    };
    Page {
        title: format!("#{id} {}", finding.name),
        nav: Nav::Tasks,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

fn header(locale: &Locale, view: &TaskView) -> Markup {
    let task = &view.detail.task;
    let now = Utc::now();
    let elapsed = task
        .started_at
        .map(|start| (task.completed_at.unwrap_or(now) - start).num_seconds());
    let cost: f64 = view.detail.runs.iter().map(|r| r.totals.cost_usd).sum();
    let link = task
        .source_ref
        .get("url")
        .and_then(|u| u.as_str())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    html! {
        dl.facts #task-header data-status=(task.status.as_str()) {
            div { dt { (locale.t("field.status")) } dd #status { (task_status(locale, task.status)) } }
            div { dt { (locale.t("field.phase")) } dd #phase { (task.phase.as_deref().map_or_else(|| "—".into(), |p| phase_name(locale, p))) } }
            div { dt { (locale.t("field.project")) } dd { a href={ "/tasks?project=" (urlencode(&task.project)) } { (task.project) } } }
            div { dt { (locale.t("field.team")) } dd { (task.team) } }
            div { dt { (locale.t("field.source")) } dd {
                (locale.t(&format!("source.{}", task.source.as_str())))
                @if let Some(link) = link { " · " a href=(link) rel="noopener noreferrer" { (locale.t("task.source_link")) } }
            } }
            div { dt { (locale.t("field.priority")) } dd { (locale.t(&format!("priority.{}", task.priority.as_str()))) } }
            div { dt { (locale.t("task.elapsed")) } dd { (elapsed.map_or_else(|| "—".into(), |s| locale.span(s))) } }
            div { dt { (locale.t("task.cost")) } dd #cost { (dollars(cost)) } }
            @if let Some(reason) = &task.status_reason {
                div { dt { (locale.t("task.reason")) } dd { (reason) } }
            }
            @if let Some(pr) = &task.pr_url {
                div { dt { (locale.t("task.pull_request")) } dd { a href=(pr) rel="noopener noreferrer" { (pr) } } }
            }
        }
    }
}

/// Each agent: its role, spawned or not, active now, its tickets.
fn agents(locale: &Locale, view: &TaskView) -> Markup {
    let mut agents: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for event in &view.agents {
        let data = components::payload(event);
        let name = data
            .get("name")
            .or_else(|| data.get("agent"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        let role = data
            .get("role")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let entry = agents.entry(name).or_insert((role.clone(), false));
        if !role.is_empty() {
            entry.0 = role;
        }
        entry.1 = event.kind == "agent_spawned";
    }
    let ended = view.detail.task.status.has_ended();
    if agents.is_empty() {
        return empty(&locale.t("task.no_agents"));
    }
    html! {
        div.table-wrap { table #agents {
            thead { tr {
                th scope="col" { (locale.t("task.agent")) } th scope="col" { (locale.t("task.role")) }
                th scope="col" { (locale.t("task.agent_state")) } th scope="col" { (locale.t("task.tickets")) }
            } }
            tbody { @for (name, (role, active)) in &agents {
                @let tickets: Vec<&str> = view.detail.tickets.iter()
                    .filter(|t| t.assignee.as_deref() == Some(name.as_str()))
                    .map(|t| t.ticket_id.as_str()).collect();
                tr data-agent=(name) {
                    td { (name) } td { (role) }
                    td { @if *active && !ended { (components::badge("running", &locale.t("task.agent_active"))) }
                         @else { (components::badge("done", &locale.t("task.agent_finished"))) } }
                    td { (tickets.join(", ")) }
                }
            } }
        } }
    }
}

/// The tickets in columns by status; stories and tasks under their epic's name.
fn kanban(locale: &Locale, tickets: &[TicketRecord]) -> Markup {
    if tickets.is_empty() {
        return html! { div #kanban { (empty(&locale.t("task.no_tickets"))) } };
    }
    html! {
        div.kanban #kanban {
            @for column in COLUMNS {
                section data-column=(column) aria-label=(locale.t(&format!("ticket.{}", column.to_ascii_lowercase()))) {
                    h3 { (locale.t(&format!("ticket.{}", column.to_ascii_lowercase()))) }
                    @for ticket in tickets.iter().filter(|t| t.status.as_deref().unwrap_or("TODO") == column) {
                        @let kind = ticket.kind.as_deref().unwrap_or("task");
                        div class={ "ticket " (kind) } data-ticket=(ticket.ticket_id) {
                            div { code { (ticket.ticket_id) } " " span.muted { (kind) } }
                            div { (ticket.title.as_deref().unwrap_or("")) }
                            @if let Some(assignee) = &ticket.assignee { div.muted { "@" (assignee) } }
                            @if let Some(parent) = &ticket.parent_id { div.muted { "↑ " (parent) } }
                            @if let Some(deps) = ticket.body.get("dependsOn").and_then(|d| d.as_array()).filter(|d| !d.is_empty()) {
                                div.muted { (locale.t("ticket.depends_on")) " " (deps.iter().filter_map(|d| d.as_str()).collect::<Vec<_>>().join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn runs(locale: &Locale, view: &TaskView) -> Markup {
    if view.detail.runs.is_empty() {
        return empty(&locale.t("task.no_runs"));
    }
    html! {
        div.table-wrap { table.stack-small #runs {
            thead { tr {
                th scope="col" { "#" } th scope="col" { (locale.t("run.kind")) } th scope="col" { (locale.t("field.status")) }
                th.num scope="col" { (locale.t("run.tokens")) } th.num scope="col" { (locale.t("task.cost")) }
                th.num scope="col" { (locale.t("run.duration")) } th scope="col" { (locale.t("run.exit")) }
                th scope="col" { (locale.t("run.log")) }
            } }
            tbody { @for run in &view.detail.runs {
                @let duration = run.finished_at.map(|end| (end - run.started_at).num_seconds());
                tr {
                    td { (run.id) } td { (run.kind.as_str()) } td { (components::badge(run.status.as_str(), run.status.as_str())) }
                    td.num { (run.totals.input_tokens + run.totals.output_tokens) }
                    td.num { (dollars(run.totals.cost_usd)) }
                    td.num { (duration.map_or_else(|| "—".into(), |s| locale.span(s))) }
                    td { (run.exit_code.map_or_else(|| "—".into(), |c| c.to_string())) @if let Some(e) = &run.error { " " span.muted { (e) } } }
                    td { a href={ "/api/v1/tasks/" (run.task_id) "/runs/" (run.id) "/log" } { (locale.t("run.log")) } }
                }
            } }
        } }
    }
}

fn events(locale: &Locale, view: &TaskView, kind: &str) -> Markup {
    let task = &view.detail.task;
    html! {
        form.filters method="get" action={ "/tasks/" (task.id) } {
            label for="kind" {
                (locale.t("task.event_kind"))
                select #kind name="kind" {
                    option value="" { (locale.t("list.any")) }
                    @for k in &view.kinds { option value=(k) selected[k == kind] { (k) } }
                }
            }
            button type="submit" { (locale.t("list.filter")) }
        }
        @if view.events.is_empty() { (empty(&locale.t("task.no_events"))) }
        @else {
            div.table-wrap { table.events #events {
                thead { tr { th scope="col" { (locale.t("approval.when")) } th scope="col" { (locale.t("task.event_kind")) } th scope="col" { (locale.t("task.event_data")) } } }
                tbody { @for event in &view.events {
                    tr data-kind=(event.kind) {
                        td { (locale.time(event.ts)) } td { (event.kind) }
                        td { code { (short_json(&event.data)) } }
                    }
                } }
            } }
        }
    }
}

fn short_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 240 {
        format!("{}…", text.chars().take(239).collect::<String>())
    } else {
        text
    }
}

/// The pending approvals with their change and findings beside the buttons, then history.
fn approvals_part(viewer: &Viewer, view: &TaskView) -> Markup {
    let locale = &viewer.locale;
    let task = &view.detail.task;
    let may_decide = viewer.may_post("/inbox/{id}", On::Project(view.project_id));
    let pending: Vec<_> = view
        .detail
        .approvals
        .iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .collect();
    let decided: Vec<_> = view
        .detail
        .approvals
        .iter()
        .filter(|a| a.status != ApprovalStatus::Pending)
        .collect();
    let url = format!("/tasks/{}/part/approvals", task.id);
    html! {
        div #approvals data-fragment=(url) {
            h2 { (locale.t("task.approvals")) }
            @if pending.is_empty() { (empty(&locale.t("task.no_pending"))) }
            @for approval in &pending {
                @let form = may_decide.then(|| DecideForm {
                    action: format!("/inbox/{}", approval.id),
                    hidden: vec![("csrf", viewer.csrf().to_string()), ("next", format!("/tasks/{}", task.id))],
                    error: None,
                    comment: String::new(),
                });
                (approval_view::approval(locale, approval, view.snapshots.get(&approval.id), form))
            }
            h3 { (locale.t("approval.history")) }
            (approval_view::history(locale, &decided))
        }
    }
}
