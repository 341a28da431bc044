//! Queries of the dashboard's pages: the task search, the overview's counts and costs, the
//! approvals inbox, a task's events by kind, people's page settings and a project's
//! approval-link mode.

use chrono::{DateTime, Utc};

use super::Store;
use super::approvals::APPROVAL_COLUMNS;
use crate::error::{Error, Result};
use crate::model::{
    ApprovalLinks, ApprovalStatus, Event, InboxItem, Preferences, ProjectCounts, ProjectScope,
    Task, TaskSearch, TaskStatus,
};

impl Store {
    /// A page of the tasks of the projects in `scope` matching `search`, newest first.
    pub async fn search_tasks(
        &self,
        search: &TaskSearch,
        scope: &ProjectScope,
    ) -> Result<Vec<Task>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{select}
             WHERE ($1 IS NULL OR t.project_id = $1)
               AND ($2 IS NULL OR t.status = $2)
               AND ($3 IS NULL OR t.team = $3)
               AND ($4 IS NULL OR t.source = $4)
               AND ($5 IS NULL OR t.priority = $5)
               AND ($6 IS NULL OR LOWER(t.prompt) LIKE $6 ESCAPE '\\')
               AND ($7 IS NULL OR t.created_at >= $7)
               AND ($8 IS NULL OR t.created_at < $8)
               AND ($9 IS NULL OR t.id < $9){scope}
             ORDER BY t.id DESC LIMIT $10",
            select = super::tasks::TASK_SELECT,
            scope = super::scope_sql("t.project_id", scope)
        ));
        let pattern = search
            .text
            .as_ref()
            .map(|text| format!("%{}%", super::views::like_escaped(&text.to_lowercase())));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(search.project_id)
            .bind(search.status)
            .bind(search.team.as_deref())
            .bind(search.source)
            .bind(search.priority)
            .bind(pattern.as_deref())
            .bind(search.created_from)
            .bind(search.created_before)
            .bind(search.before_id)
            .bind(search.limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Per project in `scope`: tasks running, queued and awaiting approval now, and failed
    /// since `day_start`.
    pub async fn project_counts(
        &self,
        day_start: DateTime<Utc>,
        scope: &ProjectScope,
    ) -> Result<Vec<ProjectCounts>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT p.name AS project,
                CAST(COALESCE(SUM(CASE WHEN t.status = $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS running,
                CAST(COALESCE(SUM(CASE WHEN t.status = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS queued,
                CAST(COALESCE(SUM(CASE WHEN t.status = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS awaiting,
                CAST(COALESCE(SUM(CASE WHEN t.status = $4 AND t.completed_at >= $5 THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed_today
             FROM projects p LEFT JOIN tasks t ON t.project_id = p.id
               AND (t.status IN ($1, $2, $3) OR (t.status = $4 AND t.completed_at >= $5))
             WHERE TRUE{}
             GROUP BY p.name ORDER BY p.name",
            super::scope_sql("p.id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(TaskStatus::Running)
            .bind(TaskStatus::Queued)
            .bind(TaskStatus::AwaitingApproval)
            .bind(TaskStatus::Failed)
            .bind(day_start)
            .fetch_all(pool)
            .await)?)
    }

    /// The last failed tasks of the projects in `scope`, newest first.
    pub async fn recent_failures(&self, scope: &ProjectScope, limit: i64) -> Result<Vec<Task>> {
        let search = TaskSearch {
            status: Some(TaskStatus::Failed),
            limit,
            ..TaskSearch::default()
        };
        self.search_tasks(&search, scope).await
    }

    /// What the runs started since `since` cost, in US dollars, in the projects in `scope`.
    pub async fn cost_since(&self, since: DateTime<Utc>, scope: &ProjectScope) -> Result<f64> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT CAST(COALESCE(SUM(r.cost_usd), 0.0) AS DOUBLE PRECISION)
             FROM runs r JOIN tasks t ON t.id = r.task_id
             WHERE r.started_at >= $1{}",
            super::scope_sql("t.project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(since)
            .fetch_one(pool)
            .await)?)
    }

    /// Pending approvals of the projects in `scope`, oldest first, with their project.
    pub async fn pending_inbox(&self, scope: &ProjectScope, limit: i64) -> Result<Vec<InboxItem>> {
        let columns = APPROVAL_COLUMNS
            .split(',')
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {columns}, p.name AS project, p.id AS project_id, t.prompt
             FROM approvals a JOIN tasks t ON t.id = a.task_id JOIN projects p ON p.id = t.project_id
             WHERE a.status = $1{}
             ORDER BY a.requested_at, a.id LIMIT $2",
            super::scope_sql("t.project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(ApprovalStatus::Pending)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// A task's latest events, newest first, optionally of one kind.
    pub async fn task_events(
        &self,
        task_id: i64,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, task_id, project_id, kind, origin, ts, data FROM events
             WHERE task_id = $1 AND ($2 IS NULL OR kind = $2) ORDER BY id DESC LIMIT $3")
            .bind(task_id)
            .bind(kind)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// The kinds of event a task has, by name.
    pub async fn task_event_kinds(&self, task_id: i64) -> Result<Vec<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT kind FROM events WHERE task_id = $1 ORDER BY kind")
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }

    /// A principal's language and time zone.
    pub async fn preferences(&self, principal_id: i64) -> Result<Preferences> {
        with_pool!(self, pool => sqlx::query_as(
            "SELECT language, time_zone FROM principals WHERE id = $1")
            .bind(principal_id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("principal {principal_id}")))
    }

    /// Sets a principal's language and time zone (None: not chosen).
    pub async fn set_preferences(
        &self,
        principal_id: i64,
        preferences: &Preferences,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE principals SET language = $1, time_zone = $2 WHERE id = $3")
            .bind(preferences.language.as_deref())
            .bind(preferences.time_zone.as_deref())
            .bind(principal_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// What the signed approval links of project `project_id` may do.
    pub async fn approval_links(&self, project_id: i64) -> Result<ApprovalLinks> {
        with_pool!(self, pool => sqlx::query_scalar(
            "SELECT approval_links FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("project {project_id}")))
    }

    /// Sets what the signed approval links of project `project_id` may do.
    pub async fn set_approval_links(&self, project_id: i64, mode: ApprovalLinks) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE projects SET approval_links = $1 WHERE id = $2")
            .bind(mode)
            .bind(project_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The kinds of channel (`slack`, `kakaowork`, `webhook`) approval `approval_id`'s link
    /// was sent to, by name.
    pub async fn link_channels(&self, approval_id: i64) -> Result<Vec<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT c.kind FROM notifications n
             JOIN notification_channels c ON c.id = n.channel_id
             WHERE n.approval_id = $1 ORDER BY c.kind")
            .bind(approval_id)
            .fetch_all(pool)
            .await)?)
    }
}
