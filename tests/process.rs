//! The real binary as a child process: crash recovery after `kill -9`, `aiops task watch`
//! and the SessionStart hook.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::child::aiops;
use common::{Db, TestApp, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// Starts `aiops serve`; returns it (killed when dropped), its base URL and the admin token
/// if it printed one.
fn serve(config: &Path, data: &Path) -> (common::child::Served, String, Option<String>) {
    let served = common::child::serve(config, data);
    let (base, token) = (served.base.clone(), served.token.clone());
    (served, base, token)
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_recovers_the_task_without_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let config = data.path().join("aiops.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nworkers = 2\ncommand = \"{} -p '/ai-party:party {{prompt}}' --sim-phase-delay-ms 250\"\nheartbeat_secs = 1\nslot_ttl_secs = 2\nqueue_poll_ms = 100\ningest_interval_ms = 100\n[inputs]\nlocal_roots = [{:?}]\n",
            common::simulator().display(),
            std::env::temp_dir()
        ),
    )
    .unwrap();
    let (mut first, base, token) = serve(&config, data.path());
    let token = token.expect("admin token on first start");
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "shop", "local_path": repo.path()}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let task: Value = client
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(&token)
        .json(&json!({"project": "shop", "prompt": "survive a crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["id"].as_i64().unwrap();
    // Wait until the pipeline is well under way: its process runs and events are stored.
    let pid = wait_for("the pipeline to be under way", WAIT, || async {
        let detail = get(&client, &format!("{base}/api/v1/tasks/{id}"), &token).await;
        let pid = detail["runs"][0]["pid"].as_i64();
        let tickets = detail["tickets"].as_array().map_or(0, Vec::len);
        (tickets >= 2).then_some(pid).flatten()
    })
    .await as i32;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    wait_for(
        "the orphaned pipeline to die with its server",
        WAIT,
        || async { (!aiops::engine::agent::group_alive(pid)).then_some(()) },
    )
    .await;

    let (mut second, base, no_token) = serve(&config, data.path());
    assert!(no_token.is_none());
    let detail = wait_for("the task to be recovered", WAIT, || async {
        let detail = get(&client, &format!("{base}/api/v1/tasks/{id}"), &token).await;
        let settled = detail["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["finished_at"].is_null());
        (settled && detail["status"] == "awaiting_approval").then_some(detail)
    })
    .await;
    second.child.kill().unwrap();
    second.child.wait().unwrap();

    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(runs[0]["error"].as_str().unwrap().contains("interrupted"));
    assert_eq!(runs[1]["kind"], "recover");
    assert_eq!(runs[1]["status"], "succeeded");

    // Every line of every party session's events.ndjson is stored exactly once, and so
    // is every ticket and finding.
    let worktree = data.path().join("worktrees/shop").join(id.to_string());
    let sessions = worktree.join(".party/sessions");
    let (mut lines, mut tickets, mut findings) = (
        0usize,
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    for session in std::fs::read_dir(&sessions).unwrap() {
        let session = session.unwrap().path();
        lines += std::fs::read_to_string(session.join("events.ndjson"))
            .unwrap()
            .lines()
            .count();
        tickets.extend(names(&session.join("tickets")));
        findings.extend(names(&session.join("findings")));
    }
    let config = aiops::config::Config {
        data_dir: data.path().to_path_buf(),
        ..Default::default()
    };
    let store = aiops::server::open_store(&config).await.unwrap();
    assert_eq!(
        store
            .count_events(id, aiops::model::EventOrigin::Party)
            .await
            .unwrap() as usize,
        lines
    );
    assert_eq!(detail["tickets"].as_array().unwrap().len(), tickets.len());
    assert_eq!(detail["findings"].as_array().unwrap().len(), findings.len());
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_watch_follows_until_the_task_waits() {
    let repo = common::git_repo();
    let command = format!(
        "{} -p \"/ai-party:party {{prompt}}\" --sim-phase-delay-ms 20",
        common::simulator().display()
    );
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.engine.workers = 1;
        c.engine.command = command;
        c.engine.ingest_interval_ms = 100;
    })
    .await;
    let created = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "local_path": repo.path()}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let task: Value = app
        .post("/api/v1/tasks")
        .json(&json!({"project": "shop", "prompt": "watch me"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["id"].as_i64().unwrap().to_string();
    let (base, token) = (app.base.clone(), app.token.clone());
    let output = tokio::task::spawn_blocking(move || {
        aiops()
            .args(["task", "watch", &id, "--url", &base, "--token", &token])
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(WAIT, output)
        .await
        .expect("watch ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("task_queued"), "{stdout}");
    assert!(stdout.contains("phase_changed"), "{stdout}");
    assert!(stdout.contains("→ awaiting_approval"), "{stdout}");
    let unauthorized = aiops()
        .args([
            "task",
            "watch",
            "1",
            "--url",
            &app.base,
            "--token",
            "aiops_wrong",
        ])
        .output()
        .unwrap();
    assert!(!unauthorized.status.success());
    assert!(String::from_utf8_lossy(&unauthorized.stderr).contains("401"));
}

fn run_hook(data: &Path, url: &str, cwd: &Path) -> std::process::Output {
    let mut child = aiops()
        .args(["hook", "session-start", "--data-dir"])
        .arg(data)
        .args(["--database-url", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"session_id": "abc", "transcript_path": "/tmp/t.jsonl", "cwd": cwd, "hook_event_name": "SessionStart", "source": "startup"});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_start_hook_prints_project_facts_only() {
    let repo = common::git_repo();
    let app = TestApp::spawn(Db::Sqlite).await;
    let created = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "local_path": repo.path(), "tech_stack": ["rust", "postgres"], "conventions": "Conventional commits."}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let secret = format!("hook-secret-{}", common::uuid_like());
    app.post("/api/v1/credentials")
        .json(&json!({"project": "shop", "name": "db", "kind": "db_url", "value": secret}))
        .send()
        .await
        .unwrap();
    let task: Value = app
        .post("/api/v1/tasks")
        .json(&json!({"project": "shop", "prompt": "tidy the cart"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = app.db.data_dir();
    let url = app.db.url.clone();

    let output = run_hook(&data, &url, &repo.path().join("."));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed["hookSpecificOutput"]["hookEventName"],
        "SessionStart"
    );
    let context = printed["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(
        context.contains("\"shop\"")
            && context.contains("rust, postgres")
            && context.contains("Conventional commits."),
        "{context}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(&secret));

    // A task worktree names its task.
    let worktree: PathBuf = data
        .join("worktrees/shop")
        .join(task["id"].to_string())
        .join("src");
    std::fs::create_dir_all(&worktree).unwrap();
    let output = run_hook(&data, &url, &worktree);
    let context: Value = serde_json::from_slice(&output.stdout).unwrap();
    let context = context["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        context.contains(&format!("aiops task {}", task["id"]))
            && context.contains("tidy the cart"),
        "{context}"
    );

    // Unknown directory: nothing, exit 0.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = run_hook(&data, &url, elsewhere.path());
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_worker_process_runs_tasks_from_a_shared_postgres_store() {
    let repo = common::git_repo();
    // This process serves the API only; `aiops worker` runs the pipelines.
    let app = TestApp::spawn(Db::Postgres).await;
    let config = app.db.data_dir().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nworkers = 2\ncommand = \"{} -p '/ai-party:party {{prompt}}' --sim-phase-delay-ms 10\"\nqueue_poll_ms = 100\ningest_interval_ms = 100\n[inputs]\nlocal_roots = [{:?}]\n",
            common::simulator().display(),
            std::env::temp_dir()
        ),
    )
    .unwrap();
    let mut worker = aiops()
        .args(["worker", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(app.db.data_dir())
        .args(["--database-url", &app.db.url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let created = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "local_path": repo.path()}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let task: Value = app
        .post("/api/v1/tasks")
        .json(&json!({"project": "shop", "prompt": "run elsewhere"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["id"].as_i64().unwrap();
    let detail = wait_for("the worker process to run the task", WAIT, || async {
        let detail: Value = app
            .get(&format!("/api/v1/tasks/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let settled = detail["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["finished_at"].is_null());
        (settled && detail["status"] == "awaiting_approval").then_some(detail)
    })
    .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(detail["runs"].as_array().unwrap().len(), 1);
    assert!(detail["tickets"].as_array().unwrap().len() >= 6);
}
