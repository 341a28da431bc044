//! The approval policy and verified deciders, over real HTTP on both databases: who asked for
//! a task, self-approval, several distinct approvers (with 50 concurrent approvals by one
//! person counting once), signed Slack clicks and KakaoWork clicks (a secret callback URL, signed
//! button values) deciding only as a linked user allowed to, the link flow offered in chat, and
//! GitHub senders mapped to users.

mod common;

use aiops::approvals::LinkSigner;
use aiops::auth::{self, TokenGrant};
use aiops::model::{ApprovalKind, ApprovalRequestMirror, Preferences, ProjectRole, Scopes};
use aiops::notify::NoticeKind;
use aiops::notify::kakaowork;
use aiops::notify::message::Message;
use aiops::signing::sign_sha256;
use aiops::users::{self, UserSpec};
use common::chat::{
    ChatStandIn, Received, Service, click_body, kakaowork_button, kakaowork_callback,
    post_kakaowork_callback, post_signed_click, refused_button_entries,
};
use common::pages::{csrf_of, page, post_form};
use common::people::session_of;
use common::{Db, TestApp, fixture_json, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "slack-signing-secret-for-tests";
const SLACK_USER: &str = "U04ABCD1234";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const CALLBACK_SECRET: &str = "kakaowork-callback-path-secret-0123456789";
const KAKAOWORK_KEY: &str = "kakaowork-app-key-for-tests";
const KAKAOWORK_USER: i64 = 2603;

async fn send(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&app.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// A user with `role` in `shop` and a token with every scope.
async fn member(app: &TestApp, login: &str, role: ProjectRole) -> String {
    let spec = UserSpec {
        login: login.into(),
        ..UserSpec::default()
    };
    let user = users::add(&app.store, &spec).await.unwrap();
    users::grant(&app.store, login, Some("shop"), role)
        .await
        .unwrap();
    let grant = TokenGrant {
        name: login.into(),
        scopes: Scopes::ALL,
        project_id: None,
        expires_at: None,
        service: false,
    };
    auth::create_token_for(&app.store, user.id, &grant)
        .await
        .unwrap()
        .0
}

/// Project `shop` with `policy`.
async fn shop(app: &TestApp, policy: Value) {
    let body = json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git",
        "approval_policy": policy});
    admin(app, reqwest::Method::POST, "/api/v1/projects", body).await;
}

/// A task asked for with `token`, waiting on one approval of `kind` (and `risk`): their ids.
async fn waiting(app: &TestApp, token: &str, kind: ApprovalKind, risk: &str) -> (i64, i64) {
    let (status, task) = send(
        app,
        token,
        "/api/v1/tasks",
        json!({"project": "shop", "prompt": "fix the cart"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task = task["id"].as_i64().unwrap();
    let tool = kind == ApprovalKind::Tool;
    let mirror = ApprovalRequestMirror {
        request_id: if tool {
            "APR-1".into()
        } else {
            "20260101T000000".into()
        },
        kind,
        risk_level: tool.then(|| risk.to_string()),
        tool_name: tool.then(|| "Bash".to_string()),
        tool_input: None,
        summary: Some("ship it".into()),
        diff_stat: None,
        file_status: "pending".into(),
        file_decision: None,
        requested_at: chrono::Utc::now(),
    };
    app.store.upsert_approval(task, &mirror).await.unwrap();
    (task, app.store.approvals(task).await.unwrap()[0].id)
}

async fn decide(app: &TestApp, token: &str, approval: i64, decision: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/approvals/{approval}/decision");
    send(app, token, &path, json!({ "decision": decision })).await
}

async fn audit_of(app: &TestApp, approval: i64) -> Vec<Value> {
    let page = app
        .get_json(&format!(
            "/api/v1/audit?target=approvals/{approval}&limit=200"
        ))
        .await;
    page["items"].as_array().unwrap().clone()
}

/// The requester may not approve their own task unless the project allows it; the refusal
/// says why, and the task records who asked.
async fn self_approval_is_refused_unless_the_project_allows_it(db: Db) {
    let app = TestApp::spawn(db).await;
    shop(&app, json!({})).await;
    let ann = member(&app, "ann", ProjectRole::Approver).await;
    let (task, approval) = waiting(&app, &ann, ApprovalKind::Result, "").await;
    let detail = app.get_json(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(detail["requested_by"], "ann");
    let project = app.get_json("/api/v1/projects/shop").await;
    assert_eq!(
        project["approval_policy"],
        json!({"decide_role": "approver", "self_approval": false, "required_approvals": 1})
    );

    let (status, refused) = decide(&app, &ann, approval, "approve").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.to_string().contains("self-approval"), "{refused}");
    let still = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");

    // A bad policy is refused with the field named.
    let response = app
        .client
        .patch(app.url("/api/v1/projects/shop"))
        .bearer_auth(&app.token)
        .json(&json!({"approval_policy": {"required_approvals": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("approval_policy.required_approvals")
    );

    let allow = json!({"approval_policy": {"self_approval": true}});
    admin(&app, reqwest::Method::PATCH, "/api/v1/projects/shop", allow).await;
    let (status, decided) = decide(&app, &ann, approval, "approve").await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["decided_by"], "ann");
    let (status, again) = decide(&app, &ann, approval, "approve").await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // A policy that needs maintainers refuses an approver, whatever the API role allows.
    let (_, second) = waiting(&app, &app.token.clone(), ApprovalKind::Result, "").await;
    let maintainers = json!({"approval_policy": {"decide_role": "maintainer"}});
    admin(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/projects/shop",
        maintainers,
    )
    .await;
    let (status, refused) = decide(&app, &ann, second, "approve").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.to_string().contains("maintainer role"), "{refused}");
}

/// With `required_approvals: 2`, a result needs two distinct approvers: the first approve
/// (sent 50 times at once) counts once and leaves it pending, the second decides; one reject
/// ends it at once; a tool request below HIGH risk needs one.
async fn two_distinct_approvers_decide_and_one_reject_ends_it(db: Db) {
    let app = TestApp::spawn(db).await;
    shop(&app, json!({"required_approvals": 2})).await;
    let ann = member(&app, "ann", ProjectRole::Approver).await;
    let bob = member(&app, "bob", ProjectRole::Approver).await;
    let (_, approval) = waiting(&app, &app.token.clone(), ApprovalKind::Result, "").await;

    let attempts = (0..50).map(|_| decide(&app, &ann, approval, "approve"));
    let answers = futures::future::join_all(attempts).await;
    let counted: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(counted.len(), 1, "{answers:?}");
    assert_eq!(counted[0].1["status"], "pending");
    for (status, answer) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::CONFLICT,
            "{status} {answer}"
        );
    }
    let detail = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(detail["status"], "pending");
    assert_eq!(detail["votes"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["votes"][0]["login"], "ann");

    let (status, decided) = decide(&app, &bob, approval, "approve").await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["decided_by"], "ann, bob");
    let audit = audit_of(&app, approval).await;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| {
            (
                e["principal_name"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("ann", "vote on approval: approve (1 of 2)")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("bob", "decide approval: approve")),
        "{actions:?}"
    );

    // One reject ends it, after an approve.
    let (_, second) = waiting(&app, &app.token.clone(), ApprovalKind::Result, "").await;
    assert_eq!(
        decide(&app, &ann, second, "approve").await.0,
        StatusCode::OK
    );
    let (status, rejected) = decide(&app, &bob, second, "reject").await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["status"], "decided");
    assert_eq!(rejected["decision"], "reject");

    // HIGH risk tool requests need two; a MEDIUM one is decided by one approve.
    let (_, high) = waiting(&app, &app.token.clone(), ApprovalKind::Tool, "HIGH").await;
    let (_, first) = decide(&app, &ann, high, "approve").await;
    assert_eq!(first["status"], "pending");
    let (_, medium) = waiting(&app, &app.token.clone(), ApprovalKind::Tool, "MEDIUM").await;
    let (_, only) = decide(&app, &ann, medium, "approve").await;
    assert_eq!(only["status"], "decided");
}

/// The app with a Slack stand-in and its signing secret stored, project `shop`, and one
/// pending result approval: the stand-in, the approval and the token a Slack button carries.
async fn slack_app(db: Db) -> (TestApp, ChatStandIn, i64, String) {
    let slack = ChatStandIn::start(Service::Slack).await;
    let api = format!("{}/api", slack.url);
    let app = TestApp::spawn_with(db, |c| c.notify.slack_api_url = api).await;
    shop(&app, json!({})).await;
    let credential = json!({"name": "slack-signing-secret", "kind": "webhook_secret",
        "value": SIGNING_SECRET});
    admin(
        &app,
        reqwest::Method::POST,
        "/api/v1/credentials",
        credential,
    )
    .await;
    let (_, approval) = waiting(&app, &app.token.clone(), ApprovalKind::Result, "").await;
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let token = LinkSigner::new(&app.vault).token(approval, expires);
    (app, slack, approval, token)
}

/// Sends a Slack click on Approve signed as Slack signs, answered at `path` of the stand-in;
/// returns the answer posted there.
async fn click(app: &TestApp, slack: &ChatStandIn, token: &str, path: &str) -> Value {
    let body = click_body(token, "aiops_approve", &slack.url_of(path));
    let response = post_signed_click(app, SIGNING_SECRET, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Received = wait_for(&format!("Slack's answer at {path}"), WAIT, || async {
        slack.received(path).first().cloned()
    })
    .await;
    answer.json()
}

/// A signed click from an unlinked Slack user, then from a linked viewer, decides nothing and
/// is told why (the first with a link to link the account, which binds it once); a linked
/// approver's click decides, recorded under the user, and the audit log names them.
async fn slack_clicks_decide_only_as_a_linked_approver(db: Db) {
    let (app, slack, approval, token) = slack_app(db).await;
    let minji = member(&app, "minji-kim", ProjectRole::Viewer).await;

    let unlinked = click(&app, &slack, &token, "/actions/T1/1/unlinked").await;
    assert_eq!(unlinked["response_type"], "ephemeral", "{unlinked}");
    assert_eq!(unlinked["replace_original"], false);
    let text = unlinked["text"].as_str().unwrap();
    assert!(text.contains("not linked to an aiops user"), "{text}");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/account/link#"))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let link_token = link.rsplit('#').next().unwrap();
    let still = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");

    // Minji opens the link signed in and confirms it on the page: her Slack id is now
    // hers. Once only.
    let session = session_of(&app, "minji-kim").await;
    let (status, html) = page(&app, &session, "/account/link").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(r#"id="link-code""#), "{html}");
    // A changed code links nothing: the page says so.
    let changed = format!("{link_token}0");
    let form = [("csrf", csrf_of(&html)), ("code", changed)];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = post_form(&app, &session, "/account/link", &form, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let form = [("csrf", csrf_of(&html)), ("code", link_token.to_string())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = post_form(&app, &session, "/account/link", &form, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let confirm = format!("/api/v1/me/identity-links/{link_token}");
    let (status, used) = send(&app, &minji, &confirm, Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT, "{used}");
    let detail = app.get_json("/api/v1/users/minji-kim").await;
    assert_eq!(detail["chat_identities"][0]["external_id"], SLACK_USER);

    // As a viewer of the project, her click is refused and says why.
    let viewer = click(&app, &slack, &token, "/actions/T1/1/viewer").await;
    assert_eq!(viewer["response_type"], "ephemeral", "{viewer}");
    assert!(
        viewer["text"].as_str().unwrap().contains("approver role"),
        "{viewer}"
    );
    let still = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");

    // Once she chose Korean for her pages, Slack answers her in Korean too.
    let minji_id = app.store.user("minji-kim").await.unwrap().id;
    let korean = Preferences {
        language: Some("ko".into()),
        time_zone: None,
    };
    app.store.set_preferences(minji_id, &korean).await.unwrap();
    let in_korean = click(&app, &slack, &token, "/actions/T1/1/korean").await;
    let text = in_korean["text"].as_str().unwrap();
    assert!(text.starts_with("결정되지 않았습니다"), "{text}");
    assert!(text.contains("approver 역할이 필요"), "{text}");
    let unchosen = Preferences::default();
    app.store
        .set_preferences(minji_id, &unchosen)
        .await
        .unwrap();

    // As an approver, her click decides, under her login.
    users::grant(&app.store, "minji-kim", Some("shop"), ProjectRole::Approver)
        .await
        .unwrap();
    let decided = click(&app, &slack, &token, "/actions/T1/1/approver").await;
    assert_eq!(decided["replace_original"], true, "{decided}");
    assert!(
        decided["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved by minji-kim"),
        "{decided}"
    );
    let record = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(record["status"], "decided");
    assert_eq!(record["channel"], "slack");
    assert_eq!(record["decided_by"], "minji-kim");

    let audit = audit_of(&app, approval).await;
    let refused: Vec<&Value> = audit.iter().filter(|e| e["outcome"] == "refused").collect();
    assert_eq!(refused.len(), 3, "{audit:?}");
    assert!(refused.iter().any(|e| e["principal_name"] == "anonymous"));
    assert!(refused.iter().any(|e| e["principal_name"] == "minji-kim"));
    let decision = audit
        .iter()
        .find(|e| e["action"] == "decide approval: approve" && e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no decision entry in {audit:?}"));
    assert_eq!(decision["principal_name"], "minji-kim");
    assert_eq!(decision["source"], format!("slack:{SLACK_USER}"));
}

/// The app with a KakaoWork stand-in, the callback secret and the bot's app key stored,
/// project `shop` with a KakaoWork channel to conversation 12345, and one pending result
/// approval: the stand-in, the approval and the message aiops sends KakaoWork for it.
async fn kakaowork_app(db: Db) -> (TestApp, ChatStandIn, i64, Value) {
    let kakaowork = ChatStandIn::start(Service::Kakaowork).await;
    let api = kakaowork.url.clone();
    let app = TestApp::spawn_with(db, |c| c.notify.kakaowork_api_url = api).await;
    shop(&app, json!({})).await;
    for (name, kind, value) in [
        (
            "kakaowork-callback-secret",
            "webhook_secret",
            CALLBACK_SECRET,
        ),
        ("kakaowork-bot", "api_key", KAKAOWORK_KEY),
    ] {
        let credential = json!({"name": name, "kind": kind, "value": value});
        admin(
            &app,
            reqwest::Method::POST,
            "/api/v1/credentials",
            credential,
        )
        .await;
    }
    let channel = json!({"kind": "kakaowork", "target": "12345", "credential": "kakaowork-bot"});
    let path = "/api/v1/projects/shop/channels";
    admin(&app, reqwest::Method::POST, path, channel).await;
    let (task, approval) = waiting(&app, &app.token.clone(), ApprovalKind::Result, "").await;
    let signer = LinkSigner::new(&app.vault);
    let kind = NoticeKind::ApprovalRequested;
    let message = Message::render(&app.store, &signer, &app.config, kind, task, Some(approval))
        .await
        .unwrap()
        .in_language(app.config.notify.kakaowork_language);
    (app, kakaowork, approval, kakaowork::body(&message, "12345"))
}

/// KakaoWork user `user` clicks `action` on `message`, the button's value being `value`, as
/// KakaoWork posts it; returns the `count`th message the bot then sent.
async fn kakao_click(
    app: &TestApp,
    kakaowork: &ChatStandIn,
    message: &Value,
    (action, value): (&str, &str),
    user: i64,
    count: usize,
) -> Value {
    let callback = kakaowork_callback(message, action, value, user);
    let response = post_kakaowork_callback(app, CALLBACK_SECRET, &callback).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent = wait_for(&format!("the bot's message {count}"), WAIT, || async {
        let sent = kakaowork.received("/v1/messages.send");
        (sent.len() >= count).then_some(sent)
    })
    .await;
    let answer = &sent[count - 1];
    assert_eq!(
        answer.header("authorization"),
        Some(format!("Bearer {KAKAOWORK_KEY}").as_str())
    );
    answer.json()
}

/// A KakaoWork click from an unlinked user, then from a linked viewer, decides nothing and is
/// told why in a direct message; as an approver, a tampered or expired button value and a
/// wrong callback secret decide nothing either; the approver's click on the real button
/// decides, the conversation is told who decided, and the audit log names the user and
/// channel kakaowork.
async fn kakaowork_clicks_decide_only_as_a_linked_approver(db: Db) {
    let (app, kakaowork, approval, message) = kakaowork_app(db).await;
    let approve = kakaowork_button(&message, "aiops_approve");
    assert_eq!(approve["action_type"], "submit_action");
    let value = approve["value"].as_str().unwrap().to_string();
    let click = ("aiops_approve", value.as_str());
    let status = || async {
        let record = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
        record["status"].as_str().unwrap().to_string()
    };

    let told = kakao_click(&app, &kakaowork, &message, click, KAKAOWORK_USER, 1).await;
    let opened = kakaowork.received("/v1/conversations.open");
    assert_eq!(opened[0].json()["user_id"], KAKAOWORK_USER);
    assert_eq!(told["conversation_id"], 92603, "a direct message: {told}");
    let text = told["text"].as_str().unwrap();
    assert!(text.starts_with("결정되지 않았습니다"), "{text}");
    assert!(text.contains("연결되어 있지 않습니다"), "{text}");
    assert!(text.contains("/account/link#"), "{text}");
    assert_eq!(status().await, "pending");

    member(&app, "minji-kim", ProjectRole::Viewer).await;
    let link = json!({"kakaowork_user_id": KAKAOWORK_USER.to_string()});
    admin(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/users/minji-kim",
        link,
    )
    .await;
    let told = kakao_click(&app, &kakaowork, &message, click, KAKAOWORK_USER, 2).await;
    assert_eq!(told["conversation_id"], 92603);
    assert!(
        told["text"]
            .as_str()
            .unwrap()
            .contains("approver 역할이 필요"),
        "{told}"
    );
    assert_eq!(status().await, "pending");

    // As an approver: a value changed in any way, or past its expiry, decides nothing.
    users::grant(&app.store, "minji-kim", Some("shop"), ProjectRole::Approver)
        .await
        .unwrap();
    let (head, last) = value.split_at(value.len() - 1);
    let flipped = format!("{head}{}", if last == "0" { "1" } else { "0" });
    let expired = LinkSigner::new(&app.vault).decision_token(
        approval,
        "approve",
        chrono::Utc::now() - chrono::Duration::minutes(1),
    );
    let refused = [
        (value.replacen("approve", "reject", 1), "유효하지 않은 버튼"),
        (flipped, "유효하지 않은 버튼"),
        (expired, "만료되었습니다"),
    ];
    for (n, (bad, why)) in refused.iter().enumerate() {
        let told = kakao_click(
            &app,
            &kakaowork,
            &message,
            ("aiops_reject", bad),
            KAKAOWORK_USER,
            3 + n,
        )
        .await;
        assert!(
            told["text"].as_str().unwrap().contains(why),
            "{bad}: {told}"
        );
        assert_eq!(status().await, "pending", "{bad}");
    }
    // Without the callback secret, nothing is read at all.
    let callback = kakaowork_callback(&message, click.0, click.1, KAKAOWORK_USER);
    let wrong = post_kakaowork_callback(&app, "not-the-secret", &callback).await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    assert_eq!(status().await, "pending");

    // A policy that needs maintainers refuses her, told in Korean words of its own.
    let policy = |role: &str| json!({"approval_policy": {"decide_role": role}});
    let path = "/api/v1/projects/shop";
    admin(&app, reqwest::Method::PATCH, path, policy("maintainer")).await;
    let told = kakao_click(&app, &kakaowork, &message, click, KAKAOWORK_USER, 6).await;
    let text = told["text"].as_str().unwrap();
    assert!(
        text.contains("승인 정책상 maintainer 역할이 필요합니다"),
        "{text}"
    );
    assert_eq!(status().await, "pending");
    admin(&app, reqwest::Method::PATCH, path, policy("approver")).await;

    let told = kakao_click(&app, &kakaowork, &message, click, KAKAOWORK_USER, 7).await;
    assert_eq!(
        told["conversation_id"], 12345,
        "the conversation is told: {told}"
    );
    let text = told["text"].as_str().unwrap();
    assert!(text.starts_with("minji-kim 님이 승인했습니다"), "{text}");
    let record = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(record["status"], "decided");
    assert_eq!(record["channel"], "kakaowork");
    assert_eq!(record["decided_by"], "minji-kim");

    // Refused: the unlinked click, the viewer's, the expired button (whose signature names
    // the approval) and the policy's; the two changed buttons name no approval, each
    // audited once.
    let audit = audit_of(&app, approval).await;
    let refused: Vec<&Value> = audit.iter().filter(|e| e["outcome"] == "refused").collect();
    assert_eq!(refused.len(), 4, "{audit:?}");
    assert!(
        refused
            .iter()
            .all(|e| e["detail"]["channel"] == "kakaowork")
    );
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["reason"].as_str().unwrap().contains("expired")),
        "{refused:?}"
    );
    let changed = refused_button_entries(&app).await;
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        changed
            .iter()
            .all(|e| e["source"] == format!("kakaowork:{KAKAOWORK_USER}"))
    );
    assert!(refused.iter().any(|e| e["principal_name"] == "anonymous"));
    assert!(refused.iter().any(|e| e["principal_name"] == "minji-kim"));
    let decision = audit
        .iter()
        .find(|e| e["action"] == "decide approval: approve" && e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no decision entry in {audit:?}"));
    assert_eq!(decision["principal_name"], "minji-kim");
    assert_eq!(decision["detail"]["channel"], "kakaowork");
    assert_eq!(decision["source"], format!("kakaowork:{KAKAOWORK_USER}"));
    // The refused callback left one bounded line, without what it presented.
    let all = app.get_json("/api/v1/audit?limit=200").await.to_string();
    assert!(all.contains("kakaowork callback"), "{all}");
    assert!(
        !all.contains("not-the-secret") && !all.contains(CALLBACK_SECRET),
        "{all}"
    );
}

/// Admin mapping through the API, the disabled user refused in chat, and a link that expired
/// or was changed refused.
async fn chat_accounts_are_mapped_by_admins_and_links_expire(db: Db) {
    let (app, slack, approval, token) = slack_app(db).await;
    member(&app, "ann", ProjectRole::Approver).await;
    let link = json!({"slack_user_id": SLACK_USER, "kakaowork_user_id": "4567"});
    let detail = admin(&app, reqwest::Method::PATCH, "/api/v1/users/ann", link).await;
    let linked: Vec<&str> = detail["chat_identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    assert_eq!(linked, ["kakaowork", "slack"]);
    // The same Slack id for another user is a conflict; a malformed one is refused.
    member(&app, "bob", ProjectRole::Approver).await;
    let taken = json!({"slack_user_id": SLACK_USER});
    let response = app
        .client
        .patch(app.url("/api/v1/users/bob"))
        .bearer_auth(&app.token)
        .json(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = app
        .client
        .patch(app.url("/api/v1/users/bob"))
        .bearer_auth(&app.token)
        .json(&json!({"slack_user_id": "not an id"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Disabled: the click is refused.
    let off = json!({"status": "disabled"});
    admin(&app, reqwest::Method::PATCH, "/api/v1/users/ann", off).await;
    let disabled = click(&app, &slack, &token, "/actions/T1/1/disabled").await;
    assert!(
        disabled["text"].as_str().unwrap().contains("disabled"),
        "{disabled}"
    );
    let still = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");

    // A link past its expiry, and one changed by a single character, link nothing.
    let carl = member(&app, "carl", ProjectRole::Viewer).await;
    let signer = LinkSigner::new(&app.vault);
    let now = chrono::Utc::now();
    let expired = signer.identity_token("ab12", now - chrono::Duration::minutes(1));
    let path = format!("/api/v1/me/identity-links/{expired}");
    let (status, answer) = send(&app, &carl, &path, Value::Null).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let valid = signer.identity_token("ab12", now + chrono::Duration::minutes(5));
    let changed = valid.replacen("ab12", "ab13", 1);
    let path = format!("/api/v1/me/identity-links/{changed}");
    assert_eq!(
        send(&app, &carl, &path, Value::Null).await.0,
        StatusCode::NOT_FOUND
    );
    // Neither token is kept in the audit log.
    let audit = app.get_json("/api/v1/audit?limit=200").await.to_string();
    assert!(
        !audit.contains(&changed) && !audit.contains(&expired),
        "{audit}"
    );
    assert!(audit.contains("/me/identity-links/{token}"), "{audit}");
}

/// A `/party` comment from a GitHub sender linked to a user records that user as who asked,
/// so self-approval applies to them.
async fn a_party_comment_from_a_linked_sender_records_who_asked(db: Db) {
    let (github, _) = common::stand_in::github_stand_in().await;
    let app = TestApp::spawn_with(db, |c| c.github.api_url = github).await;
    let body = json!({"name": "hello", "repo_url": "https://github.com/Codertocat/Hello-World.git",
        "github_repo": "Codertocat/Hello-World"});
    admin(&app, reqwest::Method::POST, "/api/v1/projects", body).await;
    let secret =
        json!({"name": "github-webhook", "kind": "webhook_secret", "value": WEBHOOK_SECRET});
    admin(&app, reqwest::Method::POST, "/api/v1/credentials", secret).await;
    let spec = UserSpec {
        login: "octo".into(),
        github_login: Some("codertocat".into()),
        ..UserSpec::default()
    };
    users::add(&app.store, &spec).await.unwrap();

    let mut comment = fixture_json("github/issue_comment.created.json");
    comment["comment"]["body"] = json!("/party bugfix the login page crashes");
    let payload = serde_json::to_vec(&comment).unwrap();
    let response = app
        .client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", "issue_comment")
        .header("X-GitHub-Delivery", "d-party-1")
        .header(
            "X-Hub-Signature-256",
            sign_sha256(WEBHOOK_SECRET.as_bytes(), &payload),
        )
        .header("Content-Type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let tasks = app.get_json("/api/v1/tasks").await;
    let task = &tasks["items"][0];
    assert_eq!(task["created_by"], "github:Codertocat", "{tasks}");
    assert_eq!(task["requested_by"], "octo");
}

on_both_databases!(
    self_approval_is_refused_unless_the_project_allows_it,
    two_distinct_approvers_decide_and_one_reject_ends_it,
    slack_clicks_decide_only_as_a_linked_approver,
    kakaowork_clicks_decide_only_as_a_linked_approver,
    chat_accounts_are_mapped_by_admins_and_links_expire,
    a_party_comment_from_a_linked_sender_records_who_asked,
);
