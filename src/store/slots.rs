//! Queries on `run_slots`: the concurrency slots every process counts, so the global limit
//! and each project's `max_concurrency` hold across processes; and on `slot_waiters`: the
//! tasks that found no free slot, whose run jobs are pushed again when a slot frees.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{Backend, Store, Tx};
use crate::error::Result;
use crate::model::{NewJob, Priority, RunJob, TaskStatus};

/// Key of the PostgreSQL advisory lock that makes slot counting and taking atomic.
const SLOT_LOCK: i64 = 0x6169_6f70_736c_6f74;

impl Store {
    /// Takes a running slot for a task if the global limit and the project's
    /// `max_concurrency` allow, counting live slots of every process, and no queued task
    /// of the same project has a higher priority (it gets the next slot, whichever job
    /// the queue hands out first). Expired slots (their holder died) are dropped first.
    /// True when the slot is ours. Otherwise, with `wait`, the task becomes a slot waiter in
    /// the same transaction (so no release can slip in between unnoticed): its job is pushed
    /// again when a slot it fits in frees (`release_slot`, `wake_slot_waiters`).
    #[allow(clippy::too_many_arguments)]
    pub async fn acquire_slot(
        &self,
        task_id: i64,
        project_id: i64,
        holder: &str,
        ttl: Duration,
        global_limit: i64,
        wait: Option<(&RunJob, Priority)>,
    ) -> Result<bool> {
        let now = Utc::now();
        let postgres = self.backend() == Backend::Postgres;
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO run_slots (task_id, project_id, holder, acquired_at, expires_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COUNT(*) FROM run_slots) < $6
               AND (SELECT COUNT(*) FROM run_slots WHERE project_id = $2)
                   < (SELECT max_concurrency FROM projects WHERE id = $2)
               AND NOT EXISTS (
                   SELECT 1 FROM tasks waiting, tasks me
                   WHERE me.id = $1 AND waiting.project_id = $2 AND waiting.id <> $1
                     AND waiting.status = $7 AND waiting.cancel_requested_at IS NULL
                     AND {} > {})
             ON CONFLICT DO NOTHING",
            Priority::sql_rank("waiting.priority"),
            Priority::sql_rank("me.priority"),
        ));
        let mut tx = self.begin().await?;
        let inserted = with_tx!(tx, conn => {
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SLOT_LOCK).execute(&mut *conn).await?;
            }
            sqlx::query("DELETE FROM run_slots WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sqlx::query(sql)
                .bind(task_id)
                .bind(project_id)
                .bind(holder)
                .bind(now)
                .bind(now + ttl)
                .bind(global_limit)
                .bind(TaskStatus::Queued)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if inserted == 0
            && let Some((job, priority)) = wait
        {
            add_waiter(&mut tx, project_id, job, priority, now).await?;
        }
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// Extends a held slot; false if it is no longer ours.
    pub async fn refresh_slot(&self, task_id: i64, holder: &str, ttl: Duration) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE run_slots SET expires_at = $3 WHERE task_id = $1 AND holder = $2")
            .bind(task_id)
            .bind(holder)
            .bind(Utc::now() + ttl)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Gives a slot back and, in the same transaction, pushes the run jobs of the waiters
    /// that now fit (see `wake_slot_waiters`). With `handoff` (a queue worker of the
    /// releasing process), the first of them, the highest priority that fits, is pushed
    /// already claimed by that worker, which starts it at once instead of waiting for a claim.
    pub async fn release_slot(
        &self,
        task_id: i64,
        holder: &str,
        global_limit: i64,
        handoff: Option<&str>,
    ) -> Result<Released> {
        let postgres = self.backend() == Backend::Postgres;
        let mut tx = self.begin().await?;
        with_tx!(tx, conn => {
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SLOT_LOCK).execute(&mut *conn).await?;
            }
            sqlx::query("DELETE FROM run_slots WHERE task_id = $1 AND holder = $2")
                .bind(task_id)
                .bind(holder)
                .execute(&mut *conn)
                .await?;
        });
        let released = wake_fitting(&mut tx, global_limit, handoff).await?;
        tx.commit().await?;
        Ok(released)
    }

    /// The safety net of dispatch on release: drops expired slots (their holder died) and
    /// pushes the run jobs of the waiters that fit now. Cheap when nobody waits.
    pub async fn wake_slot_waiters(&self, global_limit: i64) -> Result<usize> {
        let waiting: i64 = with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM slot_waiters")
            .fetch_one(pool)
            .await)?;
        if waiting == 0 {
            return Ok(0);
        }
        let postgres = self.backend() == Backend::Postgres;
        let mut tx = self.begin().await?;
        with_tx!(tx, conn => {
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SLOT_LOCK).execute(&mut *conn).await?;
            }
            sqlx::query("DELETE FROM run_slots WHERE expires_at <= $1")
                .bind(Utc::now())
                .execute(&mut *conn)
                .await?;
        });
        let woken = wake_fitting(&mut tx, global_limit, None).await?.woken;
        tx.commit().await?;
        Ok(woken)
    }

    /// How many tasks wait for a slot (all processes).
    pub async fn slot_waiters(&self) -> Result<i64> {
        Ok(
            with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM slot_waiters")
            .fetch_one(pool)
            .await)?,
        )
    }

    /// How many slots `holder` (one process) holds: its pipelines running right now.
    pub async fn slots_held_by(&self, holder: &str) -> Result<i64> {
        Ok(
            with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM run_slots WHERE holder = $1")
            .bind(holder)
            .fetch_one(pool)
            .await)?,
        )
    }

    /// How many slots are live right now (all processes).
    pub async fn live_slots(&self) -> Result<i64> {
        Ok(
            with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM run_slots WHERE expires_at > $1")
            .bind(Utc::now())
            .fetch_one(pool)
            .await)?,
        )
    }
}

/// Records that a task waits for a slot, with the job to push again (kept if it waits already).
async fn add_waiter(
    tx: &mut Tx,
    project_id: i64,
    job: &RunJob,
    priority: Priority,
    now: DateTime<Utc>,
) -> Result<()> {
    let payload = serde_json::to_string(job).expect("a job serializes");
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO slot_waiters (task_id, project_id, priority, job, since)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
        .bind(job.task_id)
        .bind(project_id)
        .bind(priority)
        .bind(payload)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// What a slot's release did.
#[derive(Debug, Default)]
pub struct Released {
    /// Waiters whose jobs were pushed, the handed one included.
    pub woken: usize,
    /// The job pushed already claimed by the releasing worker, which runs it now.
    pub handed: Option<HandedJob>,
}

/// A run job a release handed to the worker that released the slot.
#[derive(Debug)]
pub struct HandedJob {
    /// Its id in the queue, to settle it once it ran (`Store::finish_job`).
    pub id: String,
    pub job: RunJob,
}

/// (project id, a number of slots).
type ProjectCount = (i64, i64);

/// A waiter as `wake_fitting` reads it.
#[derive(sqlx::FromRow)]
struct Waiter {
    task_id: i64,
    project_id: i64,
    priority: Priority,
    job: String,
    cancelling: bool,
}

/// Inside the slot lock: removes the waiters that fit under the global limit and their
/// project's `max_concurrency` (highest priority first, then the longest waiting; one a
/// free slot) and pushes their run jobs, which commit with the removal. A waiter asked to
/// cancel is woken without taking a slot's place (its job ends it). The first waiter that
/// takes a place goes to `handoff`, if any.
async fn wake_fitting(tx: &mut Tx, global_limit: i64, handoff: Option<&str>) -> Result<Released> {
    let rank = Priority::sql_rank("w.priority");
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT w.task_id, w.project_id, w.priority, w.job,
                t.cancel_requested_at IS NOT NULL AS cancelling
         FROM slot_waiters w JOIN tasks t ON t.id = w.task_id
         ORDER BY {rank} DESC, w.since, w.task_id"
    ));
    let (waiters, used, limits): (Vec<Waiter>, Vec<ProjectCount>, Vec<ProjectCount>) = with_tx!(tx, conn => {
        let waiters = sqlx::query_as(sql).fetch_all(&mut *conn).await?;
        if waiters.is_empty() {
            return Ok(Released::default());
        }
        let used = sqlx::query_as("SELECT project_id, COUNT(*) FROM run_slots GROUP BY project_id")
            .fetch_all(&mut *conn)
            .await?;
        let limits = sqlx::query_as(
            "SELECT id, max_concurrency FROM projects WHERE id IN (SELECT project_id FROM slot_waiters)")
            .fetch_all(&mut *conn)
            .await?;
        (waiters, used, limits)
    });
    let mut free = global_limit - used.iter().map(|(_, n)| n).sum::<i64>();
    let used: HashMap<i64, i64> = used.into_iter().collect();
    let mut project_free: HashMap<i64, i64> = limits
        .into_iter()
        .map(|(id, max)| (id, max - used.get(&id).copied().unwrap_or(0)))
        .collect();
    let mut released = Released::default();
    for waiter in waiters {
        let fits = project_free.get(&waiter.project_id).copied().unwrap_or(0) > 0;
        if !waiter.cancelling {
            if free <= 0 || !fits {
                continue;
            }
            free -= 1;
            *project_free.entry(waiter.project_id).or_default() -= 1;
        }
        with_tx!(tx, conn => sqlx::query("DELETE FROM slot_waiters WHERE task_id = $1")
            .bind(waiter.task_id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        let Ok(job) = serde_json::from_str::<RunJob>(&waiter.job) else {
            tracing::warn!(
                task = waiter.task_id,
                "a slot waiter's job did not parse; dropped"
            );
            continue;
        };
        let mut retry = NewJob::now(waiter.task_id, waiter.priority);
        retry.job = job;
        released.woken += 1;
        match handoff.filter(|_| released.handed.is_none() && !waiter.cancelling) {
            Some(worker) => {
                let id = super::queue::push_claimed(tx, &retry, worker).await?;
                released.handed = Some(HandedJob { id, job: retry.job });
            }
            None => {
                super::queue::push(tx, &retry).await?;
            }
        }
    }
    Ok(released)
}
