//! Inbound webhooks over real HTTP: GitHub (with a stand-in GitHub API server that records
//! the sticky comment), Alertmanager, Grafana and generic alerts, on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aiops::config::Config;
use aiops::signing::sign_sha256;
use common::stand_in::github_stand_in;
use common::{Db, TestApp, fixture, fixture_json, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "webhook-secret-for-tests";
const ALERT_TOKEN: &str = "alert-token-for-tests";

async fn webhook_app(db: Db, github_api: &str) -> TestApp {
    webhook_app_with(db, github_api, |c| {
        c.github.on_issue_opened = true;
        c.github.labels = vec!["bug".into(), "ai-party".into()];
        c.github.bot_logins = vec!["Codertocat".into()];
        c.alerts.rules = vec![
            aiops::config::AlertRule {
                source: String::new(),
                matchers: [("service".to_string(), "shopping-md".to_string())].into(),
                project: "shop".into(),
                team: Some("bugfix".into()),
                priority: None,
            },
            aiops::config::AlertRule {
                source: "grafana".into(),
                matchers: [("service".to_string(), "checkout-api".to_string())].into(),
                project: "shop".into(),
                team: None,
                priority: Some(aiops::tasks::Priority::High),
            },
        ];
    })
    .await
}

/// The application with three registered repositories (`hello`, `octo`, `shop`), their
/// webhook and alert credentials, a `sentry` generic alert source, and `adjust` applied.
async fn webhook_app_with(db: Db, github_api: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let api = github_api.to_string();
    let app = TestApp::spawn_with(db, |c| {
        c.github.api_url = api;
        c.github.max_body_bytes = 64 * 1024;
        c.alerts.sources.push(aiops::config::AlertSource {
            name: "sentry".into(),
            auth: aiops::config::AlertAuth::Hmac,
            credential: "sentry-webhook".into(),
        });
        adjust(c);
    })
    .await;
    let repo = common::git_repo();
    for (name, github) in [
        ("hello", "Codertocat/Hello-World"),
        ("octo", "octo-org/octo-repo"),
        ("shop", "acme/shop"),
    ] {
        let created = app
            .post("/api/v1/projects")
            .json(&json!({"name": name, "local_path": repo.path(), "github_repo": github}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    std::mem::forget(repo);
    for (project, name, kind, value) in [
        (Some("hello"), "github-webhook", "webhook_secret", SECRET),
        (None, "github-webhook", "webhook_secret", SECRET),
        (None, "github-token", "token", "ghs_test_token_not_real"),
        (None, "alertmanager-webhook", "token", ALERT_TOKEN),
        (None, "grafana-webhook", "token", ALERT_TOKEN),
        (None, "sentry-webhook", "webhook_secret", SECRET),
    ] {
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

async fn deliver(app: &TestApp, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
    app.client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", sign_sha256(SECRET.as_bytes(), body))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn tasks(app: &TestApp) -> Vec<Value> {
    let page: Value = app
        .get("/api/v1/tasks?limit=200")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn deliveries(app: &TestApp) -> Vec<Value> {
    let page: Value = app
        .get("/api/v1/deliveries?limit=200")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn github_fixtures_route_as_configured(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let mut comment = fixture_json("github/issue_comment.created.json");
    comment["comment"]["body"] = json!("/party bugfix the login page crashes");
    comment["comment"]["id"] = json!(1001);
    let mut stranger = comment.clone();
    stranger["comment"]["author_association"] = json!("NONE");
    stranger["comment"]["id"] = json!(1002);
    let mut failed_run = fixture_json("github/workflow_run.completed.json");
    failed_run["workflow_run"]["conclusion"] = json!("failure");
    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        (
            "issues",
            fixture("github/issues.opened.json"),
            "task_created",
            None,
        ),
        (
            "issues",
            fixture("github/issues.opened-empty-body.json"),
            "duplicate_task",
            None,
        ),
        (
            "issues",
            fixture("github/issues.labeled.json"),
            "duplicate_task",
            None,
        ),
        (
            "issues",
            fixture("github/issues.assigned-installation.json"),
            "duplicate_task",
            None,
        ),
        (
            "issue_comment",
            fixture("github/issue_comment.created.json"),
            "ignored",
            Some("not a /party command"),
        ),
        (
            "issue_comment",
            serde_json::to_vec(&comment).unwrap(),
            "task_created",
            None,
        ),
        (
            "issue_comment",
            serde_json::to_vec(&stranger).unwrap(),
            "ignored",
            Some("author association NONE"),
        ),
        (
            "issue_comment",
            fixture("github/issue_comment.edited.json"),
            "ignored",
            Some("action \"edited\""),
        ),
        (
            "workflow_run",
            fixture("github/workflow_run.completed.json"),
            "ignored",
            Some("concluded success"),
        ),
        (
            "workflow_run",
            serde_json::to_vec(&failed_run).unwrap(),
            "task_created",
            None,
        ),
        (
            "pull_request",
            fixture("github/pull_request.opened.json"),
            "ignored",
            Some("not routed"),
        ),
        (
            "installation",
            fixture("github/installation.created.json"),
            "ignored",
            Some("not registered"),
        ),
    ];
    for (i, (event, body, outcome, reason)) in cases.iter().enumerate() {
        let response = deliver(&app, event, &format!("delivery-{i}"), body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{event} #{i}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["outcome"], *outcome, "{event} #{i}: {answer}");
        if let Some(reason) = reason {
            assert!(
                answer["reason"].as_str().unwrap().contains(reason),
                "{event} #{i}: {answer}"
            );
        }
    }
    let tasks = tasks(&app).await;
    assert_eq!(tasks.len(), 3, "{tasks:#?}");
    let by_team = |team: &str| tasks.iter().filter(|t| t["team"] == team).count();
    assert_eq!(
        by_team("bugfix"),
        3,
        "the /party command, the failed workflow and the \"Spelling error\" issue (keyword) are bugfix tasks"
    );
    let issue_task = tasks
        .iter()
        .find(|t| t["dedup_key"] == "github:Codertocat/Hello-World#1")
        .unwrap();
    assert!(
        issue_task["prompt"]
            .as_str()
            .unwrap()
            .contains("Spelling error in the README file")
    );
    assert_eq!(issue_task["source"], "github");
    assert_eq!(
        issue_task["source_ref"]["url"],
        "https://github.com/Codertocat/Hello-World/issues/1"
    );
    let ping = deliver(&app, "ping", "ping-1", &fixture("github/ping.json")).await;
    assert_eq!(ping.status(), StatusCode::OK);
    assert_eq!(deliveries(&app).await.len(), cases.len() + 1);
}

async fn github_rejects_bad_requests_and_queues_nothing(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let body = fixture("github/issues.opened.json");
    let send = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = app.client.post(app.url("/webhooks/github")).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };
    let good_sig = sign_sha256(SECRET.as_bytes(), &body);
    let wrong_sig = sign_sha256(b"not-the-secret", &body);
    let event = ("X-GitHub-Event", "issues".to_string());
    let delivery = ("X-GitHub-Delivery", "d-1".to_string());
    let cases = vec![
        (
            vec![
                event.clone(),
                delivery.clone(),
                ("X-Hub-Signature-256", wrong_sig),
            ],
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![event.clone(), delivery.clone()],
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![
                event.clone(),
                delivery.clone(),
                ("X-Hub-Signature-256", "sha256=00".into()),
            ],
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![delivery.clone(), ("X-Hub-Signature-256", good_sig.clone())],
            body.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![event.clone(), ("X-Hub-Signature-256", good_sig.clone())],
            body.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                event.clone(),
                delivery.clone(),
                (
                    "X-Hub-Signature-256",
                    sign_sha256(SECRET.as_bytes(), b"{not json"),
                ),
            ],
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                event.clone(),
                delivery.clone(),
                ("X-Hub-Signature-256", good_sig.clone()),
            ],
            vec![b' '; 70 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (i, (headers, body, status)) in cases.into_iter().enumerate() {
        let response = send(headers, body).await.unwrap();
        assert_eq!(response.status(), status, "case {i}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "case {i}: {error}");
    }
    assert!(tasks(&app).await.is_empty());
    assert!(deliveries(&app).await.is_empty());
}

async fn redelivery_makes_one_task(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let body = fixture("github/issues.opened.json");
    let first: Value = deliver(&app, "issues", "same-delivery", &body)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = deliver(&app, "issues", "same-delivery", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["outcome"], "task_created");
    assert_eq!(second["outcome"], "duplicate");
    assert_eq!(second["task_id"], first["task_id"]);
    assert_eq!(tasks(&app).await.len(), 1);
    let outcomes: Vec<Value> = deliveries(&app)
        .await
        .iter()
        .map(|d| d["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("duplicate"), json!("task_created")]);
}

/// An `issues.opened` delivery `delivery_id` for `later/registered`, which no project names
/// yet: its answer (ignored) and its body.
async fn deliver_for_a_later_project(app: &TestApp, delivery_id: &str) -> (Value, Vec<u8>) {
    let mut payload = fixture_json("github/issues.opened.json");
    payload["repository"]["full_name"] = json!("later/registered");
    let body = serde_json::to_vec(&payload).unwrap();
    let answer: Value = deliver(app, "issues", delivery_id, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["outcome"], "ignored");
    (answer, body)
}

/// Registers the project `later` for `later/registered`; its repository lives as long as
/// the value returned.
async fn register_the_later_project(app: &TestApp) -> tempfile::TempDir {
    let repo = common::git_repo();
    app.post("/api/v1/projects")
        .json(
            &json!({"name": "later", "local_path": repo.path(), "github_repo": "later/registered"}),
        )
        .send()
        .await
        .unwrap();
    repo
}

/// Replays delivery `id`.
async fn replay(app: &TestApp, id: impl std::fmt::Display) -> reqwest::Response {
    app.post(&format!("/api/v1/deliveries/{id}/replay"))
        .send()
        .await
        .unwrap()
}

async fn replay_routes_again(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let (first, _) = deliver_for_a_later_project(&app, "late-1").await;
    let _repo = register_the_later_project(&app).await;
    let replayed = replay(&app, &first["id"]).await;
    assert_eq!(replayed.status(), StatusCode::ACCEPTED);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["outcome"], "task_created");
    let again: Value = replay(&app, &first["id"]).await.json().await.unwrap();
    assert_eq!(again["outcome"], "duplicate_task");
    let missing = replay(&app, 99999).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// SQLite keeps a payload compressed (store::kept_payload), a fraction of its text; a row
/// written before, holding the JSON text, still replays.
#[tokio::test]
async fn sqlite_keeps_a_payload_compressed_and_still_reads_one_kept_as_text() {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(Db::Sqlite, &api).await;
    let aiops::store::Pool::Sqlite(pool) = app.store.pool() else {
        unreachable!("a SQLite app")
    };
    let (first, body) = deliver_for_a_later_project(&app, "kept-1").await;
    let id = first["id"].as_i64().unwrap();
    let (kind, length): (String, i64) =
        sqlx::query_as("SELECT typeof(payload), length(payload) FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(kind, "blob");
    assert!(
        (length as usize) < body.len() / 2,
        "{length} bytes kept of {}",
        body.len()
    );

    // As rows written before were kept: the JSON text.
    sqlx::query("UPDATE deliveries SET payload = $1 WHERE id = $2")
        .bind(String::from_utf8(body).unwrap())
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let _repo = register_the_later_project(&app).await;
    let replayed: Value = replay(&app, id).await.json().await.unwrap();
    assert_eq!(replayed["outcome"], "task_created");
}

async fn sticky_comment_is_created_once_then_edited(db: Db) {
    let (api, recorded) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let answer: Value = deliver(
        &app,
        "issues",
        "sticky-1",
        &fixture("github/issues.opened.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    let task = answer["task_id"].as_i64().unwrap();
    wait_for(
        "the comment to be created",
        Duration::from_secs(30),
        || async { (!recorded.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    let cancelled = app
        .post(&format!("/api/v1/tasks/{task}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    wait_for(
        "the comment to show the cancellation",
        Duration::from_secs(30),
        || async {
            recorded
                .lock()
                .unwrap()
                .iter()
                .any(|(m, _, b)| m == "edit" && b["body"].as_str().unwrap().contains("cancelled"))
                .then_some(())
        },
    )
    .await;
    let calls = recorded.lock().unwrap().clone();
    let posts: Vec<_> = calls.iter().filter(|(m, _, _)| m == "create").collect();
    assert_eq!(posts.len(), 1, "one comment, then edits: {calls:#?}");
    assert_eq!(
        posts[0].1,
        "/repos/Codertocat/Hello-World/issues/1/comments"
    );
    assert!(posts[0].2["body"].as_str().unwrap().contains("queued"));
    assert!(calls.iter().all(|(m, _, _)| m != "unknown"), "{calls:#?}");
    assert!(
        calls
            .iter()
            .filter(|(m, _, _)| m == "edit")
            .all(|(_, path, _)| path == "/repos/Codertocat/Hello-World/issues/comments/4242")
    );
}

async fn sticky_comment_as_a_github_app_installation(db: Db) {
    let (api, recorded) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let key = std::process::Command::new("openssl")
        .args(["genrsa", "2048"])
        .output()
        .unwrap();
    assert!(key.status.success(), "openssl genrsa");
    let credential = json!({"app_id": 4711, "private_key": String::from_utf8(key.stdout).unwrap()});
    let created = app
        .post("/api/v1/credentials")
        .json(&json!({"name": "github-app", "kind": "github_app", "value": credential.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    // Assigned to a configured bot login, delivered through App installation 1.
    let answer: Value = deliver(
        &app,
        "issues",
        "app-1",
        &fixture("github/issues.assigned-installation.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["outcome"], "task_created", "{answer}");
    wait_for(
        "the comment to be created as the App",
        Duration::from_secs(30),
        || async {
            recorded
                .lock()
                .unwrap()
                .iter()
                .any(|(kind, _, _)| kind == "create")
                .then_some(())
        },
    )
    .await;
    let calls = recorded.lock().unwrap().clone();
    let token_call = calls
        .iter()
        .find(|(kind, _, _)| kind == "installation_token")
        .unwrap_or_else(|| panic!("no installation token was minted: {calls:#?}"));
    assert_eq!(token_call.1, "/app/installations/1/access_tokens");
    assert!(
        token_call.2["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ey"),
        "the App's JWT: {token_call:?}"
    );
    let create = calls.iter().find(|(kind, _, _)| kind == "create").unwrap();
    assert!(
        create.2["authorization"]
            .as_str()
            .unwrap()
            .ends_with("ghs_installation_token"),
        "{create:?}"
    );
}

async fn alert(app: &TestApp, path: &str, token: Option<&str>, body: &[u8]) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn alert_fixtures_route_and_resolve(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let firing: Value = alert(
        &app,
        "/webhooks/alertmanager",
        Some(ALERT_TOKEN),
        &fixture("alertmanager/firing.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    let outcomes: Vec<&str> = firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["task_created", "task_created"], "{firing}");
    let again: Value = alert(
        &app,
        "/webhooks/alertmanager",
        Some(ALERT_TOKEN),
        &fixture("alertmanager/firing.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        again["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "coalesced"),
        "{again}"
    );
    let grafana: Value = alert(
        &app,
        "/webhooks/grafana",
        Some(ALERT_TOKEN),
        &fixture("grafana/firing.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(grafana["alerts"][0]["outcome"], "task_created");
    let all = tasks(&app).await;
    assert_eq!(all.len(), 3);
    let grafana_task = all
        .iter()
        .find(|t| t["id"] == grafana["alerts"][0]["task_id"])
        .unwrap();
    assert_eq!(grafana_task["priority"], "high");
    let critical = all
        .iter()
        .find(|t| t["id"] == firing["alerts"][0]["task_id"])
        .unwrap();
    assert_eq!(critical["priority"], "critical");
    assert_eq!(critical["team"], "bugfix");
    assert!(
        critical["prompt"]
            .as_str()
            .unwrap()
            .contains("NullPointerException")
    );
    let group = app
        .store
        .alert_group_of(critical["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.0, 2, "two occurrences on one task");

    let resolved: Value = alert(
        &app,
        "/webhooks/alertmanager",
        Some(ALERT_TOKEN),
        &fixture("alertmanager/resolved.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        resolved["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "resolved" && a["cancelled"] == true),
        "{resolved}"
    );
    let task: Value = app
        .get(&format!("/api/v1/tasks/{}", critical["id"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "cancelled");

    // Generic source with HMAC.
    let body = serde_json::to_vec(&json!({"title": "Checkout errors", "body": "TypeError in cart.js", "severity": "critical", "fingerprint": "sentry-1", "labels": {"service": "shopping-md"}})).unwrap();
    let signed = app
        .client
        .post(app.url("/webhooks/generic/sentry"))
        .header("X-Signature-256", sign_sha256(SECRET.as_bytes(), &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::ACCEPTED);
    let signed: Value = signed.json().await.unwrap();
    assert_eq!(signed["alerts"][0]["outcome"], "task_created");
    let unmatched = serde_json::to_vec(
        &json!({"title": "x", "fingerprint": "y", "labels": {"service": "other"}}),
    )
    .unwrap();
    let ignored: Value = app
        .client
        .post(app.url("/webhooks/generic/sentry"))
        .header(
            "X-Signature-256",
            sign_sha256(SECRET.as_bytes(), &unmatched),
        )
        .body(unmatched)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ignored["alerts"][0]["outcome"], "ignored");
}

async fn alert_endpoints_reject_bad_requests(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app(db, &api).await;
    let body = fixture("alertmanager/firing.json");
    for (path, token, body, status) in [
        (
            "/webhooks/alertmanager",
            Some("wrong"),
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/webhooks/alertmanager",
            None,
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/webhooks/grafana",
            Some("wrong"),
            fixture("grafana/firing.json"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/webhooks/alertmanager",
            Some(ALERT_TOKEN),
            b"{oops".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/webhooks/alertmanager",
            Some(ALERT_TOKEN),
            br#"{"version":"3","alerts":[]}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/webhooks/alertmanager",
            Some(ALERT_TOKEN),
            vec![b' '; 70 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/webhooks/generic/sentry",
            None,
            br#"{"title":"t","fingerprint":"f"}"#.to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/webhooks/generic/unknown",
            Some(ALERT_TOKEN),
            br#"{"title":"t","fingerprint":"f"}"#.to_vec(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = alert(&app, path, token, &body).await;
        assert_eq!(response.status(), status, "{path} {token:?}");
    }
    let wrong_hmac = app
        .client
        .post(app.url("/webhooks/generic/sentry"))
        .header("X-Signature-256", sign_sha256(b"wrong", b"{}"))
        .body(r#"{"title":"t","fingerprint":"f"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_hmac.status(), StatusCode::UNAUTHORIZED);
    assert!(tasks(&app).await.is_empty());
}

async fn alert_storm_makes_one_task_per_fingerprint(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = Arc::new(webhook_app(db, &api).await);
    let template = fixture_json("alertmanager/firing.json");
    let alert_template = template["alerts"][0].clone();
    let started = std::time::Instant::now();
    let mut requests = Vec::new();
    // 10,000 alerts over 50 fingerprints: 200 notifications of 50 alerts, 16 at a time.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));
    for batch in 0..200 {
        let mut body = template.clone();
        body["alerts"] = json!(
            (0..50)
                .map(|i| {
                    let mut alert = alert_template.clone();
                    alert["fingerprint"] = json!(format!("fp-{}", (batch * 50 + i) % 50));
                    alert
                })
                .collect::<Vec<_>>()
        );
        let (app, permit) = (
            app.clone(),
            semaphore.clone().acquire_owned().await.unwrap(),
        );
        requests.push(tokio::spawn(async move {
            let response = alert(
                &app,
                "/webhooks/alertmanager",
                Some(ALERT_TOKEN),
                &serde_json::to_vec(&body).unwrap(),
            )
            .await;
            drop(permit);
            response.status()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::ACCEPTED);
    }
    println!(
        "alert storm ({db:?}): 10,000 alerts in {:?}",
        started.elapsed()
    );
    let tasks = tasks(&app).await;
    assert_eq!(tasks.len(), 50, "exactly one task per fingerprint");
    let mut total = 0;
    for task in &tasks {
        total += app
            .store
            .alert_group_of(task["id"].as_i64().unwrap())
            .await
            .unwrap()
            .unwrap()
            .0;
    }
    assert_eq!(total, 10_000, "every occurrence counted");
}

// ---------------------------------------------------------------------------------------
// Routing rules: from jobs files and from /api/v1/routing-rules
// ---------------------------------------------------------------------------------------

/// Rules for fixtures that the default `[github]` and `[alerts]` settings do not route: the
/// `bug` label, issues opened, and the shopping-md alerts.
const ROUTING_TOML: &str = r#"
[[github_rule]]
name = "hello-bugs"
project = "hello"
labels = ["bug"]
priority = "high"

[[github_rule]]
name = "opened-anywhere"
on_issue_opened = true
default_team = "research"

[[alert_rule]]
name = "shopping-md"
project = "shop"
match = { service = "shopping-md" }
team = "devops"
priority = "high"
"#;

/// What a webhook answered with its 202.
async fn accepted_json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

/// A signed delivery that must be accepted (202); its answer.
async fn deliver_accepted(app: &TestApp, event: &str, delivery: &str, body: &[u8]) -> Value {
    accepted_json(deliver(app, event, delivery, body).await).await
}

async fn task_of(app: &TestApp, id: &Value) -> Value {
    app.get_json(&format!("/api/v1/tasks/{id}")).await
}

/// A GitHub fixture, about issue `number` of its repository.
fn about_issue(path: &str, number: u64) -> Vec<u8> {
    let mut payload = fixture_json(path);
    payload["issue"]["number"] = json!(number);
    serde_json::to_vec(&payload).unwrap()
}

/// The rule names of `GET /api/v1/routing-rules`, in its order.
async fn rule_names(app: &TestApp) -> Vec<String> {
    let rules: Value = app
        .get("/api/v1/routing-rules")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn rule_request(app: &TestApp, method: reqwest::Method, name: &str) -> reqwest::RequestBuilder {
    app.req(method, &format!("/api/v1/routing-rules/{name}"))
}

async fn create_rule(app: &TestApp, body: Value) -> Value {
    let response = app
        .post("/api/v1/routing-rules")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
    response.json().await.unwrap()
}

async fn rules_from_a_jobs_file_route_what_the_config_does_not(db: Db) {
    let (api, _) = github_stand_in().await;
    let jobs = tempfile::tempdir().unwrap();
    std::fs::write(jobs.path().join("routing.toml"), ROUTING_TOML).unwrap();
    let jobs_dir = jobs.path().to_path_buf();
    // Started before its projects are registered: the rules naming one are skipped.
    let app = webhook_app_with(db, &api, |c| c.scheduler.jobs_dir = jobs_dir).await;
    let loaded: Value = app
        .get("/api/v1/routing-rules/opened-anywhere")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(loaded["kind"], "github");
    assert_eq!(loaded["origin"], "file");
    assert_eq!(loaded["file"], "routing.toml");
    assert!(loaded["project"].is_null());
    assert_eq!(rule_names(&app).await, ["opened-anywhere"]);

    // The configuration alone routes neither the `bug` label nor these alerts.
    let labeled = fixture("github/issues.labeled.json");
    let ignored = deliver_accepted(&app, "issues", "label-1", &labeled).await;
    assert_eq!(ignored["outcome"], "ignored");
    assert!(
        ignored["reason"]
            .as_str()
            .unwrap()
            .contains("not a trigger label")
    );
    let firing = fixture("alertmanager/firing.json");
    let unrouted =
        accepted_json(alert(&app, "/webhooks/alertmanager", Some(ALERT_TOKEN), &firing).await)
            .await;
    assert!(
        unrouted["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "ignored"
                && a["reason"].as_str().unwrap().contains("no routing rule")),
        "{unrouted}"
    );

    let reloaded = aiops::declarations::reconcile(&app.store, &app.config, &app.teams, jobs.path())
        .await
        .unwrap();
    assert_eq!(
        reloaded.routing_rules.created,
        ["hello-bugs", "shopping-md"]
    );
    assert_eq!(reloaded.routing_rules.unchanged, ["opened-anywhere"]);

    let routed = deliver_accepted(&app, "issues", "label-2", &labeled).await;
    assert_eq!(routed["outcome"], "task_created", "{routed}");
    let task = task_of(&app, &routed["task_id"]).await;
    assert_eq!(task["priority"], "high", "the rule's priority");
    assert_eq!(task["dedup_key"], "github:Codertocat/Hello-World#1");

    // A rule without a project covers every registered repository; an issue whose text
    // matches no preset's keywords gets the rule's default team.
    let mut opened = fixture_json("github/issues.opened.json");
    opened["repository"]["full_name"] = json!("acme/shop");
    opened["issue"]["title"] = json!("Hello");
    opened["issue"]["body"] = json!("");
    let opened = serde_json::to_vec(&opened).unwrap();
    let routed = deliver_accepted(&app, "issues", "opened-1", &opened).await;
    assert_eq!(routed["outcome"], "task_created", "{routed}");
    let task = task_of(&app, &routed["task_id"]).await;
    assert_eq!(task["team"], "research");
    assert_eq!(task["priority"], "normal", "github.priority");

    let routed =
        accepted_json(alert(&app, "/webhooks/alertmanager", Some(ALERT_TOKEN), &firing).await)
            .await;
    let alerts = routed["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    for routed in alerts {
        assert_eq!(routed["outcome"], "task_created", "{routed}");
        let task = task_of(&app, &routed["task_id"]).await;
        assert_eq!(task["team"], "devops");
        // The rule's priority wins over the one `severity: critical` maps to.
        assert_eq!(task["priority"], "high");
        assert_eq!(task["project"], "shop");
    }
}

async fn api_rules_route_until_disabled_or_deleted(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app_with(db, &api, |_| {}).await;
    let assigned = |number| about_issue("github/issues.assigned-installation.json", number);
    let before = deliver_accepted(&app, "issues", "assign-1", &assigned(1)).await;
    assert_eq!(before["outcome"], "ignored");

    let created = create_rule(
        &app,
        json!({"kind": "github", "name": "hello-assignments", "project": "hello",
               "bot_logins": ["codertocat"], "priority": "low"}),
    )
    .await;
    assert_eq!(created["origin"], "api");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["position"], 100);
    assert!(created["file"].is_null());
    let routed = deliver_accepted(&app, "issues", "assign-2", &assigned(1)).await;
    assert_eq!(routed["outcome"], "task_created", "{routed}");
    assert_eq!(task_of(&app, &routed["task_id"]).await["priority"], "low");

    let set_enabled = |enabled: bool| {
        rule_request(&app, reqwest::Method::PATCH, "hello-assignments")
            .json(&json!({ "enabled": enabled }))
            .send()
    };
    let disabled = set_enabled(false).await.unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(disabled.json::<Value>().await.unwrap()["enabled"], false);
    let stopped = deliver_accepted(&app, "issues", "assign-3", &assigned(2)).await;
    assert_eq!(stopped["outcome"], "ignored", "{stopped}");
    let reason = "assigned to \"Codertocat\", not to a configured bot login";
    assert_eq!(stopped["reason"], reason);
    let recorded = deliveries(&app).await;
    let recorded = recorded
        .iter()
        .find(|d| d["delivery_id"] == "assign-3")
        .unwrap();
    assert_eq!(recorded["outcome"], "ignored");
    assert_eq!(recorded["reason"], reason);

    assert_eq!(set_enabled(true).await.unwrap().status(), StatusCode::OK);
    let routed = deliver_accepted(&app, "issues", "assign-4", &assigned(2)).await;
    assert_eq!(routed["outcome"], "task_created", "{routed}");
    let deleted = rule_request(&app, reqwest::Method::DELETE, "hello-assignments")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = rule_request(&app, reqwest::Method::GET, "hello-assignments")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let stopped = deliver_accepted(&app, "issues", "assign-5", &assigned(3)).await;
    assert_eq!(stopped["outcome"], "ignored", "{stopped}");
    assert_eq!(stopped["reason"], reason);

    // An alert rule, without team or priority: the alerts defaults and the severity decide.
    create_rule(
        &app,
        json!({"kind": "alert", "name": "checkout", "project": "shop", "source": "grafana",
               "match": {"service": "checkout-api"}}),
    )
    .await;
    let grafana = fixture("grafana/firing.json");
    let routed =
        accepted_json(alert(&app, "/webhooks/grafana", Some(ALERT_TOKEN), &grafana).await).await;
    assert_eq!(routed["alerts"][0]["outcome"], "task_created", "{routed}");
    let task = task_of(&app, &routed["alerts"][0]["task_id"]).await;
    assert_eq!(task["team"], "bugfix", "alerts.default_team");
    assert_eq!(task["priority"], "high", "severity warning");
    let rematched = rule_request(&app, reqwest::Method::PATCH, "checkout")
        .json(&json!({"match": {"service": "payments"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rematched.status(), StatusCode::OK);
    let stopped =
        accepted_json(alert(&app, "/webhooks/grafana", Some(ALERT_TOKEN), &grafana).await).await;
    assert_eq!(stopped["alerts"][0]["outcome"], "ignored", "{stopped}");

    // Every change went through the audit log.
    let audit: Value = app
        .get("/api/v1/audit?target=routing-rules/hello-assignments")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "POST /api/v1/routing-rules",
            "PATCH /api/v1/routing-rules/{name}",
            "PATCH /api/v1/routing-rules/{name}",
            "DELETE /api/v1/routing-rules/{name}"
        ]
    );
}

async fn routing_rule_api_refuses_bad_rules(db: Db) {
    let (api, _) = github_stand_in().await;
    let app = webhook_app_with(db, &api, |_| {}).await;
    create_rule(
        &app,
        json!({"kind": "alert", "name": "shop-alerts", "project": "shop", "match": {"service": "shop"}}),
    )
    .await;
    let refusals = [
        (
            json!({"kind": "github", "name": "x", "project": "nowhere", "labels": ["bug"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "project",
            "unknown project",
        ),
        (
            json!({"kind": "github", "name": "x", "labels": ["bug"], "default_team": "astronauts"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "default_team",
            "known teams: bugfix",
        ),
        (
            json!({"kind": "alert", "name": "x", "project": "shop", "match": {"a": "b"}, "team": "astronauts"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "team",
            "unknown team",
        ),
        (
            json!({"kind": "github", "name": "x", "labels": ["bug"], "priority": "urgent"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "priority",
            "unknown variant `urgent`",
        ),
        (
            json!({"kind": "alert", "name": "x", "project": "shop", "match": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "match",
            "at least one label",
        ),
        (
            json!({"kind": "alert", "name": "x", "project": "shop", "match": {"a": "b"}, "source": "pagerduty"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "source",
            "[[alerts.sources]]",
        ),
        (
            json!({"kind": "github", "name": "x", "project": "hello"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "on_issue_opened",
            "turns no event on",
        ),
        (
            json!({"kind": "slack", "name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "kind",
            "\"github\" or \"alert\"",
        ),
        (
            json!({"kind": "github", "name": "x", "lables": ["bug"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lables",
            "unknown field",
        ),
        (
            json!({"kind": "github", "name": "Bad Name", "labels": ["bug"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
            "lower-case",
        ),
        (
            json!({"kind": "github", "name": "shop-alerts", "labels": ["bug"]}),
            StatusCode::CONFLICT,
            "",
            "already exists",
        ),
    ];
    for (body, status, field, phrase) in refusals {
        let response = app
            .post("/api/v1/routing-rules")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(phrase), "{body}: {message}");
        if !field.is_empty() {
            assert_eq!(error["error"]["details"]["field"], field, "{body}: {error}");
        }
    }

    let patch = |name: &str, body: Value| {
        rule_request(&app, reqwest::Method::PATCH, name)
            .json(&body)
            .send()
    };
    for (body, field) in [
        (json!({"name": "renamed"}), "name"),
        (json!({"kind": "github"}), "kind"),
        (json!({"team": "astronauts"}), "team"),
        (json!({"project": null}), "project"),
        (json!({"labels": ["bug"]}), "labels"),
    ] {
        let response = patch("shop-alerts", body.clone()).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["details"]["field"], field, "{body}: {error}");
    }
    let unchanged: Value = rule_request(&app, reqwest::Method::GET, "shop-alerts")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(unchanged["team"].is_null(), "{unchanged}");
    let missing = patch("nothing-here", json!({"enabled": false}))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Viewers read, operators write.
    let (viewer, _) = aiops::auth::create_token(&app.store, "watcher", aiops::auth::Role::Viewer)
        .await
        .unwrap();
    let listed = app
        .client
        .get(app.url("/api/v1/routing-rules"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let refused = app
        .client
        .delete(app.url("/api/v1/routing-rules/shop-alerts"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(rule_names(&app).await, ["shop-alerts"]);
}

async fn jobs_reload_replaces_file_rules_and_keeps_api_rules(db: Db) {
    let (api, _) = github_stand_in().await;
    let jobs = tempfile::tempdir().unwrap();
    let jobs_dir = jobs.path().to_path_buf();
    let app = webhook_app_with(db, &api, |c| c.scheduler.jobs_dir = jobs_dir).await;
    let reload =
        || aiops::declarations::reconcile(&app.store, &app.config, &app.teams, jobs.path());
    std::fs::write(jobs.path().join("routing.toml"), ROUTING_TOML).unwrap();
    let done = reload().await.unwrap();
    assert_eq!(
        done.routing_rules.created,
        ["hello-bugs", "opened-anywhere", "shopping-md"]
    );
    create_rule(
        &app,
        json!({"kind": "github", "name": "by-hand", "bot_logins": ["codertocat"]}),
    )
    .await;

    // The file owns its rules: the API may read them, not change them.
    for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
        let refused = rule_request(&app, method.clone(), "hello-bugs")
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::CONFLICT, "{method}");
        let error: Value = refused.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("jobs/routing.toml") && message.contains("aiops jobs reload"),
            "{message}"
        );
    }

    // Change a rule, drop one, add one in another file: the API rule stays.
    std::fs::write(
        jobs.path().join("routing.toml"),
        ROUTING_TOML
            .replace("labels = [\"bug\"]", "labels = [\"help wanted\"]")
            .replace(
                "[[alert_rule]]\nname = \"shopping-md\"",
                "[[alert_rule]]\nname = \"shopping-md-critical\"",
            ),
    )
    .unwrap();
    std::fs::write(
        jobs.path().join("more.toml"),
        "[[github_rule]]\nname = \"octo-failures\"\nproject = \"octo\"\non_workflow_failure = true\nworkflow_failure_team = \"devops\"\n",
    )
    .unwrap();
    let done = reload().await.unwrap();
    assert_eq!(
        done.routing_rules.created,
        ["octo-failures", "shopping-md-critical"]
    );
    assert_eq!(done.routing_rules.updated, ["hello-bugs"]);
    assert_eq!(done.routing_rules.unchanged, ["opened-anywhere"]);
    assert_eq!(done.routing_rules.removed, ["shopping-md"]);
    assert_eq!(
        rule_names(&app).await,
        [
            "shopping-md-critical",
            "by-hand",
            "hello-bugs",
            "octo-failures",
            "opened-anywhere"
        ],
        "alert rules, then GitHub rules, each by position and name"
    );
    let octo: Value = rule_request(&app, reqwest::Method::GET, "octo-failures")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(octo["file"], "more.toml");

    // The changed rule routes by its new label only; the workflow rule picks its team.
    let bug = deliver_accepted(
        &app,
        "issues",
        "bug-1",
        &fixture("github/issues.labeled.json"),
    )
    .await;
    assert_eq!(bug["outcome"], "ignored", "{bug}");
    let mut help = fixture_json("github/issues.labeled.json");
    help["label"]["name"] = json!("help wanted");
    let help = deliver_accepted(
        &app,
        "issues",
        "help-1",
        &serde_json::to_vec(&help).unwrap(),
    )
    .await;
    assert_eq!(help["outcome"], "task_created", "{help}");
    let mut failed_run = fixture_json("github/workflow_run.completed.json");
    failed_run["workflow_run"]["conclusion"] = json!("failure");
    let failed = deliver_accepted(
        &app,
        "workflow_run",
        "run-1",
        &serde_json::to_vec(&failed_run).unwrap(),
    )
    .await;
    assert_eq!(task_of(&app, &failed["task_id"]).await["team"], "devops");

    // A bad file changes nothing, not even the schedule beside it.
    std::fs::write(
        jobs.path().join("broken.toml"),
        "[[schedule]]\nname = \"nightly\"\nproject = \"shop\"\ncron = \"0 2 * * *\"\nprompt_template = \"x\"\n\n[[alert_rule]]\nname = \"loud\"\nproject = \"shop\"\nmatch = { service = \"shop\" }\npriority = \"urgent\"\n",
    )
    .unwrap();
    let error = format!("{:#}", reload().await.unwrap_err());
    for part in ["broken.toml", "alert_rule \"loud\"", "priority:", "urgent"] {
        assert!(error.contains(part), "{part:?} missing in: {error}");
    }
    assert!(app.store.list_schedules().await.unwrap().is_empty());
    assert_eq!(rule_names(&app).await.len(), 5);
    std::fs::remove_file(jobs.path().join("broken.toml")).unwrap();

    // A file may not take over a rule made through the API.
    std::fs::write(
        jobs.path().join("clash.toml"),
        "[[github_rule]]\nname = \"by-hand\"\non_issue_opened = true\n",
    )
    .unwrap();
    let error = format!("{:#}", reload().await.unwrap_err());
    assert!(
        error.contains("clash.toml") && error.contains("created through the API"),
        "{error}"
    );
}

on_both_databases!(
    github_fixtures_route_as_configured,
    github_rejects_bad_requests_and_queues_nothing,
    redelivery_makes_one_task,
    replay_routes_again,
    sticky_comment_is_created_once_then_edited,
    sticky_comment_as_a_github_app_installation,
    alert_fixtures_route_and_resolve,
    alert_endpoints_reject_bad_requests,
    alert_storm_makes_one_task_per_fingerprint,
    rules_from_a_jobs_file_route_what_the_config_does_not,
    api_rules_route_until_disabled_or_deleted,
    routing_rule_api_refuses_bad_rules,
    jobs_reload_replaces_file_rules_and_keeps_api_rules,
);
