//! Projects: the registered repositories tasks run on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ProjectRole;

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
    #[sqlx(flatten)]
    pub approval_policy: ApprovalPolicy,
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
    pub approval_policy: ApprovalPolicy,
}

/// Who may decide a project's approvals, and how many must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// The least project role that decides: `approver` (default) or `maintainer`.
    pub decide_role: ProjectRole,
    /// Whether the user whose request started a task may approve it (default false).
    pub self_approval: bool,
    /// Distinct approvers a tool request of risk HIGH or a result needs (1-10, default 1);
    /// the decision lands with the last of them, one reject ends it.
    pub required_approvals: i64,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            decide_role: ProjectRole::Approver,
            self_approval: false,
            required_approvals: 1,
        }
    }
}
