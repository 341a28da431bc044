//! Queries on monthly budgets: money spent since an instant, a project's own budget
//! (`project_budgets`), the tasks waiting for money (`budget_waiters`) and the budget
//! notices already sent (`budget_notices`).

use chrono::{DateTime, Utc};

use super::Store;
use crate::error::Result;
use crate::model::{NewJob, Priority, RunJob};

impl Store {
    /// Dollars the runs started at or after `since` cost: of project `project_id`, or of
    /// every project.
    pub async fn spent_since(&self, project_id: Option<i64>, since: DateTime<Utc>) -> Result<f64> {
        let spent: Option<f64> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT SUM(r.cost_usd) FROM runs r JOIN tasks t ON t.id = r.task_id
             WHERE r.started_at >= $1 AND ($2 IS NULL OR t.project_id = $2)")
            .bind(since)
            .bind(project_id)
            .fetch_one(pool)
            .await)?;
        Ok(spent.unwrap_or(0.0))
    }

    /// The monthly budget a maintainer set for project `project_id`, if any.
    pub async fn project_budget(&self, project_id: i64) -> Result<Option<f64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT monthly_usd FROM project_budgets WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Sets project `project_id`'s monthly budget (`None`: back to the configured default).
    pub async fn set_project_budget(
        &self,
        project_id: i64,
        monthly_usd: Option<f64>,
        by: &str,
    ) -> Result<()> {
        match monthly_usd {
            Some(usd) => with_pool!(self, pool => sqlx::query(
                "INSERT INTO project_budgets (project_id, monthly_usd, updated_by, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project_id) DO UPDATE
                 SET monthly_usd = $2, updated_by = $3, updated_at = $4")
                .bind(project_id)
                .bind(usd)
                .bind(by)
                .bind(Utc::now())
                .execute(pool)
                .await
                .map(|_| ()))?,
            None => with_pool!(self, pool => sqlx::query(
                "DELETE FROM project_budgets WHERE project_id = $1")
                .bind(project_id)
                .execute(pool)
                .await
                .map(|_| ()))?,
        }
        Ok(())
    }

    /// Records that a new task waits for its project's (or the global) budget, with the run
    /// job to push again; kept as it is if it waits already.
    pub async fn add_budget_waiter(&self, project_id: i64, job: &RunJob) -> Result<()> {
        let payload = serde_json::to_string(job).expect("a job serializes");
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO budget_waiters (task_id, project_id, job, since)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(job.task_id)
            .bind(project_id)
            .bind(payload)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The projects with tasks waiting for money.
    pub async fn budget_waiting_projects(&self) -> Result<Vec<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT project_id FROM budget_waiters ORDER BY project_id")
            .fetch_all(pool)
            .await)?)
    }

    /// Removes the waiters of project `project_id` and pushes their run jobs again, in one
    /// transaction; returns how many.
    pub async fn wake_budget_waiters(&self, project_id: i64) -> Result<usize> {
        let mut tx = self.begin().await?;
        let waiters: Vec<(i64, String, Priority)> = with_tx!(tx, conn => sqlx::query_as(
            "SELECT w.task_id, w.job, t.priority FROM budget_waiters w
             JOIN tasks t ON t.id = w.task_id WHERE w.project_id = $1
             ORDER BY w.since, w.task_id")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await)?;
        for (task_id, payload, priority) in &waiters {
            with_tx!(tx, conn => sqlx::query("DELETE FROM budget_waiters WHERE task_id = $1")
                .bind(task_id)
                .execute(&mut *conn)
                .await
                .map(|_| ()))?;
            let Ok(job) = serde_json::from_str::<RunJob>(payload) else {
                tracing::warn!(
                    task = task_id,
                    "a budget waiter's job did not parse; dropped"
                );
                continue;
            };
            let mut again = NewJob::now(*task_id, *priority);
            again.job = job;
            super::queue::push(&mut tx, &again).await?;
        }
        tx.commit().await?;
        Ok(waiters.len())
    }

    /// Records a budget notice; false if this one (scope, month, level, budget) was sent
    /// already, by any node.
    pub async fn record_budget_notice(
        &self,
        scope: &str,
        month: &str,
        level: &str,
        limit_usd: f64,
    ) -> Result<bool> {
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO budget_notices (scope, month, level, limit_usd, sent_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
            .bind(scope)
            .bind(month)
            .bind(level)
            .bind(limit_usd)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }
}
