//! The execution engine end to end: real queue, real git worktrees, real child processes
//! (the pipeline simulator), over the real API, on SQLite and PostgreSQL.

mod common;

use std::path::{Path, PathBuf};

use aiops::model::TaskStatus;
use common::pipeline::{WAIT, add_project, create_task, engine_app, task_detail, wait_status};
use common::{Db, TestApp, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every text the store holds about tasks, for "never stored" checks.
async fn all_stored_text(app: &TestApp) -> String {
    let queries = [
        "SELECT COALESCE(log, '') || COALESCE(error, '') FROM runs",
        "SELECT content FROM findings",
        "SELECT CAST(data AS TEXT) FROM events",
        "SELECT CAST(body AS TEXT) FROM tickets",
        "SELECT COALESCE(status_reason, '') || prompt FROM tasks",
    ];
    let mut all = String::new();
    for sql in queries {
        let rows: Vec<String> = match app.store.pool() {
            aiops::store::Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            aiops::store::Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        };
        all.extend(rows);
    }
    all
}

async fn pipeline_reaches_awaiting_approval(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    let detail = wait_status(&app, id, &["awaiting_approval", "failed"]).await;
    assert_eq!(detail["status"], "awaiting_approval", "{detail:#}");
    assert_eq!(detail["phase"], "AWAITING_APPROVAL");
    assert_eq!(detail["branch"], format!("aiops/bugfix/{id}"));
    assert!(
        detail["party_session_id"]
            .as_str()
            .unwrap()
            .starts_with("party-bugfix-")
    );
    let findings: Vec<&str> = detail["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in [
        "context.md",
        "analysis.md",
        "design.md",
        "implementation.md",
        "review.md",
    ] {
        assert!(findings.contains(&name), "{name} missing from {findings:?}");
    }
    assert!(
        detail["tickets"].as_array().unwrap().len() >= 6,
        "{:#}",
        detail["tickets"]
    );
    let pending = detail["pending_approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["kind"], "result");
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded");
    assert!(
        run["claude_session_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(run["input_tokens"].as_i64().unwrap() > 0);
    assert!(run["output_tokens"].as_i64().unwrap() > 0);
    assert!(run["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(run["result_subtype"], "success");

    // Every line of events.ndjson is stored exactly once, plus the platform's own events.
    let worktree = PathBuf::from(
        app.store
            .task_exec(id)
            .await
            .unwrap()
            .worktree_path
            .unwrap(),
    );
    assert!(worktree.starts_with(app.db.data_dir().join("worktrees").join("shop")));
    let session = detail["party_session_id"].as_str().unwrap();
    let lines = std::fs::read_to_string(
        worktree
            .join(".party/sessions")
            .join(session)
            .join("events.ndjson"),
    )
    .unwrap()
    .lines()
    .count() as i64;
    assert_eq!(
        app.store
            .count_events(id, aiops::model::EventOrigin::Party)
            .await
            .unwrap(),
        lines
    );
    let platform = app
        .store
        .events_after(0, Some(id), None, 1000)
        .await
        .unwrap();
    let kinds: Vec<&str> = platform
        .iter()
        .filter(|e| e.origin == "platform")
        .map(|e| e.kind.as_str())
        .collect();
    for kind in [
        "task_queued",
        "run_started",
        "run_finished",
        "status_changed",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The run log is readable and redacted output of the agent.
    let run_id = run["id"].as_i64().unwrap();
    let log = app
        .get(&format!("/api/v1/tasks/{id}/runs/{run_id}/log"))
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), StatusCode::OK);
    assert!(log.text().await.unwrap().contains("\"type\":\"result\""));
}

async fn limits_and_priority_hold(db: Db) {
    let repo_a = common::git_repo();
    let repo_b = common::git_repo();
    let app = engine_app(db, "--sim-phase-delay-ms 40", |c| {
        c.engine.max_concurrent_tasks = 3;
        c.engine.workers = 4;
    })
    .await;
    add_project(&app, "alpha", repo_a.path(), json!({"max_concurrency": 1})).await;
    add_project(&app, "beta", repo_b.path(), json!({"max_concurrency": 1})).await;
    let mut ids = Vec::new();
    for i in 0..11 {
        let project = if i % 2 == 0 { "alpha" } else { "beta" };
        ids.push(create_task(&app, project, &format!("task {i}"), "normal").await);
    }
    let critical = create_task(&app, "alpha", "urgent fix", "critical").await;
    let waiting_alpha: Vec<i64> = {
        let mut waiting = Vec::new();
        for id in &ids {
            let exec = app.store.task_exec(*id).await.unwrap();
            if exec.project_id == app.store.project("alpha").await.unwrap().id
                && exec.status == "queued"
            {
                waiting.push(*id);
            }
        }
        waiting
    };
    ids.push(critical);
    for id in &ids {
        wait_status(&app, *id, &["awaiting_approval"]).await;
    }
    // Intervals during which each task's agent ran.
    let mut intervals = Vec::new();
    for id in &ids {
        let runs = app.store.runs(*id).await.unwrap();
        assert_eq!(runs.len(), 1, "task {id} ran {} times", runs.len());
        let exec = app.store.task_exec(*id).await.unwrap();
        intervals.push((
            exec.project_id,
            runs[0].started_at,
            runs[0].finished_at.unwrap(),
            *id,
        ));
    }
    let max_overlap = |filter: &dyn Fn(i64) -> bool| {
        let mut points: Vec<(chrono::DateTime<chrono::Utc>, i32)> = Vec::new();
        for (project, start, end, _) in &intervals {
            if filter(*project) {
                points.push((*start, 1));
                points.push((*end, -1));
            }
        }
        points.sort_by_key(|(t, delta)| (*t, *delta));
        let (mut now, mut max) = (0, 0);
        for (_, delta) in points {
            now += delta;
            max = max.max(now);
        }
        max
    };
    let alpha = app.store.project("alpha").await.unwrap().id;
    let beta = app.store.project("beta").await.unwrap().id;
    let global = max_overlap(&|_| true);
    let per_alpha = max_overlap(&|p| p == alpha);
    let per_beta = max_overlap(&|p| p == beta);
    println!("observed max concurrency: global {global}, alpha {per_alpha}, beta {per_beta}");
    assert!(global <= 3, "global limit exceeded: {global}");
    assert_eq!(per_alpha, 1, "alpha limit");
    assert_eq!(per_beta, 1, "beta limit");
    assert!(global >= 2, "both projects should have run side by side");
    // The critical task, queued last, started before every normal alpha task still waiting.
    let start_of = |id: i64| intervals.iter().find(|i| i.3 == id).unwrap().1;
    let later: Vec<i64> = waiting_alpha
        .iter()
        .copied()
        .filter(|id| start_of(*id) < start_of(critical))
        .collect();
    assert!(
        later.len() <= 1,
        "critical started after {later:?} that were waiting when it was queued (one may have been claimed already)"
    );
}

async fn cancel_stops_the_process_group(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-hang", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "hang", "normal").await;
    let pid = agent_pid(&app, id).await as i32;
    assert!(aiops::engine::agent::group_alive(pid));
    let response = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let detail = wait_status(&app, id, &["cancelled"]).await;
    assert_eq!(detail["runs"][0]["status"], "cancelled");
    assert!(
        !aiops::engine::agent::group_alive(pid),
        "a process of the pipeline survived"
    );
    let again = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let missing = app.post("/api/v1/tasks/99999/cancel").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn queued_task_cancels_at_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "never runs", "normal").await;
    let response = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );
    assert_eq!(task_detail(&app, id).await["status"], "cancelled");
    // A run the cancel stopped reports its own end later (failed, awaiting approval): the
    // task keeps `cancelled`, and no status change is recorded.
    let before = app.store.task_exec(id).await.unwrap();
    for late in [
        TaskStatus::Failed,
        TaskStatus::AwaitingApproval,
        TaskStatus::Running,
    ] {
        let changed = aiops::tasks::set_status(&app.store, id, late, Some("the run ended"), None)
            .await
            .unwrap();
        assert!(!changed, "{late} does not replace cancelled");
    }
    let after = app.store.task_exec(id).await.unwrap();
    assert_eq!(after.status, TaskStatus::Cancelled);
    assert_eq!(after.status, before.status);
    // Only a retry starts it again.
    let retried = app
        .post(&format!("/api/v1/tasks/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert!(retried.status().is_success(), "{retried:?}");
    assert_eq!(task_detail(&app, id).await["status"], "queued");
}

async fn hang_times_out(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-hang", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({"timeout_secs": 1})).await;
    let id = create_task(&app, "shop", "hang", "normal").await;
    let detail = wait_status(&app, id, &["failed"]).await;
    assert!(
        detail["status_reason"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{detail:#}"
    );
    assert_eq!(detail["runs"][0]["status"], "timed_out");
    let pid = detail["runs"][0]["pid"].as_i64().unwrap() as i32;
    assert!(!aiops::engine::agent::group_alive(pid));
}

async fn crash_fails_with_reason(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-crash-in ANALYZING", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "crash", "normal").await;
    let detail = wait_status(&app, id, &["failed"]).await;
    let reason = detail["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("101") && reason.contains("ANALYZING"),
        "{reason}"
    );
    assert_eq!(detail["runs"][0]["exit_code"], 101);
    // Ended: the worktree and its branch are gone.
    let exec = app.store.task_exec(id).await.unwrap();
    assert!(!Path::new(exec.worktree_path.as_deref().unwrap()).exists());
}

async fn garbage_lines_are_skipped(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-garbage", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "noisy", "normal").await;
    let detail = wait_status(&app, id, &["awaiting_approval", "failed"]).await;
    assert_eq!(detail["status"], "awaiting_approval", "{detail:#}");
    let run = &detail["runs"][0];
    assert!(
        run["cost_usd"].as_f64().unwrap() > 0.0,
        "{:#}",
        detail["runs"]
    );
    assert!(run["output_tokens"].as_i64().unwrap() > 0);
}

async fn secrets_never_stored(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-leak-env DEPLOY_TOKEN", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    add_project(&app, "other", common::git_repo().path(), json!({})).await;
    let secret = format!("s3cr3t-{}", common::uuid_like());
    let created = app
        .post("/api/v1/credentials")
        .json(&json!({"project": "shop", "name": "deploy", "kind": "token", "env_var": "DEPLOY_TOKEN", "value": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let other_secret = format!("other-{}", common::uuid_like());
    app.post("/api/v1/credentials")
        .json(&json!({"project": "other", "name": "deploy", "kind": "token", "env_var": "OTHER_TOKEN", "value": other_secret}))
        .send()
        .await
        .unwrap();
    let id = create_task(&app, "shop", "leak it", "normal").await;
    let detail = wait_status(&app, id, &["awaiting_approval", "failed"]).await;
    assert_eq!(detail["status"], "awaiting_approval", "{detail:#}");
    let leak = detail["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "leak.md")
        .expect("leak.md ingested");
    assert!(
        leak["content"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:deploy]"),
        "{leak}"
    );
    let stored = all_stored_text(&app).await;
    assert!(!stored.contains(&secret), "the secret was stored");
    assert!(stored.contains("[REDACTED:deploy]"));
}

async fn symlinks_read_nothing_outside(db: Db) {
    let outside = tempfile::tempdir().unwrap();
    let marker = format!("OUTSIDE-MARKER-{}", common::uuid_like());
    let target = outside.path().join("secret.txt");
    std::fs::write(&target, format!("{marker}\n{{\"id\": \"{marker}\"}}")).unwrap();
    let repo = common::git_repo();
    let app = engine_app(db, &format!("--sim-symlink {}", target.display()), |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "escape", "normal").await;
    let detail = wait_status(&app, id, &["awaiting_approval", "failed"]).await;
    assert_eq!(detail["status"], "awaiting_approval", "{detail:#}");
    assert!(
        !detail["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "escape.md")
    );
    assert!(!all_stored_text(&app).await.contains(&marker));
}

async fn fixture_ingests_completely(db: Db) {
    // (tree, session, phase, kind of the pending approval)
    let trees = [
        (
            "pending-tool-approval",
            "party-bugfix-20261124051937",
            "PENDING_APPROVAL",
            "tool",
        ),
        (
            "hooks-pending-tool-approval",
            "party-bugfix-20261130145858",
            "PENDING_APPROVAL",
            "tool",
        ),
        (
            "hooks-awaiting-result-approval",
            "party-bugfix-20261130145906",
            "AWAITING_APPROVAL",
            "result",
        ),
    ];
    for (tree, session, phase, kind) in trees {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/party")
            .join(tree);
        ingest_fixture(db, &fixture, session, phase, kind).await;
    }
}

/// Runs an agent that copies `fixture`'s `.party/` into its worktree and checks that every
/// event, ticket, finding and approval, the team that ran and the members reach the task.
async fn ingest_fixture(db: Db, fixture: &Path, session: &str, phase: &str, kind: &str) {
    let repo = common::git_repo();
    let command = format!("cp -R {}/.party .", fixture.display());
    let app = TestApp::spawn_with(db, |c| {
        c.engine.workers = 2;
        c.engine.command = command;
        c.engine.ingest_interval_ms = 100;
        c.engine.queue_poll_ms = 100;
        // The agent copies the fixture from outside its worktree.
        c.engine.sandbox_read_paths = vec![fixture.to_path_buf()];
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "fixture", "normal").await;
    let detail = wait_status(&app, id, &["awaiting_approval", "failed"]).await;
    let tree = fixture.display();
    assert_eq!(detail["status"], "awaiting_approval", "{tree}: {detail:#}");
    assert_eq!(detail["phase"], phase, "{tree}");
    let session_dir = fixture.join(".party/sessions").join(session);
    let count = |dir: &str, ext: &str| {
        std::fs::read_dir(session_dir.join(dir))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    };
    let lines = std::fs::read_to_string(session_dir.join("events.ndjson"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        app.store
            .count_events(id, aiops::model::EventOrigin::Party)
            .await
            .unwrap() as usize,
        lines,
        "{tree}"
    );
    assert_eq!(
        detail["tickets"].as_array().unwrap().len(),
        count("tickets", "json"),
        "{tree}"
    );
    assert_eq!(
        detail["findings"].as_array().unwrap().len(),
        count("findings", "md"),
        "{tree}"
    );
    let pending = detail["pending_approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{tree}");
    assert_eq!(pending[0]["kind"], kind, "{tree}");
    if kind == "tool" {
        assert!(pending[0]["tool_name"].is_string(), "{tree}");
    }
    // The team that ran and the board, as session.json says.
    let state: Value =
        serde_json::from_slice(&std::fs::read(session_dir.join("session.json")).unwrap()).unwrap();
    assert_eq!(detail["team_ran"], state["team"], "{tree}");
    let members = state["members"].as_array().unwrap();
    let board = &detail["board"];
    assert_eq!(
        board["members"].as_array().unwrap().len(),
        members.len(),
        "{tree}: {board:#}"
    );
    for (stored, member) in board["members"].as_array().unwrap().iter().zip(members) {
        assert_eq!(stored["name"], member["name"], "{tree}");
        assert_eq!(stored["role"], member["role"], "{tree}");
        assert_eq!(stored["spawned"], member["spawned"], "{tree}");
        let phases = member.get("phases").cloned().unwrap_or_else(|| json!([]));
        assert_eq!(stored["phases"], phases, "{tree}");
    }
    assert_eq!(board["fix_loop"], state["fix_loop"], "{tree}");
    assert_eq!(board["execution"], state["execution"], "{tree}");
}

async fn infrastructure_failures_retry_then_fail(db: Db) {
    let app = engine_app(db, "", |c| {
        c.engine.max_infra_attempts = 2;
        c.engine.retry_backoff_secs = 1;
    })
    .await;
    let response = app
        .post("/api/v1/projects")
        .json(&json!({"name": "gone", "repo_url": "https://127.0.0.1:9/does/not/exist.git"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = create_task(&app, "gone", "clone me", "normal").await;
    let detail = wait_status(&app, id, &["failed"]).await;
    let reason = detail["status_reason"].as_str().unwrap();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(
        detail["runs"].as_array().unwrap().is_empty(),
        "no agent ran"
    );
    let events = app
        .store
        .events_after(0, Some(id), None, 100)
        .await
        .unwrap();
    let retries = events
        .iter()
        .filter(|e| e.kind == "retry_scheduled")
        .count();
    assert_eq!(retries, 2);
}

async fn events_stream_resumes_without_gap_or_duplicate(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "stream me", "normal").await;
    let mut seen: Vec<i64> = Vec::new();
    // First connection: read a few events, then drop it mid-stream.
    let first = read_sse(&app, id, None, 5).await;
    seen.extend(first);
    // The task's last writes are run_finished and then, if the status still changes, its
    // status_changed: once both are visible, the log for this task is complete.
    wait_for("the run to be recorded as finished", WAIT, || async {
        let events = app
            .store
            .events_after(0, Some(id), None, 10_000)
            .await
            .unwrap();
        let finished = events.iter().any(|e| e.kind == "run_finished");
        let status = app.store.task(id).await.unwrap().status;
        (finished && status == "awaiting_approval").then_some(())
    })
    .await;
    let total = app
        .store
        .events_after(0, Some(id), None, 10_000)
        .await
        .unwrap()
        .len();
    let rest = read_sse(&app, id, seen.last().copied(), total - seen.len()).await;
    seen.extend(rest);
    let stored: Vec<i64> = app
        .store
        .events_after(0, Some(id), None, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        seen, stored,
        "the stream must deliver every event once, in order"
    );
    let bad = app
        .get("/api/v1/events/stream?task=1")
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown = app
        .get("/api/v1/events/stream?project=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// Reads `count` SSE events of a task, resuming after `last_id`; returns their ids.
async fn read_sse(app: &TestApp, task: i64, last_id: Option<i64>, count: usize) -> Vec<i64> {
    use futures::StreamExt;
    let mut request = app.get(&format!("/api/v1/events/stream?task={task}"));
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut ids = Vec::new();
    let read = async {
        while ids.len() < count {
            let chunk = body.next().await.expect("stream open").unwrap();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id:")) {
                    ids.push(id.trim().parse().unwrap());
                }
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("SSE events in time");
    ids.truncate(count);
    ids
}

async fn retry_runs_a_failed_task_again(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-crash-in ANALYZING", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "crash", "normal").await;
    wait_status(&app, id, &["failed"]).await;
    let response = retry(&app, id).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let queued = response.json::<Value>().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert!(
        queued["status_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("retry requested by")),
        "{queued:#}"
    );
    // A new run happens: the simulator crashes again, so the task fails with two runs.
    let detail = wait_for("a second run to finish", WAIT, || async {
        let detail = task_detail(&app, id).await;
        let runs = detail["runs"].as_array().unwrap();
        (runs.len() == 2
            && runs.iter().all(|r| !r["finished_at"].is_null())
            && detail["status"] == "failed")
            .then_some(detail)
    })
    .await;
    assert_eq!(detail["runs"][1]["exit_code"], 101);
}

async fn retry_takes_only_failed_or_cancelled_tasks(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "never runs", "normal").await;
    let early = retry(&app, id).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    let body = early.json::<Value>().await.unwrap();
    assert!(
        body["error"]["message"].as_str().is_some_and(
            |m| m.contains("is queued; only a failed, cancelled or budget_exceeded task")
        ),
        "{body:#}"
    );
    app.post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    let retried = retry(&app, id).await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    assert_eq!(task_detail(&app, id).await["status"], "queued");
    assert_eq!(retry(&app, 99_999).await.status(), StatusCode::NOT_FOUND);
}

/// A run whose streamed usage passes `costs.task_max_cost_usd` is stopped and the task ends
/// `budget_exceeded` with its cost; retrying it does not run it again while it is over.
async fn a_task_over_its_cost_limit_is_stopped(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-phase-delay-ms 100", |c| {
        c.costs.task_max_cost_usd = 0.10;
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "spend", "normal").await;
    let detail = wait_status(
        &app,
        id,
        &["budget_exceeded", "awaiting_approval", "failed"],
    )
    .await;
    assert_eq!(detail["status"], "budget_exceeded", "{detail:#}");
    let reason = detail["status_reason"].as_str().unwrap();
    assert!(reason.contains("over its limit of $0.10"), "{reason}");
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let cost = runs[0]["cost_usd"].as_f64().unwrap();
    // Each simulated message costs about $0.02 at the claude-opus-4-5 price; the run was
    // stopped long before the pipeline's ~50 messages (about $1) were spent.
    assert!(cost > 0.10 && cost < 0.25, "{cost}");
    assert!(runs[0]["num_turns"].as_i64().unwrap() < 15, "{runs:#?}");
    assert_ne!(detail["phase"], "AWAITING_APPROVAL");
    // A retry is refused by the budget before any agent starts.
    let response = retry(&app, id).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let detail = wait_for("the retry to end over budget", WAIT, || async {
        let detail = task_detail(&app, id).await;
        let again = detail["status_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not run again"));
        (detail["status"] == "budget_exceeded" && again).then_some(detail)
    })
    .await;
    assert_eq!(detail["runs"].as_array().unwrap().len(), 1);
}

/// A process that starts on the data directory of a dead one takes back its running task at
/// once: queued, saying it recovers, its slot free. (tests/lifecycle.rs does it with real
/// processes and `kill -9`; here the queries run on both databases.) The predecessor is a
/// second engine of this test process running the task, since no local worker does; it
/// "dies" with its pipeline dropped where it is and its agent killed, so nothing of it writes
/// after the take-over.
async fn a_successor_takes_back_a_running_task_at_once(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-hang", |c| c.engine.workers = 0).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "outlive me", "normal").await;
    let engine =
        || aiops::engine::Engine::new(app.store.clone(), app.vault.clone(), app.config.clone());
    let predecessor = engine();
    let pipeline = tokio::spawn({
        let predecessor = predecessor.clone();
        async move {
            let job = aiops::queue::RunJob {
                task_id: id,
                resume_approval_id: None,
            };
            predecessor.advance_task(&job).await
        }
    });
    let pid = agent_pid(&app, id).await as i32;
    assert_eq!(
        app.store.slots_held_by(predecessor.holder()).await.unwrap(),
        1
    );
    pipeline.abort();
    assert!(pipeline.await.unwrap_err().is_cancelled());
    aiops::engine::agent::kill_group(pid);
    wait_for("the predecessor's agent to die", WAIT, || async {
        (!aiops::engine::agent::group_alive(pid)).then_some(())
    })
    .await;

    let successor = engine();
    assert_eq!(successor.take_over_predecessor().await.unwrap(), 1);
    let detail = task_detail(&app, id).await;
    assert_eq!(detail["status"], "queued", "{detail:#}");
    assert_eq!(detail["status_reason"], aiops::engine::worker::RECOVERING);
    assert_eq!(
        app.store.slots_held_by(predecessor.holder()).await.unwrap(),
        0
    );
    // Nothing is left to take back the second time.
    assert_eq!(successor.take_over_predecessor().await.unwrap(), 0);
}

/// The pid of the first run's agent of task `id`, once it has one.
async fn agent_pid(app: &TestApp, id: i64) -> i64 {
    wait_for("the agent process", WAIT, || async {
        app.store
            .runs(id)
            .await
            .unwrap()
            .first()
            .and_then(|r| r.pid)
    })
    .await
}

async fn retry(app: &TestApp, id: i64) -> reqwest::Response {
    app.post(&format!("/api/v1/tasks/{id}/retry"))
        .send()
        .await
        .unwrap()
}

on_both_databases!(
    a_task_over_its_cost_limit_is_stopped,
    pipeline_reaches_awaiting_approval,
    limits_and_priority_hold,
    cancel_stops_the_process_group,
    queued_task_cancels_at_once,
    hang_times_out,
    crash_fails_with_reason,
    garbage_lines_are_skipped,
    secrets_never_stored,
    symlinks_read_nothing_outside,
    fixture_ingests_completely,
    infrastructure_failures_retry_then_fail,
    events_stream_resumes_without_gap_or_duplicate,
    retry_runs_a_failed_task_again,
    retry_takes_only_failed_or_cancelled_tasks,
    a_successor_takes_back_a_running_task_at_once,
);
