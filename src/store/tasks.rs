//! Queries on `tasks`.

use chrono::Utc;
use sqlx::types::Json;

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::tasks::{Task, TaskFilter, TaskSpec};

const TASK_SELECT: &str = "SELECT t.id, p.name AS project, t.team, t.prompt, t.source, t.priority,
    t.status, t.status_reason, t.dedup_key, t.phase, t.party_session_id, t.branch, t.source_ref,
    t.created_by, t.created_at, t.started_at, t.completed_at
    FROM tasks t JOIN projects p ON p.id = t.project_id";

impl Store {
    /// Inserts a queued task; a dedup key already used on the project is a conflict.
    pub async fn insert_task(&self, spec: &TaskSpec) -> Result<Task> {
        let id: i64 = with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO tasks (project_id, team, prompt, source, priority, status, dedup_key,
                source_ref, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9) RETURNING id")
            .bind(spec.project_id)
            .bind(&spec.team)
            .bind(&spec.prompt)
            .bind(spec.source.as_str())
            .bind(spec.priority.as_str())
            .bind(&spec.dedup_key)
            .bind(Json(&spec.source_ref))
            .bind(&spec.created_by)
            .bind(Utc::now())
            .fetch_one(pool)
            .await)
        .on_conflict(format!(
            "a task with dedup key {:?} already exists for this project",
            spec.dedup_key.as_deref().unwrap_or_default()
        ))?;
        self.task(id).await
    }

    /// The task with this id, or NotFound.
    pub async fn task(&self, id: i64) -> Result<Task> {
        let sql = sqlx::AssertSqlSafe(format!("{TASK_SELECT} WHERE t.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    /// A page of tasks, newest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{TASK_SELECT}
             WHERE ($1 IS NULL OR t.project_id = $1)
               AND ($2 IS NULL OR t.status = $2)
               AND ($3 IS NULL OR t.id < $3)
             ORDER BY t.id DESC LIMIT $4"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(filter.project_id)
            .bind(&filter.status)
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }
}
