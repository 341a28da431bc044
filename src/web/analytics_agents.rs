//! The agents compared on `/analytics`, and `/analytics/agents.csv`: per agent (a ticket's
//! assignee) the tickets opened in the range, done, blocked, failed, reopened, the share
//! failed or reopened and the time per ticket, from the `analytics` use case with the
//! reader's principal, so a reader sees only the agents' work on their projects.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};

use super::WebState;
use super::analytics_page::{AnalyticsForm, csv_download, csv_field, share, took};
use super::components::empty;
use super::i18n::Locale;
use super::layout::PageError;
use super::viewer::Viewer;
use crate::analytics::{self, AgentAnalytics, AgentFigures};

/// The agents' table under its heading, with the link to its CSV.
pub(super) fn section(locale: &Locale, form: &AnalyticsForm, agents: &AgentAnalytics) -> Markup {
    html! {
        section #agents-figures {
            h2 { (locale.t("analytics_page.agents")) }
            p.muted { (locale.t("analytics_page.agents_note")) }
            @if agents.rows.is_empty() {
                (empty(&locale.t("analytics_page.no_agents")))
            } @else {
                (table(locale, &agents.rows))
                p { a #agents-csv href={ "/analytics/agents.csv?" (form.query_string()) } download {
                    (locale.t("analytics_page.agents_csv"))
                } }
            }
        }
    }
}

fn table(locale: &Locale, rows: &[AgentFigures]) -> Markup {
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

/// `/analytics/agents.csv`: the agents' figures over the page's range, one line per agent.
pub async fn csv(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(form): Query<AnalyticsForm>,
) -> Response {
    let request = form.request(None, None);
    match analytics::agents(&state.store, &viewer.principal, &request).await {
        Ok(answer) => csv_download(csv_of(&answer), "aiops-agents.csv"),
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
}

/// The figures as CSV (RFC 4180): a header line, then a line per agent.
fn csv_of(answer: &AgentAnalytics) -> String {
    let mut out = String::from(
        "from,to,agent,tickets,done,blocked,failed,reopened,failed_or_reopened,\
         failed_or_reopened_share,time_p50_ms,time_p90_ms\r\n",
    );
    let optional = |value: Option<String>| value.unwrap_or_default();
    for row in &answer.rows {
        let fields = [
            answer.from.to_rfc3339(),
            answer.to.to_rfc3339(),
            csv_field(&row.agent),
            row.tickets.to_string(),
            row.done.to_string(),
            row.blocked.to_string(),
            row.failed.to_string(),
            row.reopened.to_string(),
            row.failed_or_reopened.to_string(),
            optional(row.failed_or_reopened_share.map(|r| format!("{r:.4}"))),
            optional(row.time_p50_ms.map(|d| d.to_string())),
            optional(row.time_p90_ms.map(|d| d.to_string())),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}
