//! The queue's side of the store: apalis' tables, pushing a job inside a transaction, and
//! the SQLite insert signal. Claiming and running jobs is `crate::queue`'s.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use apalis::prelude::{TaskBuilder, TaskId};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};

use super::{Backend, Pool, Store, Tx, TxConn};
use crate::model::{Job, NewJob};

/// Table holding apalis' SQLite migrations, apart from aiops' own and sqlx's default.
const APALIS_SQLITE_MIGRATIONS_TABLE: &str = "_apalis_migrations";

/// The apalis task of a job: its id, payload, priority, attempts and due time.
fn build<J: Job>(job: &NewJob<J>) -> (TaskId, apalis::prelude::Task<Vec<u8>>) {
    let id = TaskId::from_ulid(ulid::Ulid::generate());
    let payload = serde_json::to_vec(&job.job).expect("a job serializes");
    let run_at = SystemTime::now() + job.delay;
    let task = TaskBuilder::new(payload)
        .task_id(id.clone())
        .priority(job.priority.rank() as usize)
        .max_attempts(3)
        .run_at_time(run_at)
        .build();
    (id, task)
}

/// Pushes a job inside `tx`, so it commits with the rows it names; returns its id.
pub async fn push<J: Job>(tx: &mut Tx, job: &NewJob<J>) -> Result<String, sqlx::Error> {
    let (id, task) = build(job);
    let pushed = match &mut tx.conn {
        TxConn::Sqlite(conn) => apalis_sqlite::queries::push_tasks(&mut **conn, J::QUEUE, &[task])
            .await
            .map_err(|e| e.to_string()),
        TxConn::Postgres(conn) => {
            apalis_postgres::queries::push_tasks(&mut **conn, J::QUEUE, vec![task])
                .await
                .map_err(|e| e.to_string())
        }
    };
    pushed.map_err(|e| sqlx::Error::Protocol(format!("apalis push: {e}")))?;
    tx.pushed_job();
    Ok(id.to_string())
}

/// Pushes jobs inside `tx` in one statement, so they commit with the rows they name; returns
/// their ids. On SQLite the rows are written as apalis' own push writes them
/// (`queries/task/sink.sql` of apalis-sqlite, which runs one statement per job); on
/// PostgreSQL apalis' push is one statement already.
pub async fn push_all<J: Job>(tx: &mut Tx, jobs: &[NewJob<J>]) -> Result<Vec<String>, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, tasks): (Vec<TaskId>, Vec<_>) = jobs.iter().map(build).unzip();
    let pushed = match &mut tx.conn {
        TxConn::Sqlite(conn) => {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at,
                    last_result, lock_at, lock_by, done_at, priority, metadata, idempotency_key) ",
            );
            // The values apalis-sqlite's `push_tasks` binds, taken the same way.
            insert.push_values(&tasks, |mut row, task| {
                let run_at = task.run_at().unwrap_or_else(|| {
                    SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |since| since.as_secs())
                }) as i64;
                let id = task
                    .task_id()
                    .map_or_else(|| ulid::Ulid::generate().to_string(), ToString::to_string);
                row.push_bind(&task.args)
                    .push_bind(id)
                    .push_bind(J::QUEUE)
                    .push_unseparated(", 'Pending', 0")
                    .push_bind(task.max_attempts().unwrap_or(25) as i64)
                    .push_bind(run_at)
                    .push_unseparated(", NULL, NULL, NULL, NULL")
                    .push_bind(task.priority().unwrap_or_default() as i64)
                    .push_bind(serde_json::to_string(task.metadata()).unwrap_or_default())
                    .push_bind(task.idempotency_key().map(str::to_owned));
            });
            insert.push(" ON CONFLICT(job_type, idempotency_key) DO NOTHING");
            insert
                .build()
                .persistent(false)
                .execute(&mut **conn)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        TxConn::Postgres(conn) => {
            apalis_postgres::queries::push_tasks(&mut **conn, J::QUEUE, tasks)
                .await
                .map_err(|e| e.to_string())
        }
    };
    pushed.map_err(|e| sqlx::Error::Protocol(format!("apalis push: {e}")))?;
    tx.pushed_job();
    Ok(ids.iter().map(ToString::to_string).collect())
}

/// Pushes a job inside `tx` already claimed by the queue worker `worker`, so no other worker
/// takes it: its claimer runs it at once and settles it with [`Store::finish_job`]. If the
/// claimer's process dies first, its missed heartbeats hand the job back to the queue like any
/// claimed job. Returns its id.
pub async fn push_claimed<J: Job>(
    tx: &mut Tx,
    job: &NewJob<J>,
    worker: &str,
) -> Result<String, sqlx::Error> {
    let id = push(tx, job).await?;
    let claim = match tx.backend() {
        Backend::Sqlite => {
            "UPDATE Jobs SET status = 'Running', lock_by = $2, lock_at = strftime('%s', 'now')
             WHERE id = $1"
        }
        Backend::Postgres => {
            "UPDATE apalis.jobs SET status = 'Running', lock_by = $2, lock_at = now() WHERE id = $1"
        }
    };
    with_tx!(tx, conn => sqlx::query(claim)
        .bind(&id)
        .bind(worker)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(id)
}

impl Store {
    /// Settles a job the queue worker `worker` claimed: done, or (with `error`) failed, which
    /// the queue hands out again until its attempts are spent. aiops settles its jobs itself,
    /// inside the handler, rather than through apalis' event channel: that channel is drained
    /// only while the worker fetches, so handlers ending after a stop began waited on it forever.
    pub async fn finish_job(
        &self,
        id: &str,
        worker: &str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let (table, now, json) = match self.backend() {
            Backend::Sqlite => ("Jobs", "strftime('%s', 'now')", "$3"),
            Backend::Postgres => ("apalis.jobs", "now()", "$3::jsonb"),
        };
        let sql = match error {
            None => format!(
                "UPDATE {table} SET status = 'Done', done_at = {now} WHERE id = $1 AND lock_by = $2"
            ),
            Some(_) => format!(
                "UPDATE {table} SET status = 'Failed', attempts = attempts + 1, done_at = {now},
                        last_result = {json}
                 WHERE id = $1 AND lock_by = $2"
            ),
        };
        let result = error.map(|e| serde_json::json!({ "Err": e }).to_string());
        with_pool!(self, pool => {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(worker);
            match result {
                Some(result) => query.bind(result).execute(pool).await.map(|r| r.rows_affected()),
                None => query.execute(pool).await.map(|r| r.rows_affected()),
            }
        })?;
        if error.is_some()
            && let Some(signal) = self.jobs_inserted()
        {
            signal.announce();
        }
        Ok(())
    }

    /// Hands a job `worker` claimed back to the queue untouched, for any worker to claim.
    pub async fn give_back_job(&self, id: &str, worker: &str) -> Result<(), sqlx::Error> {
        let table = match self.backend() {
            Backend::Sqlite => "Jobs",
            Backend::Postgres => "apalis.jobs",
        };
        let sql = format!(
            "UPDATE {table} SET status = 'Pending', lock_by = NULL, lock_at = NULL
             WHERE id = $1 AND lock_by = $2"
        );
        with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// Creates apalis' tables (its own migrations table on SQLite, its own schema on
/// PostgreSQL). Runs through aiops' pool, so aiops' connection settings stay in force.
pub async fn setup(store: &Store) -> anyhow::Result<()> {
    match &store.pool {
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
