//! Hostile inputs are refused at the API: where repositories and webhook channels may point,
//! which variables a credential may set, who may hold signing secrets, what a branch name or
//! a prompt may contain, and what viewers see of URLs. On SQLite and PostgreSQL. Each rule
//! has a case here that fails if its check is removed.

mod common;

use common::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The app with the safe defaults for outbound targets and `local_roots` = `root`.
async fn strict_app(db: Db, root: &std::path::Path) -> TestApp {
    let root = root.to_path_buf();
    TestApp::spawn_with(db, move |c| {
        c.inputs.allow_private_targets = false;
        c.inputs.local_roots = vec![root];
    })
    .await
}

/// Asserts a 422 naming `field`.
async fn refused(response: reqwest::Response, field: &str, case: &str) {
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{case}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["field"], field, "{case}: {body}");
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.post(path).json(body).send().await.unwrap()
}

async fn repo_urls_and_local_paths_are_checked(db: Db) {
    let root = tempfile::tempdir().unwrap();
    let app = strict_app(db, root.path()).await;
    for url in [
        "file:///etc",
        "http://github.com/acme/shop.git",
        "git://github.com/acme/shop.git",
        "https://x-access-token:ghp_abc@github.com/acme/shop.git",
        "https://ghp_abc@github.com/acme/shop.git",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/shop.git",
        "https://localhost/shop.git",
        "ssh://git@10.0.0.5/shop.git",
        "git@[::1]:shop.git",
    ] {
        let body = json!({"name": "shop", "repo_url": url});
        refused(post(&app, "/api/v1/projects", &body).await, "repo_url", url).await;
    }
    let fine = json!({"name": "shop", "repo_url": "git@github.com:acme/shop.git"});
    assert_eq!(
        post(&app, "/api/v1/projects", &fine).await.status(),
        StatusCode::CREATED
    );

    let outside = common::git_repo();
    let body = json!({"name": "outside", "local_path": outside.path()});
    refused(
        post(&app, "/api/v1/projects", &body).await,
        "local_path",
        "outside",
    )
    .await;
    let inside = root.path().join("repo");
    std::fs::create_dir(&inside).unwrap();
    let init = std::process::Command::new("git")
        .args(["init", "-q"])
        .arg(&inside)
        .status()
        .unwrap();
    assert!(init.success());
    let body = json!({"name": "inside", "local_path": inside});
    assert_eq!(
        post(&app, "/api/v1/projects", &body).await.status(),
        StatusCode::CREATED
    );
    let moved = json!({"local_path": outside.path()});
    let patch = app
        .req(reqwest::Method::PATCH, "/api/v1/projects/inside")
        .json(&moved)
        .send()
        .await
        .unwrap();
    refused(patch, "local_path", "patched outside").await;
}

async fn branch_names_and_prompts_are_checked(db: Db) {
    let app = TestApp::spawn(db).await;
    let base = json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git"});
    for (field, value) in [
        ("default_branch", "main.lock"),
        ("default_branch", "a..b"),
        ("default_branch", "feat/.hidden"),
        ("default_branch", "bad\u{1}name"),
        ("branch_strategy", "aiops/{task_id}.lock"),
        ("branch_strategy", "aiops/.{task_id}"),
    ] {
        let mut body = base.clone();
        body[field] = json!(value);
        refused(post(&app, "/api/v1/projects", &body).await, field, value).await;
    }
    assert_eq!(
        post(&app, "/api/v1/projects", &base).await.status(),
        StatusCode::CREATED
    );
    let task = json!({"project": "shop", "prompt": "fix\u{0}this"});
    refused(post(&app, "/api/v1/tasks", &task).await, "prompt", "NUL").await;
}

async fn webhook_channel_targets_are_checked(db: Db) {
    let root = tempfile::tempdir().unwrap();
    let app = strict_app(db, root.path()).await;
    let project = json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git"});
    post(&app, "/api/v1/projects", &project).await;
    for target in [
        "http://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://127.0.0.1:9/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://192.168.1.10/x",
    ] {
        let body = json!({"kind": "webhook", "target": target, "credential": "hook"});
        let response = post(&app, "/api/v1/projects/shop/channels", &body).await;
        refused(response, "target", target).await;
    }
    // Allowed where the config says so (a receiver on the LAN, a test's stand-in).
    let lan = TestApp::spawn(db).await;
    post(&lan, "/api/v1/projects", &project).await;
    let body = json!({"kind": "webhook", "target": "http://127.0.0.1:9/x", "credential": "hook"});
    let response = post(&lan, "/api/v1/projects/shop/channels", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn viewers_see_no_secret_urls(db: Db) {
    let app = TestApp::spawn(db).await;
    // A project stored before URLs with credentials were refused.
    let mut spec = aiops::projects::NewProject {
        name: "legacy".into(),
        repo_url: Some("https://github.com/acme/legacy.git".into()),
        ..Default::default()
    }
    .into_spec(&common::test_inputs())
    .unwrap();
    spec.repo_url = Some("https://x-access-token:ghp_legacy@github.com/acme/legacy.git".into());
    app.store.insert_project(&spec).await.unwrap();
    let hook = "https://hooks.example.com/services/T0/B0/secret-path";
    let body = json!({"kind": "webhook", "target": hook, "credential": "hook"});
    let created = post(&app, "/api/v1/projects/legacy/channels", &body).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let (viewer, _) = aiops::auth::create_token(&app.store, "watcher", aiops::auth::Role::Viewer)
        .await
        .unwrap();
    let read = |path: &'static str| {
        let request = app.client.get(app.url(path)).bearer_auth(&viewer);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    for text in [
        read("/api/v1/projects").await,
        read("/api/v1/projects/legacy").await,
        read("/api/v1/projects/legacy/channels").await,
    ] {
        assert!(!text.contains("ghp_legacy"), "{text}");
        assert!(!text.contains("secret-path"), "{text}");
    }
    let operator_view = app
        .get_json("/api/v1/projects/legacy/channels")
        .await
        .to_string();
    assert!(
        operator_view.contains("secret-path"),
        "operators manage the URL"
    );
}

async fn credentials_cannot_hook_agents_or_forge_signatures(db: Db) {
    let app = TestApp::spawn(db).await;
    let project = json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git"});
    post(&app, "/api/v1/projects", &project).await;
    for var in [
        "LD_PRELOAD",
        "LD_AUDIT",
        "BASH_ENV",
        "ENV",
        "NODE_OPTIONS",
        "GIT_SSH_COMMAND",
        "PYTHONSTARTUP",
        "GIT_CONFIG_GLOBAL",
    ] {
        let body = json!({"project": "shop", "name": "x", "kind": "token", "env_var": var, "value": "v-123456"});
        refused(
            post(&app, "/api/v1/credentials", &body).await,
            "env_var",
            var,
        )
        .await;
    }

    let (operator, _) = aiops::auth::create_token(&app.store, "ops", aiops::auth::Role::Operator)
        .await
        .unwrap();
    let as_operator = |body: Value| {
        let request = app
            .client
            .post(app.url("/api/v1/credentials"))
            .bearer_auth(&operator)
            .json(&body);
        async move { request.send().await.unwrap().status() }
    };
    for body in [
        json!({"name": "slack-signing-secret", "kind": "token", "value": "forged-secret"}),
        json!({"name": "github-webhook", "kind": "token", "value": "forged-secret"}),
        json!({"name": "any-hook", "kind": "webhook_secret", "value": "forged-secret"}),
        json!({"project": "shop", "name": "app-key", "kind": "github_app", "value": "forged-key"}),
    ] {
        assert_eq!(
            as_operator(body.clone()).await,
            StatusCode::FORBIDDEN,
            "{body}"
        );
    }
    let ordinary =
        json!({"project": "shop", "name": "deploy", "kind": "token", "value": "deploy-123"});
    assert_eq!(as_operator(ordinary).await, StatusCode::CREATED);

    let signing = json!({"name": "slack-signing-secret", "kind": "token", "value": "real-secret"});
    let created = post(&app, "/api/v1/credentials", &signing).await;
    assert_eq!(created.status(), StatusCode::CREATED, "an admin may");
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/credentials/{id}");
    let delete = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    let delete = app
        .req(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
}

on_both_databases!(
    repo_urls_and_local_paths_are_checked,
    branch_names_and_prompts_are_checked,
    webhook_channel_targets_are_checked,
    viewers_see_no_secret_urls,
    credentials_cannot_hook_agents_or_forge_signatures,
);
