//! A change to what a GitHub delivery depends on takes effect at the very next delivery,
//! wherever it was made: a webhook secret replaced through the API or in place by `aiops
//! secret set` (another process on the same database) or removed on another node; a routing
//! rule made and changed on another node; a project that stops naming the repository. Real
//! HTTP on loopback, real processes, on SQLite and PostgreSQL.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use aiops::signing::sign_sha256;
use common::{Db, TestApp, fixture_json};
use reqwest::StatusCode;
use serde_json::{Value, json};

const FIRST: &str = "first-webhook-secret";
const SECOND: &str = "second-webhook-secret";
const THIRD: &str = "third-webhook-secret";

/// The application with project `shop` registered for `acme/shop`; with `on_issue_opened`
/// the `[github]` settings route opened issues.
async fn shop_app(db: Db, on_issue_opened: bool) -> TestApp {
    let app = TestApp::spawn_with(db, |c| {
        c.github.on_issue_opened = on_issue_opened;
        c.github.reply = false;
    })
    .await;
    let created = app
        .post("/api/v1/projects")
        .json(
            &json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git",
                      "github_repo": "acme/shop"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    app
}

/// Stores `value` as shop's webhook secret `github-webhook` through the API of the node at
/// `base`; the credential's id.
async fn add_secret(app: &TestApp, base: &str, value: &str) -> i64 {
    let created = app
        .client
        .post(format!("{base}/api/v1/credentials"))
        .bearer_auth(&app.token)
        .json(
            &json!({"project": "shop", "name": "github-webhook", "kind": "webhook_secret",
                      "value": value}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Deletes credential `id` through the API of the node at `base`.
async fn delete_credential(app: &TestApp, base: &str, id: i64) {
    let deleted = app
        .client
        .delete(format!("{base}/api/v1/credentials/{id}"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

/// Sends issue `number` of `repository` opened, signed with `secret`, to `app`: the status
/// and the answer's body.
async fn deliver(
    app: &TestApp,
    repository: &str,
    secret: &str,
    number: u64,
) -> (StatusCode, Value) {
    let mut payload = fixture_json("github/issues.opened.json");
    payload["repository"]["full_name"] = json!(repository);
    payload["issue"]["number"] = json!(number);
    let body = serde_json::to_vec(&payload).unwrap();
    let answer = app
        .client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", format!("delivery-{number}"))
        .header("X-Hub-Signature-256", sign_sha256(secret.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, answer.json().await.unwrap())
}

/// The priority of the task a delivery created.
async fn task_priority(app: &TestApp, answer: &Value) -> String {
    assert_eq!(answer["outcome"], "task_created", "{answer}");
    let task = app
        .get_json(&format!("/api/v1/tasks/{}", answer["task_id"]))
        .await;
    task["priority"].as_str().unwrap().to_string()
}

/// A second node of `app`'s service: the same database and master key, a data directory and
/// a port of its own. Its base URL and what must outlive it.
async fn second_node(app: &TestApp) -> (String, tempfile::TempDir, aiops::server::Started) {
    let data = tempfile::tempdir().unwrap();
    let mut config = app.db.config();
    let key = config.key_file();
    config.data_dir = data.path().to_path_buf();
    std::fs::copy(key, config.key_file()).unwrap();
    let mut started = aiops::server::start(config).await.expect("second node");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = started.state.clone();
    tokio::spawn(aiops::http::serve(listener, state, std::future::pending()));
    started.admin_token = None;
    (base, data, started)
}

/// `aiops secret set` in a process of its own, on `app`'s database: shop's `github-webhook`
/// replaced in place by `value`.
fn replace_secret_in_another_process(app: &TestApp, value: &str) {
    let mut cli = Command::new(env!("CARGO_BIN_EXE_aiops"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AIOPS_") {
            cli.env_remove(&key);
        }
    }
    let data_dir = app.db.data_dir();
    let mut child = cli
        .args(["secret", "set", "--data-dir"])
        .arg(&data_dir)
        .args(["--database-url", &app.db.url])
        .args(["--project", "shop", "--name", "github-webhook"])
        .args(["--kind", "webhook_secret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "aiops secret set: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

async fn a_replaced_webhook_secret_is_honoured_at_the_next_delivery(db: Db) {
    let app = shop_app(db, true).await;
    let first = add_secret(&app, &app.base, FIRST).await;
    let (status, answer) = deliver(&app, "acme/shop", FIRST, 1).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    // Replaced through the API: the old credential deleted, a new one of that name stored.
    delete_credential(&app, &app.base, first).await;
    let second = add_secret(&app, &app.base, SECOND).await;
    let (status, answer) = deliver(&app, "acme/shop", FIRST, 2).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old secret: {answer}");
    let (status, answer) = deliver(&app, "acme/shop", SECOND, 2).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the new secret: {answer}");
    assert_eq!(answer["outcome"], "task_created", "{answer}");

    // Replaced in place (same row) by another process on the same database.
    replace_secret_in_another_process(&app, THIRD);
    let (status, answer) = deliver(&app, "acme/shop", SECOND, 3).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the replaced secret: {answer}"
    );
    let (status, answer) = deliver(&app, "acme/shop", THIRD, 3).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the secret set by the CLI: {answer}"
    );

    // Removed on another node: nothing signs for the repository any more.
    let (node, _data, _started) = second_node(&app).await;
    delete_credential(&app, &node, second).await;
    let (status, answer) = deliver(&app, "acme/shop", THIRD, 4).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let error = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("no webhook secret is configured for acme/shop"),
        "{answer}"
    );
}

async fn a_routing_change_is_honoured_at_the_next_delivery(db: Db) {
    let app = shop_app(db, false).await;
    add_secret(&app, &app.base, FIRST).await;
    let (status, answer) = deliver(&app, "acme/shop", FIRST, 1).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer["outcome"], "ignored",
        "nothing routes opened issues yet"
    );

    // A rule made on another node routes the next delivery here.
    let (node, _data, _started) = second_node(&app).await;
    let rule = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, format!("{node}/api/v1/routing-rules{path}"))
            .bearer_auth(&app.token)
    };
    let created = rule(reqwest::Method::POST, "")
        .json(
            &json!({"kind": "github", "name": "shop-opened", "project": "shop",
                      "on_issue_opened": true, "priority": "high"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let (_, answer) = deliver(&app, "acme/shop", FIRST, 2).await;
    assert_eq!(task_priority(&app, &answer).await, "high");

    // Changed there: the next delivery follows the change.
    let changed = rule(reqwest::Method::PATCH, "/shop-opened")
        .json(&json!({"priority": "low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let (_, answer) = deliver(&app, "acme/shop", FIRST, 3).await;
    assert_eq!(task_priority(&app, &answer).await, "low");

    // The project names another repository: its secret and rules cover that one now.
    let moved = app
        .client
        .patch(format!("{node}/api/v1/projects/shop"))
        .bearer_auth(&app.token)
        .json(&json!({"github_repo": "acme/shop-renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let (status, answer) = deliver(&app, "acme/shop", FIRST, 4).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, answer) = deliver(&app, "acme/shop-renamed", FIRST, 4).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(task_priority(&app, &answer).await, "low");
}

on_both_databases!(
    a_replaced_webhook_secret_is_honoured_at_the_next_delivery,
    a_routing_change_is_honoured_at_the_next_delivery,
);
