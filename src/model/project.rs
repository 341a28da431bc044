//! Projects: the registered repositories tasks run on.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A registered repository.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Project {
    pub id: i64,
    /// Unique slug, used in URLs.
    pub name: String,
    pub repo_url: Option<String>,
    pub local_path: Option<String>,
    pub default_branch: String,
    /// Template of task branches; `{team}`, `{task_id}` and `{project}` are filled in.
    pub branch_strategy: String,
    #[sqlx(json)]
    pub tech_stack: Vec<String>,
    pub conventions: String,
    /// GitHub `owner/repo`.
    pub github_repo: Option<String>,
    /// Most tasks of this project running at once.
    pub max_concurrency: i64,
    /// Agent timeout for this project's tasks, in seconds; none means the global one.
    pub timeout_secs: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A complete, validated set of project values, ready to store.
#[derive(Debug, Clone)]
pub struct ProjectSpec {
    pub name: String,
    pub repo_url: Option<String>,
    pub local_path: Option<String>,
    pub default_branch: String,
    pub branch_strategy: String,
    pub tech_stack: Vec<String>,
    pub conventions: String,
    pub github_repo: Option<String>,
    pub max_concurrency: i64,
    pub timeout_secs: Option<i64>,
}
