//! Stand-ins for the services notifications go to (Slack, KakaoWork, a webhook receiver):
//! they answer like the service, record every request, and fail when a test says so.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::Mac;
use serde_json::{Value, json};

/// Which service a stand-in plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `POST /api/chat.postMessage` (Web API), `POST /services/…` (incoming webhooks) and
    /// `POST /actions/…` (the `response_url` of a click).
    Slack,
    /// `POST /v1/messages.send` and `POST /v1/conversations.open` (a bot's 1:1 conversation
    /// with a user: id `9<user id>`).
    Kakaowork,
    /// Any path answers 200.
    Webhook,
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The body as JSON (null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Answers a path gives before (or instead of) the service's own.
enum Failures {
    Next(VecDeque<u16>),
    Always(u16),
}

struct Shared {
    service: Service,
    received: Mutex<Vec<Received>>,
    failures: Mutex<HashMap<String, Failures>>,
}

/// A running stand-in.
#[derive(Clone)]
pub struct ChatStandIn {
    /// Base URL, e.g. `http://127.0.0.1:4711`.
    pub url: String,
    shared: Arc<Shared>,
}

impl ChatStandIn {
    /// Starts a stand-in for `service` on a random loopback port.
    pub async fn start(service: Service) -> ChatStandIn {
        let shared = Arc::new(Shared {
            service,
            received: Mutex::default(),
            failures: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ChatStandIn { url, shared }
    }

    /// The URL of `path` on this stand-in.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Answers the next requests to `path` with `statuses`, one each, then as the service.
    pub fn fail_next(&self, path: &str, statuses: &[u16]) {
        self.shared.failures.lock().unwrap().insert(
            path.to_string(),
            Failures::Next(statuses.iter().copied().collect()),
        );
    }

    /// Answers every request to `path` with `status`.
    pub fn fail_always(&self, path: &str, status: u16) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .insert(path.to_string(), Failures::Always(status));
    }

    /// The requests received on paths starting with `prefix`, oldest first.
    pub fn received(&self, prefix: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_string();
    let scripted = match shared.failures.lock().unwrap().get_mut(&path) {
        Some(Failures::Always(status)) => Some(*status),
        Some(Failures::Next(statuses)) => statuses.pop_front(),
        None => None,
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, response) = match scripted {
        Some(status) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"error": "scripted failure"})).into_response(),
        ),
        None => service_answer(shared.service, &path, &request),
    };
    shared.received.lock().unwrap().push(Received {
        path,
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
    });
    (status, response).into_response()
}

/// What the real service answers to a good request.
fn service_answer(service: Service, path: &str, request: &Value) -> (StatusCode, Response) {
    let ok = |body: Value| (StatusCode::OK, axum::Json(body).into_response());
    match service {
        Service::Slack if path == "/api/chat.postMessage" => ok(json!({
            "ok": true, "channel": request["channel"], "ts": "1795490000.123456",
            "message": {"type": "message", "text": request["text"]},
        })),
        Service::Slack if path.starts_with("/services/") || path.starts_with("/actions/") => {
            (StatusCode::OK, "ok".into_response())
        }
        Service::Kakaowork if path == "/v1/messages.send" => ok(json!({
            "success": true,
            "message": {"id": "1", "conversation_id": request["conversation_id"], "text": request["text"]},
        })),
        Service::Kakaowork if path == "/v1/conversations.open" => ok(json!({
            "success": true,
            "conversation": {"id": format!("9{}", request["user_id"]), "type": "dm",
                "users_count": 2, "avatar_url": null, "name": "aiops"},
        })),
        Service::Webhook => ok(json!({})),
        _ => (StatusCode::NOT_FOUND, "no such endpoint".into_response()),
    }
}

/// The Slack button with this action id in a posted message.
pub fn button(message: &Value, action_id: &str) -> Value {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|block| block["elements"].as_array())
        .flatten()
        .find(|element| element["action_id"] == action_id)
        .unwrap_or_else(|| panic!("no button {action_id} in {message:#}"))
        .clone()
}

/// The body of a Slack click on `action_id` carrying `token`, built from the fixture.
pub fn click_body(token: &str, action_id: &str, response_url: &str) -> String {
    let mut payload = super::fixture_json("slack/block_actions.json");
    payload["actions"][0]["value"] = json!(token);
    payload["actions"][0]["action_id"] = json!(action_id);
    payload["response_url"] = json!(response_url);
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// `v0=<hex HMAC-SHA256 of "v0:{timestamp}:{body}">`, as Slack signs.
pub fn slack_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `body` to the Slack interactions endpoint signed now with `secret`, as Slack does.
pub async fn post_signed_click(
    app: &super::TestApp,
    secret: &str,
    body: String,
) -> reqwest::Response {
    let now = chrono::Utc::now().timestamp();
    app.client
        .post(app.url("/webhooks/slack/interactions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", now.to_string())
        .header("X-Slack-Signature", slack_signature(secret, now, &body))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The Slack user id of the fixture's clicks.
pub const FIXTURE_SLACK_USER: &str = "U04ABCD1234";

/// Makes the fixture's Slack user (`U04ABCD1234`) the aiops user `minji-kim`, an approver of
/// `project`: a Slack click decides only as a linked user allowed to decide there.
pub async fn link_slack_approver(app: &super::TestApp, project: &str) {
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/api/v1/users".to_string(),
            json!({"login": "minji-kim"}),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/users/minji-kim/projects/{project}"),
            json!({"role": "approver"}),
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/users/minji-kim".to_string(),
            json!({ "slack_user_id": FIXTURE_SLACK_USER }),
        ),
    ] {
        let response = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&app.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

/// The KakaoWork button whose `action_name` is `action_name` in a sent message's blocks.
pub fn kakaowork_button(message: &Value, action_name: &str) -> Value {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|block| block["elements"].as_array())
        .flatten()
        .find(|element| element["action_name"] == action_name)
        .unwrap_or_else(|| panic!("no button {action_name} in {message:#}"))
        .clone()
}

/// The `submit_action` callback KakaoWork posts when user `user_id` clicks the button
/// `action_name` of `message` (as aiops sent it to messages.send), its value being `value`.
pub fn kakaowork_callback(message: &Value, action_name: &str, value: &str, user_id: i64) -> Value {
    json!({
        "type": "submit_action",
        "action_time": chrono::Utc::now().to_rfc3339(),
        "message": {
            "blocks": message["blocks"],
            "conversation_id": message["conversation_id"],
            "id": 757617552587034624_i64,
            "text": message["text"],
            "user_id": 2001,
        },
        "react_user_id": user_id,
        "action_name": action_name,
        "value": value,
    })
}

/// Posts `callback` to the KakaoWork callback URL with `secret` as its last segment.
pub async fn post_kakaowork_callback(
    app: &super::TestApp,
    secret: &str,
    callback: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/webhooks/kakaowork/{secret}")))
        .header("Content-Type", "application/json;charset=utf-8")
        .json(callback)
        .send()
        .await
        .unwrap()
}

/// The audit entries of chat clicks refused because their button's signed value did not
/// verify (changed, cut short): they name no approval, so their target is `approvals`.
pub async fn refused_button_entries(app: &super::TestApp) -> Vec<Value> {
    let audit = app
        .get_json("/api/v1/audit?target=approvals&limit=200")
        .await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "decide approval" && e["outcome"] == "refused")
        .cloned()
        .collect()
}
