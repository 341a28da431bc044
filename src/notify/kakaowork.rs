//! KakaoWork: a bot message (`messages.send`, bot app key) to a configured conversation,
//! in KakaoWork's blocks: header, text, Approve and Reject buttons (`submit_action`) for an
//! approval request, and a button that opens the signed link; and the way back from those
//! buttons, the `submit_action` callbacks KakaoWork posts to the bot's Callback URL.
//!
//! KakaoWork signs no callback, so two things stand in for a signature: the Callback URL
//! holds a secret path segment (checked by `http`), and each button's value is signed by
//! aiops over its approval, decision and expiry, so a forged or altered value decides
//! nothing. KakaoWork has no message only one person sees: what a click changed for nobody
//! else is told to the clicker in a direct message from the bot (`conversations.open`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::NoticeKind;
use super::chat;
use super::message::{Message, decision_label};
use super::post::{SendError, post};
use crate::approvals::{Decision, LinkSigner};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::ChatProvider;
use crate::signing::LinkError;
use crate::store::Store;

/// `action_name` of the Approve button.
pub const APPROVE_ACTION: &str = "aiops_approve";
/// `action_name` of the Reject button.
pub const REJECT_ACTION: &str = "aiops_reject";

/// The JSON posted to `messages.send`.
pub fn body(message: &Message, conversation_id: &str) -> Value {
    let conversation = id_json(conversation_id);
    let style = match message.kind {
        NoticeKind::ApprovalRequested => "yellow",
        NoticeKind::TaskDone => "blue",
        NoticeKind::TaskFailed | NoticeKind::BudgetSpent => "red",
        NoticeKind::BudgetWarning => "yellow",
    };
    let facts = message
        .facts()
        .into_iter()
        .map(|(label, value)| format!("{label}: {value}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut blocks = vec![
        json!({"type": "header", "text": message.title(), "style": style}),
        json!({"type": "text", "text": message.summary(), "markdown": false}),
        json!({"type": "text", "text": facts, "markdown": false}),
    ];
    if !message.decisions.is_empty() {
        let buttons: Vec<Value> = message
            .decisions
            .iter()
            .map(|(decision, value)| {
                let (action, style) = match decision {
                    Decision::Approve => (APPROVE_ACTION, "primary"),
                    _ => (REJECT_ACTION, "danger"),
                };
                json!({"type": "button", "text": decision_label(*decision, message.language),
                    "style": style, "action_type": "submit_action", "action_name": action,
                    "value": value})
            })
            .collect();
        blocks.push(json!({"type": "action", "elements": buttons}));
    }
    blocks.push(
        json!({"type": "button", "text": message.link_label(), "style": "default",
        "action_type": "open_system_browser", "value": message.link}),
    );
    json!({"conversation_id": conversation, "text": message.plain_text(), "blocks": blocks})
}

/// A conversation or user id as KakaoWork sends it: a number, or digits in a string.
fn id_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    (!text.is_empty() && text.len() <= 20 && text.chars().all(|c| c.is_ascii_digit()))
        .then_some(text)
}

/// The id as KakaoWork's API takes it: a number when it is one.
fn id_json(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |id| json!(id))
}

/// Sends a message to `conversation_id` as the bot whose app key is `app_key`.
pub(super) async fn send(
    http: &reqwest::Client,
    api_url: &str,
    conversation_id: &str,
    app_key: &str,
    message: &Message,
) -> Result<(), SendError> {
    let body = body(message, conversation_id);
    call(http, api_url, "messages.send", app_key, &body)
        .await
        .map(drop)
}

/// Calls KakaoWork's `method` with `body`; its answer when it says `success`.
async fn call(
    http: &reqwest::Client,
    api_url: &str,
    method: &str,
    app_key: &str,
    body: &Value,
) -> Result<Value, SendError> {
    let answer = post(
        http.post(format!("{api_url}/v1/{method}"))
            .bearer_auth(app_key)
            .json(body),
        "KakaoWork",
    )
    .await?;
    let answer: Value = serde_json::from_str(&answer)
        .map_err(|_| SendError::permanent(format!("KakaoWork answered {method} with no JSON")))?;
    if answer["success"] == json!(true) {
        Ok(answer)
    } else {
        Err(SendError::permanent(format!(
            "KakaoWork refused {method}: {} {}",
            answer["error"]["code"].as_str().unwrap_or("no code"),
            answer["error"]["message"].as_str().unwrap_or("")
        )))
    }
}

/// Sends `text` as the bot: to `conversation_id`, or, for a direct message, to the bot's
/// conversation with `user_id` (opened first; KakaoWork returns the one that exists).
pub(super) async fn send_text(
    http: &reqwest::Client,
    api_url: &str,
    app_key: &str,
    to: &Recipient,
    text: &str,
) -> Result<(), SendError> {
    let conversation = match to {
        Recipient::Conversation(id) => id.clone(),
        Recipient::User(user_id) => {
            let body = json!({"user_id": id_json(user_id)});
            let opened = call(http, api_url, "conversations.open", app_key, &body).await?;
            id_of(&opened["conversation"]["id"]).ok_or_else(|| {
                SendError::permanent("KakaoWork's conversations.open named no conversation")
            })?
        }
    };
    let body = json!({"conversation_id": id_json(&conversation), "text": text});
    call(http, api_url, "messages.send", app_key, &body)
        .await
        .map(drop)
}

/// A click on an Approve or Reject button of one of aiops' KakaoWork messages.
#[derive(Debug, Clone)]
pub struct Click {
    /// The button's value: the signed approval, decision and expiry.
    pub value: String,
    /// The KakaoWork user who clicked (`react_user_id`).
    pub user_id: String,
    /// The conversation of the clicked message, where its bot posts.
    pub conversation_id: String,
}

/// Reads a callback body (JSON): the click on an Approve or Reject button, or None for
/// anything else (other buttons, other callback types such as modals).
pub fn parse_callback(body: &[u8]) -> Result<Option<Click>> {
    let callback: Value = serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("the body is not a KakaoWork callback: {e}")))?;
    let ours =
        [APPROVE_ACTION, REJECT_ACTION].contains(&callback["action_name"].as_str().unwrap_or(""));
    if callback["type"] != "submit_action" || !ours {
        return Ok(None);
    }
    let (Some(value), Some(user_id), Some(conversation_id)) = (
        callback["value"].as_str(),
        id_of(&callback["react_user_id"]),
        id_of(&callback["message"]["conversation_id"]),
    ) else {
        return Err(Error::BadRequest(
            "a submit_action callback needs value, react_user_id and message.conversation_id (digits)".into(),
        ));
    };
    Ok(Some(Click {
        value: value.to_string(),
        user_id,
        conversation_id,
    }))
}

/// Where the bot tells a click's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The conversation of the clicked message: everyone there sees it.
    Conversation(String),
    /// A direct message to this KakaoWork user only.
    User(String),
}

/// What to tell about a click, and to whom.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The approval the button's value named, when its signature held.
    pub approval_id: Option<i64>,
    pub to: Recipient,
    pub text: String,
}

/// Decides the approval a click's signed value names, as the aiops user the KakaoWork
/// account is linked to (`chat::decide_button`, the step every chat's clicks share), and
/// says what to tell: who decided, to the conversation; why nothing changed or that the
/// approve counted, to the clicker alone.
pub async fn decide_click(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    click: &Click,
    now: DateTime<Utc>,
) -> Answer {
    let verified = signer
        .verify_decision_token(&click.value, now)
        .and_then(|(id, decision)| match decision.parse::<Decision>() {
            Ok(decision) => Ok((id, decision)),
            Err(_) => Err(LinkError::Tampered),
        });
    let approval_id = match &verified {
        Ok((id, _)) => Some(*id),
        Err(e) => e.approval_id(),
    };
    let account = (ChatProvider::Kakaowork, click.user_id.as_str());
    let fallback = config.notify.kakaowork_language;
    let (outcome, language) =
        chat::decide_button(store, signer, config, account, verified, fallback).await;
    let to = if outcome.for_clicker_only() {
        Recipient::User(click.user_id.clone())
    } else {
        Recipient::Conversation(click.conversation_id.clone())
    };
    Answer {
        approval_id,
        to,
        text: outcome.text(language),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::sample;

    #[test]
    fn the_button_opens_the_link() {
        let message = sample(NoticeKind::ApprovalRequested);
        let body = body(&message, "12345");
        assert_eq!(body["conversation_id"], 12345);
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"], "Approval needed: bugfix on shop");
        let button = blocks.last().unwrap();
        assert_eq!(button["action_type"], "open_system_browser");
        assert_eq!(button["value"], message.link);
        let actions = &blocks[blocks.len() - 2];
        assert_eq!(actions["type"], "action");
        let names: Vec<&str> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["action_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [APPROVE_ACTION, REJECT_ACTION]);
        assert_eq!(actions["elements"][0]["action_type"], "submit_action");
        assert_eq!(
            actions["elements"][1]["value"],
            "3.reject.1999999999.abcdef"
        );
        let done = super::body(&sample(NoticeKind::TaskDone), "12345");
        assert!(
            done["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] != "action")
        );
    }

    #[test]
    fn callbacks_yield_clicks_on_our_buttons_only() {
        let callback = |action: &str, user: Value| {
            json!({"type": "submit_action", "action_time": "2026-12-01T10:00:00Z",
                "message": {"id": 77, "conversation_id": 12345, "user_id": 9, "blocks": []},
                "react_user_id": user, "action_name": action, "value": "3.approve.1.ab"})
            .to_string()
        };
        let click = parse_callback(callback(APPROVE_ACTION, json!(2603)).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(click.user_id, "2603");
        assert_eq!(click.conversation_id, "12345");
        assert_eq!(click.value, "3.approve.1.ab");
        assert!(
            parse_callback(callback("other", json!(2603)).as_bytes())
                .unwrap()
                .is_none()
        );
        for bad in [json!("U1"), json!(null), json!(-4)] {
            assert!(
                matches!(
                    parse_callback(callback(REJECT_ACTION, bad.clone()).as_bytes()),
                    Err(Error::BadRequest(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_callback(b"{not json"),
            Err(Error::BadRequest(_))
        ));
    }
}
