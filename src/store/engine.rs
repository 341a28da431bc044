//! Queries the engine needs: concurrency slots, runs, task execution state, and the
//! idempotent mirror of `.party/` (findings, tickets, approvals).

use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;

use super::events::insert_event_in_tx;
use super::{Backend, BeginWrite, Store};
use crate::error::{Error, Result};
use crate::records::{ApprovalRecord, FindingRecord, NewEvent, Run, TicketRecord};

/// Key of the PostgreSQL advisory lock that makes slot counting and taking atomic.
const SLOT_LOCK: i64 = 0x6169_6f70_736c_6f74;

/// What the engine needs to know about a task to run it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskExec {
    pub id: i64,
    pub project_id: i64,
    pub team: String,
    pub prompt: String,
    pub priority: String,
    pub status: String,
    pub phase: Option<String>,
    pub branch: Option<String>,
    pub worktree_path: Option<String>,
    pub repo_path: Option<String>,
    pub base_ref: Option<String>,
    pub party_session_id: Option<String>,
    pub events_offset: i64,
    pub claude_session_id: Option<String>,
    pub infra_attempts: i64,
    pub cancel_requested_at: Option<DateTime<Utc>>,
}

/// Totals of a finished run.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub status: String,
    pub exit_code: Option<i64>,
    pub claude_session_id: Option<String>,
    pub result_subtype: Option<String>,
    pub num_turns: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cost_usd: f64,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub log: String,
}

/// A ticket to upsert.
#[derive(Debug, Clone)]
pub struct TicketUpsert {
    pub ticket_id: String,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub status: Option<String>,
    pub phase: Option<String>,
    pub assignee: Option<String>,
    pub parent_id: Option<String>,
    pub body: serde_json::Value,
}

/// An approval request to upsert (its decision fields are the platform's, not the file's).
#[derive(Debug, Clone)]
pub struct ApprovalUpsert {
    pub request_id: String,
    pub kind: &'static str,
    pub risk_level: Option<String>,
    pub tool_name: Option<String>,
    pub tool_input: Option<serde_json::Value>,
    pub summary: Option<String>,
    pub diff_stat: Option<String>,
    /// The file's status: pending, or decided when the pipeline already moved on.
    pub file_status: String,
    pub file_decision: Option<String>,
    pub requested_at: DateTime<Utc>,
}

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
        let taken = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if self.backend() == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SLOT_LOCK).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM run_slots WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO run_slots (task_id, project_id, holder, acquired_at, expires_at)
                 SELECT $1, $2, $3, $4, $5
                 WHERE (SELECT COUNT(*) FROM run_slots) < $6
                   AND (SELECT COUNT(*) FROM run_slots WHERE project_id = $2)
                       < (SELECT max_concurrency FROM projects WHERE id = $2)
                   AND NOT EXISTS (
                       SELECT 1 FROM tasks waiting, tasks me
                       WHERE me.id = $1 AND waiting.project_id = $2 AND waiting.id <> $1
                         AND waiting.status = 'queued' AND waiting.cancel_requested_at IS NULL
                         AND (CASE waiting.priority WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'normal' THEN 1 ELSE 0 END)
                           > (CASE me.priority WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'normal' THEN 1 ELSE 0 END))
                 ON CONFLICT DO NOTHING")
                .bind(task_id)
                .bind(project_id)
                .bind(holder)
                .bind(now)
                .bind(now + ttl)
                .bind(global_limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            inserted == 1
        });
        Ok(taken)
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

    /// What the engine needs about a task.
    pub async fn task_exec(&self, task_id: i64) -> Result<TaskExec> {
        with_pool!(self, pool => sqlx::query_as(
            "SELECT id, project_id, team, prompt, priority, status, phase, branch, worktree_path, repo_path,
                base_ref, party_session_id, events_offset, claude_session_id, infra_attempts, cancel_requested_at
             FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("task {task_id}")))
    }

    /// Moves a task to `status` (and `phase` when given). A real change records a
    /// `status_changed` event in the same transaction. Terminal statuses set
    /// `completed_at`; `running` sets `started_at` the first time. Returns whether the
    /// status changed.
    pub async fn set_task_status(
        &self,
        task_id: i64,
        status: &str,
        reason: Option<&str>,
        phase: Option<&str>,
    ) -> Result<bool> {
        let now = Utc::now();
        let terminal = crate::tasks::has_ended(status);
        let (changed, event_id) = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let current: Option<(String, i64, Option<String>)> = sqlx::query_as(
                "SELECT status, project_id, phase FROM tasks WHERE id = $1")
                .bind(task_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((old, project_id, old_phase)) = current else {
                return Err(Error::NotFound(format!("task {task_id}")));
            };
            let phase = phase.map(str::to_string).or(old_phase);
            sqlx::query(
                "UPDATE tasks SET status = $2, status_reason = $3, phase = $4, updated_at = $5,
                    started_at = CASE WHEN $2 = 'running' AND started_at IS NULL THEN $5 ELSE started_at END,
                    completed_at = CASE WHEN $6 THEN $5 ELSE NULL END
                 WHERE id = $1")
                .bind(task_id)
                .bind(status)
                .bind(reason)
                .bind(&phase)
                .bind(now)
                .bind(terminal)
                .execute(&mut *tx)
                .await?;
            let mut event_id = None;
            if old != status {
                let event = NewEvent::platform(task_id, project_id, "status_changed", serde_json::json!({
                    "from": old, "to": status, "reason": reason, "phase": phase,
                }));
                event_id = insert_event_in_tx!(self, tx, &event);
            }
            tx.commit().await?;
            (old != status, event_id)
        });
        if let Some(id) = event_id {
            self.announce_event(id);
        }
        Ok(changed)
    }

    /// Records where a task runs.
    pub async fn set_task_worktree(
        &self,
        task_id: i64,
        repo_path: &str,
        base_ref: &str,
        branch: &str,
        worktree_path: &str,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET repo_path = $2, base_ref = $3, branch = $4, worktree_path = $5 WHERE id = $1")
            .bind(task_id)
            .bind(repo_path)
            .bind(base_ref)
            .bind(branch)
            .bind(worktree_path)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records the party session being ingested and how far its events were read.
    pub async fn set_task_party_progress(
        &self,
        task_id: i64,
        session_id: &str,
        events_offset: i64,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET party_session_id = $2, events_offset = $3 WHERE id = $1")
            .bind(task_id)
            .bind(session_id)
            .bind(events_offset)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records the Claude conversation a resume continues.
    pub async fn set_task_claude_session(
        &self,
        task_id: i64,
        claude_session_id: &str,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE tasks SET claude_session_id = $2 WHERE id = $1")
            .bind(task_id)
            .bind(claude_session_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Counts one more infrastructure failure; returns the new count.
    pub async fn bump_infra_attempts(&self, task_id: i64) -> Result<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "UPDATE tasks SET infra_attempts = infra_attempts + 1 WHERE id = $1 RETURNING infra_attempts")
            .bind(task_id)
            .fetch_one(pool)
            .await)?)
    }

    /// Marks a task for cancellation. A queued task is cancelled at once; a running one
    /// is stopped by the worker that holds it. Returns the task's status afterwards.
    pub async fn request_cancel(&self, task_id: i64) -> Result<String> {
        let exec = self.task_exec(task_id).await?;
        if crate::tasks::has_ended(&exec.status) {
            return Err(Error::Conflict(format!(
                "task {task_id} already ended ({})",
                exec.status
            )));
        }
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, $2) WHERE id = $1")
            .bind(task_id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if exec.status == "queued" || exec.status == "awaiting_approval" {
            self.set_task_status(task_id, "cancelled", Some("cancelled by request"), None)
                .await?;
            return Ok("cancelled".into());
        }
        Ok(exec.status)
    }

    /// Opens a run row.
    pub async fn insert_run(&self, task_id: i64, kind: &str, holder: &str) -> Result<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO runs (task_id, kind, status, holder, started_at) VALUES ($1, $2, 'running', $3, $4) RETURNING id")
            .bind(task_id)
            .bind(kind)
            .bind(holder)
            .bind(Utc::now())
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

    /// Closes a run with its totals.
    pub async fn finish_run(&self, run_id: i64, result: &RunResult) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = $2, exit_code = $3, claude_session_id = COALESCE($4, claude_session_id),
                result_subtype = $5, num_turns = $6, input_tokens = $7, output_tokens = $8,
                cache_read_tokens = $9, cache_creation_tokens = $10, cost_usd = $11, duration_ms = $12,
                error = $13, log = $14, finished_at = $15
             WHERE id = $1")
            .bind(run_id)
            .bind(&result.status)
            .bind(result.exit_code)
            .bind(&result.claude_session_id)
            .bind(&result.result_subtype)
            .bind(result.num_turns)
            .bind(result.input_tokens)
            .bind(result.output_tokens)
            .bind(result.cache_read_tokens)
            .bind(result.cache_creation_tokens)
            .bind(result.cost_usd)
            .bind(result.duration_ms)
            .bind(&result.error)
            .bind(&result.log)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Runs of a task left open by a process that died: (run id, process group).
    pub async fn open_runs(&self, task_id: i64) -> Result<Vec<(i64, Option<i64>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, pgid FROM runs WHERE task_id = $1 AND status = 'running'")
            .bind(task_id)
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

    /// Stores a finding's latest content; true when it was new or changed.
    pub async fn upsert_finding(
        &self,
        task_id: i64,
        name: &str,
        content: &str,
        sha256: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = with_pool!(self, pool => sqlx::query(
            "INSERT INTO findings (task_id, name, content, sha256, changed_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (task_id, name) DO UPDATE SET content = excluded.content, sha256 = excluded.sha256,
                changed_at = excluded.changed_at
             WHERE findings.sha256 <> excluded.sha256")
            .bind(task_id)
            .bind(name)
            .bind(content)
            .bind(sha256)
            .bind(changed_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// A task's findings by name.
    pub async fn findings(&self, task_id: i64) -> Result<Vec<FindingRecord>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT name, content, changed_at FROM findings WHERE task_id = $1 ORDER BY changed_at, name")
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Stores a ticket's latest state.
    pub async fn upsert_ticket(&self, task_id: i64, ticket: &TicketUpsert) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO tickets (task_id, ticket_id, kind, title, status, phase, assignee, parent_id, body, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (task_id, ticket_id) DO UPDATE SET kind = excluded.kind, title = excluded.title,
                status = excluded.status, phase = excluded.phase, assignee = excluded.assignee,
                parent_id = excluded.parent_id, body = excluded.body, updated_at = excluded.updated_at")
            .bind(task_id)
            .bind(&ticket.ticket_id)
            .bind(&ticket.kind)
            .bind(&ticket.title)
            .bind(&ticket.status)
            .bind(&ticket.phase)
            .bind(&ticket.assignee)
            .bind(&ticket.parent_id)
            .bind(Json(&ticket.body))
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A task's tickets by id.
    pub async fn tickets(&self, task_id: i64) -> Result<Vec<TicketRecord>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT ticket_id, kind, title, status, phase, assignee, parent_id, body, updated_at
             FROM tickets WHERE task_id = $1 ORDER BY ticket_id")
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Mirrors an approval request. A new pending request is inserted; a request the
    /// pipeline itself already decided is marked decided by `pipeline` unless the platform
    /// recorded a decision first. Returns true when the request was new.
    pub async fn upsert_approval(&self, task_id: i64, approval: &ApprovalUpsert) -> Result<bool> {
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO approvals (task_id, request_id, kind, risk_level, tool_name, tool_input, summary,
                diff_stat, status, decision, decided_by, decided_at, channel, requested_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                CASE WHEN $9 = 'decided' THEN 'pipeline' END, CASE WHEN $9 = 'decided' THEN $11 END,
                CASE WHEN $9 = 'decided' THEN 'pipeline' END, $12)
             ON CONFLICT (task_id, request_id) DO NOTHING")
            .bind(task_id)
            .bind(&approval.request_id)
            .bind(approval.kind)
            .bind(&approval.risk_level)
            .bind(&approval.tool_name)
            .bind(approval.tool_input.as_ref().map(Json))
            .bind(&approval.summary)
            .bind(&approval.diff_stat)
            .bind(&approval.file_status)
            .bind(&approval.file_decision)
            .bind(Utc::now())
            .bind(approval.requested_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if inserted == 0 && approval.file_status != "pending" {
            with_pool!(self, pool => sqlx::query(
                "UPDATE approvals SET status = 'decided', decision = COALESCE(decision, $3),
                    decided_by = COALESCE(decided_by, 'pipeline'), decided_at = COALESCE(decided_at, $4),
                    channel = COALESCE(channel, 'pipeline')
                 WHERE task_id = $1 AND request_id = $2 AND status = 'pending'")
                .bind(task_id)
                .bind(&approval.request_id)
                .bind(&approval.file_decision)
                .bind(Utc::now())
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(inserted == 1)
    }

    /// A task's approval requests, oldest first.
    pub async fn approvals(&self, task_id: i64) -> Result<Vec<ApprovalRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM approvals WHERE task_id = $1 ORDER BY id",
            super::approvals::APPROVAL_COLUMNS
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
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
