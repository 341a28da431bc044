//! `/analytics/agents.csv`: the agents compared on `/analytics` as CSV: per agent (a
//! ticket's assignee) the tickets opened in the range, done, blocked, failed, reopened, the
//! share failed or reopened and the time per ticket, from the `analytics` use case with the
//! reader's principal, so a reader sees only the agents' work on their projects.

use axum::extract::{Query, State};
use axum::response::Response;

use super::WebState;
use super::analytics_page::{AnalyticsForm, csv_document, csv_download, csv_field};
use super::layout::PageError;
use super::viewer::Viewer;
use crate::analytics::{self, AgentAnalytics};

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
    let header = "from,to,agent,tickets,done,blocked,failed,reopened,failed_or_reopened,\
         failed_or_reopened_share,time_p50_ms,time_p90_ms";
    let optional = |value: Option<String>| value.unwrap_or_default();
    let lines = answer.rows.iter().map(|row| {
        [
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
        ]
    });
    csv_document(header, lines)
}
