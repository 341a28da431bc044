//! `/analytics` and `/analytics.csv`: the history of the reader's projects as charts with
//! their numbers in tables (tasks and success rate, cost stacked by group, duration
//! percentiles per bucket; approvals; teams and agents compared; the dearest tasks), and the
//! same figures as CSV (`analytics_agents` has the agents' CSV).
//! Every number comes from the `analytics` use case with the reader's principal, so a reader
//! sees only their projects; a filter the use case refuses is shown at its field.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::charts::{self, Frame, Series, percent};
use super::components::{dollars, empty, field_error, task_status};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::analytics::{
    self, AgentAnalytics, AgentFigures, AnalyticsRequest, ApprovalAnalytics, BucketSize,
    ExpensiveTasks, GroupBy, TaskAnalytics, TaskFigures,
};
use crate::error::{Error, Result};

/// Tasks the dearest-tasks table lists.
const DEAREST: u32 = 10;

/// The filters a field error can stand at.
const FIELDS: [&str; 4] = ["from", "to", "bucket", "group_by"];

/// The filter form as given: empty means the use case's default.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AnalyticsForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    bucket: String,
    #[serde(default)]
    group_by: String,
}

impl AnalyticsForm {
    /// The use case's request, split by `group_by` instead of the form's when given.
    pub(super) fn request(
        &self,
        group_by: Option<GroupBy>,
        limit: Option<u32>,
    ) -> AnalyticsRequest {
        let given = |value: &str| (!value.trim().is_empty()).then(|| value.trim().to_string());
        AnalyticsRequest {
            from: given(&self.from),
            to: given(&self.to),
            bucket: given(&self.bucket),
            group_by: group_by.map_or_else(|| given(&self.group_by), |g| Some(g.to_string())),
            project: None,
            limit,
        }
    }

    /// The form as a query string (the CSV link asks for the same figures).
    pub(super) fn query_string(&self) -> String {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("bucket", &self.bucket),
            ("group_by", &self.group_by),
        ] {
            if !value.is_empty() {
                url.append_pair(name, value);
            }
        }
        url.finish()
    }
}

/// What the page shows.
struct Figures {
    tasks: TaskAnalytics,
    /// One row per team over the whole range.
    teams: Vec<TaskFigures>,
    dearest: ExpensiveTasks,
    approvals: ApprovalAnalytics,
    agents: AgentAnalytics,
}

async fn figures(state: &WebState, viewer: &Viewer, form: &AnalyticsForm) -> Result<Figures> {
    let (store, reader) = (&state.store, &viewer.principal);
    let tasks = analytics::tasks(store, reader, &form.request(None, None)).await?;
    let by_team = if tasks.range.group_by == GroupBy::Team {
        tasks.rows.clone()
    } else {
        analytics::tasks(store, reader, &form.request(Some(GroupBy::Team), None))
            .await?
            .rows
    };
    let from = tasks.range.from;
    let teams = analytics::combine(&by_team, |row| (from, row.group.clone()));
    let dearest =
        analytics::expensive_tasks(store, reader, &form.request(None, Some(DEAREST))).await?;
    let approvals = analytics::approvals(store, reader, &form.request(None, None)).await?;
    let agents = analytics::agents(store, reader, &form.request(None, None)).await?;
    Ok(Figures {
        tasks,
        teams,
        dearest,
        approvals,
        agents,
    })
}

pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(form): Query<AnalyticsForm>,
) -> Response {
    let locale = &viewer.locale;
    let (status, figures, error) = match figures(&state, &viewer, &form).await {
        Ok(figures) => (StatusCode::OK, Some(figures), None),
        Err(Error::Invalid { field, .. }) if FIELDS.contains(&field.as_str()) => {
            let message = locale.t(&format!("analytics_page.bad_{field}"));
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some((field, message)),
            )
        }
        Err(e) => return PageError(e).into_page(locale),
    };
    let body = html! {
        h1 { (locale.t("nav.analytics")) }
        (filters(locale, &form, error.as_ref()))
        @if let Some(figures) = &figures { (sections(locale, &form, figures)) }
    };
    Page {
        title: locale.t("nav.analytics"),
        nav: Nav::Analytics,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(status, body)
}

/// `/analytics.csv`: the page's figures per bucket and group, one row each.
pub async fn csv(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(form): Query<AnalyticsForm>,
) -> Response {
    let request = form.request(None, None);
    match analytics::tasks(&state.store, &viewer.principal, &request).await {
        Ok(answer) => csv_download(csv_of(&answer.rows), "aiops-analytics.csv"),
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
}

/// `body` as a CSV file to download under `file_name`.
pub(super) fn csv_download(body: String, file_name: &str) -> Response {
    let mut response = body.into_response();
    let disposition = format!("attachment; filename=\"{file_name}\"");
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The figures as CSV (RFC 4180): a header line, then a line per bucket and group.
fn csv_of(rows: &[TaskFigures]) -> String {
    let header = "bucket_start,group,tasks,started,done,failed,cancelled,rolled_back,success_rate,\
         duration_p50_ms,duration_p90_ms,input_tokens,output_tokens,cache_read_tokens,\
         cache_write_tokens,cost_usd";
    let optional = |value: Option<String>| value.unwrap_or_default();
    let lines = rows.iter().map(|row| {
        [
            row.bucket_start.to_rfc3339(),
            csv_field(&row.group),
            row.tasks.to_string(),
            row.started.to_string(),
            row.done.to_string(),
            row.failed.to_string(),
            row.cancelled.to_string(),
            row.rolled_back.to_string(),
            optional(row.success_rate.map(|r| format!("{r:.4}"))),
            optional(row.duration_p50_ms.map(|d| d.to_string())),
            optional(row.duration_p90_ms.map(|d| d.to_string())),
            row.tokens.input.to_string(),
            row.tokens.output.to_string(),
            row.tokens.cache_read.to_string(),
            row.tokens.cache_write.to_string(),
            format!("{:.6}", row.cost_usd),
        ]
    });
    csv_document(header, lines)
}

/// A CSV document (RFC 4180): the header line, then a line of each row's fields (each
/// already a CSV field), every line ended by CRLF.
pub(super) fn csv_document<const N: usize>(
    header: &str,
    rows: impl Iterator<Item = [String; N]>,
) -> String {
    let mut out = format!("{header}\r\n");
    for fields in rows {
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
pub(super) fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn filters(locale: &Locale, form: &AnalyticsForm, error: Option<&(String, String)>) -> Markup {
    let error_of = |field: &str| error.filter(|(f, _)| f == field).map(|(_, m)| m.as_str());
    let invalid = |name: &str| error_of(name).map(|_| "true");
    let described = |name: &str| error_of(name).map(|_| format!("{name}-error"));
    let date = |name: &str, value: &str| {
        html! {
            label for=(name) {
                (locale.t(&format!("analytics_page.{name}")))
                input #(name) type="date" name=(name) value=(value)
                    aria-invalid=[invalid(name)] aria-describedby=[described(name)];
                (field_error(name, error_of(name)))
            }
        }
    };
    let choice = |name: &str, value: &str, options: &[&str]| {
        html! {
            label for=(name) {
                (locale.t(&format!("analytics_page.{name}")))
                select #(name) name=(name) aria-invalid=[invalid(name)] aria-describedby=[described(name)] {
                    @for option in options {
                        option value=(option) selected[*option == value] {
                            (locale.t(&format!("analytics_page.{name}_{option}")))
                        }
                    }
                }
                (field_error(name, error_of(name)))
            }
        }
    };
    html! {
        form.filters method="get" action="/analytics" role="search" #analytics-filters {
            (date("from", &form.from))
            (date("to", &form.to))
            (choice("bucket", &form.bucket, &["day", "week", "month"]))
            (choice("group_by", &form.group_by, &["project", "team", "source"]))
            button type="submit" { (locale.t("list.filter")) }
        }
    }
}

fn sections(locale: &Locale, form: &AnalyticsForm, figures: &Figures) -> Markup {
    let range = &figures.tasks.range;
    let rows = &figures.tasks.rows;
    html! {
        p #analytics-range {
            (locale.tf("analytics_page.range", &[
                ("from", &day(range.from)),
                ("to", &day(range.to - chrono::Duration::days(1))),
            ]))
            " · "
            a #analytics-csv href={ "/analytics.csv?" (form.query_string()) } download {
                (locale.t("analytics_page.csv"))
            }
        }
        @if rows.is_empty() {
            (empty(&locale.t("analytics_page.none")))
        } @else {
            (trends(locale, &figures.tasks))
        }
        section #approvals-figures {
            h2 { (locale.t("analytics_page.approvals")) }
            (approval_table(locale, &figures.approvals))
        }
        h2 { (locale.t("analytics_page.teams")) }
        (team_table(locale, &figures.teams))
        (agents_section(locale, form, &figures.agents))
        h2 { (locale.t("analytics_page.dearest")) }
        (dearest_table(locale, &figures.dearest))
    }
}

/// The agents' table under its heading, with the link to its CSV.
fn agents_section(locale: &Locale, form: &AnalyticsForm, agents: &AgentAnalytics) -> Markup {
    html! {
        section #agents-figures {
            h2 { (locale.t("analytics_page.agents")) }
            p.muted { (locale.t("analytics_page.agents_note")) }
            @if agents.rows.is_empty() {
                (empty(&locale.t("analytics_page.no_agents")))
            } @else {
                (agents_table(locale, &agents.rows))
                p { a #agents-csv href={ "/analytics/agents.csv?" (form.query_string()) } download {
                    (locale.t("analytics_page.agents_csv"))
                } }
            }
        }
    }
}

fn agents_table(locale: &Locale, rows: &[AgentFigures]) -> Markup {
    html! {
        div.table-wrap { table.figures #agent-table {
            thead { tr {
                th scope="col" { (locale.t("analytics_page.agent")) }
                @for key in ["tickets", "done", "blocked", "failed", "reopened", "failed_or_reopened",
                    "time_p50", "time_p90"] {
                    th.num scope="col" { (locale.t(&format!("analytics_page.{key}"))) }
                }
            } }
            tbody { @for row in rows {
                tr data-agent=(row.agent) {
                    th scope="row" { (row.agent) }
                    td.num { (row.tickets) } td.num { (row.done) } td.num { (row.blocked) }
                    td.num { (row.failed) } td.num { (row.reopened) }
                    td.num { (share(row.failed_or_reopened_share)) }
                    td.num { (took(locale, row.time_p50_ms)) }
                    td.num { (took(locale, row.time_p90_ms)) }
                }
            } }
        } }
    }
}

fn dearest_table(locale: &Locale, dearest: &ExpensiveTasks) -> Markup {
    if dearest.items.is_empty() {
        return empty(&locale.t("analytics_page.none"));
    }
    html! {
        div.table-wrap { table #dearest-tasks {
            thead { tr {
                th scope="col" { (locale.t("analytics_page.task")) }
                th scope="col" { (locale.t("field.project")) }
                th scope="col" { (locale.t("field.team")) }
                th scope="col" { (locale.t("field.status")) }
                th.num scope="col" { (locale.t("analytics_page.runs")) }
                th.num scope="col" { (locale.t("analytics_page.tokens")) }
                th.num scope="col" { (locale.t("analytics_page.cost")) }
            } }
            tbody { @for task in &dearest.items {
                tr data-task=(task.task_id) {
                    td { a href={ "/tasks/" (task.task_id) } { "#" (task.task_id) } " " span.muted { (day(task.created_at)) } }
                    td { (task.project) }
                    td { (task.team) }
                    td { (task_status(locale, task.status)) }
                    td.num { (task.runs) }
                    td.num { (task.input_tokens + task.output_tokens) }
                    td.num { (dollars(task.cost_usd)) }
                }
            } }
        } }
    }
}

/// The three trend charts, each with its numbers in a table below.
fn trends(locale: &Locale, answer: &TaskAnalytics) -> Markup {
    let rows = &answer.rows;
    let range = &answer.range;
    // Every bucket of the range is a slot, so a quiet day shows as a gap, not as nothing.
    let buckets: Vec<DateTime<Utc>> = analytics::buckets(range.from, range.to, range.bucket)
        .map(|all| all.into_iter().map(|b| b.start).collect())
        .unwrap_or_default();
    let slots: Vec<String> = buckets
        .iter()
        .map(|b| slot_label(*b, range.bucket))
        .collect();
    let per_bucket = analytics::combine(rows, |r| (r.bucket_start, String::new()));
    let count = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        }
    };
    let money = |v: f64| dollars(v);
    let seconds = |ms: f64| {
        if ms < 1000.0 && ms > 0.0 {
            format!("{ms:.0} ms")
        } else {
            locale.span((ms / 1000.0).round() as i64)
        }
    };
    let tasks_label = locale.t("analytics_page.tasks_chart");
    let cost_label = locale.t("analytics_page.cost_chart");
    let duration_label = locale.t("analytics_page.duration_chart");
    let in_bucket = |start: &DateTime<Utc>| per_bucket.iter().find(|r| r.bucket_start == *start);
    let tasks = Series {
        name: locale.t("analytics_page.tasks"),
        values: buckets
            .iter()
            .map(|b| in_bucket(b).map(|r| r.tasks as f64))
            .collect(),
    };
    let rate = Series {
        name: locale.t("analytics_page.success_rate"),
        values: buckets
            .iter()
            .map(|b| in_bucket(b).and_then(|r| r.success_rate))
            .collect(),
    };
    let cost = per_group(&buckets, rows, |r| Some(r.cost_usd));
    let p50 = per_group(&buckets, rows, |r| r.duration_p50_ms.map(|d| d as f64));
    let p90 = per_group(&buckets, rows, |r| r.duration_p90_ms.map(|d| d as f64));
    let names: Vec<&str> = cost.iter().map(|s| s.name.as_str()).collect();
    let timed: Vec<&TaskFigures> = rows
        .iter()
        .filter(|r| r.duration_p50_ms.is_some())
        .collect();
    html! {
        section #tasks-trend {
            h2 { (tasks_label) }
            figure { (charts::bars_with_rate(&frame(&tasks_label, &slots, &count), &tasks, &rate)) }
            (bucket_table(locale, &per_bucket))
        }
        section #cost-trend {
            h2 { (cost_label) }
            figure { (charts::stacked_bars(&frame(&cost_label, &slots, &money), &cost)) (charts::legend(&names)) }
            (cost_table(locale, rows))
        }
        section #duration-trend {
            h2 { (duration_label) }
            @if timed.is_empty() {
                (empty(&locale.t("analytics_page.no_durations")))
            } @else {
                figure { (charts::ranges(&frame(&duration_label, &slots, &seconds), &p50, &p90)) (charts::legend(&names)) }
                (duration_table(locale, &timed))
            }
        }
    }
}

fn frame<'a>(label: &'a str, slots: &'a [String], format: &'a dyn Fn(f64) -> String) -> Frame<'a> {
    Frame {
        label,
        slots,
        format,
    }
}

/// Tasks and their outcomes per bucket, every group together.
fn bucket_table(locale: &Locale, per_bucket: &[TaskFigures]) -> Markup {
    html! {
        div.table-wrap { table.figures #tasks-table {
            thead { tr {
                th scope="col" { (locale.t("analytics_page.bucket_start")) }
                th.num scope="col" { (locale.t("analytics_page.tasks")) }
                th.num scope="col" { (locale.t("analytics_page.done")) }
                th.num scope="col" { (locale.t("analytics_page.failed")) }
                th.num scope="col" { (locale.t("analytics_page.cancelled")) }
                th.num scope="col" { (locale.t("analytics_page.rolled_back")) }
                th.num scope="col" { (locale.t("analytics_page.success_rate")) }
            } }
            tbody { @for row in per_bucket {
                tr data-bucket=(day(row.bucket_start)) {
                    th scope="row" { (day(row.bucket_start)) }
                    td.num { (row.tasks) } td.num { (row.done) } td.num { (row.failed) }
                    td.num { (row.cancelled) } td.num { (row.rolled_back) }
                    td.num { (share(row.success_rate)) }
                }
            } }
        } }
    }
}

/// Cost and tokens per bucket and group.
fn cost_table(locale: &Locale, rows: &[TaskFigures]) -> Markup {
    html! {
        div.table-wrap { table.figures #cost-table {
            thead { tr {
                th scope="col" { (locale.t("analytics_page.bucket_start")) }
                th scope="col" { (locale.t("analytics_page.group")) }
                th.num scope="col" { (locale.t("analytics_page.tasks")) }
                th.num scope="col" { (locale.t("analytics_page.tokens")) }
                th.num scope="col" { (locale.t("analytics_page.cost")) }
                th.num scope="col" { (locale.t("analytics_page.cost_per_task")) }
            } }
            tbody { @for row in rows {
                tr data-bucket=(day(row.bucket_start)) data-group=(row.group) {
                    th scope="row" { (day(row.bucket_start)) }
                    td { (row.group) }
                    td.num { (row.tasks) }
                    td.num { (row.tokens.input + row.tokens.output) }
                    td.num { (dollars(row.cost_usd)) }
                    td.num { (row.cost_per_task_usd.map_or_else(|| "—".to_string(), dollars)) }
                }
            } }
        } }
    }
}

/// Duration percentiles per bucket and group, where a task was done.
fn duration_table(locale: &Locale, rows: &[&TaskFigures]) -> Markup {
    html! {
        div.table-wrap { table.figures #duration-table {
            thead { tr {
                th scope="col" { (locale.t("analytics_page.bucket_start")) }
                th scope="col" { (locale.t("analytics_page.group")) }
                th.num scope="col" { "p50" }
                th.num scope="col" { "p90" }
            } }
            tbody { @for row in rows {
                tr data-bucket=(day(row.bucket_start)) data-group=(row.group) {
                    th scope="row" { (day(row.bucket_start)) }
                    td { (row.group) }
                    td.num { (took(locale, row.duration_p50_ms)) }
                    td.num { (took(locale, row.duration_p90_ms)) }
                }
            } }
        } }
    }
}

/// Each team over the whole range.
fn team_table(locale: &Locale, teams: &[TaskFigures]) -> Markup {
    if teams.is_empty() {
        return empty(&locale.t("analytics_page.none"));
    }
    let money = |v: Option<f64>| v.map_or_else(|| "—".to_string(), dollars);
    html! {
        div.table-wrap { table.figures #team-table {
            thead { tr {
                th scope="col" { (locale.t("field.team")) }
                th.num scope="col" { (locale.t("analytics_page.tasks")) }
                th.num scope="col" { (locale.t("analytics_page.done")) }
                th.num scope="col" { (locale.t("analytics_page.failed")) }
                th.num scope="col" { (locale.t("analytics_page.rolled_back")) }
                th.num scope="col" { (locale.t("analytics_page.success_rate")) }
                th.num scope="col" { (locale.t("analytics_page.cost")) }
                th.num scope="col" { (locale.t("analytics_page.cost_per_task")) }
                th.num scope="col" { (locale.t("analytics_page.cost_per_success")) }
            } }
            tbody { @for row in teams {
                tr data-team=(row.group) {
                    th scope="row" { (row.group) }
                    td.num { (row.tasks) } td.num { (row.done) } td.num { (row.failed) }
                    td.num { (row.rolled_back) } td.num { (share(row.success_rate)) }
                    td.num { (dollars(row.cost_usd)) }
                    td.num { (money(row.cost_per_task_usd)) }
                    td.num { (money(row.cost_per_success_usd)) }
                }
            } }
        } }
    }
}

/// Approval requests per bucket and group: people's decisions and their shares, expired,
/// pending, time to decision.
fn approval_table(locale: &Locale, approvals: &ApprovalAnalytics) -> Markup {
    if approvals.rows.is_empty() {
        return empty(&locale.t("analytics_page.no_approvals"));
    }
    html! {
        div.table-wrap { table.figures #approvals-table {
            thead { tr {
                th scope="col" { (locale.t("analytics_page.bucket_start")) }
                th scope="col" { (locale.t("analytics_page.group")) }
                @for key in ["requested", "decided", "approve_share", "reject_share", "revise_share",
                    "expired", "pending", "decision_p50", "decision_p90"] {
                    th.num scope="col" { (locale.t(&format!("analytics_page.{key}"))) }
                }
            } }
            tbody { @for row in &approvals.rows {
                tr data-bucket=(day(row.bucket_start)) data-group=(row.group) {
                    th scope="row" { (day(row.bucket_start)) }
                    td { (row.group) }
                    td.num { (row.requested) } td.num { (row.decided) }
                    td.num { (share(row.approve_share)) } td.num { (share(row.reject_share)) }
                    td.num { (share(row.revise_share)) }
                    td.num { (row.expired) } td.num { (row.pending) }
                    td.num { (took(locale, row.decision_p50_ms)) }
                    td.num { (took(locale, row.decision_p90_ms)) }
                }
            } }
        } }
    }
}

/// A duration in milliseconds as the reader's language says it, or a dash.
fn took(locale: &Locale, ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_string(), |ms| locale.span(ms / 1000))
}

/// A bucket's first day, `2026-03-02`.
fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// A bucket's short label under a chart: `03-02`, or `2026-03` for a month.
fn slot_label(at: DateTime<Utc>, size: BucketSize) -> String {
    match size {
        BucketSize::Month => at.format("%Y-%m").to_string(),
        BucketSize::Day | BucketSize::Week => at.format("%m-%d").to_string(),
    }
}

/// A share or a dash.
fn share(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), percent)
}

/// One series per group: `value` of its row in each bucket.
fn per_group(
    buckets: &[DateTime<Utc>],
    rows: &[TaskFigures],
    value: impl Fn(&TaskFigures) -> Option<f64>,
) -> Vec<Series> {
    let mut groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
        .into_iter()
        .map(|group| Series {
            name: group.to_string(),
            values: buckets
                .iter()
                .map(|start| {
                    rows.iter()
                        .find(|r| r.group == group && r.bucket_start == *start)
                        .and_then(&value)
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("shop"), "shop");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn the_csv_link_asks_for_the_same_figures() {
        let form = AnalyticsForm {
            from: "2026-03-01".into(),
            bucket: "week".into(),
            ..AnalyticsForm::default()
        };
        assert_eq!(form.query_string(), "from=2026-03-01&bucket=week");
        let request = form.request(Some(GroupBy::Team), Some(3));
        assert_eq!(request.group_by.as_deref(), Some("team"));
        assert_eq!((request.to, request.limit), (None, Some(3)));
    }
}
