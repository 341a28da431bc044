//! Queries of the dashboard's project list and page, and of its audit log search.

use chrono::{DateTime, Utc};

use super::Store;
use crate::error::Result;
use crate::model::{
    AuditEntry, AuditSearch, ProjectHealth, ProjectMember, ProjectScope, TaskStatus,
};

impl Store {
    /// Per project in `scope`: tasks running and queued now, how the last finished one
    /// ended, and how many were done and finished since `since`.
    pub async fn project_health(
        &self,
        since: DateTime<Utc>,
        scope: &ProjectScope,
    ) -> Result<Vec<ProjectHealth>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT p.name AS project, p.id AS project_id,
                (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = $1) AS running,
                (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = $2) AS queued,
                (SELECT t.status FROM tasks t WHERE t.project_id = p.id AND t.completed_at IS NOT NULL
                   ORDER BY t.completed_at DESC, t.id DESC LIMIT 1) AS last_outcome,
                (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = $3
                   AND t.completed_at >= $6) AS done_7d,
                (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status IN ($3, $4, $5)
                   AND t.completed_at >= $6) AS finished_7d
             FROM projects p WHERE TRUE{} ORDER BY p.name",
            super::scope_sql("p.id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(TaskStatus::Running)
            .bind(TaskStatus::Queued)
            .bind(TaskStatus::Done)
            .bind(TaskStatus::Failed)
            .bind(TaskStatus::RolledBack)
            .bind(since)
            .fetch_all(pool)
            .await)?)
    }

    /// Who holds a role in project `project_id`, this project's or every project's, by login.
    pub async fn project_members(&self, project_id: i64) -> Result<Vec<ProjectMember>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT pr.name AS login, m.role, (m.project_id IS NULL) AS every_project
             FROM memberships m JOIN principals pr ON pr.id = m.principal_id
             WHERE m.project_id = $1 OR m.project_id IS NULL
             ORDER BY pr.name, COALESCE(m.project_id, 0)")
            .bind(project_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Audit entries matching `search`, newest first.
    pub async fn search_audit(&self, search: &AuditSearch) -> Result<Vec<AuditEntry>> {
        let action = search
            .action
            .as_ref()
            .map(|text| format!("%{}%", like_escaped(&text.to_lowercase())));
        let project = search
            .project
            .as_ref()
            .map(|name| format!("projects/{name}"));
        let project_below = project.as_ref().map(|p| format!("{}/%", like_escaped(p)));
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT * FROM audit_log
             WHERE ($1 IS NULL OR target = $1 OR target LIKE $2 ESCAPE '\\'
                    OR target IN (SELECT 'tasks/' || CAST(t.id AS TEXT) FROM tasks t WHERE t.project_id = $3)
                    OR target IN (SELECT 'schedules/' || s.name FROM schedules s WHERE s.project_id = $3)
                    OR target IN (SELECT 'credentials/' || CAST(c.id AS TEXT) FROM credentials c WHERE c.project_id = $3))
               AND ($4 IS NULL OR principal_name = $4)
               AND ($5 IS NULL OR LOWER(action) LIKE $5 ESCAPE '\\')
               AND ($6 IS NULL OR at >= $6)
               AND ($7 IS NULL OR at < $7)
               AND ($8 IS NULL OR id < $8)
             ORDER BY id DESC LIMIT $9")
            .bind(project.as_deref())
            .bind(project_below.as_deref())
            .bind(search.project_id)
            .bind(search.actor.as_deref())
            .bind(action.as_deref())
            .bind(search.since)
            .bind(search.until)
            .bind(search.before_id)
            .bind(search.limit)
            .fetch_all(pool)
            .await)?)
    }
}

/// `text` with the `LIKE` wildcards and the escape character escaped (for `ESCAPE '\\'`).
pub(super) fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
