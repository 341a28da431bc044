//! The generic webhook: the notification as JSON, posted to the channel's URL and signed
//! with the channel's HMAC key so the receiver can tell it came from aiops.

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::message::Message;
use super::post::{SendError, post};
use crate::signing;

/// Header holding `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Aiops-Signature-256";
/// Header naming the event (`approval_requested`, `task_failed`, `task_done`).
pub const EVENT_HEADER: &str = "X-Aiops-Event";
/// Header holding the notification id, the same on every retry: receivers dedupe on it.
pub const DELIVERY_HEADER: &str = "X-Aiops-Delivery";

/// The JSON posted.
pub fn body(message: &Message, notification_id: i64) -> Value {
    let task = &message.task;
    json!({
        "event": message.kind.as_str(),
        "delivery": notification_id,
        "title": message.title(),
        "summary": message.summary(),
        "link": message.link,
        "task": {
            "id": task.id, "project": task.project, "team": task.team, "status": task.status,
            "status_reason": task.status_reason, "pr_url": task.pr_url,
        },
        "approval": message.approval.as_ref().map(|approval| json!({
            "id": approval.id, "kind": approval.kind, "summary": approval.summary,
            "tool_name": approval.tool_name, "risk_level": approval.risk_level,
            "expires_at": approval.expires_at, "changes": message.changes(), "diff": message.diff,
        })),
        "budgets": (!message.budgets.is_empty()).then_some(&message.budgets),
    })
}

/// Posts the notification to `url`, signed with `secret`.
pub(super) async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    notification_id: i64,
    message: &Message,
) -> Result<(), SendError> {
    let body = serde_json::to_vec(&body(message, notification_id))
        .map_err(|e| SendError::permanent(format!("cannot encode the notification: {e}")))?;
    let signature = signing::sign_sha256(secret.as_bytes(), &body);
    post(
        http.post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, message.kind.as_str())
            .header(DELIVERY_HEADER, notification_id.to_string())
            .body(body),
        "the webhook",
    )
    .await
    .map(drop)
}
