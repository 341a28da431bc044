//! What the dashboard's project, audit and people pages read beyond the API's records: a
//! project's health line, its members, and the audit search.

use chrono::{DateTime, Utc};

use super::{ProjectRole, TaskStatus};

/// One project's line in the project list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectHealth {
    pub project: String,
    pub project_id: i64,
    pub running: i64,
    pub queued: i64,
    /// How its most recently finished task ended.
    pub last_outcome: Option<TaskStatus>,
    /// Done in the last seven days.
    pub done_7d: i64,
    /// Done, failed or rolled back in the last seven days.
    pub finished_7d: i64,
}

impl ProjectHealth {
    /// Done over finished in the last seven days, in percent; None without a finished task.
    pub fn success_rate(&self) -> Option<i64> {
        (self.finished_7d > 0).then(|| self.done_7d * 100 / self.finished_7d)
    }
}

/// Someone holding a role in a project.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectMember {
    pub login: String,
    pub role: ProjectRole,
    /// The role was given for every project, not this one alone.
    pub every_project: bool,
}

/// Filters of the dashboard's audit log; every one optional.
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    /// Entries whose target is this project (`projects/<name>…`), or one of its tasks,
    /// schedules or credentials (the project's id in `project_id`).
    pub project: Option<String>,
    pub project_id: Option<i64>,
    pub actor: Option<String>,
    /// Words the action contains (case-insensitive).
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: i64,
}
