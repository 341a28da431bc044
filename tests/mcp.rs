//! The MCP server with a real MCP client (rmcp's client side) over both transports: Streamable
//! HTTP against the real service on loopback, and stdio against the real `aiops mcp` child
//! process bridged to it. A task runs on the simulator, is read and approved through MCP, and
//! its pipeline resumes to DONE; the permission matrix walks the one table over every role.
//! `oauth.rs`: aiops as the OAuth authorization server of `/mcp`. On SQLite and PostgreSQL.

mod common;
#[path = "mcp/oauth.rs"]
mod oauth;

use std::time::Duration;

use aiops::auth::{self, Role};
use aiops::mcp::Aiops;
use aiops::mcp::permissions::PERMISSIONS;
use aiops::model::{ProjectRole, Scope, Scopes};
use aiops::users::{self, UserSpec};
use common::pipeline::{engine_app, wait_status};
use common::{Db, TestApp, wait_for};
use oauth::{
    an_expired_access_token_is_refused, every_oauth_refusal_answers_as_the_specs_say,
    the_sdk_client_connects_through_oauth,
};
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, CallToolResult, ReadResourceRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

const WAIT: Duration = Duration::from_secs(60);

/// An MCP client of the service's `/mcp` over Streamable HTTP, with `token`.
async fn http_client(app: &TestApp, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake over HTTP")
}

/// An MCP client of a real `aiops mcp` child process relaying to the service, with `token`.
async fn stdio_client(app: &TestApp, token: &str) -> Result<Client, String> {
    let url = app.url("/mcp");
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiops")).configure(|c| {
        c.arg("mcp")
            .env("AIOPS_URL", &url)
            .env("AIOPS_TOKEN", token)
            .env_remove("AIOPS_CONFIG");
    });
    let child = TokioChildProcess::new(command).map_err(|e| e.to_string())?;
    ().serve(child).await.map_err(|e| e.to_string())
}

/// Calls `tool` with `arguments`.
async fn call(client: &Client, tool: &'static str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// The structured content of a successful call, and its text.
async fn ok(client: &Client, tool: &'static str, arguments: Value) -> (Value, String) {
    let result = call(client, tool, arguments).await;
    let text = text_of(&result);
    assert_ne!(result.is_error, Some(true), "{tool} failed: {text}");
    (
        result
            .structured_content
            .clone()
            .expect("structured content"),
        text,
    )
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// A task created, read, approved and resumed to DONE, all through `client`.
async fn task_to_done_through(client: &Client, app: &TestApp) {
    let version = client
        .peer_info()
        .map(|info| info.protocol_version.to_string());
    assert_eq!(
        version.as_deref(),
        Some("2025-11-25"),
        "the revision rmcp's client negotiates"
    );
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let mut expected = Aiops::tool_names();
    expected.sort();
    assert_eq!(tools, expected);
    assert_eq!(tools.len(), 9, "{tools:?}");

    // Without a project, aiops suggests the one the prompt names and creates nothing.
    let (guess, text) = ok(
        client,
        "create_task",
        json!({"prompt": "fix the NPE in shopping_md"}),
    )
    .await;
    assert_eq!(guess["created"], false, "{guess}");
    assert_eq!(guess["candidates"], json!(["shopping-md"]), "{text}");

    let (created, _) = ok(
        client,
        "create_task",
        json!({"project": "shopping-md", "team": "bugfix", "priority": "high",
               "prompt": "fix the NPE in shopping_md"}),
    )
    .await;
    let id = created["task"]["id"].as_i64().expect("a task id");
    assert_eq!(created["task"]["source"], "chat");
    wait_status(app, id, &["awaiting_approval"]).await;

    let (findings, markdown) = ok(client, "get_findings", json!({"task": id})).await;
    assert!(
        !findings["names"].as_array().unwrap().is_empty(),
        "{findings}"
    );
    assert!(markdown.contains("## "), "{markdown}");
    let approval = wait_for("a pending approval with its snapshot", WAIT, || async {
        let (page, _) = ok(client, "list_pending_approvals", json!({})).await;
        assert_eq!(page["may_decide"], true);
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["may_decide"] == true),
            "{page}"
        );
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["task_id"] == id && !a["snapshot_at"].is_null())
            .and_then(|a| a["id"].as_i64())
    })
    .await;
    let (task, text) = ok(client, "get_task", json!({"task": id})).await;
    assert_eq!(task["task"]["status"], "awaiting_approval");
    assert!(text.contains(&format!("approval {approval}")), "{text}");
    let (diff, _) = ok(client, "get_diff", json!({"task": id})).await;
    assert_eq!(diff["approval_id"], approval, "{diff}");
    let resource = client
        .read_resource(ReadResourceRequestParams::new(format!(
            "aiops://tasks/{id}/findings"
        )))
        .await
        .expect("findings as a resource");
    assert_eq!(resource.contents.len(), 1);

    let (decided, text) = ok(
        client,
        "decide_approval",
        json!({"approval": approval, "decision": "approve", "comment": "ship it"}),
    )
    .await;
    assert_eq!(decided["approval"]["channel"], "mcp", "{text}");
    let again = call(
        client,
        "decide_approval",
        json!({"approval": approval, "decision": "reject"}),
    )
    .await;
    assert_eq!(again.is_error, Some(true));
    assert!(
        text_of(&again).contains("already decided: approve"),
        "{}",
        text_of(&again)
    );
    wait_status(app, id, &["done"]).await;

    let audit = app.get_json("/api/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["channel"] == "mcp")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "mcp tools/call create_task",
        "mcp tools/call decide_approval",
        "decide approval: approve",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

/// The app running the simulator, with project `shopping-md` (where the one caller, who asks
/// for the task, may also approve it).
async fn app_with_project(db: Db) -> (TestApp, tempfile::TempDir) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |c| c.pull_requests.enabled = false).await;
    let policy = json!({"approval_policy": {"self_approval": true}});
    common::pipeline::add_project(&app, "shopping-md", repo.path(), policy).await;
    (app, repo)
}

async fn http_runs_a_task_to_done(db: Db) {
    let (app, _repo) = app_with_project(db).await;
    let client = http_client(&app, &app.token).await;
    task_to_done_through(&client, &app).await;
    client.cancel().await.unwrap();
}

async fn stdio_runs_a_task_to_done(db: Db) {
    let (app, _repo) = app_with_project(db).await;
    let client = stdio_client(&app, &app.token)
        .await
        .expect("aiops mcp starts");
    task_to_done_through(&client, &app).await;
    client.cancel().await.unwrap();
}

/// Arguments that reach the permission check on project `shopping-md` and then end in a
/// refusal of another kind (an unknown team, a revise without comment) or an answer, never
/// in `forbidden` for someone allowed.
fn probe_arguments(tool: &str, task: i64, spare: i64, approval: i64) -> Value {
    match tool {
        "create_task" => json!({"project": "shopping-md", "team": "no-such-team", "prompt": "x"}),
        "decide_approval" => json!({"approval": approval, "decision": "revise"}),
        "cancel_task" => json!({"task": spare}),
        "get_task" | "get_findings" | "get_diff" => json!({"task": task}),
        "list_tasks" | "list_pending_approvals" => json!({"project": "shopping-md"}),
        _ => json!({}),
    }
}

/// A user holding `role` in `project` and a token of theirs with `scopes`.
async fn holder(
    app: &TestApp,
    login: &str,
    project: &str,
    role: ProjectRole,
    scopes: &[Scope],
) -> String {
    let spec = UserSpec {
        login: login.into(),
        ..UserSpec::default()
    };
    users::add(&app.store, &spec).await.unwrap();
    users::grant(&app.store, login, Some(project), role)
        .await
        .unwrap();
    let id = app.store.user(login).await.unwrap().id;
    let grant = auth::TokenGrant {
        name: format!("{login}-mcp"),
        scopes: Scopes::of(scopes),
        project_id: None,
        expires_at: None,
        service: false,
    };
    auth::create_token_for(&app.store, id, &grant)
        .await
        .unwrap()
        .0
}

/// Every tool × {each project role, a maintainer of another project, an approver whose token
/// only reads, an admin}, from the one table in the API's terms: allowed exactly when the
/// role in the task's project and the token's scope give the declared permission; and the
/// listings show nothing of a project the caller is not in.
async fn permission_matrix_over_tools_and_roles(db: Db) {
    let (app, _repo) = app_with_project(db).await;
    let other = common::git_repo();
    common::pipeline::add_project(&app, "other", other.path(), json!({})).await;
    let task = common::pipeline::create_task(&app, "shopping-md", "fix the NPE", "normal").await;
    let spare = common::pipeline::create_task(&app, "shopping-md", "another", "low").await;
    wait_status(&app, task, &["awaiting_approval"]).await;
    let pending = app
        .get_json(&format!("/api/v1/approvals?task={task}&status=pending"))
        .await;
    let approval = pending["items"][0]["id"]
        .as_i64()
        .expect("a pending approval");
    let every = [Scope::Read, Scope::Write, Scope::Approve];
    let mut callers: Vec<(String, String, Option<ProjectRole>, bool)> = Vec::new();
    for role in [
        ProjectRole::Viewer,
        ProjectRole::Operator,
        ProjectRole::Approver,
        ProjectRole::Maintainer,
    ] {
        let token = holder(&app, &format!("p-{role}"), "shopping-md", role, &every).await;
        callers.push((format!("p-{role}"), token, Some(role), true));
    }
    let elsewhere = holder(&app, "elsewhere", "other", ProjectRole::Maintainer, &every).await;
    callers.push(("elsewhere".into(), elsewhere, None, true));
    let reader = holder(
        &app,
        "reader",
        "shopping-md",
        ProjectRole::Approver,
        &[Scope::Read],
    )
    .await;
    callers.push(("reader".into(), reader, Some(ProjectRole::Approver), false));
    callers.push((
        "admin".into(),
        app.token.clone(),
        Some(ProjectRole::Maintainer),
        true,
    ));

    let tools = Aiops::tool_names();
    for tool in &tools {
        assert!(
            PERMISSIONS.iter().any(|p| p.operation == tool.as_str()),
            "tool {tool} has no row in the permission table"
        );
    }
    for (who, token, role_here, writes) in &callers {
        let client = http_client(&app, token).await;
        for declared in PERMISSIONS
            .iter()
            .filter(|p| tools.iter().any(|t| t == p.operation))
        {
            let needed = declared
                .permission
                .project_role()
                .expect("every MCP operation needs a project role");
            let scoped = *writes || declared.permission.scope() == Scope::Read;
            let lists_anywhere = declared.operation == "list_projects";
            let allowed = scoped
                && (role_here.is_some_and(|r| r >= needed)
                    || (lists_anywhere && *who == "elsewhere"));
            let result = call(
                &client,
                declared.operation,
                probe_arguments(declared.operation, task, spare, approval),
            )
            .await;
            let code = result
                .structured_content
                .as_ref()
                .and_then(|s| s["error"]["code"].as_str());
            assert_eq!(
                code != Some("forbidden"),
                allowed,
                "{} as {who}: {}",
                declared.operation,
                text_of(&result)
            );
        }
        client.cancel().await.unwrap();
    }

    // What the maintainer of `other` lists holds nothing of `shopping-md`.
    let client = http_client(&app, &callers[4].1).await;
    let (projects, _) = ok(&client, "list_projects", json!({})).await;
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");
    assert_eq!(projects["items"][0]["name"], "other");
    let (tasks, _) = ok(&client, "list_tasks", json!({})).await;
    assert_eq!(tasks["items"], json!([]), "{tasks}");
    let (pending, _) = ok(&client, "list_pending_approvals", json!({})).await;
    assert_eq!(pending["items"], json!([]), "{pending}");
    let (guess, _) = ok(
        &client,
        "create_task",
        json!({"prompt": "fix the NPE in shopping_md"}),
    )
    .await;
    assert_eq!(
        guess["candidates"],
        json!([]),
        "a project's name is not revealed: {guess}"
    );
    client.cancel().await.unwrap();

    // Each pending approval says whether this caller may decide it.
    for (index, may) in [(0, false), (2, true)] {
        let client = http_client(&app, &callers[index].1).await;
        let (page, text) = ok(&client, "list_pending_approvals", json!({})).await;
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{page}");
        assert!(
            items.iter().all(|a| a["may_decide"] == may),
            "{} {page}",
            callers[index].0
        );
        assert_eq!(
            text.contains("you may read it, not decide it"),
            !may,
            "{text}"
        );
        client.cancel().await.unwrap();
    }

    let audit = app.get_json("/api/v1/audit?limit=200").await;
    let refused = |who: &str, outcome: &str| {
        audit["items"].as_array().unwrap().iter().any(|e| {
            e["action"] == "mcp tools/call decide_approval"
                && e["outcome"] == outcome
                && e["principal_name"] == who
        })
    };
    assert!(
        refused("p-viewer", "forbidden"),
        "the viewer's refused decision is audited"
    );
    assert!(
        refused("elsewhere", "error"),
        "so is another project's maintainer's"
    );
}

async fn tokens_are_checked_and_older_revisions_served(db: Db) {
    let app = TestApp::spawn(db).await;
    let (token, _) = auth::create_token(&app.store, "gone", Role::Admin)
        .await
        .unwrap();
    app.store.revoke_token("gone").await.unwrap();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    for bearer in [None, Some(token.as_str()), Some("aiops_not-a-token")] {
        let mut request = app
            .client
            .post(app.url("/mcp"))
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", app.base);
        assert!(
            challenge.starts_with("Bearer ")
                && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
            "{challenge}"
        );
        assert_eq!(
            bearer.is_some(),
            challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
        let metadata: Value = app
            .client
            .get(&metadata_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(metadata["resource"], format!("{}/mcp", app.base));
        assert_eq!(
            metadata["authorization_servers"],
            json!([app.base]),
            "aiops authorizes /mcp itself"
        );
    }
    // The stdio bridge says why and stops; its client never gets a session.
    let refused = stdio_client(&app, &token).await.err().unwrap_or_default();
    assert!(refused.contains("refused the token (401)"), "{refused}");

    // With a valid token, a client of the 2025-06-18 revision (initialize, then requests with
    // the MCP-Protocol-Version header) is served without a session.
    let post = |body: Value| {
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(&app.token)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(&body)
    };
    let response = post(initialize).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["result"]["protocolVersion"], "2025-06-18",
        "{answer}"
    );
    assert_eq!(answer["result"]["serverInfo"]["name"], "aiops");
    let response = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["result"]["tools"].as_array().map(Vec::len),
        Some(9),
        "{answer}"
    );
}

/// A list longer than a page comes in pages that hold every item once, in order.
async fn long_lists_are_paged_with_a_cursor(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    common::pipeline::add_project(&app, "shop", repo.path(), json!({})).await;
    let client = http_client(&app, &app.token).await;
    let mut created = Vec::new();
    for n in 0..30 {
        let (task, _) = ok(
            &client,
            "create_task",
            json!({"project": "shop", "team": "bugfix", "prompt": format!("task {n}")}),
        )
        .await;
        created.push(task["task"]["id"].as_i64().unwrap());
    }
    let (first, text) = ok(&client, "list_tasks", json!({"project": "shop"})).await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a cursor after a full page");
    assert!(text.contains(&format!("cursor \"{cursor}\"")), "{text}");
    let (second, _) = ok(
        &client,
        "list_tasks",
        json!({"project": "shop", "cursor": cursor}),
    )
    .await;
    assert!(second["next_cursor"].is_null());
    let listed: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|page| page["items"].as_array().unwrap().iter())
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    created.reverse();
    assert_eq!(listed, created);
    let bad = call(&client, "list_tasks", json!({"cursor": "nonsense"})).await;
    assert_eq!(bad.structured_content.unwrap()["error"]["field"], "cursor");
    client.cancel().await.unwrap();
}

on_both_databases!(
    long_lists_are_paged_with_a_cursor,
    http_runs_a_task_to_done,
    stdio_runs_a_task_to_done,
    permission_matrix_over_tools_and_roles,
    tokens_are_checked_and_older_revisions_served,
    the_sdk_client_connects_through_oauth,
    every_oauth_refusal_answers_as_the_specs_say,
    an_expired_access_token_is_refused,
);
