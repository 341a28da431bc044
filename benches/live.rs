//! Live benchmark: event latency (a line appended to a running pipeline's
//! `.party/…/events.ndjson` → the SSE client receives it), aiops' CPU with 20 idle running
//! pipelines, and slot release → the next waiting task's run started; on SQLite and
//! PostgreSQL. Baselines in the same run: the same latency and CPU with file notifications
//! off and the old 500 ms poll (`engine.file_notifications = false`), and the idle claim
//! latency (task created → run started, nothing waiting) beside the release latency.
//!
//! Run: `cargo bench --bench live`. Environment: `BENCH_BACKENDS` (sqlite,postgres),
//! `BENCH_SAMPLES` (100 events), `BENCH_IDLE_SECS` (10), `AIOPS_TEST_DATABASE_URL`
//! (postgres://postgres@127.0.0.1:5432/test; scratch databases are created and dropped).

mod common;
use common::{env_or, git_repo, percentile, scratch_pg};

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aiops::config::Config;
use aiops::store::Store;
use aiops::tasks::{self, Priority, Source, TaskSpec};
use futures::StreamExt;

const SESSION: &str = "party-bugfix-20260101120000";

/// An idle pipeline: makes its party session and its events file, then sleeps.
fn idle_agent() -> String {
    format!(
        "sh -c 'mkdir -p .party/sessions/{SESSION} && : > .party/sessions/{SESSION}/events.ndjson && exec sleep 100000'"
    )
}

struct App {
    store: Store,
    base: String,
    token: String,
    project: i64,
    _data: tempfile::TempDir,
    _repo: tempfile::TempDir,
    workers: Option<aiops::server::Workers>,
    engine: std::sync::Arc<aiops::engine::Engine>,
    tasks: std::sync::Mutex<Vec<i64>>,
}

async fn start(url: &str, adjust: impl FnOnce(&mut Config)) -> App {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    git_repo(repo.path());
    let mut config = Config {
        data_dir: data.path().to_path_buf(),
        database_url: url.to_string(),
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    config.engine.workers = 24;
    config.engine.shim_program = common::shim_program();
    config.engine.max_concurrent_tasks = 24;
    config.engine.queue_poll_ms = 1000;
    config.inputs.local_roots = vec![repo.path().to_path_buf()];
    config.intake.max_sse_streams = 1000;
    adjust(&mut config);
    let inputs = config.inputs.clone();
    let started = aiops::server::start(config).await.expect("start");
    let store = started.state.store.clone();
    let token = started.admin_token.clone().expect("token");
    let project = aiops::projects::NewProject {
        name: "bench".into(),
        local_path: Some(repo.path().to_string_lossy().into_owned()),
        max_concurrency: Some(24),
        ..Default::default()
    };
    let project = store
        .insert_project(&project.into_spec(&inputs).unwrap())
        .await
        .unwrap()
        .id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let workers = started.workers;
    let engine = started.state.engine.clone();
    tokio::spawn(aiops::http::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    App {
        store,
        base,
        token,
        project,
        _data: data,
        _repo: repo,
        workers,
        engine,
        tasks: std::sync::Mutex::default(),
    }
}

impl App {
    async fn task(&self, i: usize) -> i64 {
        let spec = TaskSpec {
            project_id: self.project,
            team: "bugfix".into(),
            prompt: format!("bench {i}"),
            source: Source::Api,
            priority: Priority::Normal,
            dedup_key: None,
            source_ref: serde_json::json!({}),
            created_by: "bench".into(),
            requested_by: None,
        };
        let id = tasks::enqueue(&self.store, &spec).await.unwrap().id;
        self.tasks.lock().unwrap().push(id);
        id
    }

    /// The events file of a running task, once ingestion found its session; panics with
    /// the task's status if that takes more than a minute (its agent did not start).
    async fn events_file(&self, id: i64) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exec = self.store.task_exec(id).await.unwrap();
            if let (Some(worktree), Some(_)) = (exec.worktree_path, exec.party_session_id) {
                return PathBuf::from(worktree)
                    .join(format!(".party/sessions/{SESSION}/events.ndjson"));
            }
            if Instant::now() > deadline || exec.status.has_ended() {
                let task = self.store.task(id).await.unwrap();
                panic!(
                    "task {id} never showed its party session: {} ({:?})",
                    task.status, task.status_reason
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops every pipeline (their agents sleep otherwise), then the workers.
    async fn stop(self) {
        let ids = self.tasks.lock().unwrap().clone();
        for id in ids {
            let _ = tasks::request_cancel(&self.store, id).await;
            self.engine.cancel_local(id);
        }
        if let Some(workers) = self.workers
            && tokio::time::timeout(Duration::from_secs(20), workers.stop())
                .await
                .is_err()
        {
            eprintln!("the workers did not stop within 20 s; going on");
            return;
        }
        self.store.close().await;
    }
}

/// File write → SSE frame, `samples` times; sorted milliseconds.
async fn event_latency(app: &App, samples: usize) -> Vec<f64> {
    let id = app.task(0).await;
    let path = app.events_file(id).await;
    let client = reqwest::Client::new();
    let after = app.store.max_event_id().await.unwrap();
    let response = client
        .get(format!(
            "{}/api/v1/events/stream?task={id}&after={after}",
            app.base
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut latencies = Vec::new();
    for i in 0..samples {
        // Spaced like a pipeline's writes, so each sample stands alone.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let kind = format!("probe_{i}");
        let written = Instant::now();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(file, "{{\"type\":\"{kind}\"}}").unwrap();
        drop(file);
        let wanted = format!("event: {kind}\n");
        while !buffer.contains(&wanted) {
            let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} on the stream within 30 s: {buffer}"));
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
        latencies.push(written.elapsed().as_secs_f64() * 1000.0);
        buffer.clear();
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    latencies
}

/// CPU seconds this process used (user + system), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Share of one core the process used while `pipelines` idle pipelines ran for `secs`.
async fn idle_cpu(app: &App, pipelines: usize, secs: u64) -> f64 {
    let mut ids = Vec::new();
    for i in 0..pipelines {
        ids.push(app.task(i + 1).await);
    }
    for id in &ids {
        app.events_file(*id).await;
    }
    // Let start-up work settle, then measure a quiet window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64() * 100.0
}

/// A project with one slot and `n` tasks queued at once: run finished → next run started
/// (the release and every step before the spawn), and the idle claim latency beside it.
async fn release_latency(app: &App, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut idle = Vec::new();
    for i in 0..20 {
        let id = app.task(1000 + i).await;
        let run = wait_run_end(&app.store, id).await;
        let created = app.store.task(id).await.unwrap().created_at;
        idle.push((run.0 - created).num_microseconds().unwrap() as f64 / 1000.0);
    }
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.task(2000 + i).await);
    }
    let mut runs = Vec::new();
    for id in ids {
        runs.push(wait_run_end(&app.store, id).await);
    }
    runs.sort();
    let mut gaps: Vec<f64> = runs
        .windows(2)
        .map(|w| (w[1].0 - w[0].1).num_microseconds().unwrap() as f64 / 1000.0)
        .collect();
    gaps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    idle.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (gaps, idle)
}

/// (started_at, finished_at) of a task's first run, once it finished.
async fn wait_run_end(
    store: &Store,
    id: i64,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    loop {
        if let Some(run) = store.runs(id).await.unwrap().into_iter().next()
            && let Some(end) = run.finished_at
            && store.task_exec(id).await.unwrap().status.has_ended()
        {
            return (run.started_at, end);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() {
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_string());
    let samples: usize = env_or("BENCH_SAMPLES", 100);
    let idle_secs: u64 = env_or("BENCH_IDLE_SECS", 10);
    let admin_url = std::env::var("AIOPS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut url = |backend: &str| {
        n += 1;
        let name = format!("aiops_bench_live_{n}_{}", std::process::id());
        (backend.to_string(), name)
    };
    let mut rows = Vec::new();
    for backend in backends.split(',') {
        for notifications in [true, false] {
            let (backend, name) = url(backend);
            let db = match backend.as_str() {
                "sqlite" => format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("{name}.db")).display()
                ),
                _ => scratch_pg(&admin_url, &name).await,
            };
            let app = start(&db, |c| {
                c.engine.command = idle_agent();
                c.engine.file_notifications = notifications;
                c.engine.ingest_interval_ms = if notifications { 5000 } else { 500 };
            })
            .await;
            let count = if notifications {
                samples
            } else {
                samples.min(40)
            };
            eprintln!("{backend}, file notifications {notifications}: event latency");
            let latencies = event_latency(&app, count).await;
            eprintln!("{backend}, file notifications {notifications}: idle CPU");
            let cpu = idle_cpu(&app, 20, idle_secs).await;
            rows.push(format!(
                "| {backend} | {} | {count} | {:.1} | {:.1} | {cpu:.2} % |",
                if notifications {
                    "inotify + 5 s safety poll"
                } else {
                    "poll every 500 ms (before)"
                },
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
            ));
            app.stop().await;
        }
    }
    println!("Event latency (file write → SSE client) and CPU with 20 idle running pipelines:\n");
    println!("| store | ingestion | samples | p50 ms | p99 ms | aiops CPU, 20 idle pipelines |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    println!(
        "\nSlot release → next task's run started (one slot, 50 queued tasks, agent `true`):\n"
    );
    println!(
        "| store | release→start p50 ms | p99 ms | idle claim (created→start) p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|");
    for backend in backends.split(',') {
        let (backend, name) = url(backend);
        let db = match backend.as_str() {
            "sqlite" => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{name}.db")).display()
            ),
            _ => scratch_pg(&admin_url, &name).await,
        };
        let app = start(&db, |c| {
            c.engine.command = "true".into();
            c.engine.max_concurrent_tasks = 1;
            c.engine.workers = 4;
            c.engine.slot_wait_secs = 600;
        })
        .await;
        eprintln!("{backend}: slot release latency");
        let (gaps, idle) = release_latency(&app, 50).await;
        println!(
            "| {backend} | {:.1} | {:.1} | {:.1} | {:.1} |",
            percentile(&gaps, 0.5),
            percentile(&gaps, 0.99),
            percentile(&idle, 0.5),
            percentile(&idle, 0.99)
        );
        app.stop().await;
    }
    if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
        for i in 1..=n {
            let name = format!("aiops_bench_live_{i}_{}", std::process::id());
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
        }
    }
}
