//! Queue workers: apalis workers on the store's pool that hand each `RunJob` to the
//! engine. Claims are prompt (SQLite update hook, PostgreSQL LISTEN/NOTIFY) with a slow
//! poll as a safety net; a worker that dies is noticed by its missed heartbeats and its
//! job goes back to the queue.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{Engine, JobOutcome};
use crate::queue::{RUN_QUEUE, RunJob};
use crate::store::Pool;

/// Heartbeats a worker may miss before its job is handed to another.
const MISSED_HEARTBEATS: usize = 3;

async fn handle_run_job(job: RunJob, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    // A task of its own, so pipelines run in parallel on the runtime's threads rather
    // than inside the worker's future.
    let engine = Arc::clone(&engine);
    let processed = tokio::spawn({
        let job = job.clone();
        async move { engine.process(&job).await }
    })
    .await?;
    match processed {
        Ok(JobOutcome::Ran(status)) => {
            tracing::info!(task = job.task_id, status, "pipeline run finished");
            Ok(())
        }
        Ok(outcome) => {
            tracing::debug!(task = job.task_id, ?outcome, "job handled");
            Ok(())
        }
        Err(e) => {
            tracing::error!(task = job.task_id, error = %e, "job failed; the queue retries it");
            Err(Box::new(e))
        }
    }
}

/// Runs `engine.config.engine.workers` concurrent job handlers until `shutdown` fires.
/// A worker that stops on a backend error is started again under a new name after a pause.
pub async fn run_workers(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut generation = 0u32;
    loop {
        generation += 1;
        let name = format!("{}-w{generation}", engine.holder());
        let stop = shutdown.clone();
        let signal = async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        };
        let result = run_one_worker(engine.clone(), name.clone(), signal).await;
        if shutdown.is_cancelled() {
            return;
        }
        tracing::error!(worker = name, error = ?result.err(), "queue worker stopped; starting a new one");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn run_one_worker(
    engine: Arc<Engine>,
    name: String,
    signal: impl std::future::Future<Output = Result<(), std::io::Error>> + Send + 'static,
) -> Result<(), WorkerError> {
    let settings = &engine.config.engine;
    let concurrency = settings.workers;
    let poll = Duration::from_millis(settings.queue_poll_ms);
    let heartbeat = Duration::from_secs(settings.heartbeat_secs);
    match engine.store.pool().clone() {
        Pool::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(RUN_QUEUE)
                .batch_size(1)
                .heartbeat_interval(heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let storage = apalis_sqlite::SqliteStorage::<RunJob>::new(&pool).with_config(config);
            let wake = engine
                .store
                .jobs_inserted()
                .expect("a SQLite store has a job signal");
            let backend = storage.poll_with_stream(wake).poll_with_interval(poll);
            WorkerBuilder::new(name)
                .backend(backend)
                .data(engine.clone())
                .concurrency(concurrency)
                .build(handle_run_job)
                .run_until(signal)
                .await
        }
        Pool::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(RUN_QUEUE)
                .batch_size(1)
                .heartbeat_interval(heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let storage =
                apalis_postgres::PostgresStorage::<RunJob>::new(&pool).with_config(config);
            let backend = storage.with_pubsub().poll_with_interval(poll);
            WorkerBuilder::new(name)
                .backend(backend)
                .data(engine.clone())
                .concurrency(concurrency)
                .build(handle_run_job)
                .run_until(signal)
                .await
        }
    }
}
