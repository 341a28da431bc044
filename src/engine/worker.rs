//! Queue workers of the run queue: apalis workers on the store's pool (see
//! `queue::run_workers`) that hand each `RunJob` to the engine. Claims are prompt (SQLite
//! update hook, PostgreSQL LISTEN/NOTIFY) with a slow poll as a safety net; a worker that
//! dies is noticed by its missed heartbeats and its job goes back to the queue. A task
//! that finds no free slot waits without a job; the release of a slot pushes the jobs of
//! the waiters that now fit, the first of them already claimed by the releasing worker,
//! which starts it at once (no claim round trip; a crash still leaves a claimed job the
//! queue hands out again), and a sweep every `engine.slot_wait_secs` is the safety net.
//! The slot is released as soon as a run's agent has ended and the run is recorded; the
//! run's conclusion (worktree removal, status, notices) goes on beside the next start, and
//! the job is settled once it is done.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use apalis::prelude::BoxDynError;
use sha2::Digest;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Engine, Executed, JobOutcome};
use crate::error::Result;
use crate::model::{TaskExec, TaskStatus};
use crate::queue::{self, JobHandler, RunJob, WorkerSettings};
use crate::store::slots::HandedJob;
use crate::tasks;

/// The reason a dead predecessor's running task shows until it runs again.
pub const RECOVERING: &str =
    "recovering: the aiops process that ran it stopped; it runs again from where it was";

/// The id of a new process in slots, runs and queue workers:
/// `<host>-<data dir tag>-<pid>-<random>`. Its start (`node_prefix`) is the same for every
/// process on this host and data directory.
pub(super) fn new_holder(data_dir: &Path) -> String {
    format!(
        "{}{}-{}",
        node_prefix(data_dir),
        std::process::id(),
        &ulid::Ulid::generate().to_string()[20..]
    )
}

/// `<host>-<data dir tag>-`: what the holders of every process on this host and data
/// directory start with. One process at a time runs there (the instance lock), so any other
/// holder with this start is a dead predecessor.
fn node_prefix(data_dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = sha2::Sha256::digest(dir.as_os_str().as_bytes());
    format!("{}-{}-", hostname(), &hex::encode(digest)[..8])
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl Engine {
    /// Takes back at once what the dead predecessor of this process on the same host and
    /// data directory held: its running tasks become `queued` and say they are recovering,
    /// its slots free, its claimed jobs go back to the queue (a `recover` run picks each task
    /// up from where it was). Without this they would wait for its missed heartbeats
    /// (3 × `engine.heartbeat_secs`) and its slots' expiry. Other nodes' work is left alone:
    /// their heartbeats say whether they live. Call before this process' workers start.
    pub async fn take_over_predecessor(&self) -> Result<usize> {
        let prefix = node_prefix(&self.config.data_dir);
        let orphaned = self
            .store
            .tasks_run_by_predecessors(&prefix, &self.holder)
            .await?;
        for &task in &orphaned {
            tasks::set_status(
                &self.store,
                task,
                TaskStatus::Queued,
                Some(RECOVERING),
                None,
            )
            .await?;
        }
        let (slots, jobs) = self
            .store
            .release_predecessors(&prefix, &self.holder)
            .await?;
        if slots > 0 {
            let limit = self.config.engine.max_concurrent_tasks;
            self.store.wake_slot_waiters(limit).await?;
        }
        if !orphaned.is_empty() || jobs > 0 {
            tracing::info!(
                tasks = orphaned.len(),
                slots,
                jobs,
                "took back the work of the aiops process that ran on this data directory before"
            );
        }
        Ok(orphaned.len())
    }
}

impl JobHandler<RunJob> for Engine {
    async fn handle(self: Arc<Self>, job: RunJob) -> Result<(), BoxDynError> {
        self.run_claimed(job, None).await
    }

    async fn handle_claimed(
        self: Arc<Self>,
        job: RunJob,
        worker: String,
    ) -> Result<(), BoxDynError> {
        self.run_claimed(job, Some(worker)).await
    }
}

/// One step of a job: its result, known once the run's conclusion is done (which goes on
/// beside the next job), and the job its freed slot handed on, if any.
type Step = (JoinHandle<Result<(), BoxDynError>>, Option<HandedJob>);

/// The result of a step's job, once its conclusion is done.
async fn result_of(step: JoinHandle<Result<(), BoxDynError>>) -> Result<(), BoxDynError> {
    step.await.unwrap_or_else(|e| Err(Box::new(e)))
}

impl Engine {
    /// Runs a job `worker` claimed, then each job a slot freed on the way hands to the same
    /// worker, settling those in the queue as they end. The first job's result is returned
    /// for the worker to settle, once every job's conclusion is done.
    async fn run_claimed(
        self: Arc<Self>,
        job: RunJob,
        worker: Option<String>,
    ) -> Result<(), BoxDynError> {
        let (first, mut handed) = Arc::clone(&self).step(job, worker.clone()).await;
        let mut settling = Vec::new();
        while let Some(next) = handed.take()
            && let Some(worker) = worker.as_deref()
        {
            let (result, then) = Arc::clone(&self)
                .step(next.job, Some(worker.to_owned()))
                .await;
            let (store, worker) = (self.store.clone(), worker.to_owned());
            settling.push(tokio::spawn(async move {
                let error = result_of(result).await.err().map(|e| e.to_string());
                queue::settle(&store, &next.id, &worker, error.as_deref()).await;
            }));
            handed = then;
        }
        for settled in settling {
            let _ = settled.await;
        }
        result_of(first).await
    }

    /// One job: `advance` on a task of its own, so pipelines run in parallel on the
    /// runtime's threads rather than inside the worker's future. The slot is released when
    /// the agent has ended; the run's conclusion (the worktree's removal, the status, the
    /// notices) then goes on in a task of its own, beside the job the slot handed on.
    async fn step(self: Arc<Self>, job: RunJob, worker: Option<String>) -> Step {
        let engine = Arc::clone(&self);
        let task = job.task_id;
        let advanced =
            tokio::spawn(async move { engine.advance(&job, worker.as_deref()).await }).await;
        // A conclusion this task's start was waiting for goes on now, started or not.
        self.handed_start_over(task);
        let (executed, handed) = match advanced {
            Ok(advanced) => advanced,
            Err(e) => {
                return (
                    tokio::spawn(std::future::ready(Err(Box::new(e).into()))),
                    None,
                );
            }
        };
        // With the slot handed on, the conclusion waits for the next run's start: its
        // worktree's removal and writes would otherwise queue the next `git worktree add` and
        // its first writes behind them.
        let next_started = handed
            .as_ref()
            .map(|handed| self.await_handed_start(handed.job.task_id));
        let concluded = tokio::spawn(async move {
            if let Some(next_started) = next_started {
                let _ = next_started.await;
            }
            let processed = match executed {
                Ok(executed) => self.finish(executed).await,
                Err(e) => Err(e),
            };
            match processed {
                Ok(JobOutcome::Ran(status)) => {
                    tracing::info!(task, status = status.as_str(), "pipeline run finished");
                    Ok(())
                }
                Ok(outcome) => {
                    tracing::debug!(task, ?outcome, "job handled");
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(task, error = %e, "job failed; the queue retries it");
                    Err(Box::new(e) as BoxDynError)
                }
            }
        });
        (concluded, handed)
    }

    /// Runs the pipeline of a task holding a slot until its agent has ended and the run is
    /// recorded, then gives the slot back: to the waiter that gets it next, handed to
    /// `handoff` unless this process is stopping. What the run leaves to do comes back as
    /// `Executed::Concluding`, to be done after the release.
    pub(super) async fn run_in_slot(
        &self,
        task: TaskExec,
        job: &RunJob,
        handoff: Option<&str>,
    ) -> (Result<Executed>, Option<HandedJob>) {
        let keeper = self.keep_slot(task.id);
        let outcome = self.execute(task, job).await;
        keeper.cancel();
        let limit = self.config.engine.max_concurrent_tasks;
        let handoff = handoff.filter(|_| !self.stopping.load(Ordering::SeqCst));
        let released = self
            .store
            .release_slot(job.task_id, &self.holder, limit, handoff)
            .await;
        let handed = match released {
            Ok(released) => {
                if released.woken > 0 {
                    let task = job.task_id;
                    let handed = released.handed.as_ref().map(|h| h.job.task_id);
                    tracing::debug!(
                        task,
                        woken = released.woken,
                        ?handed,
                        "slot released to waiting tasks"
                    );
                }
                released.handed
            }
            Err(e) => {
                tracing::warn!(task = job.task_id, error = %e, "could not release the slot; it expires by itself");
                None
            }
        };
        (outcome, handed)
    }

    /// Resolves once the run of `task`, started in a slot handed to it, has started, or its
    /// step has ended without one (`handed_start_over`).
    fn await_handed_start(&self, task: i64) -> tokio::sync::oneshot::Receiver<()> {
        let (started, next_started) = tokio::sync::oneshot::channel();
        self.handed_starts
            .lock()
            .expect("not poisoned")
            .insert(task, started);
        next_started
    }

    /// Lets whoever waits for the start of `task` go on: its run has started, or its step
    /// has ended without one. Dropping the sender wakes the receiver.
    pub(super) fn handed_start_over(&self, task: i64) {
        self.handed_starts
            .lock()
            .expect("not poisoned")
            .remove(&task);
    }

    /// Refreshes this task's slot until the returned token is cancelled.
    fn keep_slot(&self, task_id: i64) -> CancellationToken {
        let token = CancellationToken::new();
        let (store, holder, stop) = (self.store.clone(), self.holder.clone(), token.clone());
        let ttl_secs = self.config.engine.slot_ttl_secs;
        tokio::spawn(async move {
            let every = Duration::from_secs(ttl_secs.max(3) / 3);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let ttl = chrono::Duration::seconds(ttl_secs as i64);
                if let Err(e) = store.refresh_slot(task_id, &holder, ttl).await {
                    tracing::warn!(task = task_id, error = %e, "could not refresh the slot");
                }
            }
        });
        token
    }
}

/// Runs `engine.config.engine.workers` concurrent job handlers, and the sweep of slot
/// waiters, until `shutdown` fires.
pub async fn run_workers(engine: Arc<Engine>, shutdown: CancellationToken) {
    tokio::spawn(sweep_slot_waiters(Arc::clone(&engine), shutdown.clone()));
    tokio::spawn({
        let (engine, shutdown) = (Arc::clone(&engine), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            engine.stopping.store(true, Ordering::SeqCst);
        }
    });
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
