//! The REST API over real HTTP, against SQLite and PostgreSQL.

mod common;

use common::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Asserts the error shape and returns the body.
async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let body = json_of(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["details"].is_object(), "{body}");
    body
}

async fn create_project(app: &TestApp, name: &str) -> Value {
    let response = app
        .post("/api/v1/projects")
        .json(&json!({"name": name, "repo_url": "https://github.com/acme/shop.git", "github_repo": "acme/shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    json_of(response).await
}

async fn projects_crud(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    let created = app
        .post("/api/v1/projects")
        .json(&json!({
            "name": "shop", "local_path": repo.path(), "tech_stack": ["rust", "postgres"],
            "conventions": "small commits", "max_concurrency": 2
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_of(created).await;
    assert_eq!(created["name"], "shop");
    assert_eq!(created["default_branch"], "main");
    assert_eq!(created["branch_strategy"], "aiops/{team}/{task_id}");
    assert_eq!(created["tech_stack"], json!(["rust", "postgres"]));

    let listed = json_of(app.get("/api/v1/projects").send().await.unwrap()).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown = json_of(app.get("/api/v1/projects/shop").send().await.unwrap()).await;
    assert_eq!(shown["max_concurrency"], 2);

    let patched = app
        .req(reqwest::Method::PATCH, "/api/v1/projects/shop")
        .json(&json!({"max_concurrency": 3, "github_repo": "acme/shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let patched = json_of(patched).await;
    assert_eq!(patched["max_concurrency"], 3);
    assert_eq!(patched["github_repo"], "acme/shop");
    assert_eq!(patched["conventions"], "small commits");

    let bad_patch = app
        .req(reqwest::Method::PATCH, "/api/v1/projects/shop")
        .json(&json!({"max_concurrency": 0}))
        .send()
        .await
        .unwrap();
    let body = expect_error(bad_patch, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    assert_eq!(body["error"]["details"]["field"], "max_concurrency");

    let deleted = app
        .req(reqwest::Method::DELETE, "/api/v1/projects/shop")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.get("/api/v1/projects/shop").send().await.unwrap();
    expect_error(gone, StatusCode::NOT_FOUND, "not_found").await;
    let gone = app
        .req(reqwest::Method::DELETE, "/api/v1/projects/shop")
        .send()
        .await
        .unwrap();
    expect_error(gone, StatusCode::NOT_FOUND, "not_found").await;
}

async fn project_validation(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    let duplicate = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "repo_url": "https://github.com/acme/other.git"}))
        .send()
        .await
        .unwrap();
    expect_error(duplicate, StatusCode::CONFLICT, "conflict").await;

    let not_git = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"name": "Bad Name", "repo_url": "https://x/y.git"}),
            "name",
        ),
        (json!({"name": "ok"}), "repo_url"),
        (json!({"name": "ok", "repo_url": "not a url"}), "repo_url"),
        (
            json!({"name": "ok", "local_path": not_git.path()}),
            "local_path",
        ),
        (
            json!({"name": "ok", "local_path": "/does/not/exist"}),
            "local_path",
        ),
        (
            json!({"name": "ok", "repo_url": "https://x/y.git", "github_repo": "nope"}),
            "github_repo",
        ),
        (
            json!({"name": "ok", "repo_url": "https://x/y.git", "branch_strategy": "fixed"}),
            "branch_strategy",
        ),
        (
            json!({"name": "ok", "repo_url": "https://x/y.git", "max_concurrency": "two"}),
            "max_concurrency",
        ),
        (
            json!({"name": "ok", "repo_url": "https://x/y.git", "colour": "blue"}),
            "colour",
        ),
        (json!({"repo_url": "https://x/y.git"}), "name"),
    ];
    for (body, field) in cases {
        let response = app
            .post("/api/v1/projects")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
        assert_eq!(
            error["error"]["details"]["field"], field,
            "{body} → {error}"
        );
    }
}

async fn malformed_and_oversized_bodies(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.http.max_body_bytes = 4096).await;
    let malformed = app
        .post("/api/v1/projects")
        .header("content-type", "application/json")
        .body(r#"{"name": "shop""#)
        .send()
        .await
        .unwrap();
    let body = expect_error(malformed, StatusCode::BAD_REQUEST, "bad_request").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("EOF while parsing"),
        "parser's message expected: {message}"
    );

    let no_content_type = app.post("/api/v1/tasks").body("{}").send().await.unwrap();
    expect_error(no_content_type, StatusCode::BAD_REQUEST, "bad_request").await;

    // serde would read a struct from a JSON array; the API takes objects only.
    for body in [r#"["shop", "x"]"#, "null", r#""shop""#] {
        let not_an_object = app
            .post("/api/v1/projects")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let error = expect_error(not_an_object, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("the body must be a JSON object"),
            "{body}: {error}"
        );
    }

    let huge = json!({"project": "shop", "prompt": "x".repeat(5000)});
    let oversized = app.post("/api/v1/tasks").json(&huge).send().await.unwrap();
    expect_error(
        oversized,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // Nothing was stored by any of them.
    let tasks = json_of(app.get("/api/v1/tasks").send().await.unwrap()).await;
    assert_eq!(tasks["items"], json!([]));
}

async fn authentication(db: Db) {
    let app = TestApp::spawn(db).await;
    for path in [
        "/api/v1/projects",
        "/api/v1/tasks",
        "/api/v1/credentials",
        "/api/v1/audit",
        "/api/v1/openapi.json",
    ] {
        let anonymous = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let wrong = app
            .client
            .get(app.url(path))
            .bearer_auth("aiops_nope")
            .send()
            .await
            .unwrap();
        expect_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let anonymous_post = app
        .client
        .post(app.url("/api/v1/projects"))
        .json(&json!({"name": "shop", "repo_url": "https://x/y.git"}))
        .send()
        .await
        .unwrap();
    expect_error(anonymous_post, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(app.store.find_project("shop").await.unwrap().is_none());

    // A revoked token stops working at once.
    let (token, _) = aiops::auth::create_token(&app.store, "bot", aiops::auth::Role::Operator)
        .await
        .unwrap();
    let ok = app
        .client
        .get(app.url("/api/v1/projects"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    app.store.revoke_token("bot").await.unwrap();
    let revoked = app
        .client
        .get(app.url("/api/v1/projects"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(revoked, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // The dashboard needs a session: without one it sends the browser to sign in.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/sign-in?next=%2F");

    // Health probes need no token.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(json_of(ready).await["status"], "ready");
}

async fn roles(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    let (viewer, _) = aiops::auth::create_token(&app.store, "watcher", aiops::auth::Role::Viewer)
        .await
        .unwrap();
    let (operator, _) = aiops::auth::create_token(&app.store, "ops", aiops::auth::Role::Operator)
        .await
        .unwrap();
    let read = app
        .client
        .get(app.url("/api/v1/tasks"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(&viewer)
        .json(&json!({"project": "shop", "prompt": "fix"}))
        .send()
        .await
        .unwrap();
    expect_error(write, StatusCode::FORBIDDEN, "forbidden").await;
    let audit = app
        .client
        .get(app.url("/api/v1/audit"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    expect_error(audit, StatusCode::FORBIDDEN, "forbidden").await;
    let task = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(&operator)
        .json(&json!({"project": "shop", "prompt": "fix"}))
        .send()
        .await
        .unwrap();
    assert_eq!(task.status(), StatusCode::CREATED);
    assert_eq!(json_of(task).await["created_by"], "ops");
}

async fn credentials_are_write_only(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    let secret = "sk-test-0123456789abcdef";
    let created = app
        .post("/api/v1/credentials")
        .json(&json!({"project": "shop", "name": "anthropic", "kind": "api_key", "env_var": "ANTHROPIC_API_KEY", "value": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let text = created.text().await.unwrap();
    assert!(!text.contains(secret), "value echoed: {text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["project"], "shop");
    assert_eq!(created["env_var"], "ANTHROPIC_API_KEY");
    assert_eq!(created["key_version"], 1);

    let global = app
        .post("/api/v1/credentials")
        .json(&json!({"name": "slack-bot", "kind": "token", "value": "xoxb-not-a-real-one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(global.status(), StatusCode::CREATED);
    assert_eq!(json_of(global).await["env_var"], "SLACK_BOT");

    let duplicate = app
        .post("/api/v1/credentials")
        .json(&json!({"project": "shop", "name": "anthropic", "kind": "api_key", "value": "x2345678"}))
        .send()
        .await
        .unwrap();
    expect_error(duplicate, StatusCode::CONFLICT, "conflict").await;
    let unknown_project = app
        .post("/api/v1/credentials")
        .json(&json!({"project": "nope", "name": "a", "kind": "api_key", "value": "x2345678"}))
        .send()
        .await
        .unwrap();
    expect_error(unknown_project, StatusCode::NOT_FOUND, "not_found").await;
    for (body, field) in [
        (
            json!({"name": "a", "kind": "password", "value": "x"}),
            "kind",
        ),
        (
            json!({"name": "a", "kind": "token", "env_var": "lower", "value": "x"}),
            "env_var",
        ),
        (
            json!({"name": "a", "kind": "token", "env_var": "PATH", "value": "x"}),
            "env_var",
        ),
        (json!({"name": "a", "kind": "token", "value": ""}), "value"),
        (
            json!({"name": "a b", "kind": "token", "value": "x"}),
            "name",
        ),
    ] {
        let response = app
            .post("/api/v1/credentials")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
        assert_eq!(error["error"]["details"]["field"], field, "{body}");
    }

    let all = app
        .get("/api/v1/credentials")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!all.contains(secret));
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let shop = json_of(
        app.get("/api/v1/credentials?project=shop")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shop.as_array().unwrap().len(), 1);
    let unknown = app
        .get("/api/v1/credentials?project=nope")
        .send()
        .await
        .unwrap();
    expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;

    let id = created["id"].as_i64().unwrap();
    let deleted = app
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/credentials/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let again = app
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/credentials/{id}"),
        )
        .send()
        .await
        .unwrap();
    expect_error(again, StatusCode::NOT_FOUND, "not_found").await;
    let bad_id = app
        .req(reqwest::Method::DELETE, "/api/v1/credentials/abc")
        .send()
        .await
        .unwrap();
    expect_error(bad_id, StatusCode::BAD_REQUEST, "bad_request").await;
}

async fn tasks_create_get_list(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.tasks.page_size = 2).await;
    create_project(&app, "shop").await;
    create_project(&app, "blog").await;
    let created = app
        .post("/api/v1/tasks")
        .json(&json!({"project": "shop", "prompt": "fix the login bug", "priority": "critical", "team": "bugfix", "dedup_key": "issue-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let task = json_of(created).await;
    assert_eq!(task["status"], "queued");
    assert_eq!(task["priority"], "critical");
    assert_eq!(task["team"], "bugfix");
    assert_eq!(task["source"], "api");
    let defaults = json_of(
        app.post("/api/v1/tasks")
            .json(&json!({"project": "shop", "prompt": "more"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(defaults["priority"], "normal");
    assert_eq!(defaults["team"], "feature");
    app.post("/api/v1/tasks")
        .json(&json!({"project": "blog", "prompt": "write"}))
        .send()
        .await
        .unwrap();

    let duplicate = app
        .post("/api/v1/tasks")
        .json(&json!({"project": "shop", "prompt": "again", "dedup_key": "issue-1"}))
        .send()
        .await
        .unwrap();
    expect_error(duplicate, StatusCode::CONFLICT, "conflict").await;
    let unknown = app
        .post("/api/v1/tasks")
        .json(&json!({"project": "nope", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    let unknown = expect_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    assert_eq!(unknown["error"]["details"]["field"], "project", "{unknown}");
    for (body, field) in [
        (json!({"project": "shop", "prompt": "  "}), "prompt"),
        (
            json!({"project": "shop", "prompt": "x", "priority": "urgent"}),
            "priority",
        ),
        (
            json!({"project": "shop", "prompt": "x", "team": "Bad Team"}),
            "team",
        ),
        (json!({"project": "shop"}), "prompt"),
    ] {
        let response = app.post("/api/v1/tasks").json(&body).send().await.unwrap();
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
        assert_eq!(error["error"]["details"]["field"], field, "{body}");
    }

    let id = task["id"].as_i64().unwrap();
    let fetched = json_of(
        app.get(&format!("/api/v1/tasks/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(fetched["prompt"], "fix the login bug");
    let missing = app.get("/api/v1/tasks/999999").send().await.unwrap();
    expect_error(missing, StatusCode::NOT_FOUND, "not_found").await;

    // Pagination: page size 2 from config, newest first, then the rest.
    let first = json_of(app.get("/api/v1/tasks").send().await.unwrap()).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let second = json_of(
        app.get(&format!("/api/v1/tasks?cursor={cursor}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], id);
    let shop = json_of(
        app.get("/api/v1/tasks?project=shop&limit=10")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shop["items"].as_array().unwrap().len(), 2);
    assert!(shop["next_cursor"].is_null());
    let queued = json_of(
        app.get("/api/v1/tasks?status=queued&limit=10")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(queued["items"].as_array().unwrap().len(), 3);
    let done = json_of(app.get("/api/v1/tasks?status=done").send().await.unwrap()).await;
    assert_eq!(done["items"], json!([]));
    let bad_status = app
        .get("/api/v1/tasks?status=sleeping")
        .send()
        .await
        .unwrap();
    expect_error(bad_status, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    let bad_cursor = app.get("/api/v1/tasks?cursor=xyz").send().await.unwrap();
    expect_error(bad_cursor, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    let bad_limit = app.get("/api/v1/tasks?limit=abc").send().await.unwrap();
    expect_error(bad_limit, StatusCode::BAD_REQUEST, "bad_request").await;
    let unknown_project = app.get("/api/v1/tasks?project=nope").send().await.unwrap();
    expect_error(unknown_project, StatusCode::NOT_FOUND, "not_found").await;

    // A project with tasks cannot be removed.
    let in_use = app
        .req(reqwest::Method::DELETE, "/api/v1/projects/shop")
        .send()
        .await
        .unwrap();
    expect_error(in_use, StatusCode::CONFLICT, "conflict").await;
}

async fn teams_route_untagged_work(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    let teams = json_of(app.get("/api/v1/teams").send().await.unwrap()).await;
    let names: Vec<&str> = teams
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bugfix",
            "dev-backend",
            "dev-frontend",
            "devops",
            "feature",
            "fullstack",
            "migration",
            "research",
            "review",
            "security"
        ]
    );
    for (prompt, team) in [
        ("Fix the crash on checkout", "bugfix"),
        ("결제 페이지 오류 수정", "bugfix"),
        ("audit our dependencies for CVEs", "security"),
        ("hello", "feature"),
    ] {
        let task = json_of(
            app.post("/api/v1/tasks")
                .json(&json!({"project": "shop", "prompt": prompt}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(task["team"], team, "{prompt}");
    }
}

async fn audit_log(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    let failed = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "repo_url": "https://x/y.git"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::CONFLICT);
    app.client
        .post(app.url("/api/v1/tasks"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    app.post("/api/v1/tasks")
        .json(&json!({"project": "shop", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    app.get("/api/v1/projects").send().await.unwrap();

    let all = json_of(app.get("/api/v1/audit?limit=50").send().await.unwrap()).await;
    let items = all["items"].as_array().unwrap();
    // Reads are not audited; every mutation is, whatever its outcome.
    assert_eq!(items.len(), 4, "{all}");
    let outcomes: Vec<&str> = items
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["201", "401", "409", "201"]);
    assert_eq!(items[1]["principal_name"], "anonymous");
    assert_eq!(items[0]["target"], "tasks/1");
    assert_eq!(items[0]["principal_name"], "admin");
    assert_eq!(items[0]["action"], "POST /api/v1/tasks");
    assert_eq!(items[0]["source"], "127.0.0.1");

    let shop = json_of(
        app.get("/api/v1/audit?target=projects/shop")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shop["items"].as_array().unwrap().len(), 1);
    let anonymous = json_of(
        app.get("/api/v1/audit?principal=anonymous")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous["items"].as_array().unwrap().len(), 1);
    let future = json_of(
        app.get("/api/v1/audit?since=2999-01-01T00:00:00Z")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(future["items"], json!([]));
    let past = json_of(
        app.get("/api/v1/audit?until=2000-01-01T00:00:00Z")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(past["items"], json!([]));
    let recent = json_of(
        app.get("/api/v1/audit?since=2000-01-01T00:00:00Z&limit=2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(recent["items"].as_array().unwrap().len(), 2);
    assert!(recent["next_cursor"].is_string());
    let bad_time = app
        .get("/api/v1/audit?since=yesterday")
        .send()
        .await
        .unwrap();
    expect_error(bad_time, StatusCode::BAD_REQUEST, "bad_request").await;
}

async fn openapi_document(db: Db) {
    let app = TestApp::spawn(db).await;
    let doc = json_of(app.get("/api/v1/openapi.json").send().await.unwrap()).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/projects",
        "/projects/{name}",
        "/credentials",
        "/credentials/{id}",
        "/tasks",
        "/tasks/{id}",
        "/audit",
        "/routing-rules",
        "/routing-rules/{name}",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["NewTask"].is_object());
    assert!(doc["components"]["schemas"]["RoutingRuleSpec"]["oneOf"].is_array());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

on_both_databases!(
    projects_crud,
    project_validation,
    malformed_and_oversized_bodies,
    authentication,
    roles,
    credentials_are_write_only,
    tasks_create_get_list,
    teams_route_untagged_work,
    audit_log,
    openapi_document,
);
