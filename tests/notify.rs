//! Notifications end to end: real pipeline runs (the simulator) notify Slack, KakaoWork and
//! a webhook receiver (stand-ins that record what they get), a signed Slack click decides
//! the approval, failed sends are retried and end as dead letters; on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use aiops::signing::{LinkSigner, sign_sha256};
use common::chat::{
    ChatStandIn, Received, Service, button, click_body, kakaowork_button, link_slack_approver,
    refused_button_entries, slack_signature,
};
use common::pipeline::{add_project, create_task, wait_status};
use common::{Db, TestApp, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const PROMPT: &str = "Fix the checkout crash";
const SIGNING_SECRET: &str = "slack-signing-secret-for-tests";
const BOT_TOKEN: &str = "xoxb-bot-token-for-tests";
const KAKAOWORK_KEY: &str = "kakaowork-app-key-for-tests";
const HOOK_SECRET: &str = "webhook-hmac-key-for-tests";
const POST_MESSAGE: &str = "/api/chat.postMessage";
const RESPONSE_URL: &str = "/actions/T01TEAM0001/1795490012/abcdefABCDEF0123456789";

/// The three services, each a stand-in.
struct Chats {
    slack: ChatStandIn,
    kakaowork: ChatStandIn,
    hooks: ChatStandIn,
}

impl Chats {
    async fn start() -> Chats {
        Chats {
            slack: ChatStandIn::start(Service::Slack).await,
            kakaowork: ChatStandIn::start(Service::Kakaowork).await,
            hooks: ChatStandIn::start(Service::Webhook).await,
        }
    }
}

/// The application running pipelines with the simulator, its notifications pointed at
/// `chats`, retrying quickly, and the secrets of the channels stored.
async fn notify_app(db: Db, chats: &Chats, sim_flags: &str) -> TestApp {
    notify_app_with(db, chats, sim_flags, |_| {}).await
}

async fn notify_app_with(
    db: Db,
    chats: &Chats,
    sim_flags: &str,
    adjust: impl FnOnce(&mut aiops::config::Config),
) -> TestApp {
    let sim = common::simulator();
    let sim = sim.display();
    let (slack, kakaowork) = (chats.slack.url.clone(), chats.kakaowork.url.clone());
    let app = TestApp::spawn_with(db, |c| {
        c.engine.workers = 2;
        c.engine.command = format!(
            "{sim} -p \"/ai-party:party {{prompt}}\" --output-format stream-json --verbose --sim-phase-delay-ms 10 {sim_flags}"
        );
        c.engine.resume_command = format!(
            "{sim} -p {{decision}} --resume {{claude_session_id}} --output-format stream-json --verbose --sim-phase-delay-ms 10"
        );
        c.engine.queue_poll_ms = 100;
        c.engine.ingest_interval_ms = 100;
        c.engine.heartbeat_secs = 1;
        c.engine.slot_ttl_secs = 5;
        c.engine.env_passthrough = vec!["PATH".into()];
        c.pull_requests.enabled = false;
        c.notify.slack_api_url = format!("{slack}/api");
        c.notify.kakaowork_api_url = kakaowork;
        c.notify.max_attempts = 3;
        c.notify.backoff_ms = 50;
        adjust(c);
    })
    .await;
    let hook_url = chats.slack.url_of("/services/T000/B000/XXXXXXXX");
    for (project, name, kind, value) in [
        (
            None,
            "slack-signing-secret",
            "webhook_secret",
            SIGNING_SECRET,
        ),
        (None, "slack-bot", "token", BOT_TOKEN),
        (None, "slack-hook", "token", hook_url.as_str()),
        (None, "kakaowork-bot", "api_key", KAKAOWORK_KEY),
        (None, "hook-hmac", "webhook_secret", HOOK_SECRET),
    ] {
        let project: Option<&str> = project;
        let created = app
            .post("/api/v1/credentials")
            .json(&json!({"project": project, "name": name, "kind": kind, "value": value}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            created.status(),
            StatusCode::CREATED,
            "{}",
            created.text().await.unwrap()
        );
    }
    app
}

async fn add_channel(app: &TestApp, project: &str, channel: Value) -> i64 {
    let response = app
        .post(&format!("/api/v1/projects/{project}/channels"))
        .json(&channel)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Waits until `stand_in` received at least `count` requests on `path`; returns them all.
async fn wait_received(stand_in: &ChatStandIn, path: &str, count: usize) -> Vec<Received> {
    wait_for(&format!("{count} request(s) to {path}"), WAIT, || async {
        let received = stand_in.received(path);
        (received.len() >= count).then_some(received)
    })
    .await
}

/// Posts an interaction; `signed` is (timestamp, signature), none to send neither header.
async fn post_interaction(
    app: &TestApp,
    body: &str,
    signed: Option<(i64, String)>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhooks/slack/interactions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some((timestamp, signature)) = signed {
        request = request
            .header("X-Slack-Request-Timestamp", timestamp.to_string())
            .header("X-Slack-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Posts an interaction signed now with the right secret.
async fn click(app: &TestApp, body: &str) -> reqwest::Response {
    let now = chrono::Utc::now().timestamp();
    post_interaction(
        app,
        body,
        Some((now, slack_signature(SIGNING_SECRET, now, body))),
    )
    .await
}

/// Runs a task to its approval request; returns the task id, the approval id and the
/// token of the approval link, as the Slack message carried it.
async fn pending_approval(app: &TestApp, chats: &Chats) -> (i64, i64, String) {
    let task = create_task(app, "shop", PROMPT, "normal").await;
    let posted = wait_received(&chats.slack, POST_MESSAGE, 1).await;
    let token = button(&posted[0].json(), "aiops_approve")["value"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = wait_status(app, task, &["awaiting_approval"]).await;
    let approval = detail["pending_approvals"][0]["id"].as_i64().unwrap();
    (task, approval, token)
}

async fn approval_decided_events(app: &TestApp, task: i64) -> usize {
    app.store
        .events_after(0, Some(task), None, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "approval_decided")
        .count()
}

async fn approval_request_reaches_every_channel_and_a_slack_click_decides_it(db: Db) {
    let chats = Chats::start().await;
    let repo = common::git_repo();
    let app = notify_app(db, &chats, "").await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    add_channel(
        &app,
        "shop",
        json!({"kind": "slack", "target": "C07OPS00001", "credential": "slack-bot"}),
    )
    .await;
    add_channel(
        &app,
        "shop",
        json!({"kind": "slack", "credential": "slack-hook", "events": ["approval_requested"]}),
    )
    .await;
    add_channel(
        &app,
        "shop",
        json!({"kind": "kakaowork", "target": "12345", "credential": "kakaowork-bot"}),
    )
    .await;
    add_channel(&app, "shop", json!({"kind": "webhook", "target": chats.hooks.url_of("/aiops"), "credential": "hook-hmac"})).await;

    let (task, approval, token) = pending_approval(&app, &chats).await;

    // Slack, through the Web API: Block Kit with Approve / Reject carrying the link's token.
    let posted = &chats.slack.received(POST_MESSAGE)[0];
    assert_eq!(
        posted.header("authorization"),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let message = posted.json();
    assert_eq!(message["channel"], "C07OPS00001");
    assert_eq!(message["blocks"][0]["type"], "header");
    assert_eq!(
        message["blocks"][0]["text"]["text"],
        "Approval needed: bugfix on shop"
    );
    assert!(
        token.starts_with(&format!("{approval}.")),
        "{token} opens approval {approval}"
    );
    assert_eq!(button(&message, "aiops_reject")["value"], token);
    let link = button(&message, "aiops_open")["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.ends_with(&format!("/approvals/{token}")), "{link}");
    let facts = message["blocks"][1].to_string();
    assert!(
        facts.contains("*Project*\\nshop") && facts.contains("*Changes*"),
        "{facts}"
    );
    // The link opens the approval page.
    let page_path = &link[link.find("/approvals/").unwrap()..];
    let page = app.client.get(app.url(page_path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    // Slack, through an incoming webhook: the same message, no channel.
    let hooked = wait_received(&chats.slack, "/services/T000/B000/XXXXXXXX", 1).await;
    assert!(hooked[0].json().get("channel").is_none());
    assert_eq!(button(&hooked[0].json(), "aiops_approve")["value"], token);

    // KakaoWork: a bot message to the conversation with a button opening the link.
    let sent = wait_received(&chats.kakaowork, "/v1/messages.send", 1).await;
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {KAKAOWORK_KEY}").as_str())
    );
    let kakao = sent[0].json();
    assert_eq!(kakao["conversation_id"], 12345);
    let blocks = kakao["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks.iter().any(|b| b["type"] == "text"));
    assert_eq!(blocks[0]["text"], "승인 필요: shop 프로젝트의 bugfix");
    let kakao_button = blocks.iter().find(|b| b["type"] == "button").unwrap();
    assert_eq!(kakao_button["action_type"], "open_system_browser");
    assert_eq!(kakao_button["value"], link);
    // Beside it, Approve and Reject buttons whose values aiops signed for this approval.
    let signer = LinkSigner::new(&app.vault);
    for (action, decision, label) in [
        ("aiops_approve", "approve", "승인"),
        ("aiops_reject", "reject", "반려"),
    ] {
        let button = kakaowork_button(&kakao, action);
        assert_eq!(button["action_type"], "submit_action");
        assert_eq!(button["text"], label);
        let value = button["value"].as_str().unwrap();
        let now = chrono::Utc::now();
        assert_eq!(
            signer.verify_decision_token(value, now),
            Ok((approval, decision.to_string()))
        );
    }

    // The webhook: JSON signed with the channel's key.
    let delivered = wait_received(&chats.hooks, "/aiops", 1).await;
    assert_eq!(
        delivered[0].header("x-aiops-signature-256"),
        Some(sign_sha256(HOOK_SECRET.as_bytes(), &delivered[0].body).as_str())
    );
    let event = delivered[0].json();
    assert_eq!(event["event"], "approval_requested");
    assert_eq!(event["approval"]["id"], approval);
    assert_eq!(event["task"]["id"], task);
    assert_eq!(event["link"], link);

    // A signed click on Approve decides it as the aiops user the Slack user is linked to,
    // and the message says so.
    link_slack_approver(&app, "shop").await;
    let response_url = chats.slack.url_of(RESPONSE_URL);
    let body = click_body(&token, "aiops_approve", &response_url);
    assert_eq!(click(&app, &body).await.status(), StatusCode::OK);
    let decided = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["channel"], "slack");
    assert_eq!(decided["decided_by"], "minji-kim");
    let answers = wait_received(&chats.slack, RESPONSE_URL, 1).await;
    let answer = answers[0].json();
    assert_eq!(answer["replace_original"], true);
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved by minji-kim"),
        "{answer}"
    );

    // A second click decides nothing and says who decided first.
    assert_eq!(click(&app, &body).await.status(), StatusCode::OK);
    let answers = wait_received(&chats.slack, RESPONSE_URL, 2).await;
    let again = answers[1].json()["text"].as_str().unwrap().to_string();
    assert!(
        again.contains("already decided") && again.contains("minji-kim"),
        "{again}"
    );
    assert_eq!(approval_decided_events(&app, task).await, 1);

    // The approved pipeline finishes: "done" reaches the channels that want it.
    wait_status(&app, task, &["done"]).await;
    let posted = wait_received(&chats.slack, POST_MESSAGE, 2).await;
    assert_eq!(
        posted[1].json()["blocks"][0]["text"]["text"],
        "Done: bugfix on shop"
    );
    let kakao = wait_received(&chats.kakaowork, "/v1/messages.send", 2).await;
    assert_eq!(
        kakao[1].json()["blocks"][0]["text"],
        "완료: shop 프로젝트의 bugfix"
    );
    let delivered = wait_received(&chats.hooks, "/aiops", 2).await;
    assert_eq!(delivered[1].json()["event"], "task_done");
    assert_eq!(delivered[1].header("x-aiops-event"), Some("task_done"));
    // Four channels heard of the request, three of them of the end.
    wait_for("7 notifications recorded as sent", WAIT, || async {
        let sent = app.get_json("/api/v1/notifications?status=sent").await;
        (sent["items"].as_array().unwrap().len() == 7).then_some(())
    })
    .await;
    // The incoming-webhook channel wants approval requests only.
    assert_eq!(
        chats.slack.received("/services/T000/B000/XXXXXXXX").len(),
        1
    );
}

async fn slack_clicks_need_a_fresh_valid_signature(db: Db) {
    let chats = Chats::start().await;
    let repo = common::git_repo();
    let app = notify_app(db, &chats, "").await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    add_channel(
        &app,
        "shop",
        json!({"kind": "slack", "target": "C07OPS00001", "credential": "slack-bot"}),
    )
    .await;
    let (task, approval, token) = pending_approval(&app, &chats).await;
    let response_url = chats.slack.url_of(RESPONSE_URL);
    let body = click_body(&token, "aiops_approve", &response_url);
    let now = chrono::Utc::now().timestamp();

    let wrong_secret = Some((now, slack_signature("not-the-secret", now, &body)));
    let six_minutes_old = Some((now - 360, slack_signature(SIGNING_SECRET, now - 360, &body)));
    let other_body = Some((
        now,
        slack_signature(SIGNING_SECRET, now, &body.replace("minji", "mallory")),
    ));
    for (what, signed) in [
        ("a wrong signature", wrong_secret),
        ("a timestamp 6 minutes old", six_minutes_old),
        ("a signature of another body", other_body),
        ("no signature headers", None),
    ] {
        let response = post_interaction(&app, &body, signed).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    let only_timestamp = app
        .client
        .post(app.url("/webhooks/slack/interactions"))
        .header("X-Slack-Request-Timestamp", now.to_string())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(only_timestamp.status(), StatusCode::UNAUTHORIZED);

    // Signed by Slack but not an interaction: 400.
    assert_eq!(
        click(&app, "payload=%7Bnot-json").await.status(),
        StatusCode::BAD_REQUEST
    );

    // Signed by Slack, but the button's token is forged: nothing is decided.
    let (signed_part, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed_part}.{}", "00".repeat(32));
    let forged_body = click_body(&forged, "aiops_approve", &response_url);
    assert_eq!(click(&app, &forged_body).await.status(), StatusCode::OK);
    let answers = wait_received(&chats.slack, RESPONSE_URL, 1).await;
    let answer = answers[0].json();
    assert_eq!(answer["replace_original"], false);
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("Nothing was decided"),
        "{answer}"
    );

    let still = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");
    assert_eq!(approval_decided_events(&app, task).await, 0);
    // The forged button is audited: refused, from the Slack account, naming no approval.
    let refused = refused_button_entries(&app).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["source"].as_str().unwrap().starts_with("slack:"),
        "{refused:?}"
    );
    assert_eq!(refused[0]["detail"]["channel"], "slack", "{refused:?}");
}

async fn failed_sends_are_retried_then_kept_as_dead_letters(db: Db) {
    let chats = Chats::start().await;
    let repo = common::git_repo();
    let app = notify_app(db, &chats, "--sim-crash-in ANALYZING").await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    chats.hooks.fail_next("/flaky", &[500, 500]);
    chats.hooks.fail_always("/down", 503);
    let flaky = add_channel(&app, "shop", json!({"kind": "webhook", "target": chats.hooks.url_of("/flaky"), "credential": "hook-hmac"})).await;
    let down = add_channel(&app, "shop", json!({"kind": "webhook", "target": chats.hooks.url_of("/down"), "credential": "hook-hmac"})).await;
    add_channel(&app, "shop", json!({"kind": "slack", "target": "C07OPS00001", "credential": "slack-bot", "events": ["task_failed"]})).await;

    let task = create_task(&app, "shop", PROMPT, "normal").await;
    wait_status(&app, task, &["failed"]).await;

    // The failure reaches Slack with its reason.
    let posted = wait_received(&chats.slack, POST_MESSAGE, 1).await;
    let message = posted[0].json();
    assert_eq!(
        message["blocks"][0]["text"]["text"],
        "Failed: bugfix on shop"
    );
    assert!(
        message["blocks"][1].to_string().contains("*Reason*"),
        "{message:#}"
    );

    // 500, 500, then 200: sent on the third attempt, the same signed delivery each time.
    let tries = wait_received(&chats.hooks, "/flaky", 3).await;
    let statuses: Vec<u16> = tries.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    for attempt in &tries {
        assert_eq!(attempt.body, tries[0].body);
        assert_eq!(
            attempt.header("x-aiops-signature-256"),
            Some(sign_sha256(HOOK_SECRET.as_bytes(), &attempt.body).as_str())
        );
    }
    assert_eq!(tries[0].json()["event"], "task_failed");

    // Always 503: given up after notify.max_attempts, kept as a dead letter.
    let dead = wait_for("the dead letter", WAIT, || async {
        let page = app.get_json("/api/v1/notifications?status=dead").await;
        let items = page["items"].as_array().unwrap().clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["channel_id"], down);
    assert_eq!(dead[0]["event"], "task_failed");
    assert_eq!(dead[0]["task_id"], task);
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["last_error"], "the webhook answered HTTP 503");
    assert_eq!(chats.hooks.received("/down").len(), 3);

    // Once the endpoint is back, the dead letter is sent again from its first attempt.
    chats.hooks.fail_next("/down", &[]);
    let dead_id = dead[0]["id"].as_i64().unwrap();
    let retried = app
        .post(&format!("/api/v1/notifications/{dead_id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let resent = wait_received(&chats.hooks, "/down", 4).await;
    assert_eq!(resent[3].status, 200);
    assert_eq!(resent[3].body, resent[0].body, "the same signed delivery");
    wait_for("the dead letter to be sent", WAIT, || async {
        let page = app.get_json("/api/v1/notifications?status=dead").await;
        page["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    let again = app
        .post(&format!("/api/v1/notifications/{dead_id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let sent = wait_for("the flaky channel's record", WAIT, || async {
        let page = app
            .get_json("/api/v1/notifications?status=sent&project=shop")
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel_id"] == flaky)
            .cloned()
    })
    .await;
    assert_eq!(sent["attempts"], 3);
    assert_eq!(sent["last_error"], "the webhook answered HTTP 500");
}

async fn channels_are_managed_per_project(db: Db) {
    let repo = common::git_repo();
    let app = TestApp::spawn(db).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let status_of = |response: reqwest::Response| response.status();

    let unknown = app
        .post("/api/v1/projects/nope/channels")
        .json(&json!({"kind": "slack", "credential": "slack-bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(unknown), StatusCode::NOT_FOUND);
    for (body, field) in [
        (json!({"kind": "kakaowork", "credential": "k"}), "target"),
        (
            json!({"kind": "webhook", "target": "not a url", "credential": "k"}),
            "target",
        ),
        (
            json!({"kind": "slack", "credential": "k", "events": []}),
            "events",
        ),
        (
            json!({"kind": "slack", "credential": "k", "events": ["task_started"]}),
            "events[0]",
        ),
        (json!({"kind": "slack", "credential": "a b"}), "credential"),
        (json!({"kind": "teams", "credential": "k"}), "kind"),
    ] {
        let response = app
            .post("/api/v1/projects/shop/channels")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["details"]["field"], field, "{error:#}");
    }

    let id = add_channel(&app, "shop", json!({"kind": "webhook", "target": "https://hooks.example/aiops", "credential": "hook-hmac", "events": ["task_done"]})).await;
    let listed = app.get_json("/api/v1/projects/shop/channels").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["events"], json!(["task_done"]));
    assert_eq!(listed[0]["enabled"], true);
    let unknown = app
        .get("/api/v1/projects/nope/channels")
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(unknown), StatusCode::NOT_FOUND);

    let path = format!("/api/v1/projects/shop/channels/{id}");
    let deleted = app
        .req(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let again = app
        .req(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_json("/api/v1/projects/shop/channels").await,
        json!([])
    );

    let bad_status = app
        .get("/api/v1/notifications?status=lost")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_status.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A webhook target named by a host name that resolves inside the host (the machine's own
/// name, which resolves to loopback here) passes the check when saved, but is refused when
/// dialled: with private targets not allowed, the receiver gets nothing and the dead letter
/// says why.
async fn a_webhook_name_that_resolves_inside_is_not_dialled(db: Db) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map(|found| found.collect())
        .unwrap_or_default();
    if !resolved.iter().any(|a| a.ip().is_loopback()) {
        eprintln!("{host} does not resolve to loopback ({resolved:?}); nothing to try here");
        return;
    }
    let chats = Chats::start().await;
    let repo = common::git_repo();
    let app = notify_app_with(db, &chats, "--sim-crash-in ANALYZING", |c| {
        c.inputs.allow_private_targets = false;
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let port = reqwest::Url::parse(&chats.hooks.url)
        .unwrap()
        .port()
        .unwrap();
    let target = format!("https://{host}:{port}/inside");
    let channel = add_channel(
        &app,
        "shop",
        json!({"kind": "webhook", "target": target, "credential": "hook-hmac"}),
    )
    .await;

    let task = create_task(&app, "shop", PROMPT, "normal").await;
    wait_status(&app, task, &["failed"]).await;
    let dead = wait_for("the dead letter", WAIT, || async {
        let page = app.get_json("/api/v1/notifications?status=dead").await;
        let items = page["items"].as_array().unwrap().clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(dead[0]["channel_id"], channel);
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("resolves to 127.0.0.1"), "{error}");
    assert!(error.contains("inputs.allow_private_targets"), "{error}");
    assert!(!error.contains("/inside"), "no URL in the error: {error}");
    assert!(chats.hooks.received("/inside").is_empty());
}

on_both_databases!(
    a_webhook_name_that_resolves_inside_is_not_dialled,
    approval_request_reaches_every_channel_and_a_slack_click_decides_it,
    slack_clicks_need_a_fresh_valid_signature,
    failed_sends_are_retried_then_kept_as_dead_letters,
    channels_are_managed_per_project,
);
