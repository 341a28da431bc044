//! Queries on `run_slots`: the concurrency slots every process counts, so the global limit
//! and each project's `max_concurrency` hold across processes.

use chrono::{Duration, Utc};

use super::{Backend, Store};
use crate::error::Result;
use crate::model::{Priority, TaskStatus};

/// Key of the PostgreSQL advisory lock that makes slot counting and taking atomic.
const SLOT_LOCK: i64 = 0x6169_6f70_736c_6f74;

impl Store {
    /// Takes a running slot for a task if the global limit and the project's
    /// `max_concurrency` allow, counting live slots of every process, and no queued task
    /// of the same project has a higher priority (it gets the next slot, whichever job
    /// the queue hands out first). Expired slots (their holder died) are dropped first.
    /// True when the slot is ours.
    pub async fn acquire_slot(
        &self,
        task_id: i64,
        project_id: i64,
        holder: &str,
        ttl: Duration,
        global_limit: i64,
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

    /// Gives a slot back.
    pub async fn release_slot(&self, task_id: i64, holder: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query("DELETE FROM run_slots WHERE task_id = $1 AND holder = $2")
            .bind(task_id)
            .bind(holder)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
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
