//! Queries on `tasks`.

use super::{Backend, Store, Tx};
use crate::error::{Error, Result};
use crate::model::{ProjectScope, Task, TaskExec, TaskFilter, TaskSpec, TaskStatus};

/// Inserts a queued task inside `tx`; returns its id, or None when the project already has
/// a task with this dedup key (the transaction stays usable).
pub async fn insert(tx: &mut Tx, spec: &TaskSpec) -> Result<Option<i64>> {
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "INSERT INTO tasks (project_id, team, prompt, source, priority, status, dedup_key,
            source_ref, created_by, created_at, updated_at, requested_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(spec.project_id)
    .bind(&spec.team)
    .bind(&spec.prompt)
    .bind(spec.source)
    .bind(spec.priority)
    .bind(TaskStatus::Queued)
    .bind(&spec.dedup_key)
    .bind(sqlx::types::Json(&spec.source_ref))
    .bind(&spec.created_by)
    .bind(chrono::Utc::now())
    .bind(spec.requested_by)
    .fetch_optional(&mut *conn)
    .await)?)
}

/// Inserts queued tasks inside `tx`, in one statement (and one to number them); each one's
/// id in order, None for a task whose project already has a task with its dedup key (also
/// one earlier in `specs`). Their ids are taken before the insert — from the tasks table
/// on SQLite, where the transaction holds the write lock and tasks are never deleted, and
/// from the identity's sequence on PostgreSQL — so each id is known to be its task's.
pub async fn insert_all(tx: &mut Tx, specs: &[&TaskSpec]) -> Result<Vec<Option<i64>>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(specs.len()).unwrap_or(i64::MAX);
    let postgres = tx.backend() == Backend::Postgres;
    let ids: Vec<i64> = with_tx!(tx, conn => {
        if postgres {
            sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence('tasks', 'id')) FROM generate_series(1, $1)")
                .bind(count)
                .fetch_all(&mut *conn)
                .await
        } else {
            sqlx::query_scalar(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0),
                            COALESCE((SELECT MAX(id) FROM tasks), 0))")
                .fetch_one(&mut *conn)
                .await
                .map(|last: i64| (last + 1..=last + count).collect())
        }
    })?;
    let now = chrono::Utc::now();
    let rows: Vec<(i64, &TaskSpec)> = ids.iter().copied().zip(specs.iter().copied()).collect();
    let inserted: Vec<i64> = with_tx!(tx, conn => {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO tasks (id, project_id, team, prompt, source, priority, status, dedup_key,
                source_ref, created_by, created_at, updated_at, requested_by) ");
        if postgres {
            insert.push("OVERRIDING SYSTEM VALUE ");
        }
        insert.push_values(&rows, |mut row, (id, spec)| {
            row.push_bind(*id)
                .push_bind(spec.project_id)
                .push_bind(&spec.team)
                .push_bind(&spec.prompt)
                .push_bind(spec.source)
                .push_bind(spec.priority)
                .push_bind(TaskStatus::Queued)
                .push_bind(&spec.dedup_key)
                .push_bind(sqlx::types::Json(&spec.source_ref))
                .push_bind(&spec.created_by)
                .push_bind(now)
                .push_bind(now)
                .push_bind(spec.requested_by);
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING id");
        insert.build_query_scalar().persistent(false).fetch_all(&mut *conn).await
    })?;
    let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
    Ok(ids
        .into_iter()
        .map(|id| inserted.contains(&id).then_some(id))
        .collect())
}

pub(crate) const TASK_SELECT: &str =
    "SELECT t.id, p.name AS project, t.team, t.prompt, t.source, t.priority,
    t.status, t.status_reason, t.dedup_key, t.phase, t.party_session_id, t.branch, t.source_ref,
    t.created_by, r.name AS requested_by, t.created_at, t.started_at, t.completed_at, t.pr_url,
    t.pr_number, t.change_note, t.team_ran, t.board
    FROM tasks t JOIN projects p ON p.id = t.project_id
    LEFT JOIN principals r ON r.id = t.requested_by";

impl Store {
    /// The task with this id, or NotFound.
    pub async fn task(&self, id: i64) -> Result<Task> {
        let sql = sqlx::AssertSqlSafe(format!("{TASK_SELECT} WHERE t.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    /// A page of tasks, newest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        self.list_tasks_in(filter, &ProjectScope::All).await
    }

    /// A page of the tasks of the projects in `scope`, newest first.
    pub async fn list_tasks_in(
        &self,
        filter: &TaskFilter,
        scope: &ProjectScope,
    ) -> Result<Vec<Task>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{TASK_SELECT}
             WHERE ($1 IS NULL OR t.project_id = $1)
               AND ($2 IS NULL OR t.status = $2)
               AND ($3 IS NULL OR t.id < $3){}
             ORDER BY t.id DESC LIMIT $4",
            super::scope_sql("t.project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(filter.project_id)
            .bind(filter.status)
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }

    /// What the engine needs about a task.
    pub async fn task_exec(&self, task_id: i64) -> Result<TaskExec> {
        with_pool!(self, pool => sqlx::query_as(
            "SELECT id, project_id, team, prompt, priority, status, phase, branch, worktree_path, repo_path,
                base_ref, party_session_id, events_offset, events_inside_line, claude_session_id, infra_attempts,
                cancel_requested_at
             FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("task {task_id}")))
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

    /// Records the party session being ingested, how far its events were read, and whether
    /// that offset is inside an over-long line (whose end the reader is looking for).
    pub async fn set_task_party_progress(
        &self,
        task_id: i64,
        session_id: &str,
        events_offset: i64,
        inside_long_line: bool,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET party_session_id = $2, events_offset = $3, events_inside_line = $4
             WHERE id = $1")
            .bind(task_id)
            .bind(session_id)
            .bind(events_offset)
            .bind(inside_long_line)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records the team that ran and the board its session shows.
    pub async fn set_task_board(
        &self,
        task_id: i64,
        team_ran: Option<&str>,
        board: &crate::model::PartyBoard,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET team_ran = COALESCE($2, team_ran), board = $3 WHERE id = $1")
            .bind(task_id)
            .bind(team_ran)
            .bind(sqlx::types::Json(board))
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

    /// Marks a task for cancellation (the worker holding it stops it).
    /// Whether a cancel was requested for the task (by any node).
    pub async fn cancel_requested(&self, task_id: i64) -> Result<bool> {
        let at: Option<Option<chrono::DateTime<chrono::Utc>>> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT cancel_requested_at FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?;
        Ok(matches!(at, Some(Some(_))))
    }

    pub async fn mark_cancel_requested(&self, task_id: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, $2) WHERE id = $1")
            .bind(task_id)
            .bind(chrono::Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// A task's status, project and phase, read inside `tx`.
pub async fn status_of(
    tx: &mut Tx,
    task_id: i64,
) -> Result<Option<(TaskStatus, i64, Option<String>)>> {
    Ok(with_tx!(tx, conn => sqlx::query_as(
        "SELECT status, project_id, phase FROM tasks WHERE id = $1")
        .bind(task_id)
        .fetch_optional(&mut *conn)
        .await)?)
}

/// Writes a task's status, reason and phase inside `tx`: `running` sets `started_at` the
/// first time; an ended status sets `completed_at`, any other clears it. An ended task keeps
/// its status (only `requeue` starts it again): false, and nothing written, when it has one
/// other than `status`.
pub async fn update_status(
    tx: &mut Tx,
    task_id: i64,
    status: TaskStatus,
    reason: Option<&str>,
    phase: Option<&str>,
) -> Result<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = $2, status_reason = $3, phase = $4, updated_at = $5,
            started_at = CASE WHEN $2 = $7 AND started_at IS NULL THEN $5 ELSE started_at END,
            completed_at = CASE WHEN $6 THEN $5 ELSE NULL END
         WHERE id = $1 AND (status = $2 OR status NOT IN ({}))",
        crate::model::sql_list(TaskStatus::ENDED, TaskStatus::as_str)
    ));
    let updated = with_tx!(tx, conn => sqlx::query(sql)
        .bind(task_id)
        .bind(status)
        .bind(reason)
        .bind(phase)
        .bind(chrono::Utc::now())
        .bind(status.has_ended())
        .bind(TaskStatus::Running)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}

/// The task of a project with this dedup key, read inside `tx`.
pub async fn id_by_dedup_key(tx: &mut Tx, project_id: i64, dedup_key: &str) -> Result<Option<i64>> {
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "SELECT id FROM tasks WHERE project_id = $1 AND dedup_key = $2")
        .bind(project_id)
        .bind(dedup_key)
        .fetch_optional(&mut *conn)
        .await)?)
}

/// Cancels a task that has not started, inside `tx`, saying why.
pub async fn cancel_queued(tx: &mut Tx, task_id: i64, reason: &str) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "UPDATE tasks SET status = $4, status_reason = $3,
            cancel_requested_at = $2, completed_at = $2, updated_at = $2 WHERE id = $1")
        .bind(task_id)
        .bind(chrono::Utc::now())
        .bind(reason)
        .bind(TaskStatus::Cancelled)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Queues an ended task again inside `tx`: status queued with `reason`, its cancel request,
/// end time and infrastructure attempts cleared; false unless it was in one of `from`.
pub async fn requeue(tx: &mut Tx, task_id: i64, from: &[TaskStatus], reason: &str) -> Result<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = $2, status_reason = $3, cancel_requested_at = NULL,
            completed_at = NULL, infra_attempts = 0, updated_at = $4
         WHERE id = $1 AND status IN ({})",
        crate::model::sql_list(from, TaskStatus::as_str)
    ));
    let updated = with_tx!(tx, conn => sqlx::query(sql)
        .bind(task_id)
        .bind(TaskStatus::Queued)
        .bind(reason)
        .bind(chrono::Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}
