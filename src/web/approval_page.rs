//! `/approvals/{token}`: the page a notification links to. The signed token opens one
//! approval and nothing else, until it expires or the approval is decided. Server-rendered;
//! findings are untrusted markdown, rendered and then sanitized. The decision form is
//! protected by a double-submit CSRF token (cookie + hidden field, SameSite=Strict).

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use serde::Deserialize;

use super::WebState;
use crate::approvals::{self, Channel, Decider, Decision, DecisionRequest, LinkError, LinkSigner};
use crate::error::Error;
use crate::model::{ApprovalKind, ApprovalRecord, ApprovalSnapshot, ApprovalStatus};
use crate::signing::tokens_equal;
use crate::tasks::Task;

const CSRF_COOKIE: &str = "aiops_csrf";

pub fn router() -> axum::Router<WebState> {
    axum::Router::new().route("/approvals/{token}", get(show).post(decide))
}

/// The decision form as posted.
#[derive(Debug, Deserialize)]
struct DecisionForm {
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    name: String,
    csrf: String,
}

async fn show(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    let approval = match open_link(&state, &token).await {
        Ok(approval) => approval,
        Err(page) => return page,
    };
    if approval.status != ApprovalStatus::Pending {
        return decided_response(&state, &approval, StatusCode::GONE).await;
    }
    let (task, snapshot) = match (
        state.store.task(approval.task_id).await,
        state.store.approval_snapshot(approval.id).await,
    ) {
        (Ok(task), Ok(snapshot)) => (task, snapshot),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let cookie =
        format!("{CSRF_COOKIE}={csrf}; Path=/approvals; HttpOnly; SameSite=Strict; Max-Age=86400");
    let mut response = Html(approval_page(&approval, &task, &snapshot, &csrf)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    secure(response)
}

async fn decide(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let approval = match open_link(&state, &token).await {
        Ok(approval) => approval,
        Err(page) => return page,
    };
    let Ok(Form(form)) = form else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Not a decision",
            "The form was incomplete. Open the link again and use its buttons.",
        );
    };
    if !csrf_matches(&headers, &form.csrf) {
        return message_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form did not come from the approval page (its security token does not match). Open the link again and decide from there.",
        );
    }
    let decision = match form.decision.parse::<Decision>() {
        Ok(decision) => decision,
        Err(e) => {
            return message_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not a decision",
                &e.to_string(),
            );
        }
    };
    let name = form.name.trim().chars().take(100).collect::<String>();
    let decider = Decider {
        name: if name.is_empty() {
            "approval link".into()
        } else {
            format!("{name} (approval link)")
        },
        principal_id: None,
        channel: Channel::Web,
        source: peer.ip().to_string(),
    };
    let request = DecisionRequest {
        decision,
        comment: Some(form.comment),
    };
    match approvals::decide(&state.store, approval.id, &request, &decider).await {
        Ok(_) => secure(Redirect::to(&format!("/approvals/{token}")).into_response()),
        Err(Error::Conflict(_)) => match state.store.approval(approval.id).await {
            Ok(current) => decided_response(&state, &current, StatusCode::CONFLICT).await,
            Err(e) => internal(e),
        },
        Err(Error::Invalid { message, .. }) => message_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Decision not taken",
            &message,
        ),
        Err(e) => internal(e),
    }
}

/// The approval a token opens, or the page that explains why it opens nothing.
async fn open_link(state: &WebState, token: &str) -> Result<ApprovalRecord, Response> {
    let signer = LinkSigner::new(&state.vault);
    let id = match signer.verify(token, Utc::now()) {
        Ok(id) => id,
        Err(LinkError::Tampered) => {
            return Err(message_page(
                StatusCode::FORBIDDEN,
                "Link not valid",
                "This approval link was changed or cut short, so it opens nothing. Use the link exactly as it was sent.",
            ));
        }
        Err(LinkError::Expired { approval_id, at }) => {
            // The signature held up to the expiry; say what became of the approval.
            return Err(match state.store.approval(approval_id).await {
                Ok(approval) if approval.status != ApprovalStatus::Pending => {
                    decided_response(state, &approval, StatusCode::GONE).await
                }
                _ => message_page(
                    StatusCode::GONE,
                    "Link expired",
                    &format!(
                        "This approval link expired at {}. Ask for a new link, or decide with `aiops approvals list` and `aiops approve <id>`.",
                        when(at)
                    ),
                ),
            });
        }
    };
    state.store.approval(id).await.map_err(|e| match e {
        Error::NotFound(_) => message_page(
            StatusCode::NOT_FOUND,
            "Approval not found",
            "The approval this link opens no longer exists (its task was deleted).",
        ),
        e => internal(e),
    })
}

fn csrf_matches(headers: &HeaderMap, presented: &str) -> bool {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_owned());
    matches!(cookie, Some(cookie) if !presented.is_empty() && tokens_equal(presented, &cookie))
}

fn internal(error: Error) -> Response {
    tracing::error!(error = %error, "approval page failed");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The approval could not be shown. Try again in a moment.",
    )
}

/// Pages must not be framed, cached or sniffed, and run no script at all.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Text as HTML text or attribute value.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Untrusted markdown as safe HTML: rendered, then cleaned of scripts, handlers and styles.
fn markdown(text: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::clean(&html)
}

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · aiops</title><style>
body{{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#1f2328}}
h1{{font-size:1.4rem}} table{{border-collapse:collapse}} td,th{{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #d0d7de}}
pre{{background:#f6f8fa;padding:.8rem;overflow-x:auto;font-size:13px;line-height:1.35}}
.add{{color:#116329;background:#dafbe1;display:block}} .del{{color:#82071e;background:#ffebe9;display:block}}
.hunk{{color:#0550ae;display:block}} .meta{{color:#57606a;font-weight:600;display:block}}
.finding{{border:1px solid #d0d7de;border-radius:6px;padding:0 1rem;margin:.8rem 0}}
.decided{{border-left:4px solid #0969da;padding:.4rem 1rem;background:#ddf4ff}}
button{{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem;cursor:pointer;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa}}
#approve{{background:#1a7f37;color:#fff;border-color:#1a7f37}} #reject{{background:#cf222e;color:#fff;border-color:#cf222e}}
textarea,input{{width:100%;box-sizing:border-box;font:inherit}} textarea{{min-height:5rem}}
.finding h1,.finding h2,.finding h3{{font-size:1rem}} .finding>h3:first-child{{font-size:1.1rem;color:#57606a}}
</style></head><body>{body}</body></html>"#,
        title = esc(title)
    )
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        r#"<h1 id="message-title">{}</h1><p id="message">{}</p>"#,
        esc(title),
        esc(message)
    );
    secure((status, Html(layout(title, &body))).into_response())
}

/// The page of a link whose approval is already decided: who, how and when, and what for.
async fn decided_response(
    state: &WebState,
    approval: &ApprovalRecord,
    status: StatusCode,
) -> Response {
    let task = state.store.task(approval.task_id).await.ok();
    let what = task
        .map(|t| {
            format!(
                "<p>Task #{} on {} ({} team): {}</p>",
                t.id,
                esc(&t.project),
                esc(&t.team),
                esc(&t.prompt)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Approval {id} is decided</h1>{what}<div class="decided" id="decided"><p><strong>{decision}</strong> by {by} via {channel}, {at}.</p>{comment}</div>
<p>This link cannot change the decision any more.</p>"#,
        id = approval.id,
        decision = esc(approval
            .decision
            .map_or(approval.status.as_str(), Decision::as_str)),
        by = esc(approval.decided_by.as_deref().unwrap_or("unknown")),
        channel = esc(approval.channel.map_or("unknown", Channel::as_str)),
        at = approval
            .decided_at
            .map_or_else(|| "at an unknown time".into(), when),
        comment = approval
            .comment
            .as_deref()
            .map(|c| format!("<p>Comment: {}</p>", esc(c)))
            .unwrap_or_default(),
    );
    secure((status, Html(layout("Decided", &body))).into_response())
}

/// A time as people read it.
fn when(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The unified diff with each line coloured by what it is.
fn coloured_patch(patch: &str) -> String {
    let mut html = String::with_capacity(patch.len() * 2);
    for line in patch.lines() {
        let class =
            if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff ") {
                "meta"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                ""
            };
        if class.is_empty() {
            let _ = writeln!(html, "{}", esc(line));
        } else {
            let _ = write!(html, r#"<span class="{class}">{}</span>"#, esc(line));
        }
    }
    html
}

fn approval_page(
    approval: &ApprovalRecord,
    task: &Task,
    snapshot: &ApprovalSnapshot,
    csrf: &str,
) -> String {
    let mut body = format!(
        r#"<h1>Approval needed: {what}</h1>
<table id="facts"><tr><th>Project</th><td>{project}</td></tr><tr><th>Task</th><td>#{task_id}: {prompt}</td></tr>
<tr><th>Team</th><td>{team}</td></tr><tr><th>Phase</th><td>{phase}</td></tr><tr><th>Requested</th><td>{requested}</td></tr>
<tr><th>Deadline</th><td>{deadline}</td></tr></table>"#,
        what = if approval.kind == ApprovalKind::Tool {
            "a tool call"
        } else {
            "the pipeline's result"
        },
        project = esc(&task.project),
        task_id = task.id,
        prompt = esc(&task.prompt),
        team = esc(&task.team),
        phase = esc(&task
            .phase
            .as_deref()
            .unwrap_or("unknown")
            .to_lowercase()
            .replace('_', " ")),
        requested = when(approval.requested_at),
        deadline = approval.expires_at.map_or_else(|| "none".into(), when),
    );
    if approval.kind == ApprovalKind::Tool {
        let input = approval
            .tool_input
            .as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
            .unwrap_or_default();
        let _ = write!(
            body,
            r#"<h2>Tool request</h2><p id="tool">{} (risk {})</p><pre>{}</pre>"#,
            esc(approval.tool_name.as_deref().unwrap_or("unknown tool")),
            esc(approval.risk_level.as_deref().unwrap_or("unknown")),
            esc(&input)
        );
    }
    if let Some(summary) = &approval.summary {
        let _ = write!(
            body,
            r#"<h2>Summary</h2><div id="summary">{}</div>"#,
            markdown(summary)
        );
    }
    write_change(&mut body, snapshot);
    write_findings(&mut body, snapshot);
    write_decision_form(&mut body, csrf);
    layout(&format!("Approval {}", approval.id), &body)
}

/// The change shown with an approval: changed files and the coloured diff.
fn write_change(body: &mut String, snapshot: &ApprovalSnapshot) {
    body.push_str(r#"<h2>Change</h2><div id="diff">"#);
    match &snapshot.diff_files {
        Some(files) if !files.is_empty() => {
            body.push_str("<table><tr><th>File</th><th>Status</th><th>+</th><th>−</th></tr>");
            for file in files {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&file.path),
                    esc(&file.status),
                    file.insertions,
                    file.deletions
                );
            }
            body.push_str("</table>");
            let _ = write!(
                body,
                "<pre>{}</pre>",
                coloured_patch(snapshot.diff_patch.as_deref().unwrap_or(""))
            );
            if snapshot.diff_truncated {
                body.push_str("<p>The diff was cut short; see the branch for the rest.</p>");
            }
        }
        Some(_) => body.push_str("<p>No file changed.</p>"),
        None => body.push_str("<p>The change could not be read.</p>"),
    }
    body.push_str("</div>");
}

/// The findings shown with an approval, each rendered from sanitized markdown.
fn write_findings(body: &mut String, snapshot: &ApprovalSnapshot) {
    body.push_str(r#"<h2>Findings</h2><div id="findings">"#);
    match &snapshot.findings {
        Some(findings) if !findings.is_empty() => {
            for finding in findings {
                let _ = write!(
                    body,
                    r#"<section class="finding"><h3>{}</h3>{}</section>"#,
                    esc(&finding.name),
                    markdown(&finding.content)
                );
            }
        }
        _ => body.push_str("<p>No findings.</p>"),
    }
    body.push_str("</div>");
}

/// The decision form, with its CSRF token.
fn write_decision_form(body: &mut String, csrf: &str) {
    let _ = write!(
        body,
        r#"<h2>Decide</h2><form method="post" id="decide">
<input type="hidden" name="csrf" value="{csrf}">
<p><label>Your name <input name="name" maxlength="100" autocomplete="name"></label></p>
<p><label>Comment (needed to revise)<br><textarea name="comment" maxlength="8192"></textarea></label></p>
<button type="submit" name="decision" value="{approve}" id="approve">Approve</button>
<button type="submit" name="decision" value="{reject}" id="reject">Reject</button>
<button type="submit" name="decision" value="{revise}" id="revise">Revise with comment</button>
</form>"#,
        approve = Decision::Approve,
        reject = Decision::Reject,
        revise = Decision::Revise,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_markdown_loses_scripts_and_handlers() {
        let html = markdown(
            "# Title\n<script>alert(1)</script>\n[x](javascript:alert(2)) <img src=x onerror=alert(3)>",
        );
        assert!(html.contains("<h1>Title</h1>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("onerror"));
    }

    #[test]
    fn diff_lines_are_escaped_and_coloured() {
        let html = coloured_patch("@@ -1 +1 @@\n-<b>old</b>\n+new & better\n context");
        assert!(html.contains(r#"<span class="del">-&lt;b&gt;old&lt;/b&gt;</span>"#));
        assert!(html.contains(r#"<span class="add">+new &amp; better</span>"#));
        assert!(html.contains(r#"<span class="hunk">"#));
    }
}
