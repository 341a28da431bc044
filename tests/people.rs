//! People: users, memberships, scoped tokens and the one permission check, over real HTTP
//! on both databases.

mod common;

use std::time::Duration;

use aiops::auth::{self, TokenGrant};
use aiops::model::{
    ApprovalKind, ApprovalRequestMirror, Notice, NoticeKind, ProjectRole, Scope, Scopes,
    SessionMethod, UserStatus,
};
use aiops::permissions::{self, Permission};
use aiops::users::{self, UserSpec};
use common::{Db, TestApp, wait_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Who calls an operation in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Revoked,
    Expired,
    /// A sign-in session past its end.
    ExpiredSession,
    Disabled,
    Viewer,
    Operator,
    Approver,
    MaintainerOfOther,
    Maintainer,
    /// The maintainer of `shop` signed in by cookie, sending the session's CSRF token.
    MaintainerSession,
    Admin,
    /// The token of a service account that maintains `shop`, with this one scope.
    Service(Scope),
}

/// What an operation touches: project `shop`, every project at once, some project (a
/// listing), or no project at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Shop,
    Every,
    Any,
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthorized,
    Forbidden,
    Allowed,
}

/// The scope and the project role a permission needs, written out here apart from the
/// code under test (None: the admin role, or nothing for `SignedIn`).
fn needs(permission: Permission) -> (Scope, Option<ProjectRole>) {
    match permission {
        Permission::SignedIn => (Scope::Read, None),
        Permission::Read => (Scope::Read, Some(ProjectRole::Viewer)),
        Permission::Operate => (Scope::Write, Some(ProjectRole::Operator)),
        Permission::Decide => (Scope::Approve, Some(ProjectRole::Approver)),
        Permission::Maintain => (Scope::Write, Some(ProjectRole::Maintainer)),
        Permission::Admin => (Scope::Admin, None),
    }
}

fn expected(who: Who, permission: Permission, target: Target) -> Expect {
    let (scope, role) = needs(permission);
    let (held, in_shop, scopes) = match who {
        Who::Anonymous | Who::Revoked | Who::Expired | Who::ExpiredSession | Who::Disabled => {
            return Expect::Unauthorized;
        }
        Who::Admin => return Expect::Allowed,
        Who::Viewer => (ProjectRole::Viewer, true, None),
        Who::Operator => (ProjectRole::Operator, true, None),
        Who::Approver => (ProjectRole::Approver, true, None),
        Who::Maintainer | Who::MaintainerSession => (ProjectRole::Maintainer, true, None),
        Who::MaintainerOfOther => (ProjectRole::Maintainer, false, None),
        Who::Service(only) => (ProjectRole::Maintainer, true, Some(only)),
    };
    if scopes.is_some_and(|only| only != scope) {
        return Expect::Forbidden;
    }
    let allowed = match (permission, role) {
        (Permission::SignedIn, _) => true,
        (_, None) => false,
        (_, Some(needed)) => {
            held >= needed
                && match target {
                    Target::Shop => in_shop,
                    Target::Any => true,
                    Target::Every | Target::Nothing => false,
                }
        }
    };
    if allowed {
        Expect::Allowed
    } else {
        Expect::Forbidden
    }
}

/// The ids of what the matrix's operations touch, all in project `shop`.
struct Fixtures {
    task: i64,
    approval: i64,
    credential: i64,
    channel: i64,
    notification: i64,
    delivery: i64,
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.post(path).json(&body).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn fixtures(app: &TestApp) -> Fixtures {
    for name in ["shop", "other"] {
        // The admin asks for the task below and is among those who may decide it.
        let body = json!({"name": name, "repo_url": format!("https://github.com/acme/{name}.git"),
            "approval_policy": {"self_approval": true}});
        post_json(app, "/api/v1/projects", body).await;
    }
    let task = post_json(
        app,
        "/api/v1/tasks",
        json!({"project": "shop", "prompt": "fix"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let mirror = ApprovalRequestMirror {
        request_id: "req-1".into(),
        kind: ApprovalKind::Result,
        risk_level: None,
        tool_name: None,
        tool_input: None,
        summary: Some("ship it".into()),
        diff_stat: None,
        file_status: "pending".into(),
        file_decision: None,
        requested_at: chrono::Utc::now(),
    };
    app.store.upsert_approval(task, &mirror).await.unwrap();
    let approval = app.store.approvals(task).await.unwrap()[0].id;
    let now = chrono::Utc::now();
    let finding = app
        .store
        .upsert_finding(task, "analysis.md", "# Analysis", "h", now);
    finding.await.unwrap();
    let credential = post_json(
        app,
        "/api/v1/credentials",
        json!({"project": "shop", "name": "deploy", "kind": "token", "value": "deploy-123456"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let channel = post_json(
        app,
        "/api/v1/projects/shop/channels",
        json!({"kind": "webhook", "target": "http://127.0.0.1:9/hook", "credential": "deploy",
            "events": ["task_done"]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let notice = Notice {
        kind: NoticeKind::TaskDone,
        task_id: task,
        approval_id: None,
    };
    aiops::notify::enqueue(&app.store, &notice).await.unwrap();
    let notification = app.get_json("/api/v1/notifications").await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let delivery = {
        let mut tx = app.store.begin().await.unwrap();
        let new = aiops::model::NewDelivery {
            source: "github".into(),
            delivery_id: "d-1".into(),
            event: "ping".into(),
            action: None,
            repository: None,
            payload: serde_json::value::to_raw_value(&json!({"zen": "hi"})).unwrap(),
        };
        let kept = app.store.keep_payload(&new.payload);
        let id = aiops::store::deliveries::insert_received(&mut tx, &new, &kept)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let schedule = json!({"name": "nightly", "project": "shop", "prompt_template": "check",
        "cron": "0 3 * * *"});
    post_json(app, "/api/v1/schedules", schedule).await;
    let zed = UserSpec {
        login: "zed".into(),
        ..UserSpec::default()
    };
    users::add(&app.store, &zed).await.unwrap();
    users::grant(&app.store, "zed", Some("shop"), ProjectRole::Viewer)
        .await
        .unwrap();
    let rule = json!({"kind": "alert", "name": "shop-alerts", "project": "shop",
        "match": {"service": "shop"}});
    post_json(app, "/api/v1/routing-rules", rule).await;
    Fixtures {
        task,
        approval,
        credential,
        channel,
        notification,
        delivery,
    }
}

/// The request the matrix sends for operation `method` `path` and what it touches; None
/// for an operation this test does not know yet (which fails it).
fn request_for(
    method: &str,
    path: &str,
    fx: &Fixtures,
    n: usize,
) -> Option<(String, Value, Target)> {
    let (url, body, target) = match (method, path) {
        ("get", "/teams") => ("/teams".to_string(), Value::Null, Target::Nothing),
        ("get", "/projects") => ("/projects".into(), Value::Null, Target::Any),
        ("post", "/projects") => (
            "/projects".into(),
            json!({"name": format!("new-{n}"), "repo_url": "https://github.com/acme/new.git"}),
            Target::Every,
        ),
        ("get", "/projects/{name}") => ("/projects/shop".into(), Value::Null, Target::Shop),
        ("patch", "/projects/{name}") => (
            "/projects/shop".into(),
            json!({"conventions": "tabs"}),
            Target::Shop,
        ),
        ("delete", "/projects/{name}") => ("/projects/shop".into(), Value::Null, Target::Shop),
        ("get", "/projects/{name}/budget") => {
            ("/projects/shop/budget".into(), Value::Null, Target::Shop)
        }
        ("put", "/projects/{name}/budget") => (
            "/projects/shop/budget".into(),
            json!({"monthly_usd": 100}),
            Target::Shop,
        ),
        ("get", "/projects/{name}/channels") => {
            ("/projects/shop/channels".into(), Value::Null, Target::Shop)
        }
        ("post", "/projects/{name}/channels") => (
            "/projects/shop/channels".into(),
            json!({"kind": "webhook", "target": "http://127.0.0.1:9/other", "credential": "deploy"}),
            Target::Shop,
        ),
        ("delete", "/projects/{name}/channels/{id}") => (
            format!("/projects/shop/channels/{}", fx.channel),
            Value::Null,
            Target::Shop,
        ),
        ("get", "/notifications") => ("/notifications".into(), Value::Null, Target::Any),
        ("post", "/notifications/{id}/retry") => (
            format!("/notifications/{}/retry", fx.notification),
            Value::Null,
            Target::Shop,
        ),
        ("get", "/credentials") => ("/credentials".into(), Value::Null, Target::Any),
        ("post", "/credentials") => (
            "/credentials".into(),
            json!({"project": "shop", "name": format!("c-{n}"), "kind": "token", "value": "value-123456"}),
            Target::Shop,
        ),
        ("delete", "/credentials/{id}") => (
            format!("/credentials/{}", fx.credential),
            Value::Null,
            Target::Shop,
        ),
        ("get", "/tasks") => ("/tasks".into(), Value::Null, Target::Any),
        ("post", "/tasks") => (
            "/tasks".into(),
            json!({"project": "shop", "prompt": "more"}),
            Target::Shop,
        ),
        ("get", "/tasks/{id}") => (format!("/tasks/{}", fx.task), Value::Null, Target::Shop),
        ("post", "/tasks/{id}/cancel")
        | ("post", "/tasks/{id}/retry")
        | ("post", "/tasks/{id}/deliver") => (
            path.replace("{id}", &fx.task.to_string()),
            Value::Null,
            Target::Shop,
        ),
        ("get", "/tasks/{id}/findings/{name}") => (
            format!("/tasks/{}/findings/analysis.md", fx.task),
            Value::Null,
            Target::Shop,
        ),
        ("get", "/tasks/{id}/runs/{run_id}/log") => (
            format!("/tasks/{}/runs/1/log", fx.task),
            Value::Null,
            Target::Shop,
        ),
        ("get", "/approvals") => ("/approvals".into(), Value::Null, Target::Any),
        ("get", "/approvals/{id}") => (
            format!("/approvals/{}", fx.approval),
            Value::Null,
            Target::Shop,
        ),
        ("post", "/approvals/{id}/decision") => (
            format!("/approvals/{}/decision", fx.approval),
            json!({"decision": "approve"}),
            Target::Shop,
        ),
        ("get", "/events/stream") => ("/events/stream".into(), Value::Null, Target::Any),
        ("get", "/deliveries") => ("/deliveries".into(), Value::Null, Target::Any),
        ("post", "/deliveries/{id}/replay") => (
            format!("/deliveries/{}/replay", fx.delivery),
            Value::Null,
            Target::Every,
        ),
        ("get", "/schedules") => ("/schedules".into(), Value::Null, Target::Any),
        ("post", "/schedules") => (
            "/schedules".into(),
            json!({"name": format!("s-{n}"), "project": "shop", "prompt_template": "x", "cron": "0 4 * * *"}),
            Target::Shop,
        ),
        ("get", "/schedules/{name}")
        | ("patch", "/schedules/{name}")
        | ("delete", "/schedules/{name}") => (
            "/schedules/nightly".into(),
            if method == "patch" {
                json!({"enabled": false})
            } else {
                Value::Null
            },
            Target::Shop,
        ),
        ("get", "/routing-rules") => ("/routing-rules".into(), Value::Null, Target::Any),
        ("post", "/routing-rules") => (
            "/routing-rules".into(),
            json!({"kind": "alert", "name": format!("r-{n}"), "project": "shop", "match": {"a": "b"}}),
            Target::Shop,
        ),
        ("get", "/routing-rules/{name}")
        | ("patch", "/routing-rules/{name}")
        | ("delete", "/routing-rules/{name}") => (
            "/routing-rules/shop-alerts".into(),
            if method == "patch" {
                json!({"enabled": false})
            } else {
                Value::Null
            },
            Target::Shop,
        ),
        ("get", p) if p.starts_with("/analytics/") => (
            format!("{p}?from=2026-01-01&to=2026-02-01"),
            Value::Null,
            Target::Any,
        ),
        ("get", "/audit") => ("/audit".into(), Value::Null, Target::Nothing),
        ("get", "/users") => ("/users".into(), Value::Null, Target::Nothing),
        ("post", "/users") => (
            "/users".into(),
            json!({"login": format!("u-{n}")}),
            Target::Nothing,
        ),
        ("get", "/users/{login}") => ("/users/zed".into(), Value::Null, Target::Nothing),
        ("patch", "/users/{login}") => (
            "/users/zed".into(),
            json!({"status": "active"}),
            Target::Nothing,
        ),
        ("put", "/users/{login}/projects/{project}") => (
            "/users/zed/projects/shop".into(),
            json!({"role": "viewer"}),
            Target::Nothing,
        ),
        ("delete", "/users/{login}/projects/{project}") => (
            "/users/zed/projects/shop".into(),
            Value::Null,
            Target::Nothing,
        ),
        ("get", "/sessions") => ("/sessions".into(), Value::Null, Target::Nothing),
        ("delete", "/sessions/{id}") => ("/sessions/999999".into(), Value::Null, Target::Nothing),
        ("delete", "/users/{login}/sessions") => {
            ("/users/zed/sessions".into(), Value::Null, Target::Nothing)
        }
        ("get", "/tokens") => ("/tokens".into(), Value::Null, Target::Nothing),
        ("post", "/tokens") => (
            "/tokens".into(),
            json!({"name": format!("t-{n}"), "scopes": ["read"]}),
            Target::Nothing,
        ),
        ("delete", "/tokens/{name}") => {
            ("/tokens/no-such-token".into(), Value::Null, Target::Nothing)
        }
        ("post", "/me/identity-links/{token}") => (
            "/me/identity-links/0.0.00".into(),
            Value::Null,
            Target::Nothing,
        ),
        _ => return None,
    };
    Some((url, body, target))
}

/// What a caller of the matrix presents.
enum Credential {
    None,
    Bearer(String),
    /// The session cookie's value and the session's CSRF token.
    Session {
        secret: String,
        csrf: String,
    },
}

/// A new sign-in session of user `login`.
async fn session_of(app: &TestApp, login: &str) -> (aiops::sessions::SignedIn, Credential) {
    let user = app.store.user(login).await.unwrap();
    let client = aiops::sessions::Client {
        addr: "127.0.0.1",
        user_agent: Some("matrix"),
    };
    let signed_in = aiops::sessions::start(
        &app.store,
        &app.config,
        user.id,
        SessionMethod::Password,
        client,
    )
    .await
    .unwrap();
    let credential = Credential::Session {
        secret: signed_in.secret.clone(),
        csrf: signed_in.info.csrf_token.clone(),
    };
    (signed_in, credential)
}

/// A member of `shop` (or of `other`) with `role`, and a token with every scope.
async fn member(app: &TestApp, login: &str, project: &str, role: ProjectRole) -> String {
    let spec = UserSpec {
        login: login.into(),
        ..UserSpec::default()
    };
    let user = users::add(&app.store, &spec).await.unwrap();
    users::grant(&app.store, login, Some(project), role)
        .await
        .unwrap();
    token_of(app, user.id, login, Scopes::ALL, false).await
}

async fn token_of(app: &TestApp, id: i64, name: &str, scopes: Scopes, service: bool) -> String {
    let grant = TokenGrant {
        name: name.into(),
        scopes,
        project_id: None,
        expires_at: None,
        service,
    };
    auth::create_token_for(&app.store, id, &grant)
        .await
        .unwrap()
        .0
}

/// Every caller of the matrix with its credential.
async fn callers(app: &TestApp) -> Vec<(Who, Credential)> {
    let mut out = vec![
        (Who::Anonymous, Credential::None),
        (Who::Admin, Credential::Bearer(app.token.clone())),
    ];
    for (who, login, project, role) in [
        (Who::Viewer, "vera", "shop", ProjectRole::Viewer),
        (Who::Operator, "otto", "shop", ProjectRole::Operator),
        (Who::Approver, "anna", "shop", ProjectRole::Approver),
        (Who::Maintainer, "mia", "shop", ProjectRole::Maintainer),
        (
            Who::MaintainerOfOther,
            "olaf",
            "other",
            ProjectRole::Maintainer,
        ),
    ] {
        out.push((
            who,
            Credential::Bearer(member(app, login, project, role).await),
        ));
    }
    out.push((Who::MaintainerSession, session_of(app, "mia").await.1));
    let (expired, credential) = session_of(app, "mia").await;
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.store
        .set_session_expiry(expired.info.id, past)
        .await
        .unwrap();
    out.push((Who::ExpiredSession, credential));
    let revoked = member(app, "rex", "shop", ProjectRole::Maintainer).await;
    app.store.revoke_token("rex").await.unwrap();
    out.push((Who::Revoked, Credential::Bearer(revoked)));
    let disabled = member(app, "dora", "shop", ProjectRole::Maintainer).await;
    users::set_status(&app.store, "dora", UserStatus::Disabled)
        .await
        .unwrap();
    out.push((Who::Disabled, Credential::Bearer(disabled)));
    out.push((Who::Expired, Credential::Bearer(expired_token(app).await)));
    let bot = UserSpec {
        login: "bot".into(),
        service: true,
        ..UserSpec::default()
    };
    let bot = users::add(&app.store, &bot).await.unwrap();
    users::grant(&app.store, "bot", Some("shop"), ProjectRole::Maintainer)
        .await
        .unwrap();
    for scope in Scope::ALL {
        let name = format!("bot-{scope}");
        let token = token_of(app, bot.id, &name, Scopes::of(&[*scope]), true).await;
        out.push((Who::Service(*scope), Credential::Bearer(token)));
    }
    out
}

/// A maintainer's token that expires a moment after it is made, once it has.
async fn expired_token(app: &TestApp) -> String {
    let user = users::add(
        &app.store,
        &UserSpec {
            login: "eve".into(),
            ..UserSpec::default()
        },
    )
    .await
    .unwrap();
    users::grant(&app.store, "eve", Some("shop"), ProjectRole::Maintainer)
        .await
        .unwrap();
    let grant = TokenGrant {
        name: "eve".into(),
        scopes: Scopes::ALL,
        project_id: None,
        expires_at: Some(chrono::Utc::now() + chrono::Duration::milliseconds(300)),
        service: false,
    };
    let (token, _) = auth::create_token_for(&app.store, user.id, &grant)
        .await
        .unwrap();
    assert!(
        auth::authenticate(&app.store, &token).await.is_ok(),
        "live until it expires"
    );
    wait_for("the token to expire", Duration::from_secs(10), || {
        let (store, token) = (app.store.clone(), token.clone());
        async move {
            auth::authenticate(&store, &token)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
    token
}

/// The operations of the OpenAPI document, DELETEs last (they remove their fixture).
async fn operations(app: &TestApp) -> Vec<(String, String)> {
    let doc = app.get_json("/api/v1/openapi.json").await;
    let mut ops: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    ops.sort_by_key(|(method, _)| method == "delete");
    assert!(ops.len() >= 40, "{} operations", ops.len());
    ops
}

async fn call(
    app: &TestApp,
    method: &str,
    url: &str,
    body: &Value,
    credential: &Credential,
) -> StatusCode {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method, app.url(&format!("/api/v1{url}")));
    match credential {
        Credential::None => {}
        Credential::Bearer(token) => request = request.bearer_auth(token),
        Credential::Session { secret, csrf } => {
            request = request
                .header("Cookie", format!("{}={secret}", aiops::sessions::COOKIE))
                .header(aiops::sessions::CSRF_HEADER, csrf);
        }
    }
    if !body.is_null() {
        request = request.json(body);
    }
    request.send().await.unwrap().status()
}

/// For every operation of the OpenAPI document and every kind of caller, the answer is what
/// the operation's declared permission says: 401 without a live credential, 403 without
/// the permission, neither with it (200 for a read).
async fn every_operation_answers_as_its_permission_declares(db: Db) {
    let app = TestApp::spawn(db).await;
    let fx = fixtures(&app).await;
    let callers = callers(&app).await;
    let mut checked = 0;
    for (n, (method, path)) in operations(&app).await.into_iter().enumerate() {
        let permission = permissions::declared(&method, &path)
            .unwrap_or_else(|| panic!("{method} {path} declares no permission"));
        let (url, body, target) = request_for(&method, &path, &fx, n)
            .unwrap_or_else(|| panic!("{method} {path}: the matrix has no request for it"));
        let mut ordered: Vec<_> = callers
            .iter()
            .map(|(who, credential)| (*who, credential, expected(*who, permission, target)))
            .collect();
        ordered.sort_by_key(|(_, _, expect)| *expect == Expect::Allowed);
        for (who, credential, expect) in ordered {
            let status = call(&app, &method, &url, &body, credential).await;
            let what = format!("{method} {path} as {who:?} ({permission:?} on {target:?})");
            match expect {
                Expect::Unauthorized => assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}"),
                Expect::Forbidden => assert_eq!(status, StatusCode::FORBIDDEN, "{what}"),
                // The task has no run 1: its log is 404 past the check.
                Expect::Allowed if path.contains("/runs/") => {
                    assert_eq!(status, StatusCode::NOT_FOUND, "{what}")
                }
                Expect::Allowed if method == "get" => assert_eq!(status, StatusCode::OK, "{what}"),
                Expect::Allowed => assert!(
                    !matches!(status.as_u16(), 401 | 403) && !status.is_server_error(),
                    "{what}: {status}"
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 40 * callers.len() - 1, "{checked} calls");
}

/// Listings show a member only the projects it belongs to.
async fn reads_are_filtered_to_the_members_projects(db: Db) {
    let app = TestApp::spawn(db).await;
    fixtures(&app).await;
    post_json(
        &app,
        "/api/v1/tasks",
        json!({"project": "other", "prompt": "elsewhere"}),
    )
    .await;
    let token = member(&app, "olaf", "other", ProjectRole::Viewer).await;
    let read = |path: &'static str| {
        let request = app.client.get(app.url(path)).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let projects = read("/api/v1/projects").await;
    let names: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other"]);
    let tasks = read("/api/v1/tasks").await;
    let items = tasks["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{tasks}");
    assert_eq!(items[0]["project"], "other");
    for path in [
        "/api/v1/approvals",
        "/api/v1/notifications",
        "/api/v1/deliveries",
    ] {
        let page = read(path).await;
        assert_eq!(page["items"], json!([]), "{path}: {page}");
    }
    for path in [
        "/api/v1/credentials",
        "/api/v1/schedules",
        "/api/v1/routing-rules",
    ] {
        assert_eq!(read(path).await, json!([]), "{path}");
    }
    // The admin sees both.
    let all = app.get_json("/api/v1/tasks").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

/// A token restricted to one project, and a token of a user whose role is smaller than
/// the token's scopes: neither does more than both allow.
async fn a_token_never_has_more_rights_than_its_user(db: Db) {
    let app = TestApp::spawn(db).await;
    fixtures(&app).await;
    let user = users::add(
        &app.store,
        &UserSpec {
            login: "ivy".into(),
            ..UserSpec::default()
        },
    )
    .await
    .unwrap();
    users::grant(&app.store, "ivy", None, ProjectRole::Maintainer)
        .await
        .unwrap();
    users::grant(&app.store, "ivy", Some("shop"), ProjectRole::Viewer)
        .await
        .unwrap();
    let shop = app.store.project("shop").await.unwrap().id;
    let grant = TokenGrant {
        name: "ivy-shop".into(),
        scopes: Scopes::ALL,
        project_id: Some(shop),
        expires_at: None,
        service: false,
    };
    let (restricted, _) = auth::create_token_for(&app.store, user.id, &grant)
        .await
        .unwrap();
    let status = |path: &str, token: &str| {
        let request = app.client.get(app.url(path)).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        status("/api/v1/projects/shop", &restricted).await,
        StatusCode::OK
    );
    assert_eq!(
        status("/api/v1/projects/other", &restricted).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("/api/v1/audit", &restricted).await,
        StatusCode::FORBIDDEN,
        "admin scope, no admin role"
    );
    let task = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(&restricted)
        .json(&json!({"project": "other", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(task.status(), StatusCode::FORBIDDEN);
    // The audit log names the user and the token of a refused attempt.
    let audit = app.get_json("/api/v1/audit?principal=ivy").await;
    let entry = &audit["items"][0];
    assert_eq!(entry["outcome"], "403", "{audit}");
    assert_eq!(entry["detail"]["via"], "token:ivy-shop", "{audit}");
}

/// The first start creates the admin user with a password and a token it owns.
async fn the_first_start_creates_the_admin_user(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = users::detail(&app.store, "admin").await.unwrap();
    assert!(admin.user.has_password);
    assert_eq!(admin.user.kind, aiops::model::PrincipalKind::User);
    let tokens = app.store.list_tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].owner, "admin");
    assert!(!tokens[0].service);
    assert_eq!(tokens[0].scopes, Scopes::ALL);
    let listed = serde_json::to_string(&app.store.list_users().await.unwrap()).unwrap();
    assert!(!listed.contains("argon2"), "no hash is shown: {listed}");
    // Another start of the same store makes no second admin.
    assert!(users::bootstrap_admin(&app.store).await.unwrap().is_none());
}

on_both_databases!(
    every_operation_answers_as_its_permission_declares,
    reads_are_filtered_to_the_members_projects,
    a_token_never_has_more_rights_than_its_user,
    the_first_start_creates_the_admin_user,
);
