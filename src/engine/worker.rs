//! Queue workers of the run queue: apalis workers on the store's pool (see
//! `queue::run_workers`) that hand each `RunJob` to the engine. Claims are prompt (SQLite
//! update hook, PostgreSQL LISTEN/NOTIFY) with a slow poll as a safety net; a worker that
//! dies is noticed by its missed heartbeats and its job goes back to the queue.

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

/// Runs `engine.config.engine.workers` concurrent job handlers until `shutdown` fires.
pub async fn run_workers(engine: Arc<Engine>, shutdown: CancellationToken) {
    let settings = &engine.config.engine;
    let settings = WorkerSettings {
        name_prefix: format!("{}-w", engine.holder()),
        concurrency: settings.workers,
        poll: Duration::from_millis(settings.queue_poll_ms),
        heartbeat: Duration::from_secs(settings.heartbeat_secs),
    };
    queue::run_workers::<RunJob, Engine>(engine.store.clone(), engine, settings, shutdown).await
}
