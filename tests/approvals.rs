//! The approval gate end to end: real pipelines (the simulator), real git remotes, a
//! stand-in GitHub API, the decision API, the signed approval page and the CLI, on SQLite
//! and PostgreSQL.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aiops::approvals::LinkSigner;
use aiops::config::Config;
use aiops::signing::sign_sha256;
use common::chat::{
    ChatStandIn, Service, button, click_body, link_slack_approver, post_signed_click,
};
use common::pipeline::{engine_app, sim_command, task_detail};
use common::stand_in::github_stand_in;
use common::{Db, TestApp, fixture, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "webhook-secret-for-tests";
const SLACK_SIGNING_SECRET: &str = "slack-signing-secret-for-tests";

/// The app running the simulator; `flags` only for the first run of a task (a resumed run
/// follows the decision alone).
async fn gate_app(db: Db, flags: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let start = sim_command(r#"-p "/ai-party:party --team {team} {prompt}""#, flags);
    engine_app(db, "", |c| {
        c.engine.command = start;
        adjust(c);
    })
    .await
}

/// A bare repository cloned from a fresh one: the project's remote.
fn bare_remote() -> (tempfile::TempDir, PathBuf) {
    let source = common::git_repo();
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(source.path())
        .arg(&bare)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, bare)
}

fn branch_exists(repo: &Path, branch: &str) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.post(path).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers a project. These tests have one person (the admin token) ask for the work and
/// decide it, so their projects allow self-approval; `tests/policy.rs` covers the default.
async fn add_project(app: &TestApp, mut body: Value) {
    body["approval_policy"] = json!({"self_approval": true});
    let (status, answer) = post_json(app, "/api/v1/projects", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

async fn create_task(app: &TestApp, project: &str) -> i64 {
    let (status, task) = post_json(
        app,
        "/api/v1/tasks",
        json!({"project": project, "prompt": "Fix the checkout rounding bug", "team": "bugfix"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task["id"].as_i64().unwrap()
}

/// A task of a fresh local project (no pull requests) run to its first approval request,
/// shown: the app, the project's checkout (keep it), the task id and the approval id.
async fn awaiting_approval(db: Db, project: &str) -> (TestApp, tempfile::TempDir, i64, i64) {
    let repo = common::git_repo();
    let app = gate_app(db, "", |c| c.pull_requests.enabled = false).await;
    add_project(&app, json!({"name": project, "local_path": repo.path()})).await;
    let id = create_task(&app, project).await;
    wait_status(&app, id, "awaiting_approval").await;
    let approval = shown_approval(&app, id).await["id"].as_i64().unwrap();
    (app, repo, id, approval)
}

async fn wait_status(app: &TestApp, id: i64, status: &str) -> Value {
    wait_for(&format!("task {id} to be {status}"), WAIT, || async {
        let detail = task_detail(app, id).await;
        assert!(
            detail["status"] == status
                || !["done", "failed", "rolled_back", "cancelled"]
                    .contains(&detail["status"].as_str().unwrap()),
            "task {id} ended {} ({}) while waiting for {status}",
            detail["status"],
            detail["status_reason"]
        );
        (detail["status"] == status).then_some(detail)
    })
    .await
}

/// The task's pending approval once the engine has shown it (diff and findings taken).
async fn shown_approval(app: &TestApp, task_id: i64) -> Value {
    wait_for("a pending approval with its snapshot", WAIT, || async {
        let page: Value = app
            .get_json(&format!("/api/v1/approvals?task={task_id}&status=pending"))
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| !a["snapshot_at"].is_null())
            .cloned()
    })
    .await
}

async fn decide(app: &TestApp, approval: i64, body: Value) -> (StatusCode, Value) {
    post_json(app, &format!("/api/v1/approvals/{approval}/decision"), body).await
}

fn runs_of_kind(detail: &Value, kind: &str) -> usize {
    detail["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .count()
}

/// Path of the approval page a signed link opens.
fn link_path(app: &TestApp, approval: i64) -> String {
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    format!(
        "/approvals/{}",
        LinkSigner::new(&app.vault).token(approval, expires)
    )
}

// ---------------------------------------------------------------------------------------

async fn issue_to_pull_request(db: Db) {
    let (github, recorded) = github_stand_in().await;
    let slack = ChatStandIn::start(Service::Slack).await;
    let (_remote_dir, remote) = bare_remote();
    let (api, slack_api) = (github.clone(), format!("{}/api", slack.url));
    let app = gate_app(db, "", |c| {
        c.github.api_url = api;
        c.github.on_issue_opened = true;
        c.notify.slack_api_url = slack_api;
    })
    .await;
    add_project(
        &app,
        json!({"name": "hello", "repo_url": format!("file://{}", remote.display()), "github_repo": "Codertocat/Hello-World"}),
    )
    .await;
    for (name, kind, value) in [
        ("github-webhook", "webhook_secret", SECRET),
        ("github-token", "token", "ghs_test_token_not_real"),
        (
            "slack-signing-secret",
            "webhook_secret",
            SLACK_SIGNING_SECRET,
        ),
        ("slack-bot", "token", "xoxb-bot-token-for-tests"),
    ] {
        let (status, answer) = post_json(
            &app,
            "/api/v1/credentials",
            json!({"name": name, "kind": kind, "value": value}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (status, channel) = post_json(
        &app,
        "/api/v1/projects/hello/channels",
        json!({"kind": "slack", "target": "C07OPS00001", "credential": "slack-bot",
               "events": ["approval_requested", "task_done"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    let body = fixture("github/issues.opened.json");
    let delivered: Value = app
        .client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", "e2e-1")
        .header("X-Hub-Signature-256", sign_sha256(SECRET.as_bytes(), &body))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task_id = delivered["task_id"].as_i64().expect("a task");
    wait_status(&app, task_id, "awaiting_approval").await;
    let approval = shown_approval(&app, task_id).await;
    assert_eq!(approval["kind"], "result");
    let detail: Value = app
        .get_json(&format!("/api/v1/approvals/{}", approval["id"]))
        .await;
    assert!(
        detail["diff_files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "SIMULATED_CHANGE.md"),
        "{detail}"
    );
    assert!(!detail["findings"].as_array().unwrap().is_empty());
    // The sticky comment links to the approval page.
    let link = wait_for("the comment to link the approval page", WAIT, || async {
        recorded
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|(kind, _, body)| {
                let text = body["body"].as_str().unwrap_or_default();
                (kind == "edit" && text.contains("/approvals/")).then(|| {
                    let start = text.find("/approvals/").unwrap();
                    text[start..].split(')').next().unwrap().to_string()
                })
            })
    })
    .await;
    let page = app.client.get(app.url(&link)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("SIMULATED_CHANGE.md"));

    // Slack got the request as Block Kit with buttons; a correctly signed click approves.
    let posted = wait_for("the Slack message", WAIT, || async {
        slack.received("/api/chat.postMessage").first().cloned()
    })
    .await;
    let message = posted.json();
    assert_eq!(message["channel"], "C07OPS00001");
    assert_eq!(
        posted.header("authorization"),
        Some("Bearer xoxb-bot-token-for-tests")
    );
    let approve = button(&message, "aiops_approve");
    button(&message, "aiops_reject");
    link_slack_approver(&app, "hello").await;
    let body = click_body(
        approve["value"].as_str().unwrap(),
        "aiops_approve",
        &slack.url_of("/actions/T01TEAM0001/1/e2e"),
    );
    let clicked = post_signed_click(&app, SLACK_SIGNING_SECRET, body).await;
    assert_eq!(clicked.status(), StatusCode::OK);
    let outcome = wait_for("Slack's message to show the outcome", WAIT, || async {
        slack
            .received("/actions/T01TEAM0001/1/e2e")
            .first()
            .cloned()
    })
    .await;
    assert!(
        outcome.json().to_string().contains("minji-kim"),
        "{:?}",
        outcome.json()
    );
    let done = wait_status(&app, task_id, "done").await;
    assert_eq!(runs_of_kind(&done, "resume"), 1);
    let decided = app
        .get_json(&format!("/api/v1/approvals/{}", approval["id"]))
        .await;
    assert_eq!(decided["channel"], "slack");
    assert_eq!(decided["decided_by"], "minji-kim");
    // The simulator was resumed with the plugin's approve prompt.
    let resume_log = app
        .client
        .get(app.url(&format!(
            "/api/v1/tasks/{task_id}/runs/{}/log",
            done["runs"].as_array().unwrap().iter().find(|r| r["kind"] == "resume").unwrap()["id"]
        )))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(resume_log.contains("approve"), "{resume_log}");
    let branch = done["branch"].as_str().unwrap().to_string();
    assert!(
        branch_exists(&remote, &branch),
        "the remote received {branch}"
    );
    let log = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&remote)
        .args(["log", "-1", "--format=%an <%ae>|%s", &branch])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout).to_string();
    assert!(log.starts_with("aiops <aiops@localhost>|aiops: "), "{log}");
    assert_eq!(done["pr_number"], 7, "{done}");
    assert_eq!(
        done["pr_url"],
        "https://github.example/Codertocat/Hello-World/pull/7"
    );
    let calls = recorded.lock().unwrap().clone();
    let pulls: Vec<_> = calls.iter().filter(|(kind, _, _)| kind == "pull").collect();
    assert_eq!(pulls.len(), 1, "{calls:#?}");
    let (_, path, pr) = pulls[0];
    assert_eq!(path, "/repos/Codertocat/Hello-World/pulls");
    assert_eq!(pr["head"], branch);
    assert_eq!(pr["base"], "main");
    assert!(pr["body"].as_str().unwrap().contains("Closes #1"), "{pr}");
    assert_eq!(pr["authorization"], "Bearer ghs_test_token_not_real");
    wait_for("the comment to show the pull request", WAIT, || async {
        recorded
            .lock()
            .unwrap()
            .iter()
            .any(|(kind, _, body)| {
                kind == "edit"
                    && body["body"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("https://github.example/Codertocat/Hello-World/pull/7")
            })
            .then_some(())
    })
    .await;
    assert_eq!(
        recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|(kind, _, _)| kind == "create")
            .count(),
        1,
        "one sticky comment"
    );
}

async fn revise_then_approve_and_reject(db: Db) {
    let (_remote_dir, remote) = bare_remote();
    let app = gate_app(db, "", |c| c.pull_requests.enabled = false).await;
    add_project(
        &app,
        json!({"name": "shop", "repo_url": format!("file://{}", remote.display())}),
    )
    .await;
    // Revise: the pipeline works again and asks again.
    let revised = create_task(&app, "shop").await;
    wait_status(&app, revised, "awaiting_approval").await;
    let first = shown_approval(&app, revised).await;
    let first_id = first["id"].as_i64().unwrap();
    let (status, error) = decide(&app, first_id, json!({"decision": "revise"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("comment"),
        "{error}"
    );
    let (status, _) = decide(
        &app,
        first_id,
        json!({"decision": "revise", "comment": "add a regression test"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let second = wait_for("the pipeline to ask again", WAIT, || async {
        let approval = shown_approval(&app, revised).await;
        (approval["id"] != first["id"]).then_some(approval)
    })
    .await;
    let detail = wait_status(&app, revised, "awaiting_approval").await;
    assert_eq!(runs_of_kind(&detail, "resume"), 1);
    let (status, _) = decide(
        &app,
        second["id"].as_i64().unwrap(),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_status(&app, revised, "done").await;

    // Reject: rolled back, no branch and no worktree left.
    let rejected = create_task(&app, "shop").await;
    wait_status(&app, rejected, "awaiting_approval").await;
    let approval = shown_approval(&app, rejected).await;
    let exec = app.store.task_exec(rejected).await.unwrap();
    let (repo, worktree, branch) = (
        PathBuf::from(exec.repo_path.unwrap()),
        PathBuf::from(exec.worktree_path.unwrap()),
        exec.branch.unwrap(),
    );
    assert!(worktree.exists() && branch_exists(&repo, &branch));
    let (status, _) = decide(
        &app,
        approval["id"].as_i64().unwrap(),
        json!({"decision": "reject", "comment": "wrong approach"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_status(&app, rejected, "rolled_back").await;
    assert_eq!(done["phase"], "ROLLED_BACK");
    assert!(!worktree.exists(), "the worktree is removed");
    assert!(!branch_exists(&repo, &branch), "branch {branch} is deleted");
}

/// The plugin's hook ignores sessions over 4 hours old; aiops applies the decision itself.
async fn late_decision_takes_effect(db: Db) {
    let repo = common::git_repo();
    let app = gate_app(db, "--sim-tool-approval", |c| {
        c.pull_requests.enabled = false;
    })
    .await;
    add_project(&app, json!({"name": "late", "local_path": repo.path()})).await;
    let id = create_task(&app, "late").await;
    wait_status(&app, id, "awaiting_approval").await;
    let approval = shown_approval(&app, id).await;
    assert_eq!(approval["kind"], "tool");
    let exec = app.store.task_exec(id).await.unwrap();
    let worktree = PathBuf::from(exec.worktree_path.unwrap());
    let session_dir = worktree
        .join(".party/sessions")
        .join(exec.party_session_id.unwrap());
    let session_file = session_dir.join("session.json");
    let mut session: Value =
        serde_json::from_slice(&std::fs::read(&session_file).unwrap()).unwrap();
    session["created_at"] = json!((chrono::Utc::now() - chrono::Duration::hours(5)).to_rfc3339());
    std::fs::write(&session_file, serde_json::to_vec_pretty(&session).unwrap()).unwrap();

    let (status, _) = decide(
        &app,
        approval["id"].as_i64().unwrap(),
        json!({"decision": "approve", "comment": "next morning"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The resumed pipeline went on past the tool approval to the result approval.
    let result = wait_for(
        "the result approval after the tool approval",
        WAIT,
        || async {
            let approval = shown_approval(&app, id).await;
            (approval["kind"] == "result").then_some(approval)
        },
    )
    .await;
    assert_eq!(result["status"], "pending");
    let file = session_dir
        .join("approvals")
        .join(format!("{}.json", approval["request_id"].as_str().unwrap()));
    let decided: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(decided["status"], "decided", "{decided}");
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["decision_comment"], "next morning");
    let events = std::fs::read_to_string(session_dir.join("events.ndjson")).unwrap();
    assert!(events.contains("decision_made"));
    let detail = task_detail(&app, id).await;
    assert_eq!(runs_of_kind(&detail, "resume"), 1);
    let events = app
        .store
        .events_after(0, Some(id), None, 1000)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "decision_applied"),
        "aiops applied the decision itself"
    );
}

/// Fifty approvals of one request at the same instant: one wins, one resume, one audit entry.
async fn concurrent_decisions_apply_once(db: Db) {
    let (app, _repo, id, approval) = awaiting_approval(db, "race").await;
    let attempts = (0..50).map(|_| {
        app.post(&format!("/api/v1/approvals/{approval}/decision"))
            .json(&json!({"decision": "approve"}))
            .send()
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflicts), (1, 49), "{statuses:?}");
    let done = wait_status(&app, id, "done").await;
    assert_eq!(runs_of_kind(&done, "resume"), 1, "one resume");
    let audit: Value = app
        .get_json(&format!(
            "/api/v1/audit?target=approvals/{approval}&limit=200"
        ))
        .await;
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        1,
        "one audit entry for the decision: {audit}"
    );
    assert_eq!(entries[0]["action"], "decide approval: approve");
    // The requests themselves are in the request log: one 200 and 49 refused.
    let requests: Value = app
        .get_json(&format!(
            "/api/v1/audit?target=approvals/{approval}/decision&limit=200"
        ))
        .await;
    let outcomes: Vec<&str> = requests["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "409").count(), 49);
    assert_eq!(outcomes.iter().filter(|o| **o == "200").count(), 1);
    let (status, error) = decide(
        &app,
        approval,
        json!({"decision": "reject", "comment": "late"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already decided: approve"),
        "{error}"
    );
}

/// The signed link opens one approval until it expires or is used, and says why not.
async fn approval_links_refuse_tampered_expired_and_used(db: Db) {
    let (app, _repo, id, approval) = awaiting_approval(db, "links").await;
    // The link alone decides in this project (the default, sign_in, is in tests/dashboard.rs).
    let project = app.store.project("links").await.unwrap();
    app.store
        .set_approval_links(project.id, aiops::model::ApprovalLinks::Link)
        .await
        .unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = link_path(&app, approval);

    let tampered = path.replacen(
        &format!("/approvals/{approval}."),
        &format!("/approvals/{}.", approval + 1),
        1,
    );
    let page = browser.get(app.url(&tampered)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("Link not valid"));

    let expired = format!(
        "/approvals/{}",
        LinkSigner::new(&app.vault)
            .token(approval, chrono::Utc::now() - chrono::Duration::minutes(1))
    );
    let page = browser.get(app.url(&expired)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("Link expired"));

    let page = browser.get(app.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(html.contains("SIMULATED_CHANGE.md") && html.contains("class=\"add\""));

    // A form posted from elsewhere (no CSRF cookie) decides nothing.
    let forged = browser
        .post(app.url(&path))
        .form(&[("decision", "approve"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // A form that is not a decision decides nothing: a missing field, an unknown decision.
    let incomplete = browser
        .post(app.url(&path))
        .header("cookie", &cookie)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(incomplete.status(), StatusCode::BAD_REQUEST);
    let unknown = browser
        .post(app.url(&path))
        .header("cookie", &cookie)
        .form(&[("decision", "maybe"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.text().await.unwrap().contains("not a decision"));
    let revise_bare = browser
        .post(app.url(&path))
        .header("cookie", &cookie)
        .form(&[
            ("decision", "revise"),
            ("csrf", csrf.as_str()),
            ("comment", " "),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revise_bare.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let pending: Value = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(pending["status"], "pending");

    let decided = browser
        .post(app.url(&path))
        .header("cookie", &cookie)
        .form(&[("decision", "approve"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    let used = browser.get(app.url(&path)).send().await.unwrap();
    assert_eq!(used.status(), StatusCode::GONE);
    let text = used.text().await.unwrap();
    assert!(
        text.contains("approve") && text.contains("via link") && text.contains("web"),
        "{text}"
    );
    let again = browser
        .post(app.url(&path))
        .header("cookie", &cookie)
        .form(&[("decision", "reject"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains("is decided"));
    let record: Value = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(record["decision"], "approve");
    assert_eq!(record["channel"], "web");
    wait_status(&app, id, "done").await;
}

/// `aiops approvals list`, `aiops revise` without a comment, and `aiops approve`, against
/// the store a running service uses.
async fn cli_lists_and_decides(db: Db) {
    let (app, _repo, id, approval) = awaiting_approval(db, "cli").await;
    let aiops = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
            .args(args)
            .arg("--database-url")
            .arg(&app.db.url)
            .arg("--data-dir")
            .arg(app.db.data_dir())
            .env_remove("AIOPS_CONFIG")
            .env("USER", "minji")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, listed, err) = aiops(&["approvals", "list"]);
    assert!(ok, "{err}");
    let row = listed
        .lines()
        .find(|l| l.starts_with(&format!("{approval} ")))
        .unwrap_or_else(|| panic!("approval {approval} listed: {listed}"));
    assert!(row.contains("result") && row.contains("pending"), "{row}");
    let (ok, _, err) = aiops(&["revise", &approval.to_string()]);
    assert!(!ok && err.contains("revise needs a comment"), "{err}");
    let (ok, _, err) = aiops(&["approve", &approval.to_string(), "--comment", "lgtm"]);
    assert!(ok, "{err}");
    assert!(err.contains("decided: approve"), "{err}");
    let (ok, _, err) = aiops(&["reject", &approval.to_string()]);
    assert!(
        !ok && err.contains("already decided: approve by cli:minji via cli"),
        "{err}"
    );
    wait_status(&app, id, "done").await;
    let (ok, listed, _) = aiops(&["approvals", "list", "--all"]);
    assert!(
        ok && listed.contains("approve by cli:minji via cli"),
        "{listed}"
    );
}

/// An approval nobody decides before its deadline is rejected by the platform.
async fn expired_approval_is_rejected(db: Db) {
    let repo = common::git_repo();
    let app = gate_app(db, "", |c| {
        c.approvals.expires_after_secs = 1;
        c.approvals.expiry_check_secs = 1;
    })
    .await;
    add_project(&app, json!({"name": "slow", "local_path": repo.path()})).await;
    let id = create_task(&app, "slow").await;
    let approval = shown_approval(&app, id).await;
    assert!(!approval["expires_at"].is_null());
    wait_status(&app, id, "rolled_back").await;
    let record: Value = app
        .get_json(&format!("/api/v1/approvals/{}", approval["id"]))
        .await;
    assert_eq!(record["decision"], "reject");
    assert_eq!(record["channel"], "system");
}

/// Approved work that changed nothing: no push, no pull request, and the task says so.
async fn approved_without_changes_opens_no_pull_request(db: Db) {
    let (github, recorded) = github_stand_in().await;
    let (_remote_dir, remote) = bare_remote();
    let app = gate_app(db, "--sim-no-change", |c| c.github.api_url = github).await;
    add_project(
        &app,
        json!({"name": "quiet", "repo_url": format!("file://{}", remote.display()), "github_repo": "acme/quiet"}),
    )
    .await;
    let id = create_task(&app, "quiet").await;
    let approval = shown_approval(&app, id).await;
    let (status, _) = decide(
        &app,
        approval["id"].as_i64().unwrap(),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_status(&app, id, "done").await;
    assert!(done["pr_url"].is_null());
    assert!(
        done["change_note"]
            .as_str()
            .unwrap()
            .starts_with("no changes"),
        "{done}"
    );
    assert!(!branch_exists(&remote, done["branch"].as_str().unwrap()));
    assert!(
        recorded
            .lock()
            .unwrap()
            .iter()
            .all(|(kind, _, _)| kind != "pull")
    );
}

/// A delivery that fails keeps the approved work (branch and worktree) and says how to
/// retry; the retry opens the pull request.
async fn failed_delivery_keeps_the_work_for_a_retry(db: Db) {
    let (github, recorded) = github_stand_in().await;
    let (_remote_dir, remote) = bare_remote();
    let app = gate_app(db, "", |c| c.github.api_url = github).await;
    add_project(
        &app,
        json!({"name": "late", "repo_url": format!("file://{}", remote.display()), "github_repo": "acme/late"}),
    )
    .await;
    let id = create_task(&app, "late").await;
    let approval = shown_approval(&app, id).await;
    let (status, _) = decide(
        &app,
        approval["id"].as_i64().unwrap(),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_status(&app, id, "done").await;
    let note = done["change_note"].as_str().unwrap();
    assert!(
        note.contains("no GitHub credential") && note.contains(&format!("/tasks/{id}/deliver")),
        "{note}"
    );
    let branch = done["branch"].as_str().unwrap();
    assert!(branch_exists(&remote, branch), "the branch was pushed");
    let worktree = PathBuf::from(
        app.store
            .task_exec(id)
            .await
            .unwrap()
            .worktree_path
            .unwrap(),
    );
    assert!(worktree.is_dir(), "the worktree is kept");

    let (status, _) = post_json(
        &app,
        "/api/v1/credentials",
        json!({"name": "github-token", "kind": "token", "value": "ghs_test_token_not_real"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, task) = post_json(&app, &format!("/api/v1/tasks/{id}/deliver"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["pr_url"], "https://github.example/acme/late/pull/7");
    assert!(task["change_note"].is_null());
    assert!(!worktree.exists(), "the worktree goes once delivered");
    assert_eq!(
        recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|(kind, _, _)| kind == "pull")
            .count(),
        1
    );
    let (status, _) = post_json(&app, &format!("/api/v1/tasks/{id}/deliver"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// With `on_expiry = "leave_open"` a late approval stays pending: its link has expired, the
/// API still decides it.
async fn expired_approval_left_open_is_still_decided(db: Db) {
    let repo = common::git_repo();
    let app = gate_app(db, "", |c| {
        c.approvals.expires_after_secs = 1;
        c.approvals.expiry_check_secs = 1;
        c.approvals.on_expiry = aiops::config::OnExpiry::LeaveOpen;
    })
    .await;
    add_project(&app, json!({"name": "open", "local_path": repo.path()})).await;
    let id = create_task(&app, "open").await;
    let approval = shown_approval(&app, id).await;
    let approval_id = approval["id"].as_i64().unwrap();
    let signer = LinkSigner::new(&app.vault);
    let record = app.store.approval(approval_id).await.unwrap();
    let link = format!(
        "/approvals/{}",
        signer.token(
            approval_id,
            aiops::approvals::link_expiry(&record, &app.config)
        )
    );
    let page = wait_for("the link to expire with its approval", WAIT, || async {
        let page = app.client.get(app.url(&link)).send().await.unwrap();
        (page.status() == StatusCode::GONE).then_some(page)
    })
    .await;
    assert!(page.text().await.unwrap().contains("Link expired"));
    assert_eq!(
        app.get_json(&format!("/api/v1/approvals/{approval_id}"))
            .await["status"],
        "pending"
    );
    let (status, _) = decide(&app, approval_id, json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::OK);
    // A local project without a remote: the approved work is committed on its branch, which
    // is kept and named, and that is no error.
    let done = wait_status(&app, id, "done").await;
    let branch = done["branch"].as_str().unwrap();
    let note = done["change_note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("committed on branch {branch} ("))
            && note.ends_with(
                "this project has no remote, so nothing was pushed and there is no pull request"
            ),
        "{note}"
    );
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s", "-1", branch])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(
        log.status.success(),
        "the branch is kept in the project's repository"
    );
}

/// Makes the task's party session look `hours` old, as on the morning after.
fn age_session(worktree: &Path, session: &str, hours: i64) {
    let file = worktree
        .join(".party/sessions")
        .join(session)
        .join("session.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    value["created_at"] = json!((chrono::Utc::now() - chrono::Duration::hours(hours)).to_rfc3339());
    std::fs::write(&file, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// An approval file of the task's session, as the pipeline sees it.
async fn approval_file(app: &TestApp, task_id: i64, request_id: &str) -> Value {
    let exec = app.store.task_exec(task_id).await.unwrap();
    let file = PathBuf::from(exec.worktree_path.unwrap())
        .join(".party/sessions")
        .join(exec.party_session_id.unwrap())
        .join("approvals")
        .join(format!("{request_id}.json"));
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

/// The plugin's hook takes the last line that begins with a decision word and the first
/// `party-…` word as the session id: neither may turn a comment into another decision.
async fn party_words_and_line_breaks_cannot_change_a_decision(db: Db) {
    let repo = common::git_repo();
    let app = gate_app(db, "--sim-tool-approval", |c| {
        c.pull_requests.enabled = false;
    })
    .await;
    add_project(&app, json!({"name": "words", "local_path": repo.path()})).await;
    let id = create_task(&app, "words").await;
    let tool = shown_approval(&app, id).await;
    assert_eq!(tool["kind"], "tool");
    let comment = "like party-bugfix-20200101000000 did,\nuse a flag\napprove when green";
    let (status, _) = decide(
        &app,
        tool["id"].as_i64().unwrap(),
        json!({"decision": "revise", "comment": comment}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let result = wait_for("the result approval after the revise", WAIT, || async {
        let approval = shown_approval(&app, id).await;
        (approval["kind"] == "result").then_some(approval)
    })
    .await;
    let file = approval_file(&app, id, tool["request_id"].as_str().unwrap()).await;
    assert_eq!(file["status"], "decided", "{file}");
    assert_eq!(file["decision"], "revise", "{file}");
    assert_eq!(
        file["decision_comment"],
        "like party-bugfix-20200101000000 did, use a flag approve when green"
    );

    let (status, _) = decide(
        &app,
        result["id"].as_i64().unwrap(),
        json!({"decision": "reject", "comment": "see party-feature-20200101000000\napprove nothing"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_status(&app, id, "rolled_back").await;
    assert_eq!(done["phase"], "ROLLED_BACK");
    let approvals: Value = app
        .get_json(&format!("/api/v1/approvals?task={id}&status=pending"))
        .await;
    assert!(approvals["items"].as_array().unwrap().is_empty());
}

/// A result decision while a tool request is pending waits (the hook would read it as
/// deciding the tool request), says which request to decide first, and goes once it is.
async fn result_decision_waits_for_a_pending_tool_request(db: Db) {
    let repo = common::git_repo();
    let app = gate_app(db, "--sim-result-then-tool", |c| {
        c.pull_requests.enabled = false;
    })
    .await;
    add_project(&app, json!({"name": "both", "local_path": repo.path()})).await;
    let id = create_task(&app, "both").await;
    wait_status(&app, id, "awaiting_approval").await;
    let pending = wait_for("a tool and a result request, shown", WAIT, || async {
        let page: Value = app
            .get_json(&format!("/api/v1/approvals?task={id}&status=pending"))
            .await;
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 2 && items.iter().all(|a| !a["snapshot_at"].is_null())).then_some(items)
    })
    .await;
    let of_kind = |kind: &str| pending.iter().find(|a| a["kind"] == kind).unwrap().clone();
    let (tool, result) = (of_kind("tool"), of_kind("result"));
    let (status, _) = decide(
        &app,
        result["id"].as_i64().unwrap(),
        json!({"decision": "approve", "comment": "ship it"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let tool_request = tool["request_id"].as_str().unwrap();
    let waiting = wait_for("the task to say the decision waits", WAIT, || async {
        let detail = task_detail(&app, id).await;
        let reason = detail["status_reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        reason.contains(tool_request).then_some(detail)
    })
    .await;
    assert_eq!(waiting["status"], "awaiting_approval", "{waiting}");
    assert_eq!(
        approval_file(&app, id, tool_request).await["status"],
        "pending",
        "the result decision must not decide the tool request"
    );

    let (status, _) = decide(
        &app,
        tool["id"].as_i64().unwrap(),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_status(&app, id, "done").await;
    assert_eq!(done["phase"], "DONE");
    let events = app
        .store
        .events_after(0, Some(id), None, 1000)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["decision_waiting", "decision_released", "decision_applied"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let tool_decision = events
        .iter()
        .find(|e| e.kind == "decision_made" && e.data["data"]["request_id"] == tool_request)
        .expect("the hook decided the tool request");
    assert_eq!(tool_decision.data["data"]["decision"], "approve");
    assert_eq!(runs_of_kind(&done, "resume"), 2);
}

/// A decision the morning after: the session is made current again so the plugin's hooks
/// move it on, and approved work reaches DONE with its pull request.
async fn late_approval_reaches_done_with_its_pull_request(db: Db) {
    let (github, recorded) = github_stand_in().await;
    let (_remote_dir, remote) = bare_remote();
    let app = gate_app(db, "--sim-tool-approval", |c| c.github.api_url = github).await;
    add_project(
        &app,
        json!({"name": "morning", "repo_url": format!("file://{}", remote.display()), "github_repo": "acme/morning"}),
    )
    .await;
    let (status, answer) = post_json(
        &app,
        "/api/v1/credentials",
        json!({"name": "github-token", "kind": "token", "value": "ghs_test_token_not_real"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = create_task(&app, "morning").await;
    let tool = shown_approval(&app, id).await;
    assert_eq!(tool["kind"], "tool");
    let exec = app.store.task_exec(id).await.unwrap();
    age_session(
        Path::new(&exec.worktree_path.unwrap()),
        &exec.party_session_id.unwrap(),
        5,
    );
    let (status, _) = decide(
        &app,
        tool["id"].as_i64().unwrap(),
        json!({"decision": "approve", "comment": "next morning"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let result = wait_for("the result approval", WAIT, || async {
        let approval = shown_approval(&app, id).await;
        (approval["kind"] == "result").then_some(approval)
    })
    .await;
    let (status, _) = decide(
        &app,
        result["id"].as_i64().unwrap(),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_status(&app, id, "done").await;
    assert_eq!(done["phase"], "DONE");
    assert!(done["pr_url"].is_string(), "{done}");
    assert!(
        recorded
            .lock()
            .unwrap()
            .iter()
            .any(|(kind, _, _)| kind == "pull")
    );
    let events = app
        .store
        .events_after(0, Some(id), None, 1000)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "session_made_current"));
}

/// A pipeline that stops in AWAITING_APPROVAL without filing its result approval: aiops
/// files it from the findings and the diff, and the task waits for it.
async fn missing_result_approval_is_filed_by_aiops(db: Db) {
    let repo = common::git_repo();
    let app = gate_app(db, "--sim-no-result-file", |c| {
        c.pull_requests.enabled = false;
    })
    .await;
    add_project(&app, json!({"name": "unfiled", "local_path": repo.path()})).await;
    let id = create_task(&app, "unfiled").await;
    let approval = shown_approval(&app, id).await;
    assert_eq!(approval["kind"], "result");
    assert!(
        approval["summary"]
            .as_str()
            .unwrap()
            .contains("aiops filed it"),
        "{approval}"
    );
    assert!(
        approval["diff_stat"]
            .as_str()
            .unwrap()
            .contains("SIMULATED_CHANGE.md")
    );
    let (status, _) = decide(
        &app,
        approval["id"].as_i64().unwrap(),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_status(&app, id, "done").await;
}

on_both_databases!(
    party_words_and_line_breaks_cannot_change_a_decision,
    result_decision_waits_for_a_pending_tool_request,
    late_approval_reaches_done_with_its_pull_request,
    missing_result_approval_is_filed_by_aiops,
    expired_approval_left_open_is_still_decided,
    failed_delivery_keeps_the_work_for_a_retry,
    approved_without_changes_opens_no_pull_request,
    cli_lists_and_decides,
    expired_approval_is_rejected,
    issue_to_pull_request,
    revise_then_approve_and_reject,
    late_decision_takes_effect,
    concurrent_decisions_apply_once,
    approval_links_refuse_tampered_expired_and_used,
);
