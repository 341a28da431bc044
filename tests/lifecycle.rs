//! Starting and stopping the real binary: the second Ctrl-C, a notification that a crash
//! interrupts mid-send, and the words of start-up errors.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::child::{Served, aiops, serve};
use common::wait_for;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

async fn api(served: &Served, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}/api/v1{path}", served.base))
        .bearer_auth(served.token.as_deref().unwrap_or_default());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        status.is_success(),
        "{method_path}: {status} {body}",
        method_path = path
    );
    body
}

/// `engine` lines go in `[engine]`; unless they set `heartbeat_secs`, the queue hands a dead
/// process' jobs back after 3 s (heartbeat 1 s, slots expire after 2 s).
fn write_config(data: &Path, engine: &str, extra: &str) -> std::path::PathBuf {
    let config = data.join("aiops.toml");
    let timing = if engine.contains("heartbeat_secs") {
        ""
    } else {
        "heartbeat_secs = 1\nslot_ttl_secs = 2\n"
    };
    std::fs::write(
        &config,
        format!(
            "[engine]\nworkers = 2\n{engine}\n{timing}queue_poll_ms = 100\ningest_interval_ms = 100\n[inputs]\nlocal_roots = [{:?}]\nallow_private_targets = true\n{extra}",
            std::env::temp_dir()
        ),
    )
    .unwrap();
    config
}

/// `[engine]` lines for the simulator with 400 ms phases (a pipeline that runs for a few
/// seconds), then `extra`.
fn slow_pipeline(extra: &str) -> String {
    format!(
        "command = \"{} -p '/ai-party:party --team {{team}} {{prompt}}' --sim-phase-delay-ms 400\"\n{extra}",
        common::simulator().display()
    )
}

/// Registers project `shop` at `repo` on `served`, creates a task and waits until its agent
/// runs; the task's id.
async fn running_task(served: &Served, repo: &Path, prompt: &str) -> i64 {
    let project = json!({"name": "shop", "local_path": repo});
    api(served, reqwest::Method::POST, "/projects", Some(project)).await;
    let task = json!({"project": "shop", "prompt": prompt});
    let task = api(served, reqwest::Method::POST, "/tasks", Some(task)).await;
    let id = task["id"].as_i64().unwrap();
    wait_for("the pipeline to run", WAIT, || async {
        let detail = api(served, reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
        (detail["status"] == "running" && detail["runs"][0]["pid"].is_i64()).then_some(())
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_stops_at_once_and_the_next_start_finishes_the_task() {
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let config = write_config(data.path(), &slow_pipeline(""), "");
    let mut first = serve(&config, data.path());
    let token = first.token.clone().expect("admin token on first start");
    let id = running_task(&first, repo.path(), "stop me twice").await;

    first.signal(Signal::SIGINT);
    first
        .wait_log(
            "waiting for 1 running task(s) to finish (Ctrl-C again to stop now",
            WAIT,
        )
        .await;
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first Ctrl-C waits for the pipeline"
    );
    first.signal(Signal::SIGINT);
    let status = first.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(130), "the second Ctrl-C stops at once");
    first.wait_log("stopping now", WAIT).await;

    let mut second = serve(&config, data.path());
    second.token = Some(token);
    let detail = wait_for(
        "the task to be finished after the restart",
        WAIT,
        || async {
            let detail = api(&second, reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
            (detail["status"] == "awaiting_approval").then_some(detail)
        },
    )
    .await;
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.last().unwrap()["kind"], "recover", "{runs:#?}");
    second.signal(Signal::SIGKILL);
    second.wait_exit(WAIT).await;
}

/// After `kill -9`, the next start on the data directory hands the dead process' running
/// task back at once, saying it recovers, instead of showing it `running` until the queue
/// notices the missed heartbeats: 3 × 60 s here, far beyond what the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_kill_9_recovers_the_running_task_at_once() {
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let engine = slow_pipeline("heartbeat_secs = 60\nslot_ttl_secs = 120");
    let config = write_config(data.path(), &engine, "");
    let mut first = serve(&config, data.path());
    let token = first.token.clone().expect("admin token on first start");
    let id = running_task(&first, repo.path(), "crash under me").await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(WAIT).await;

    let mut second = serve(&config, data.path());
    second.token = Some(token);
    // The first answer of the new process: the task is no longer `running` under the dead
    // run; it is queued and says why, or already runs again as a `recover` run.
    let detail = api(&second, reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
    let runs = detail["runs"].as_array().unwrap();
    let recovering = detail["status"] == "queued"
        && detail["status_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("recovering: the aiops process that ran it stopped"));
    assert!(
        recovering || runs.last().unwrap()["kind"] == "recover",
        "{detail:#}"
    );
    let detail = wait_for(
        "the recovered task to reach its approval, long before the heartbeats would hand it back",
        Duration::from_secs(60),
        || async {
            let detail = api(&second, reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
            (detail["status"] == "awaiting_approval").then_some(detail)
        },
    )
    .await;
    let kinds: Vec<&str> = detail["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "recover"], "{detail:#}");
    second.signal(Signal::SIGKILL);
    second.wait_exit(WAIT).await;
}

/// A webhook receiver that counts what it gets and never answers.
async fn silent_receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_a_crash_interrupts_is_not_sent_again_after_the_restart() {
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let (hook, received) = silent_receiver().await;
    let config = write_config(
        data.path(),
        "command = \"false\"",
        "[notify]\nrequest_timeout_secs = 2\nbackoff_ms = 50\n",
    );
    let mut first = serve(&config, data.path());
    let token = first.token.clone().expect("admin token on first start");
    api(
        &first,
        reqwest::Method::POST,
        "/projects",
        Some(json!({"name": "shop", "local_path": repo.path()})),
    )
    .await;
    api(&first, reqwest::Method::POST, "/credentials", Some(json!({"name": "hook-hmac", "kind": "webhook_secret", "value": "webhook-hmac-key-for-tests"}))).await;
    api(
        &first,
        reqwest::Method::POST,
        "/projects/shop/channels",
        Some(json!({"kind": "webhook", "target": hook, "credential": "hook-hmac", "events": ["task_failed"]})),
    )
    .await;
    api(
        &first,
        reqwest::Method::POST,
        "/tasks",
        Some(json!({"project": "shop", "prompt": "fail and tell"})),
    )
    .await;
    wait_for("the failure notice to reach the receiver", WAIT, || async {
        (received.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    // The send is in flight, its answer never comes: the process dies mid-send.
    first.signal(Signal::SIGKILL);
    first.wait_exit(WAIT).await;

    let mut second = serve(&config, data.path());
    second.token = Some(token);
    let dead = wait_for("the interrupted send to be settled", WAIT, || async {
        let dead = api(
            &second,
            reqwest::Method::GET,
            "/notifications?status=dead",
            None,
        )
        .await;
        dead["items"]
            .as_array()
            .and_then(|list| list.first().cloned())
    })
    .await;
    let error = dead["last_error"].as_str().unwrap();
    assert!(
        error.contains("was interrupted before its outcome was recorded; it is not sent again"),
        "{error}"
    );
    assert_eq!(received.load(Ordering::SeqCst), 1, "sent exactly once");
    second.signal(Signal::SIGKILL);
    second.wait_exit(WAIT).await;
}

fn start_error(config_text: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("aiops.toml");
    std::fs::write(&config, config_text).unwrap();
    // `migrate` loads the configuration like `serve` and exits; the file's level must not
    // be overridden by the quiet level the helper sets.
    let output = aiops()
        .env_remove("AIOPS_LOG__LEVEL")
        .args(["migrate", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8(output.stderr)
        .unwrap()
        .replace(&config.display().to_string(), "FILE")
}

#[test]
fn configuration_errors_name_the_key_its_line_and_the_fix() {
    let unknown = start_error("[engine]\nworkers = 1\nwokers = 2\n");
    assert!(
        unknown.starts_with(
            "error: invalid configuration: unknown key `engine.wokers` (line 3 of FILE); [engine] takes one of `workers`, "
        ),
        "{unknown}"
    );
    assert!(
        unknown.contains("`resume_command`") && !unknown.contains("default."),
        "{unknown}"
    );
    let level = start_error("[log]\nlevel = \"inof\"\n");
    assert!(
        level.contains("log.level: \"inof\" in \"inof\" is not a log level; use one of trace, debug, info, warn, error, off"),
        "{level}"
    );
    let format = start_error("[log]\nformat = \"xml\"\n");
    assert!(
        format.contains("`log.format` (line 2 of FILE) is \"xml\"; use one of `text`, `json`"),
        "{format}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_reaches_an_approval_and_approved_work_lands_on_the_demo_remote() {
    let scratch = tempfile::tempdir().unwrap();
    // The simulator must be built where the demo looks for it: next to the binary.
    common::simulator();
    let child = aiops()
        .env_remove("AIOPS_CONFIG")
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(scratch.path().join("demo"))
        .current_dir(scratch.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = common::child::attach(child, true);
    demo.wait_log("Demo:      project `demo`", WAIT).await;
    let waiting = wait_for("a demo task to wait for approval", WAIT, || async {
        let tasks = api(
            &demo,
            reqwest::Method::GET,
            "/tasks?status=awaiting_approval",
            None,
        )
        .await;
        tasks["items"]
            .as_array()
            .or(tasks.as_array())
            .and_then(|list| list.first().cloned())
    })
    .await;
    let id = waiting["id"].as_i64().unwrap();
    let approval = wait_for("its approval to be filed", WAIT, || async {
        let list = api(
            &demo,
            reqwest::Method::GET,
            &format!("/approvals?task={id}&status=pending"),
            None,
        )
        .await;
        list.as_array()
            .or(list["items"].as_array())
            .and_then(|l| l.iter().find(|a| a["task_id"] == id).cloned())
    })
    .await;
    let approval_id = approval["id"].as_i64().unwrap();
    api(
        &demo,
        reqwest::Method::POST,
        &format!("/approvals/{approval_id}/decision"),
        Some(json!({"decision": "approve", "comment": "looks right"})),
    )
    .await;
    let done = wait_for("the task to be done", WAIT, || async {
        let task = api(&demo, reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
        (task["status"] == "done").then_some(task)
    })
    .await;
    let branch = done["branch"].as_str().unwrap();
    let remote = scratch.path().join("demo/remote.git");
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s", "-1", branch])
        .current_dir(&remote)
        .output()
        .unwrap();
    assert!(
        log.status.success(),
        "the branch {branch} is on the demo remote: {}",
        String::from_utf8_lossy(&log.stderr)
    );
    assert!(
        done["change_note"]
            .as_str()
            .unwrap()
            .contains("no github_repo, so no pull request was opened"),
        "{done}"
    );
    demo.signal(Signal::SIGKILL);
    demo.wait_exit(WAIT).await;
}
