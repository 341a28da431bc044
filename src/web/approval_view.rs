//! How an approval reads on every page that shows one (the task page, the inbox, the signed
//! link): what is asked, the change with its coloured diff, the findings beside it, the
//! decision buttons, and the history of decisions.

use chrono::Utc;
use maud::{Markup, html};

use super::components::{approval_state, diff, empty, field_error, markdown};
use super::i18n::Locale;
use crate::model::{ApprovalKind, ApprovalRecord, ApprovalSnapshot, Decision};

/// The decision buttons' form: where it posts and its hidden fields.
pub struct DecideForm<'a> {
    pub action: String,
    /// Hidden fields (the CSRF token, where to go afterwards).
    pub hidden: Vec<(&'a str, String)>,
    /// Why the last attempt was refused, shown at the comment.
    pub error: Option<String>,
    pub comment: String,
}

/// One approval: its request, its change and findings, and the buttons when `form` is given.
pub fn approval(
    locale: &Locale,
    approval: &ApprovalRecord,
    snapshot: Option<&ApprovalSnapshot>,
    form: Option<DecideForm<'_>>,
) -> Markup {
    let now = Utc::now();
    html! {
        article.approval #{ "approval-" (approval.id) } data-approval=(approval.id) {
            h3 {
                (approval_state(locale, approval.status, approval.decision)) " "
                @if approval.kind == ApprovalKind::Tool { (locale.t("approval.tool_request")) }
                @else { (locale.t("approval.result")) }
                " · #" (approval.id)
            }
            dl.facts {
                div { dt { (locale.t("approval.requested")) } dd { (locale.ago(approval.requested_at, now)) } }
                @if let Some(deadline) = approval.expires_at {
                    div { dt { (locale.t("approval.deadline")) } dd { (locale.time(deadline)) } }
                }
                @if let Some(risk) = &approval.risk_level {
                    div { dt { (locale.t("approval.risk")) } dd { span class={ "badge risk-" (risk) } { (risk) } } }
                }
            }
            @if approval.kind == ApprovalKind::Tool {
                p.tool { strong { (approval.tool_name.as_deref().unwrap_or("?")) } }
                @if let Some(input) = &approval.tool_input {
                    pre { (serde_json::to_string_pretty(input).unwrap_or_default()) }
                }
            }
            @if let Some(summary) = &approval.summary {
                div.summary { (markdown(summary)) }
            }
            @if let Some(snapshot) = snapshot {
                div.two {
                    div { h4 { (locale.t("approval.change")) } (change(locale, snapshot)) }
                    div { h4 { (locale.t("approval.findings")) } (snapshot_findings(locale, snapshot)) }
                }
            }
            @if let Some(form) = form { (decide_form(locale, approval.id, form)) }
        }
    }
}

/// The change of a snapshot: the changed files and the coloured diff.
pub fn change(locale: &Locale, snapshot: &ApprovalSnapshot) -> Markup {
    html! {
        div.diff-block #diff {
            @match &snapshot.diff_files {
                Some(files) if !files.is_empty() => {
                    div.table-wrap { table {
                        thead { tr {
                            th scope="col" { (locale.t("diff.file")) } th scope="col" { (locale.t("diff.status")) }
                            th.num scope="col" { "+" } th.num scope="col" { "−" }
                        } }
                        tbody { @for file in files {
                            tr { td { code { (file.path) } } td { (file.status) } td.num { (file.insertions) } td.num { (file.deletions) } }
                        } }
                    } }
                    (diff(snapshot.diff_patch.as_deref().unwrap_or("")))
                    @if snapshot.diff_truncated { p.muted { (locale.t("diff.truncated")) } }
                }
                Some(_) => { (empty(&locale.t("diff.no_change"))) }
                None => { (empty(&locale.t("diff.unreadable"))) }
            }
        }
    }
}

/// The findings as they read when the approval was requested.
fn snapshot_findings(locale: &Locale, snapshot: &ApprovalSnapshot) -> Markup {
    html! {
        div.findings {
            @match &snapshot.findings {
                Some(findings) if !findings.is_empty() => {
                    @for finding in findings {
                        section.markdown {
                            h5 { (finding.name) }
                            (markdown(&finding.content))
                            @if finding.truncated { p.muted { (locale.t("approval.finding_beginning")) } }
                        }
                    }
                }
                _ => { (empty(&locale.t("approval.no_findings"))) }
            }
        }
    }
}

fn decide_form(locale: &Locale, id: i64, form: DecideForm<'_>) -> Markup {
    let comment_id = format!("comment-{id}");
    html! {
        form.decide-form method="post" action=(form.action) {
            @for (name, value) in &form.hidden { input type="hidden" name=(name) value=(value); }
            label for=(comment_id) {
                (locale.t("approval.comment"))
                textarea id=(comment_id) name="comment" maxlength="8192"
                    aria-invalid=[form.error.as_ref().map(|_| "true")]
                    aria-describedby=[form.error.as_ref().map(|_| format!("{comment_id}-error"))] { (form.comment) }
                (field_error(&comment_id, form.error.as_deref()))
            }
            div.decide {
                button.approve type="submit" name="decision" value=(Decision::Approve.as_str()) { (locale.t("decision.approve_button")) }
                button.reject type="submit" name="decision" value=(Decision::Reject.as_str()) { (locale.t("decision.reject_button")) }
                button type="submit" name="decision" value=(Decision::Revise.as_str()) { (locale.t("decision.revise_button")) }
            }
        }
    }
}

/// The decided approvals: what, who, through which channel, when, the comment.
pub fn history(locale: &Locale, approvals: &[&ApprovalRecord]) -> Markup {
    if approvals.is_empty() {
        return empty(&locale.t("approval.no_history"));
    }
    html! {
        div.table-wrap { table.stack-small.history {
            thead { tr {
                th scope="col" { "#" } th scope="col" { (locale.t("approval.decision")) }
                th scope="col" { (locale.t("approval.by")) } th scope="col" { (locale.t("approval.channel")) }
                th scope="col" { (locale.t("approval.when")) } th scope="col" { (locale.t("approval.comment")) }
            } }
            tbody { @for a in approvals {
                tr data-approval=(a.id) {
                    td { (a.id) }
                    td data-label=(locale.t("approval.decision")) { (approval_state(locale, a.status, a.decision)) }
                    td data-label=(locale.t("approval.by")) { (a.decided_by.as_deref().unwrap_or("—")) }
                    td data-label=(locale.t("approval.channel")) { (a.channel.map_or("—", |c| c.as_str())) }
                    td data-label=(locale.t("approval.when")) { (a.decided_at.map_or_else(|| "—".into(), |t| locale.time(t))) }
                    td data-label=(locale.t("approval.comment")) { (a.comment.as_deref().unwrap_or("")) }
                }
            } }
        } }
    }
}
