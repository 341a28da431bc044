//! KakaoWork: a bot message (`messages.send`, bot app key) to a configured conversation,
//! in KakaoWork's blocks: header, text, and a button that opens the signed link.

use serde_json::{Value, json};

use super::NoticeKind;
use super::message::Message;
use super::post::{SendError, post};

/// The JSON posted to `messages.send`.
pub fn body(message: &Message, conversation_id: &str) -> Value {
    let conversation = conversation_id
        .parse::<i64>()
        .map_or_else(|_| json!(conversation_id), |id| json!(id));
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
    json!({
        "conversation_id": conversation,
        "text": message.plain_text(),
        "blocks": [
            {"type": "header", "text": message.title(), "style": style},
            {"type": "text", "text": message.summary(), "markdown": false},
            {"type": "text", "text": facts, "markdown": false},
            {"type": "button", "text": message.link_label(), "style": "default",
                "action_type": "open_system_browser", "value": message.link},
        ],
    })
}

/// Sends a message to `conversation_id` as the bot whose app key is `app_key`.
pub(super) async fn send(
    http: &reqwest::Client,
    api_url: &str,
    conversation_id: &str,
    app_key: &str,
    message: &Message,
) -> Result<(), SendError> {
    let answer = post(
        http.post(format!("{api_url}/v1/messages.send"))
            .bearer_auth(app_key)
            .json(&body(message, conversation_id)),
        "KakaoWork",
    )
    .await?;
    let answer: Value = serde_json::from_str(&answer)
        .map_err(|_| SendError::permanent("KakaoWork answered messages.send with no JSON"))?;
    if answer["success"] == json!(true) {
        Ok(())
    } else {
        Err(SendError::permanent(format!(
            "KakaoWork refused the message: {} {}",
            answer["error"]["code"].as_str().unwrap_or("no code"),
            answer["error"]["message"].as_str().unwrap_or("")
        )))
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
    }
}
