//! Queries on `runs`: one row per execution attempt of a task's agent, with its totals.

use chrono::Utc;

use super::Store;
use crate::error::{Error, Result};
use crate::model::{Run, RunEnd, RunKind, RunStatus};

impl Store {
    /// Opens a run row.
    pub async fn insert_run(&self, task_id: i64, kind: RunKind, holder: &str) -> Result<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO runs (task_id, kind, status, holder, started_at) VALUES ($1, $2, $5, $3, $4) RETURNING id")
            .bind(task_id)
            .bind(kind)
            .bind(holder)
            .bind(Utc::now())
            .bind(RunStatus::Running)
            .fetch_one(pool)
            .await)?)
    }

    /// Records the process of a run.
    pub async fn set_run_process(&self, run_id: i64, pid: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE runs SET pid = $2, pgid = $2 WHERE id = $1")
            .bind(run_id)
            .bind(pid)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// What a running run has spent so far, as its streamed messages say.
    pub async fn set_run_spent(&self, run_id: i64, cost_usd: f64, turns: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE runs SET cost_usd = $2, num_turns = $3 WHERE id = $1 AND finished_at IS NULL")
            .bind(run_id)
            .bind(cost_usd)
            .bind(turns)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes a run with its totals.
    pub async fn finish_run(&self, run_id: i64, end: &RunEnd) -> Result<()> {
        let totals = &end.totals;
        with_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = $2, exit_code = $3, claude_session_id = COALESCE($4, claude_session_id),
                result_subtype = $5, num_turns = $6, input_tokens = $7, output_tokens = $8,
                cache_read_tokens = $9, cache_creation_tokens = $10, cost_usd = $11, duration_ms = $12,
                error = $13, log = $14, finished_at = $15
             WHERE id = $1")
            .bind(run_id)
            .bind(end.status)
            .bind(end.exit_code)
            .bind(&totals.claude_session_id)
            .bind(&totals.result_subtype)
            .bind(totals.num_turns)
            .bind(totals.input_tokens)
            .bind(totals.output_tokens)
            .bind(totals.cache_read_tokens)
            .bind(totals.cache_creation_tokens)
            .bind(totals.cost_usd)
            .bind(totals.duration_ms)
            .bind(&end.error)
            .bind(&end.log)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Runs of a task left open by a process that died: (run id, process group).
    pub async fn open_runs(&self, task_id: i64) -> Result<Vec<(i64, Option<i64>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, pgid FROM runs WHERE task_id = $1 AND status = $2")
            .bind(task_id)
            .bind(RunStatus::Running)
            .fetch_all(pool)
            .await)?)
    }

    /// A task's runs, oldest first.
    pub async fn runs(&self, task_id: i64) -> Result<Vec<Run>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, task_id, kind, status, pid, exit_code, claude_session_id, result_subtype, num_turns,
                input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd, duration_ms,
                error, started_at, finished_at
             FROM runs WHERE task_id = $1 ORDER BY id")
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }

    /// The redacted log of one run of a task.
    pub async fn run_log(&self, task_id: i64, run_id: i64) -> Result<String> {
        with_pool!(self, pool => sqlx::query_scalar("SELECT log FROM runs WHERE id = $1 AND task_id = $2")
            .bind(run_id)
            .bind(task_id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("run {run_id} of task {task_id}")))
    }
}
