//! Engine benchmark: claim latency (task created → agent process started) and tasks/s
//! through the whole path (queue, slot, git worktree, spawn, ingest, settle, clean up)
//! with a no-op agent, at worker concurrency 1 and 8, on SQLite and PostgreSQL; next to
//! the raw apalis push-and-claim rate measured in the same run.
//!
//! Run: `cargo bench --bench engine_throughput`. Environment: `BENCH_TASKS` (200),
//! `BENCH_JOBS` (2000 raw jobs), `BENCH_BACKENDS` (sqlite,postgres),
//! `AIOPS_TEST_DATABASE_URL` (postgres://postgres@127.0.0.1:5432/test; a scratch
//! database is created and dropped).

mod common;
use common::{env_or, git_repo, percentile, scratch_pg};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiops::config::Config;
use aiops::queue::{NewJob, RunJob};
use aiops::store::{Pool, Store};
use aiops::tasks::{self, Priority, Source, TaskSpec};
use apalis::prelude::*;

/// Pushes `jobs` jobs on a scratch queue in one transaction each, then measures how fast
/// one apalis worker with a no-op handler at concurrency 8 claims and completes them.
async fn raw_apalis(store: &Store, jobs: usize) -> (f64, f64) {
    const QUEUE: &str = "aiops-bench-raw";
    let started = Instant::now();
    for i in 0..jobs {
        let job = NewJob::now(i as i64, Priority::Normal);
        match store.pool() {
            Pool::Sqlite(p) => {
                let mut tx = p.begin().await.unwrap();
                push_raw_sqlite(&mut tx, &job, QUEUE).await;
                tx.commit().await.unwrap();
            }
            Pool::Postgres(p) => {
                let mut tx = p.begin().await.unwrap();
                push_raw_pg(&mut tx, &job, QUEUE).await;
                tx.commit().await.unwrap();
            }
        }
    }
    let push_rate = jobs as f64 / started.elapsed().as_secs_f64();
    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(tokio::sync::Notify::new());
    async fn noop(
        _job: RunJob,
        done: Data<Arc<AtomicUsize>>,
        all: Data<(usize, Arc<tokio::sync::Notify>)>,
    ) -> Result<(), BoxDynError> {
        let (total, notify) = &*all;
        if done.fetch_add(1, Ordering::SeqCst) + 1 == *total {
            notify.notify_one();
        }
        Ok(())
    }
    let started = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        }
    };
    let worker = match store.pool().clone() {
        Pool::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default().queue(QUEUE).batch_size(8);
            let backend = apalis_sqlite::SqliteStorage::<RunJob>::new(&pool)
                .with_config(config)
                .poll_with_interval(Duration::from_millis(10));
            tokio::spawn(
                WorkerBuilder::new("bench-raw")
                    .backend(backend)
                    .data(done.clone())
                    .data((jobs, finished.clone()))
                    .concurrency(8)
                    .build(noop)
                    .run_until(signal),
            )
        }
        Pool::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(QUEUE)
                .batch_size(8);
            let backend = apalis_postgres::PostgresStorage::<RunJob>::new(&pool)
                .with_config(config)
                .poll_with_interval(Duration::from_millis(10));
            tokio::spawn(
                WorkerBuilder::new("bench-raw")
                    .backend(backend)
                    .data(done.clone())
                    .data((jobs, finished.clone()))
                    .concurrency(8)
                    .build(noop)
                    .run_until(signal),
            )
        }
    };
    tokio::time::timeout(Duration::from_secs(300), finished.notified())
        .await
        .expect("raw jobs drained");
    let claim_rate = jobs as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = worker.await;
    (push_rate, claim_rate)
}

async fn push_raw_sqlite(tx: &mut sqlx::SqliteConnection, job: &NewJob, queue: &str) {
    let task = TaskBuilder::new(serde_json::to_vec(&job.job).unwrap()).build();
    apalis_sqlite::queries::push_tasks(tx, queue, &[task])
        .await
        .unwrap();
}

async fn push_raw_pg(tx: &mut sqlx::PgConnection, job: &NewJob, queue: &str) {
    let task = TaskBuilder::new(serde_json::to_vec(&job.job).unwrap()).build();
    apalis_postgres::queries::push_tasks(tx, queue, vec![task])
        .await
        .unwrap();
}

async fn whole_path(backend: &str, url: &str, workers: usize, tasks: usize) {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    git_repo(repo.path());
    let mut config = Config {
        data_dir: data.path().to_path_buf(),
        database_url: url.to_string(),
        ..Default::default()
    };
    config.engine.workers = workers;
    config.engine.shim_program = common::shim_program();
    config.engine.max_concurrent_tasks = workers as i64;
    config.engine.command = "true".into();
    config.engine.queue_poll_ms = 200;
    config.engine.ingest_interval_ms = 200;
    config.inputs.local_roots = vec![repo.path().to_path_buf()];
    let inputs = config.inputs.clone();
    let started = aiops::server::start(config).await.expect("start");
    let store = started.state.store.clone();
    let project = aiops::projects::NewProject {
        name: "bench".into(),
        local_path: Some(repo.path().to_string_lossy().into_owned()),
        max_concurrency: Some(workers as i64),
        ..Default::default()
    };
    let project = store
        .insert_project(&project.into_spec(&inputs).unwrap())
        .await
        .unwrap();
    let spec = |i: usize| TaskSpec {
        project_id: project.id,
        team: "bugfix".into(),
        prompt: format!("noop {i}"),
        source: Source::Api,
        priority: Priority::Normal,
        dedup_key: None,
        source_ref: serde_json::json!({}),
        created_by: "bench".into(),
        requested_by: None,
    };
    // Claim latency on an idle queue: one task at a time, created → agent started.
    let mut latencies = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let id = tasks::enqueue(&store, &spec(i)).await.unwrap().id;
        wait_ended(&store, &[id]).await;
        let task = store.task(id).await.unwrap();
        let run = store
            .runs(id)
            .await
            .unwrap()
            .into_iter()
            .next()
            .expect("one run");
        latencies.push(
            (run.started_at - task.created_at)
                .num_microseconds()
                .unwrap() as f64
                / 1000.0,
        );
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // Throughput: a burst of tasks, created → every one ended.
    let begin = Instant::now();
    let mut ids = Vec::new();
    for i in 0..tasks {
        ids.push(tasks::enqueue(&store, &spec(i)).await.unwrap().id);
    }
    wait_ended(&store, &ids).await;
    let wall = begin.elapsed();
    println!(
        "| {backend} | {workers} | {tasks} | {:.1} | {:.1} | {:.1} |",
        tasks as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    if let Some(w) = started.workers {
        w.stop().await;
    }
    store.close().await;
}

/// Tasks sampled one at a time for the claim latency.
const LATENCY_SAMPLES: usize = 50;

/// Waits until every task has ended (a no-op agent leaves no `.party/`, so it fails).
async fn wait_ended(store: &Store, ids: &[i64]) {
    let mut pending: Vec<i64> = ids.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            if store.task_exec(id).await.unwrap().status != "failed" {
                still.push(id);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let tasks: usize = env_or("BENCH_TASKS", 200);
    let jobs: usize = env_or("BENCH_JOBS", 2000);
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_string());
    let admin_url = std::env::var("AIOPS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut raw = Vec::new();
    println!("Whole path, no-op agent (`true`):\n");
    println!("| store | workers | burst tasks | tasks/s | idle claim p50 ms | idle claim p99 ms |");
    println!("|---|---|---|---|---|---|");
    for backend in backends.split(',') {
        let dir = tempfile::tempdir().unwrap();
        for workers in [1usize, 8] {
            let url = match backend {
                "sqlite" => format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("w{workers}.db")).display()
                ),
                "postgres" => {
                    scratch_pg(
                        &admin_url,
                        &format!("aiops_bench_engine_{workers}_{}", std::process::id()),
                    )
                    .await
                }
                other => panic!("unknown backend {other}"),
            };
            whole_path(backend, &url, workers, tasks).await;
        }
        let url = match backend {
            "sqlite" => format!("sqlite://{}?mode=rwc", dir.path().join("raw.db").display()),
            _ => {
                scratch_pg(
                    &admin_url,
                    &format!("aiops_bench_raw_{}", std::process::id()),
                )
                .await
            }
        };
        let config = Config {
            database_url: url.clone(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let store = aiops::server::open_store(&config).await.unwrap();
        raw.push((backend.to_string(), raw_apalis(&store, jobs).await));
        store.close().await;
    }
    println!(
        "\nRaw apalis, {jobs} jobs (push: one transaction each, sequential; claim: one worker, concurrency 8, no-op handler):\n"
    );
    println!("| store | push jobs/s | claim+complete jobs/s |");
    println!("|---|---|---|");
    for (backend, (push, claim)) in raw {
        println!("| {backend} | {push:.0} | {claim:.0} |");
    }
    for workers in [1, 8] {
        if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
            for name in [
                format!("aiops_bench_engine_{workers}_{}", std::process::id()),
                format!("aiops_bench_raw_{}", std::process::id()),
            ] {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await;
            }
        }
    }
}
