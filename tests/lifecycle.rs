//! Starting and stopping the real binary: the second Ctrl-C, a notification that a crash
//! interrupts mid-send, and the words of start-up errors.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::child::{Served, aiops, serve, serve_logging};
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

/// Twenty hung pipelines cancelled at once, then Ctrl-C: the cancelled runs end (their
/// agents' groups stopped), so the first Ctrl-C's wait for running tasks is short and the
/// process exits cleanly on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_after_twenty_cancelled_pipelines_returns() {
    const PIPELINES: usize = 20;
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let engine = format!(
        "command = \"{} -p '/ai-party:party --team {{team}} {{prompt}}' --sim-hang\"\nmax_concurrent_tasks = {PIPELINES}\n",
        common::simulator().display()
    );
    let config = write_config(data.path(), &engine, "");
    let config_text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("workers = 2", &format!("workers = {PIPELINES}"));
    std::fs::write(&config, config_text).unwrap();
    let served = serve(&config, data.path());
    let project = json!({"name": "shop", "local_path": repo.path(), "max_concurrency": PIPELINES});
    api(&served, reqwest::Method::POST, "/projects", Some(project)).await;
    let mut ids = Vec::new();
    for i in 0..PIPELINES {
        let task = json!({"project": "shop", "prompt": format!("hang {i}")});
        let task = api(&served, reqwest::Method::POST, "/tasks", Some(task)).await;
        ids.push(task["id"].as_i64().unwrap());
    }
    wait_for("every pipeline to run", WAIT, || async {
        let page = api(
            &served,
            reqwest::Method::GET,
            "/tasks?status=running&limit=100",
            None,
        )
        .await;
        (page["items"].as_array().unwrap().len() == PIPELINES).then_some(())
    })
    .await;
    for id in &ids {
        api(
            &served,
            reqwest::Method::POST,
            &format!("/tasks/{id}/cancel"),
            None,
        )
        .await;
    }
    wait_for("every run to end", WAIT, || async {
        for id in &ids {
            let detail = api(&served, reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
            if detail["status"] != "cancelled" || detail["runs"][0]["finished_at"].is_null() {
                return None;
            }
        }
        Some(())
    })
    .await;
    let mut served = served;
    served.signal(Signal::SIGINT);
    let status = served.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "a clean stop exits by itself");
}

/// A resident-set figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MB.
fn memory_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kb / 1024.0
}

/// The SQLite store's size on disk (database and WAL), in MB.
fn store_mb(data: &Path) -> f64 {
    ["aiops.db", "aiops.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len() as f64 / 1e6)
        .sum()
}

/// A pipeline that writes 400 findings of 1 MB each: the ingestion caps keep what the
/// service stores small, the service's memory stays under 150 MB, and the task's detail
/// carries each finding's beginning only. Prints the figures BENCHMARKS.md quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_flooding_findings_stays_within_its_bounds() {
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let engine = format!(
        "command = \"{} -p '/ai-party:party --team {{team}} {{prompt}}' --sim-huge-finding 1000000 --sim-huge-findings 400\"\n",
        common::simulator().display()
    );
    let config = write_config(data.path(), &engine, "");
    let served = serve(&config, data.path());
    let pid = served.child.id();
    let project = json!({"name": "shop", "local_path": repo.path()});
    api(&served, reqwest::Method::POST, "/projects", Some(project)).await;
    let (rss_before, store_before) = (memory_mb(pid, "VmRSS"), store_mb(data.path()));
    let task = json!({"project": "shop", "prompt": "flood the findings"});
    let id = api(&served, reqwest::Method::POST, "/tasks", Some(task)).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/tasks/{id}");
    let detail = wait_for("the flooding task to wait for approval", WAIT, || async {
        let detail = api(&served, reqwest::Method::GET, &path, None).await;
        (detail["status"] == "awaiting_approval").then_some(detail)
    })
    .await;
    let findings = detail["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["truncated"] == true),
        "{}",
        findings.len()
    );
    let preview = aiops::tasks::FINDING_PREVIEW_CHARS as usize;
    assert!(
        findings
            .iter()
            .all(|f| f["content"].as_str().unwrap().chars().count() <= preview)
    );
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        api(&served, reqwest::Method::GET, &path, None).await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let (rss, peak) = (memory_mb(pid, "VmRSS"), memory_mb(pid, "VmHWM"));
    let grown = store_mb(data.path()) - store_before;
    println!(
        "400 x 1 MB findings: {} stored; RSS {rss_before:.1} -> {rss:.1} MB (peak {peak:.1}); store +{grown:.1} MB; GET /tasks/{{id}} p50 {:.1} ms, max {:.1} ms",
        findings.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(rss < 150.0, "the service holds {rss:.1} MB");
    assert!(grown < 60.0, "the store grew {grown:.1} MB");
    let mut served = served;
    served.signal(Signal::SIGKILL);
    served.wait_exit(WAIT).await;
}

/// Even at debug level the log names a request's route, never its path, whose segments can
/// be secrets: an approval link's token, the KakaoWork callback's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_name_the_route_never_the_path() {
    let data = tempfile::tempdir().unwrap();
    let config = write_config(data.path(), "", "");
    let mut served = serve_logging(&config, data.path(), "debug");
    let secret = "a-path-secret-0123456789abcdef0123456789";
    let client = reqwest::Client::new();
    let link = client.get(format!("{}/approvals/{secret}", served.base));
    link.send().await.unwrap();
    let callback = client
        .post(format!("{}/webhooks/kakaowork/{secret}", served.base))
        .json(&json!({"type": "submit_action"}));
    callback.send().await.unwrap();
    served.wait_log(r#"route="/approvals/{token}""#, WAIT).await;
    served
        .wait_log(r#"route="/webhooks/kakaowork/{secret}""#, WAIT)
        .await;
    let log = served.log.lock().unwrap().join("\n");
    assert!(!log.contains(secret), "a path's secret reached the log");
    served.signal(Signal::SIGKILL);
    served.wait_exit(WAIT).await;
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
