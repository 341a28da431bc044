//! The durable job queues: apalis on the store's own pool (apalis-sqlite or
//! apalis-postgres). `RunJob`s (pipelines, ordered by priority) and `NotifyJob`s
//! (notifications) are two queues, so a notification never waits behind an hour-long
//! pipeline for a worker.
//!
//! Owns how jobs are claimed, handed to their handler and settled: the handler's end is
//! recorded in the queue before the worker hears of it (not through apalis' event channel,
//! which only a fetching worker drains, so a stop would wait on it forever). The jobs
//! themselves are `model::job`; pushing one (always inside the caller's transaction, so a
//! row and its job commit together or not at all) is `store::queue::push`. What a job does
//! is its handler's (`engine`, `notify`); this module only hands jobs over.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, TaskId, WorkerContext, WorkerError};
use tokio_util::sync::CancellationToken;

pub use crate::model::{Job, NOTIFY_QUEUE, NewJob, NotifyJob, RUN_QUEUE, RunJob};
pub use crate::store::queue::{JobsInserted, setup};
use crate::store::{Pool, Store};

/// Heartbeats a worker may miss before its job is handed to another.
const MISSED_HEARTBEATS: usize = 3;

/// What the workers of one queue do with each job. An error hands the job back to the
/// queue, which runs it again at once (3 times at most); a retry after a delay is a new job
/// the handler pushes itself.
pub trait JobHandler<J>: Send + Sync + 'static {
    fn handle(self: Arc<Self>, job: J) -> impl Future<Output = Result<(), BoxDynError>> + Send;

    /// `handle`, knowing the name of the queue worker that claimed the job (a handler that
    /// claims further jobs for the same worker needs it).
    fn handle_claimed(
        self: Arc<Self>,
        job: J,
        worker: String,
    ) -> impl Future<Output = Result<(), BoxDynError>> + Send {
        let _ = worker;
        self.handle(job)
    }
}

/// Runs one claimed job and settles it in the queue before the worker hears it ended; once
/// a stop began, gives the job back to the queue instead and waits for the worker to stop.
async fn handle_job<J: Job, H: JobHandler<J>>(
    job: J,
    handler: Data<Arc<H>>,
    store: Data<Store>,
    drain: Data<Arc<Drain>>,
    id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let (id, worker) = (id.to_string(), worker.name().to_owned());
    let running = drain.enter();
    if drain.stopping.is_cancelled() {
        drop(running);
        if let Err(e) = store.give_back_job(&id, &worker).await {
            tracing::warn!(job = id, error = %e, "could not give a job back; it runs again once this worker stops");
        }
        drain.idle.cancelled().await;
        return Ok(());
    }
    let handled = Arc::clone(&handler)
        .handle_claimed(job, worker.clone())
        .await;
    let error = handled.as_ref().err().map(ToString::to_string);
    settle(&store, &id, &worker, error.as_deref()).await;
    handled
}

/// A stop in two steps. First the handlers under way finish while the worker still runs, so
/// a fetch it began commits (on SQLite a fetch left half done holds the write lock those
/// handlers need; apalis stops polling it once told to stop), and a job claimed meanwhile
/// goes back to the queue. Then the worker is told to stop.
struct Drain {
    stopping: CancellationToken,
    running: AtomicUsize,
    ended: tokio::sync::Notify,
    /// Fires once no handler runs: the worker stops, handlers that gave their job back return.
    idle: CancellationToken,
}

/// A running handler, counted in [`Drain`] until dropped.
struct Running<'a>(&'a Drain);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify_waiters();
    }
}

impl Drain {
    fn new(stopping: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            stopping,
            running: AtomicUsize::new(0),
            ended: tokio::sync::Notify::new(),
            idle: CancellationToken::new(),
        })
    }

    fn enter(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(self)
    }

    /// Waits for the stop, then for the handlers under way (counted before they look at the
    /// stop, so none is missed), then lets the worker stop.
    async fn until_idle(&self) {
        self.stopping.cancelled().await;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                break;
            }
            ended.await;
        }
        self.idle.cancel();
    }
}

/// Records how a claimed job ended, trying a few times: a job left claimed stays with its
/// worker until that worker's heartbeats stop.
pub async fn settle(store: &Store, id: &str, worker: &str, error: Option<&str>) {
    for pause in [200, 1000, 5000] {
        match store.finish_job(id, worker, error).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(job = id, error = %e, "could not record a job's end; trying again");
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
    tracing::error!(
        job = id,
        "could not record a job's end; it runs again once this worker stops"
    );
}

/// How the workers of one queue run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Worker names are this prefix and a generation number; unique per process and queue.
    pub name_prefix: String,
    /// Jobs handled at once.
    pub concurrency: usize,
    /// Safety-net poll; inserts normally wake the workers at once.
    pub poll: Duration,
    pub heartbeat: Duration,
}

/// Runs the workers of `J`'s queue with `handler` until `shutdown` fires. A worker that
/// stops on a backend error is started again under a new name after a pause.
pub async fn run_workers<J: Job, H: JobHandler<J>>(
    store: Store,
    handler: Arc<H>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) {
    let mut generation = 0u32;
    loop {
        generation += 1;
        let name = format!("{}{generation}", settings.name_prefix);
        let drain = Drain::new(shutdown.clone());
        let signal = {
            let drain = Arc::clone(&drain);
            async move {
                drain.until_idle().await;
                Ok::<(), std::io::Error>(())
            }
        };
        let worker = (name.clone(), drain);
        let result =
            run_one_worker::<J, H>(&store, handler.clone(), &settings, worker, signal).await;
        if shutdown.is_cancelled() {
            return;
        }
        tracing::error!(worker = name, queue = J::QUEUE, error = ?result.err(), "queue worker stopped; starting a new one");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn run_one_worker<J: Job, H: JobHandler<J>>(
    store: &Store,
    handler: Arc<H>,
    settings: &WorkerSettings,
    (name, drain): (String, Arc<Drain>),
    signal: impl Future<Output = Result<(), std::io::Error>> + Send + 'static,
) -> Result<(), WorkerError> {
    use apalis::prelude::*;
    match store.pool().clone() {
        Pool::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(J::QUEUE)
                .batch_size(1)
                .lock_tasks(false)
                .persist_results(false)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let storage = apalis_sqlite::SqliteStorage::<J>::new(&pool).with_config(config);
            let wake = store
                .jobs_inserted()
                .expect("a SQLite store has a job signal")
                .subscribe();
            let backend = storage
                .poll_with_stream(wake)
                .poll_with_interval(settings.poll);
            WorkerBuilder::new(name)
                .backend(backend)
                .data(handler)
                .data(store.clone())
                .data(Arc::clone(&drain))
                .concurrency(settings.concurrency)
                .build(handle_job::<J, H>)
                .run_until(signal)
                .await
        }
        Pool::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(J::QUEUE)
                .batch_size(1)
                .lock_tasks(false)
                .persist_results(false)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let storage = apalis_postgres::PostgresStorage::<J>::new(&pool).with_config(config);
            let backend = storage.with_pubsub().poll_with_interval(settings.poll);
            WorkerBuilder::new(name)
                .backend(backend)
                .data(handler)
                .data(store.clone())
                .data(Arc::clone(&drain))
                .concurrency(settings.concurrency)
                .build(handle_job::<J, H>)
                .run_until(signal)
                .await
        }
    }
}
