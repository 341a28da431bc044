//! Queries that take back what a dead predecessor held: the process that ran on the same
//! host and data directory before this one (`engine::worker::take_over_predecessor`). A
//! predecessor is any holder that starts with the node's prefix and is not the current one.

use super::{Backend, Store};
use crate::error::Result;

impl Store {
    /// Tasks still `running` under an open run of a predecessor, oldest first.
    pub async fn tasks_run_by_predecessors(&self, prefix: &str, current: &str) -> Result<Vec<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT runs.task_id FROM runs JOIN tasks ON tasks.id = runs.task_id
             WHERE runs.status = 'running' AND tasks.status = 'running'
               AND substr(runs.holder, 1, $2) = $1 AND runs.holder <> $3
             ORDER BY runs.task_id",
        )
        .bind(prefix)
        .bind(char_len(prefix))
        .bind(current)
        .fetch_all(pool)
        .await)?)
    }

    /// Frees the predecessors' slots and hands the jobs their queue workers (named
    /// `<holder>-…`) had claimed back to the queue, in one transaction: (slots, jobs).
    pub async fn release_predecessors(&self, prefix: &str, current: &str) -> Result<(u64, u64)> {
        let jobs_table = match self.backend() {
            Backend::Sqlite => "Jobs",
            Backend::Postgres => "apalis.jobs",
        };
        let release_jobs = sqlx::AssertSqlSafe(format!(
            "UPDATE {jobs_table} SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL
             WHERE status IN ('Running', 'Queued')
               AND substr(lock_by, 1, $2) = $1 AND substr(lock_by, 1, $4) <> $3"
        ));
        let own_workers = format!("{current}-");
        let mut tx = self.begin().await?;
        let released = with_tx!(tx, conn => {
            let slots = sqlx::query(
                "DELETE FROM run_slots WHERE substr(holder, 1, $2) = $1 AND holder <> $3",
            )
            .bind(prefix)
            .bind(char_len(prefix))
            .bind(current)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            let jobs = sqlx::query(release_jobs)
                .bind(prefix)
                .bind(char_len(prefix))
                .bind(&own_workers)
                .bind(char_len(&own_workers))
                .execute(&mut *conn)
                .await?
                .rows_affected();
            (slots, jobs)
        });
        tx.commit().await?;
        if released.1 > 0
            && let Some(signal) = self.jobs_inserted()
        {
            signal.announce();
        }
        Ok(released)
    }
}

/// A prefix's length in characters, as `substr` counts them (an `integer` for PostgreSQL).
fn char_len(text: &str) -> i32 {
    text.chars().count() as i32
}
