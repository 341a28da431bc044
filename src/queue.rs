//! The durable job queues: apalis on the store's own pool (apalis-sqlite or
//! apalis-postgres). `RunJob`s (pipelines, ordered by priority) and `NotifyJob`s
//! (notifications) are two queues, so a notification never waits behind an hour-long
//! pipeline for a worker.
//!
//! Owns how jobs are encoded, pushed and claimed. Pushing always happens inside the
//! caller's transaction, so a row and its job commit together or not at all. What a job
//! does is its handler's (`engine`, `notify`); this module only hands jobs over.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use apalis::prelude::{BoxDynError, Data, TaskBuilder, TaskId, WorkerError};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::{Pool, Store};
use crate::tasks::Priority;

/// Name of the apalis queue (job_type) of pipeline runs.
pub const RUN_QUEUE: &str = "aiops-run";

/// Name of the apalis queue (job_type) of notifications.
pub const NOTIFY_QUEUE: &str = "aiops-notify";

/// Heartbeats a worker may miss before its job is handed to another.
const MISSED_HEARTBEATS: usize = 3;

/// Table holding apalis' SQLite migrations, apart from aiops' own and sqlx's default.
const APALIS_SQLITE_MIGRATIONS_TABLE: &str = "_apalis_migrations";

/// A unit of work for a worker: bring task `task_id` forward (start, recover, or resume
/// after a decision). The handler reads the task's state; the job only names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub task_id: i64,
    /// Set when a human decision should be fed back to the pipeline.
    #[serde(default)]
    pub resume_approval_id: Option<i64>,
}

/// A unit of work for a notification worker: send notification `notification_id` (a row
/// of `notifications`, which holds what to send, where, and how often it was tried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    pub notification_id: i64,
}

/// A job of one of aiops' queues.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The apalis queue (job_type) it goes to.
    const QUEUE: &'static str;
}

impl Job for RunJob {
    const QUEUE: &'static str = RUN_QUEUE;
}

impl Job for NotifyJob {
    const QUEUE: &'static str = NOTIFY_QUEUE;
}

/// A job to push: what, how urgent, and not before when.
#[derive(Debug, Clone)]
pub struct NewJob<J = RunJob> {
    pub job: J,
    pub priority: Priority,
    pub delay: Duration,
}

impl NewJob {
    /// A job for `task_id` due now.
    pub fn now(task_id: i64, priority: Priority) -> Self {
        Self {
            job: RunJob {
                task_id,
                resume_approval_id: None,
            },
            priority,
            delay: Duration::ZERO,
        }
    }
}

impl NewJob<NotifyJob> {
    /// A job sending notification `notification_id` after `delay`.
    pub fn notify(notification_id: i64, delay: Duration) -> Self {
        Self {
            job: NotifyJob { notification_id },
            priority: Priority::Normal,
            delay,
        }
    }
}

impl<J: Job> NewJob<J> {
    fn build(&self) -> (TaskId, apalis::prelude::Task<Vec<u8>>) {
        let id = TaskId::from_ulid(ulid::Ulid::generate());
        let payload = serde_json::to_vec(&self.job).expect("a job serializes");
        let run_at = SystemTime::now() + self.delay;
        let task = TaskBuilder::new(payload)
            .task_id(id.clone())
            .priority(self.priority.rank() as usize)
            .max_attempts(3)
            .run_at_time(run_at)
            .build();
        (id, task)
    }
}

/// Creates apalis' tables (its own migrations table on SQLite, its own schema on
/// PostgreSQL). Runs through aiops' pool, so aiops' connection settings stay in force.
pub async fn setup(store: &Store) -> anyhow::Result<()> {
    match store.pool() {
        Pool::Sqlite(pool) => {
            let mut migrator = apalis_sqlite::SqliteStorage::migrations();
            migrator.dangerous_set_table_name(APALIS_SQLITE_MIGRATIONS_TABLE);
            migrator.run(pool).await?;
        }
        Pool::Postgres(pool) => {
            apalis_postgres::PostgresStorage::setup(pool)
                .await
                .map_err(|e| anyhow::anyhow!("apalis PostgreSQL setup: {e}"))?;
        }
    }
    Ok(())
}

/// Pushes a job in an open SQLite transaction; returns its id.
pub async fn push_sqlite<J: Job>(
    tx: &mut sqlx::SqliteConnection,
    job: &NewJob<J>,
) -> Result<String, sqlx::Error> {
    let (id, task) = job.build();
    apalis_sqlite::queries::push_tasks(tx, J::QUEUE, &[task])
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("apalis push: {e}")))?;
    Ok(id.to_string())
}

/// Pushes a job in an open PostgreSQL transaction; returns its id.
pub async fn push_postgres<J: Job>(
    tx: &mut sqlx::PgConnection,
    job: &NewJob<J>,
) -> Result<String, sqlx::Error> {
    let (id, task) = job.build();
    apalis_postgres::queries::push_tasks(tx, J::QUEUE, vec![task])
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("apalis push: {e}")))?;
    Ok(id.to_string())
}

/// Wakes the SQLite workers when a job row is inserted through this process' pool (the
/// SQLite update hook), so claims do not wait for the next poll. Every subscriber (the
/// workers of each queue) hears every insert: the queues share apalis' one table.
#[derive(Clone, Default)]
pub struct JobsInserted(Arc<Mutex<Vec<mpsc::UnboundedSender<()>>>>);

impl JobsInserted {
    /// Tells every live subscriber that a job row was inserted.
    pub fn announce(&self) {
        self.0
            .lock()
            .expect("not poisoned")
            .retain(|subscriber| subscriber.unbounded_send(()).is_ok());
    }

    /// A stream that yields once per insert announced from now on.
    pub fn subscribe(&self) -> JobsInsertedStream {
        let (tx, rx) = mpsc::unbounded();
        self.0.lock().expect("not poisoned").push(tx);
        JobsInsertedStream(rx)
    }
}

impl std::fmt::Debug for JobsInserted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobsInserted")
    }
}

/// One subscriber's view of [`JobsInserted`].
pub struct JobsInsertedStream(mpsc::UnboundedReceiver<()>);

impl Stream for JobsInsertedStream {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.poll_next_unpin(cx)
    }
}

/// What the workers of one queue do with each job. An error hands the job back to apalis,
/// which runs it again at once (3 times at most); a retry after a delay is a new job the
/// handler pushes itself.
pub trait JobHandler<J>: Send + Sync + 'static {
    fn handle(self: Arc<Self>, job: J) -> impl Future<Output = Result<(), BoxDynError>> + Send;
}

async fn handle_job<J: Job, H: JobHandler<J>>(
    job: J,
    handler: Data<Arc<H>>,
) -> Result<(), BoxDynError> {
    Arc::clone(&handler).handle(job).await
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
        let stop = shutdown.clone();
        let signal = async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        };
        let result =
            run_one_worker::<J, H>(&store, handler.clone(), &settings, name.clone(), signal).await;
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
    name: String,
    signal: impl Future<Output = Result<(), std::io::Error>> + Send + 'static,
) -> Result<(), WorkerError> {
    use apalis::prelude::*;
    match store.pool().clone() {
        Pool::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(J::QUEUE)
                .batch_size(1)
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
                .concurrency(settings.concurrency)
                .build(handle_job::<J, H>)
                .run_until(signal)
                .await
        }
        Pool::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(J::QUEUE)
                .batch_size(1)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let storage = apalis_postgres::PostgresStorage::<J>::new(&pool).with_config(config);
            let backend = storage.with_pubsub().poll_with_interval(settings.poll);
            WorkerBuilder::new(name)
                .backend(backend)
                .data(handler)
                .concurrency(settings.concurrency)
                .build(handle_job::<J, H>)
                .run_until(signal)
                .await
        }
    }
}
