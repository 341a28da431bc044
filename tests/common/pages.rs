//! The dashboard over plain HTTP, as a browser without JavaScript: pages read and forms
//! posted with a session cookie, and the CSRF token a page's forms carry.

use reqwest::StatusCode;
use serde_json::{Value, json};

use aiops::model::{Notice, NoticeKind, NotificationStatus};
use aiops::signing::sign_sha256;
use aiops::store::notifications::{AttemptRecord, insert_queued, record_attempt};

use super::pipeline::{add_project, create_task};
use super::{TestApp, fixture};

/// A client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET `path` as the holder of `session`: status and body.
pub async fn page(app: &TestApp, session: &str, path: &str) -> (StatusCode, String) {
    let response = client()
        .get(app.url(path))
        .header("cookie", format!("{}={session}", aiops::sessions::COOKIE))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// GET the CSV at `path` as the holder of `session`: asserts a 200 with a `text/csv` type
/// and returns the document.
pub async fn csv(app: &TestApp, session: &str, path: &str) -> String {
    let response = client()
        .get(app.url(path))
        .header("cookie", format!("{}={session}", aiops::sessions::COOKIE))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{path}"
    );
    response.text().await.unwrap()
}

/// POST a form to `path` as the holder of `session`.
pub async fn post_form(
    app: &TestApp,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> (StatusCode, String) {
    let mut request = client()
        .post(app.url(path))
        .header("cookie", format!("{}={session}", aiops::sessions::COOKIE))
        .form(form);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The CSRF token in a page's forms (the sign-out form has one on every page).
pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// The CSRF token of `session`, read from its overview page.
pub async fn csrf_for(app: &TestApp, session: &str) -> String {
    csrf_of(&page(app, session, "/").await.1)
}

/// POST `body` to the API as the admin token, expecting 201.
pub async fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.post(path).json(&body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Two projects, `shop` (GitHub `Codertocat/Hello-World`) and `other`, each with a
/// credential, a channel, a schedule, a routing rule and a task.
pub async fn seed(app: &TestApp) {
    let (shop_repo, other_repo) = (super::git_repo(), super::git_repo());
    add_project(
        app,
        "shop",
        shop_repo.path(),
        json!({"github_repo": "Codertocat/Hello-World"}),
    )
    .await;
    add_project(app, "other", other_repo.path(), json!({})).await;
    std::mem::forget((shop_repo, other_repo));
    for project in ["shop", "other"] {
        created(
            app,
            "/api/v1/credentials",
            json!({"project": project, "name": format!("{project}-deploy-key"),
            "kind": "token", "value": "not-a-real-secret-value"}),
        )
        .await;
        created(app, &format!("/api/v1/projects/{project}/channels"), json!({"kind": "webhook",
            "target": format!("https://hooks.example.test/{project}"), "credential": format!("{project}-deploy-key")})).await;
        created(app, "/api/v1/schedules", json!({"name": format!("{project}-nightly"), "project": project,
            "team": "bugfix", "cron": "0 3 * * *", "prompt_template": "Nightly check of {schedule}"})).await;
        created(
            app,
            "/api/v1/routing-rules",
            json!({"kind": "github", "name": format!("{project}-issues"),
            "project": project, "labels": ["needs-ai"]}),
        )
        .await;
        create_task(
            app,
            project,
            &format!("Fix the {project} checkout crash"),
            "normal",
        )
        .await;
    }
}

/// The webhook secret the seeded deliveries are signed with.
const SECRET: &str = "webhook-secret-for-view-tests";

/// After [`seed`]: a GitHub delivery that made a task of `shop` (the app must turn
/// `github.on_issue_opened` on), a ping that made none, and a dead letter of each project's
/// channel; returns `shop`'s dead letter.
pub async fn seed_deliveries_and_dead_letters(app: &TestApp) -> i64 {
    created(
        app,
        "/api/v1/credentials",
        json!({"name": "github-webhook", "kind": "webhook_secret", "value": SECRET}),
    )
    .await;
    deliver(
        app,
        "issues",
        "delivery-shop-1",
        &fixture("github/issues.opened.json"),
    )
    .await;
    deliver(app, "ping", "delivery-ping-1", &fixture("github/ping.json")).await;
    dead_letter(app, "other").await;
    dead_letter(app, "shop").await
}

/// Sends a signed GitHub delivery.
async fn deliver(app: &TestApp, event: &str, delivery: &str, body: &[u8]) {
    let response = app
        .client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", sign_sha256(SECRET.as_bytes(), body))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

/// A dead letter of `project`'s channel about its task.
async fn dead_letter(app: &TestApp, project: &str) -> i64 {
    let channel = app
        .get_json(&format!("/api/v1/projects/{project}/channels"))
        .await[0]["id"]
        .as_i64()
        .unwrap();
    let task = app
        .get_json(&format!("/api/v1/tasks?project={project}"))
        .await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let mut tx = app.store.begin().await.unwrap();
    let notice = Notice {
        kind: NoticeKind::TaskFailed,
        task_id: task,
        approval_id: None,
    };
    let id = insert_queued(&mut tx, channel, &notice).await.unwrap();
    let error = format!("HTTP 410 from {project}'s hook");
    let record = AttemptRecord {
        status: NotificationStatus::Dead,
        error: Some(&error),
        next_attempt_at: None,
        sent_at: None,
    };
    assert!(record_attempt(&mut tx, id, 1, &record).await.unwrap());
    tx.commit().await.unwrap();
    id
}

/// The cells of the table row whose opening tag holds `marker`, as text.
pub fn cells(html: &str, table: &str, marker: &str) -> Vec<String> {
    let table = html
        .split(&format!(r#"id="{table}""#))
        .nth(1)
        .unwrap_or_else(|| panic!("no table {table} in {html}"))
        .split("</table>")
        .next()
        .unwrap();
    let row = table
        .split("<tr ")
        .find(|row| row.split('>').next().unwrap().contains(marker))
        .unwrap_or_else(|| panic!("no row {marker} in {table}"))
        .split("</tr>")
        .next()
        .unwrap();
    row.split("</t")
        .filter_map(|cell| cell.rsplit('>').next())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .collect()
}
