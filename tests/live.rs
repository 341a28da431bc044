//! Live in milliseconds: what a pipeline writes reaches an event stream on a file
//! notification, not on a poll; and a freed concurrency slot starts the next waiting task at
//! once, not after `slot_wait_secs`, and to the task that waited for it; a stop right after
//! cancelling many runs returns. Real queue, real git worktrees, the pipeline simulator,
//! real HTTP on loopback, on SQLite and PostgreSQL.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aiops::model::NewEvent;
use common::pipeline::{WAIT, add_project, create_task, engine_app, wait_status};
use common::{Db, TestApp, wait_for};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

/// Far longer than any wait below: a fast arrival cannot be the safety-net poll.
const LONG_POLL_MS: u64 = 120_000;

/// The events file of a running task's party session, once ingestion found the session and
/// the hanging simulator wrote its last line (entering CONTEXTUALIZING): what a test appends
/// after that is all that follows.
async fn events_file(app: &TestApp, id: i64) -> PathBuf {
    wait_for("the party session to be found", WAIT, || async {
        let exec = app.store.task_exec(id).await.unwrap();
        let (Some(worktree), Some(session)) = (exec.worktree_path, exec.party_session_id) else {
            return None;
        };
        let path = PathBuf::from(worktree).join(format!(".party/sessions/{session}/events.ndjson"));
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        (written.contains("CONTEXTUALIZING") && written.ends_with('\n')).then_some(path)
    })
    .await
}

fn append(path: &PathBuf, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

/// An open SSE stream of one task, read frame by frame.
struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, task: i64, after: i64) -> Stream {
        let response = app
            .get(&format!("/api/v1/events/stream?task={task}&after={after}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Stream {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|b| b.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// Waits (at most `deadline`) for an event of `kind`; returns when it arrived.
    async fn until_kind(&mut self, kind: &str, deadline: Duration) -> Instant {
        let wanted = format!("event: {kind}\n");
        let read = async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    if frame.contains(&wanted) {
                        return Instant::now();
                    }
                }
                let chunk = self.body.next().await.expect("stream open").unwrap();
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(deadline, read)
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within {deadline:?}"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn a_written_event_reaches_the_stream_on_a_notification(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-hang", |c| {
        c.engine.ingest_interval_ms = LONG_POLL_MS;
        c.ingest.max_event_line_bytes = 64 * 1024;
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "hang", "normal").await;
    // Found at all only because `.party/` appearing was notified: the first read is at start.
    let events = events_file(&app, id).await;
    let mut stream = Stream::open(&app, id, app.store.max_event_id().await.unwrap()).await;
    let mut latencies = Vec::new();
    for i in 0..20 {
        let kind = format!("probe_{i}");
        let written = Instant::now();
        append(
            &events,
            format!("{{\"type\":\"{kind}\",\"n\":{i}}}\n").as_bytes(),
        );
        let arrived = stream.until_kind(&kind, Duration::from_secs(10)).await;
        latencies.push(arrived - written);
    }
    latencies.sort();
    println!(
        "file write → SSE ({db:?}): p50 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        latencies.last().unwrap()
    );

    // A corrupt line, then a line over the cap that grows without a newline: skipped,
    // recorded as inside that line (a restart goes on from there), and the stream goes on.
    append(&events, b"{not json\n");
    append(&events, &vec![b'x'; 100 * 1024]);
    wait_for("the over-long line to be recorded", WAIT, || async {
        app.store
            .task_exec(id)
            .await
            .unwrap()
            .events_inside_line
            .then_some(())
    })
    .await;
    append(&events, &vec![b'y'; 100 * 1024]);
    append(&events, b"\n{\"type\":\"after_the_long_line\"}\n");
    stream
        .until_kind("after_the_long_line", Duration::from_secs(10))
        .await;
    // The read position is stored after the events it covers (they are keyed by offset, so
    // storing them twice is harmless): wait for it to reach the end of the file.
    let length = std::fs::metadata(&events).unwrap().len();
    wait_for("the read position to pass the long line", WAIT, || async {
        let exec = app.store.task_exec(id).await.unwrap();
        (!exec.events_inside_line && exec.events_offset as u64 == length).then_some(())
    })
    .await;
    let cancelled = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    wait_status(&app, id, &["cancelled"]).await;
}

/// A restarted reader inside an over-long line goes on looking for its end: it never reads
/// the line from its start (a line planted inside the part already looked at stays unseen).
async fn a_restart_inside_a_long_line_does_not_rescan(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-hang", |c| {
        c.engine.ingest_interval_ms = LONG_POLL_MS;
        c.ingest.max_event_line_bytes = 4096;
        c.engine.worktree_retention = aiops::config::WorktreeRetention::Keep;
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "hang", "normal").await;
    let events = events_file(&app, id).await;
    let start = std::fs::metadata(&events).unwrap().len();
    append(&events, &vec![b'x'; 20_000]);
    let exec = wait_for("the over-long line to be recorded", WAIT, || async {
        let exec = app.store.task_exec(id).await.unwrap();
        (exec.events_inside_line && exec.events_offset as u64 == start + 20_000).then_some(exec)
    })
    .await;
    app.post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    wait_status(&app, id, &["cancelled"]).await;
    // Plant a valid event inside the part already scanned, then end the long line.
    let mut bytes = std::fs::read(&events).unwrap();
    let planted = b"\n{\"type\":\"planted\"}\n";
    let at = start as usize + 100;
    bytes[at..at + planted.len()].copy_from_slice(planted);
    bytes.extend_from_slice(b"\n{\"type\":\"after_restart\"}\n");
    std::fs::write(&events, &bytes).unwrap();

    let limits = aiops::engine::party::Limits {
        max_events_read_bytes: 4096,
        ..Default::default()
    };
    let mut ingestor = aiops::engine::ingest::Ingestor::new(
        app.store.clone(),
        &exec,
        PathBuf::from(exec.worktree_path.clone().unwrap()),
        limits,
        app.config.ingest,
        app.vault.redactor(Vec::new()),
    );
    ingestor.tick().await.unwrap();
    let kinds: Vec<String> = app
        .store
        .events_after(0, Some(id), None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.iter().any(|k| k == "after_restart"), "{kinds:?}");
    assert!(
        !kinds.iter().any(|k| k == "planted"),
        "the long line was rescanned"
    );
}

/// With `slot_wait_secs` far longer than the test, a task waiting for its project's only
/// slot starts as soon as the slot is released: only the wake-up on release explains it.
async fn a_released_slot_starts_the_next_task_at_once(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |c| {
        c.engine.slot_wait_secs = 600;
        c.engine.queue_poll_ms = 60_000;
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({"max_concurrency": 1})).await;
    let ids = [
        create_task(&app, "shop", "first", "normal").await,
        create_task(&app, "shop", "second", "normal").await,
        create_task(&app, "shop", "third", "high").await,
    ];
    for id in ids {
        wait_status(&app, id, &["awaiting_approval"]).await;
    }
    let mut runs = Vec::new();
    for id in ids {
        let run = app.store.runs(id).await.unwrap().remove(0);
        runs.push((run.started_at, run.finished_at.unwrap(), id));
    }
    runs.sort();
    // The high-priority task queued last went before the normal one waiting longer, when
    // it was queued before the first run ended.
    let high_queued = app.store.task(ids[2]).await.unwrap().created_at;
    if runs[0].2 != ids[2] && high_queued < runs[0].1 {
        assert_eq!(runs[1].2, ids[2], "{runs:?}");
    }
    for pair in runs.windows(2) {
        let gap = (pair[1].0 - pair[0].1).to_std().unwrap_or_default();
        println!("slot released → next run started: {gap:?}");
        assert!(gap < Duration::from_secs(5), "the next task waited {gap:?}");
    }
    assert_eq!(app.store.slot_waiters().await.unwrap(), 0);
}

/// Project `shop` on an engine with one slot, held by the hanging run of task `first`; the
/// queue's poll and the slot sweep far longer than any wait (`adjust` sets more): the
/// repository (kept while the test runs), the app and the first task.
async fn a_hanging_run_in_the_only_slot(
    db: Db,
    adjust: impl FnOnce(&mut aiops::config::Config),
) -> (tempfile::TempDir, TestApp, i64) {
    let repo = common::git_repo();
    let app = engine_app(db, "--sim-hang", |c| {
        c.engine.max_concurrent_tasks = 1;
        c.engine.queue_poll_ms = LONG_POLL_MS;
        c.engine.slot_wait_secs = 600;
        adjust(c);
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let first = create_task(&app, "shop", "first", "normal").await;
    wait_for("the first run", WAIT, || async {
        started(&app, first).await.then_some(())
    })
    .await;
    (repo, app, first)
}

/// Whether a run of the task has started.
async fn started(app: &TestApp, id: i64) -> bool {
    !app.store.runs(id).await.unwrap().is_empty()
}

async fn cancel(app: &TestApp, id: i64) {
    let response = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "cancel {id}");
}

/// A task waiting for a slot gets the slot a run frees before a task queued after it, though
/// this node's only queue worker is busy and the node that parked the waiter has stopped: the
/// worker that frees the slot starts the waiter itself, under a claim of its own, instead of
/// pushing its job behind the later task's older one (and with a poll far longer than the
/// test, nothing else could start it).
async fn a_freed_slot_goes_to_its_waiter_before_a_task_queued_after_it(db: Db) {
    let (_repo, app, first) = a_hanging_run_in_the_only_slot(db, |c| c.engine.workers = 1).await;
    // Another node on the same database claims the waiter's job and parks it, then stops.
    let waiter = create_task(&app, "shop", "waiter", "normal").await;
    let other_data = tempfile::tempdir().unwrap();
    let mut other_config = (*app.config).clone();
    other_config.data_dir = other_data.path().to_path_buf();
    let other = aiops::engine::Engine::new(
        app.db.store().await,
        app.vault.clone(),
        std::sync::Arc::new(other_config),
    );
    let other_workers = aiops::server::Workers::start(other);
    wait_for("the task to wait for a slot", WAIT, || async {
        (app.store.slot_waiters().await.unwrap() == 1).then_some(())
    })
    .await;
    tokio::time::timeout(WAIT, other_workers.stop())
        .await
        .expect("the other node stops");
    let later = create_task(&app, "shop", "later", "normal").await;
    cancel(&app, first).await;
    let next = wait_for("the next run", WAIT, || async {
        for id in [waiter, later] {
            if started(&app, id).await {
                return Some(id);
            }
        }
        None
    })
    .await;
    assert_eq!(next, waiter, "the task queued later took the freed slot");
    assert_eq!(app.store.slot_waiters().await.unwrap(), 0);
    // The later task's job is still in the queue and runs once the slot frees again.
    cancel(&app, waiter).await;
    wait_for("the later run", WAIT, || async {
        started(&app, later).await.then_some(())
    })
    .await;
    cancel(&app, later).await;
    wait_status(&app, later, &["cancelled"]).await;
}

/// A stop asked for while many cancelled runs are still ending returns once they ended (what
/// a Ctrl-C right after cancelling does): recording each job's end in the queue does not wait
/// on a worker that no longer fetches.
async fn a_stop_while_cancelled_runs_end_returns(db: Db) {
    const PIPELINES: usize = 16;
    let repo = common::git_repo();
    let mut app = engine_app(db, "--sim-hang", |c| {
        c.engine.workers = PIPELINES;
        c.engine.max_concurrent_tasks = PIPELINES as i64;
    })
    .await;
    let project = json!({"max_concurrency": PIPELINES});
    add_project(&app, "shop", repo.path(), project).await;
    let mut ids = Vec::new();
    for i in 0..PIPELINES {
        ids.push(create_task(&app, "shop", &format!("hang {i}"), "normal").await);
    }
    wait_for("every pipeline to run", WAIT, || async {
        for &id in &ids {
            if !started(&app, id).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    for &id in &ids {
        cancel(&app, id).await;
    }
    assert!(
        app.stop_workers(Duration::from_secs(30)).await,
        "the workers did not stop within 30 s of the cancels"
    );
    for id in ids {
        let run = app.store.runs(id).await.unwrap().remove(0);
        assert!(
            run.finished_at.is_some(),
            "the stop returned before run {id} ended"
        );
    }
}

/// Events another node commits wake this node's live streams through PostgreSQL's
/// notification, not at the streams' next poll: this node's newest-event watch, which only
/// this process' own commits and the notification move, reaches the other node's event.
#[tokio::test]
async fn another_nodes_events_wake_this_nodes_streams() {
    let repo = common::git_repo();
    let app = TestApp::spawn(Db::Postgres).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let task = create_task(&app, "shop", "stays queued", "normal").await;
    let project = app.store.task_exec(task).await.unwrap().project_id;
    // Another node: its own pool on the same database.
    let other = app.db.store().await;
    let mut wake = app.store.subscribe_events();
    // Sent again until heard: the listener may not be listening yet when the first is stored.
    let deadline = Instant::now() + WAIT;
    loop {
        let event = NewEvent::platform(task, project, "from_another_node", json!({}));
        other.insert_events(&[event]).await.unwrap();
        let id = other.max_event_id().await.unwrap();
        let heard = wake.wait_for(|newest| *newest >= id);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(250), heard).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "this node never heard of another node's event"
        );
    }
}

/// The id of the first event of `kind` of `task`, once there is one.
async fn event_id(app: &TestApp, task: i64, kind: &str) -> i64 {
    wait_for(kind, WAIT, || async {
        let events = app
            .store
            .events_after(0, Some(task), None, 1000)
            .await
            .unwrap();
        events.iter().find(|e| e.kind == kind).map(|e| e.id)
    })
    .await
}

/// A freed slot handed to a waiting task starts its run before the freed run is concluded
/// (its `run_finished` event, the worktree's removal, the task's status): the next start's
/// `git worktree add` and first writes do not queue behind those.
async fn a_handed_slot_starts_the_next_run_before_the_last_one_concludes(db: Db) {
    let (_repo, app, first) = a_hanging_run_in_the_only_slot(db, |_| {}).await;
    let second = create_task(&app, "shop", "second", "normal").await;
    wait_for("the second task to wait for the slot", WAIT, || async {
        (app.store.slot_waiters().await.unwrap() == 1).then_some(())
    })
    .await;
    cancel(&app, first).await;
    let second_started = event_id(&app, second, "run_started").await;
    let first_finished = event_id(&app, first, "run_finished").await;
    assert!(
        second_started < first_finished,
        "the first run was concluded (event {first_finished}) before the second started (event {second_started})"
    );
    // The conclusion still happens: the first task's worktree goes.
    let worktree = app
        .store
        .task_exec(first)
        .await
        .unwrap()
        .worktree_path
        .unwrap();
    wait_for("the first worktree to be removed", WAIT, || async {
        (!std::path::Path::new(&worktree).exists()).then_some(())
    })
    .await;
}

on_both_databases!(
    a_handed_slot_starts_the_next_run_before_the_last_one_concludes,
    a_written_event_reaches_the_stream_on_a_notification,
    a_restart_inside_a_long_line_does_not_rescan,
    a_released_slot_starts_the_next_task_at_once,
    a_freed_slot_goes_to_its_waiter_before_a_task_queued_after_it,
    a_stop_while_cancelled_runs_end_returns,
);
