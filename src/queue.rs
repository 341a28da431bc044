//! The durable job queue: apalis on the store's own pool (apalis-sqlite or
//! apalis-postgres), one queue of `RunJob`s ordered by priority.
//!
//! Owns how jobs are encoded and pushed. Pushing always happens inside the caller's
//! transaction, so a task row and its job commit together or not at all. This module
//! never runs a job; `engine` does.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use apalis::prelude::{TaskBuilder, TaskId};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::store::{Pool, Store};
use crate::tasks::Priority;

/// Name of the apalis queue (job_type) aiops uses.
pub const RUN_QUEUE: &str = "aiops-run";

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

/// A job to push: what, how urgent, and not before when.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub job: RunJob,
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

    fn build(&self) -> (TaskId, apalis::prelude::Task<Vec<u8>>) {
        let id = TaskId::from_ulid(ulid::Ulid::generate());
        let payload = serde_json::to_vec(&self.job).expect("RunJob serializes");
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
pub async fn push_sqlite(
    tx: &mut sqlx::SqliteConnection,
    job: &NewJob,
) -> Result<String, sqlx::Error> {
    let (id, task) = job.build();
    apalis_sqlite::queries::push_tasks(tx, RUN_QUEUE, &[task])
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("apalis push: {e}")))?;
    Ok(id.to_string())
}

/// Pushes a job in an open PostgreSQL transaction; returns its id.
pub async fn push_postgres(
    tx: &mut sqlx::PgConnection,
    job: &NewJob,
) -> Result<String, sqlx::Error> {
    let (id, task) = job.build();
    apalis_postgres::queries::push_tasks(tx, RUN_QUEUE, vec![task])
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("apalis push: {e}")))?;
    Ok(id.to_string())
}

/// Wakes the SQLite workers when a job row is inserted through this process' pool (the
/// SQLite update hook), so claims do not wait for the next poll.
#[derive(Clone)]
pub struct JobsInserted(Arc<Mutex<mpsc::UnboundedReceiver<()>>>);

impl JobsInserted {
    /// A signal and the sender the update hook uses.
    pub fn channel() -> (mpsc::UnboundedSender<()>, JobsInserted) {
        let (tx, rx) = mpsc::unbounded();
        (tx, JobsInserted(Arc::new(Mutex::new(rx))))
    }
}

impl Stream for JobsInserted {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.lock().expect("not poisoned").poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for JobsInserted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobsInserted")
    }
}
