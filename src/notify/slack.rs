//! Slack: messages in Block Kit (through an incoming webhook, or a bot token and
//! `chat.postMessage`), and the way back from their buttons: Slack's signed interaction
//! requests, checked here, and the decision a click makes.
//!
//! A button carries the approval link's signed token, so a click decides exactly what the
//! link would open and nothing else; a forged or expired token decides nothing.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat;
use super::message::Message;
use super::post::{SendError, post};
use crate::approvals::{Decision, LinkSigner};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{ChatProvider, Language};
use crate::signing;
use crate::store::Store;

/// `action_id` of the Approve button.
pub const APPROVE_ACTION: &str = "aiops_approve";
/// `action_id` of the Reject button.
pub const REJECT_ACTION: &str = "aiops_reject";
/// `action_id` of the button that opens the link (Slack reports its clicks too).
pub const OPEN_ACTION: &str = "aiops_open";
/// How far a request's timestamp may be from now, in seconds (Slack's advice: 5 minutes).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Slack's control characters in text, escaped as Slack asks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` cut to `max` characters.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        text.chars().take(max - 1).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

/// The Block Kit blocks of a message: header, facts, summary, buttons.
pub fn blocks(message: &Message) -> Value {
    let fields: Vec<Value> = message
        .facts()
        .into_iter()
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", cut(&escape(&value), 1900))})
        })
        .collect();
    let summary = escape(&message.summary());
    let mut buttons = Vec::new();
    if let Some(token) = &message.token {
        buttons.push(json!({
            "type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": token,
            "text": {"type": "plain_text", "text": "Approve"},
        }));
        buttons.push(json!({
            "type": "button", "action_id": REJECT_ACTION, "style": "danger", "value": token,
            "text": {"type": "plain_text", "text": "Reject"},
        }));
    }
    buttons.push(json!({
        "type": "button", "action_id": OPEN_ACTION, "url": message.link,
        "text": {"type": "plain_text", "text": message.link_label()},
    }));
    json!([
        {"type": "header", "text": {"type": "plain_text", "text": cut(&message.title(), 150)}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn",
            "text": if summary.is_empty() { "(no summary)".into() } else { cut(&summary, 2900) }}},
        {"type": "actions", "block_id": "aiops_decision", "elements": buttons},
    ])
}

/// The JSON posted to Slack; `channel` for `chat.postMessage`, none for an incoming webhook.
pub fn body(message: &Message, channel: Option<&str>) -> Value {
    let mut body = json!({"text": escape(&message.plain_text()), "blocks": blocks(message)});
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    body
}

/// Posts a message: to `chat.postMessage` with the bot token `secret` when `channel` is
/// given, else to the incoming-webhook URL `secret`.
pub(super) async fn send(
    http: &reqwest::Client,
    api_url: &str,
    channel: Option<&str>,
    secret: &str,
    message: &Message,
) -> Result<(), SendError> {
    let body = body(message, channel);
    if channel.is_none() {
        let url = reqwest::Url::parse(secret).map_err(|_| {
            SendError::permanent(
                "the Slack credential of a channel without target must be an incoming-webhook URL",
            )
        })?;
        return post(http.post(url).json(&body), "Slack").await.map(drop);
    }
    let answer = post(
        http.post(format!("{api_url}/chat.postMessage"))
            .bearer_auth(secret)
            .json(&body),
        "Slack",
    )
    .await?;
    let answer: Value = serde_json::from_str(&answer)
        .map_err(|_| SendError::permanent("Slack answered chat.postMessage with no JSON"))?;
    match (answer["ok"].as_bool(), answer["error"].as_str()) {
        (Some(true), _) => Ok(()),
        (_, Some("ratelimited")) => Err(SendError::retry("Slack: ratelimited")),
        (_, error) => Err(SendError::permanent(format!(
            "Slack refused the message: {}",
            error.unwrap_or("no reason given")
        ))),
    }
}

/// Checks that a request comes from Slack: `X-Slack-Signature` is `v0=` and the hex
/// HMAC-SHA256 of `v0:{timestamp}:{body}` keyed by the signing secret, and
/// `X-Slack-Request-Timestamp` is within 5 minutes of `now` (an old request is a replay).
pub fn verify_request(
    signing_secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<()> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Error::Unauthorized(
            "send X-Slack-Request-Timestamp and X-Slack-Signature".into(),
        ));
    };
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| Error::Unauthorized("X-Slack-Request-Timestamp is not a Unix time".into()))?;
    if now.timestamp().abs_diff(sent) > MAX_CLOCK_SKEW_SECS {
        return Err(Error::Unauthorized(
            "X-Slack-Request-Timestamp is more than 5 minutes away from now; a replay, or a clock to fix".into(),
        ));
    }
    if signing::verify_slack_signature(signing_secret, timestamp, body, signature) {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "X-Slack-Signature does not match the body".into(),
        ))
    }
}

/// A click on an Approve or Reject button of one of aiops' messages.
#[derive(Debug, Clone)]
pub struct Click {
    pub decision: Decision,
    /// The button's value: the signed token of the approval link.
    pub token: String,
    /// The Slack user's name, recorded as who decided.
    pub user_name: String,
    pub user_id: String,
    /// Where Slack takes the answer that replaces the message.
    pub response_url: Option<String>,
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
    username: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    value: Option<String>,
}

/// Reads an interaction request body (`payload=<JSON>`, form-encoded): the click on an
/// Approve or Reject button, or None for anything else (other actions, other types).
pub fn parse_interaction(body: &[u8]) -> Result<Option<Click>> {
    let form: InteractionForm = serde_urlencoded::from_bytes(body).map_err(|_| {
        Error::BadRequest("expected a form-encoded body with a payload field".into())
    })?;
    let interaction: Interaction = serde_json::from_str(&form.payload)
        .map_err(|e| Error::BadRequest(format!("payload is not a Slack interaction: {e}")))?;
    if interaction.kind != "block_actions" {
        return Ok(None);
    }
    let click = interaction.actions.iter().find_map(|action| {
        let decision = match action.action_id.as_str() {
            APPROVE_ACTION => Decision::Approve,
            REJECT_ACTION => Decision::Reject,
            _ => return None,
        };
        Some((decision, action.value.clone().unwrap_or_default()))
    });
    let Some((decision, token)) = click else {
        return Ok(None);
    };
    let user = interaction.user;
    Ok(Some(Click {
        decision,
        token,
        user_name: user
            .username
            .or(user.name)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| user.id.clone()),
        user_id: user.id,
        response_url: interaction.response_url,
    }))
}

/// Decides the approval a click's token opens, as the aiops user the Slack account is linked
/// to (`chat::decide_button`, the step every chat's clicks share), and returns the answer for
/// the click's `response_url`: the outcome replaces the message (so its buttons go), or,
/// when nothing changed for the others, a note only the user sees saying why (an unknown
/// account gets a link to link it).
pub async fn decide_click(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    click: &Click,
    now: DateTime<Utc>,
) -> Value {
    let verified = signer
        .verify(&click.token, now)
        .map(|id| (id, click.decision));
    let account = (ChatProvider::Slack, click.user_id.as_str());
    let (outcome, language) =
        chat::decide_button(store, signer, config, account, verified, Language::En).await;
    let text = escape(&outcome.text(language));
    if outcome.for_clicker_only() {
        json!({"response_type": "ephemeral", "replace_original": false, "text": text})
    } else {
        json!({"replace_original": true, "text": text})
    }
}

/// Whether aiops may post to a click's `response_url`: https on Slack's hosts
/// (`hooks.slack.com`, `hooks.slack-gov.com`), or the origin of `notify.slack_api_url` (a
/// Slack stand-in in tests). Anything else would let a forged payload make aiops post where
/// it says.
pub fn response_url_allowed(response_url: &str, slack_api_url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(response_url) else {
        return false;
    };
    let on_slack = url.scheme() == "https"
        && url.port().is_none()
        && matches!(
            url.host_str(),
            Some("hooks.slack.com" | "hooks.slack-gov.com")
        );
    let same_origin = reqwest::Url::parse(slack_api_url)
        .is_ok_and(|api| api.origin() == url.origin() && url.username().is_empty());
    on_slack || same_origin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NoticeKind;
    use crate::notify::message::tests::sample;

    fn signed(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        crate::signing::slack_signature(secret, timestamp, body)
    }

    #[test]
    fn requests_verify_only_when_signed_and_fresh() {
        let now = Utc::now();
        let body = b"payload=%7B%7D";
        let ts = now.timestamp().to_string();
        let good = signed(b"secret", &ts, body);
        assert!(verify_request(b"secret", Some(&ts), Some(&good), body, now).is_ok());
        let wrong_key = signed(b"other", &ts, body);
        assert!(verify_request(b"secret", Some(&ts), Some(&wrong_key), body, now).is_err());
        assert!(verify_request(b"secret", Some(&ts), Some(&good), b"payload=x", now).is_err());
        assert!(verify_request(b"secret", None, Some(&good), body, now).is_err());
        assert!(verify_request(b"secret", Some(&ts), None, body, now).is_err());
        let old = (now.timestamp() - 360).to_string();
        let old_signed = signed(b"secret", &old, body);
        assert!(verify_request(b"secret", Some(&old), Some(&old_signed), body, now).is_err());
        let recent = (now.timestamp() - 290).to_string();
        let recent_signed = signed(b"secret", &recent, body);
        assert!(verify_request(b"secret", Some(&recent), Some(&recent_signed), body, now).is_ok());
    }

    #[test]
    fn approval_messages_carry_buttons_with_the_token() {
        let message = sample(NoticeKind::ApprovalRequested);
        let body = body(&message, Some("C07OPS00001"));
        assert_eq!(body["channel"], "C07OPS00001");
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[2]["text"]["text"],
            "Null check in &lt;checkout&gt; &amp; cart"
        );
        let buttons = blocks[3]["elements"].as_array().unwrap();
        let ids: Vec<&str> = buttons
            .iter()
            .map(|b| b["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [APPROVE_ACTION, REJECT_ACTION, OPEN_ACTION]);
        assert_eq!(buttons[0]["value"], "3.1999999999.abcdef");
        assert_eq!(buttons[2]["url"], message.link);
        let done = super::body(&sample(NoticeKind::TaskDone), None);
        assert!(done.get("channel").is_none());
        assert_eq!(done["blocks"][3]["elements"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn interactions_yield_clicks_on_our_buttons_only() {
        let payload = |action: &str| {
            let json = json!({"type": "block_actions", "user": {"id": "U1", "username": "minji.kim"},
                "response_url": "https://hooks.slack.com/actions/x",
                "actions": [{"action_id": action, "value": "1.2.abc"}]});
            serde_urlencoded::to_string([("payload", json.to_string())]).unwrap()
        };
        let click = parse_interaction(payload(REJECT_ACTION).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(click.decision, Decision::Reject);
        assert_eq!(click.token, "1.2.abc");
        assert_eq!(click.user_name, "minji.kim");
        assert!(
            parse_interaction(payload(OPEN_ACTION).as_bytes())
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            parse_interaction(b"payload=%7Bnot-json"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            parse_interaction(b"nothing=here"),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn answers_go_to_slack_hosts_only() {
        let api = "https://slack.com/api";
        assert!(response_url_allowed(
            "https://hooks.slack.com/actions/T1/2/abc",
            api
        ));
        for refused in [
            "http://hooks.slack.com/actions/T1/2/abc",
            "https://hooks.slack.com:8443/actions/x",
            "https://hooks.slack.com.evil.example/actions/x",
            "https://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:9/actions/x",
            "not a url",
        ] {
            assert!(!response_url_allowed(refused, api), "{refused}");
        }
        let stand_in = "http://127.0.0.1:4711/api";
        assert!(response_url_allowed(
            "http://127.0.0.1:4711/actions/x",
            stand_in
        ));
        assert!(!response_url_allowed(
            "http://127.0.0.1:4712/actions/x",
            stand_in
        ));
    }
}
