//! Queue workers of the run queue: apalis workers on the store's pool (see
//! `queue::run_workers`) that hand each `RunJob` to the engine. Claims are prompt (SQLite
//! update hook, PostgreSQL LISTEN/NOTIFY) with a slow poll as a safety net; a worker that
//! dies is noticed by its missed heartbeats and its job goes back to the queue. A task
//! that finds no free slot waits without a job; the release of a slot pushes the jobs of
//! the waiters that now fit, and a sweep every `engine.slot_wait_secs` is the safety net.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::BoxDynError;
use tokio_util::sync::CancellationToken;

use super::{Engine, JobOutcome};
use crate::queue::{self, JobHandler, RunJob, WorkerSettings};

impl JobHandler<RunJob> for Engine {
    async fn handle(self: Arc<Self>, job: RunJob) -> Result<(), BoxDynError> {
        // A task of its own, so pipelines run in parallel on the runtime's threads rather
        // than inside the worker's future.
        let engine = Arc::clone(&self);
        let processed = tokio::spawn({
            let job = job.clone();
            async move { engine.advance_task(&job).await }
        })
        .await?;
        match processed {
            Ok(JobOutcome::Ran(status)) => {
                tracing::info!(
                    task = job.task_id,
                    status = status.as_str(),
                    "pipeline run finished"
                );
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
}

/// Runs `engine.config.engine.workers` concurrent job handlers, and the sweep of slot
/// waiters, until `shutdown` fires.
pub async fn run_workers(engine: Arc<Engine>, shutdown: CancellationToken) {
    tokio::spawn(sweep_slot_waiters(Arc::clone(&engine), shutdown.clone()));
    let settings = &engine.config.engine;
    let settings = WorkerSettings {
        name_prefix: format!("{}-w", engine.holder()),
        concurrency: settings.workers,
        poll: Duration::from_millis(settings.queue_poll_ms),
        heartbeat: Duration::from_secs(settings.heartbeat_secs),
    };
    queue::run_workers::<RunJob, Engine>(engine.store.clone(), engine, settings, shutdown).await
}

/// Wakes the slot waiters that fit, every `engine.slot_wait_secs`: slots whose holder died
/// expire, and a limit may have been raised, without a release anyone would see; and the
/// budget waiters whose budget has room again (the month turned).
async fn sweep_slot_waiters(engine: Arc<Engine>, shutdown: CancellationToken) {
    let every = Duration::from_secs(engine.config.engine.slot_wait_secs.max(1));
    let limit = engine.config.engine.max_concurrent_tasks;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match engine.store.wake_slot_waiters(limit).await {
            Ok(0) => {}
            Ok(woken) => tracing::debug!(woken, "slot waiters woken by the sweep"),
            Err(e) => tracing::warn!(error = %e, "could not wake the tasks waiting for a slot"),
        }
        match crate::budgets::wake(&engine.store, &engine.config.costs).await {
            Ok(0) => {}
            Ok(woken) => tracing::info!(woken, "tasks waiting for budget started"),
            Err(e) => tracing::warn!(error = %e, "could not wake the tasks waiting for budget"),
        }
    }
}
