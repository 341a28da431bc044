//! Tasks: requests to run a team on a project, and the values their lifecycle takes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// How urgent a task is; higher runs first.
    #[derive(clap::ValueEnum)]
    Priority("priority") {
        Critical = "critical",
        High = "high",
        Normal = "normal",
        Low = "low",
    }
}

impl Priority {
    /// Ordering weight: larger is claimed first.
    pub fn rank(self) -> i32 {
        match self {
            Priority::Critical => 3,
            Priority::High => 2,
            Priority::Normal => 1,
            Priority::Low => 0,
        }
    }

    /// An SQL expression giving the rank of the priority stored in `column`.
    pub fn sql_rank(column: &str) -> String {
        let arms: String = Self::ALL
            .iter()
            .map(|p| format!(" WHEN '{}' THEN {}", p.as_str(), p.rank()))
            .collect();
        format!("(CASE {column}{arms} ELSE 0 END)")
    }
}

text_enum! {
    /// Where a task came from.
    Source("source") {
        Api = "api",
        Github = "github",
        Cron = "cron",
        Alert = "alert",
        Chat = "chat",
        Cli = "cli",
    }
}

text_enum! {
    /// Where a task is in its lifecycle.
    TaskStatus("status") {
        /// Waiting for a worker and a concurrency slot.
        Queued = "queued",
        /// A worker runs its pipeline.
        Running = "running",
        /// The pipeline waits for a human decision.
        AwaitingApproval = "awaiting_approval",
        Done = "done",
        Failed = "failed",
        /// Rejected: the worktree and branch were removed.
        RolledBack = "rolled_back",
        Cancelled = "cancelled",
        /// Stopped (or not run again) because it spent its `[costs]` limit.
        BudgetExceeded = "budget_exceeded",
    }
}

impl TaskStatus {
    /// Statuses after which nothing more happens to a task.
    pub const ENDED: &'static [TaskStatus] = &[
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::RolledBack,
        TaskStatus::Cancelled,
        TaskStatus::BudgetExceeded,
    ];

    /// Statuses of a task that is not over yet.
    pub const OPEN: &'static [TaskStatus] = &[
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::AwaitingApproval,
    ];

    /// True when nothing more happens to a task in this status.
    pub fn has_ended(self) -> bool {
        Self::ENDED.contains(&self)
    }
}

/// A task as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Task {
    pub id: i64,
    /// Project name.
    pub project: String,
    pub team: String,
    pub prompt: String,
    pub source: Source,
    pub priority: Priority,
    pub status: TaskStatus,
    pub status_reason: Option<String>,
    pub dedup_key: Option<String>,
    /// The last ai-party phase seen.
    pub phase: Option<String>,
    pub party_session_id: Option<String>,
    pub branch: Option<String>,
    /// Where the task came from (issue, schedule, alert).
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub source_ref: serde_json::Value,
    pub created_by: Option<String>,
    /// The login of the user whose request started the task (an API caller, a linked GitHub
    /// sender); absent for schedules, alerts and unlinked senders.
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The pull request made of the approved work.
    pub pr_url: Option<String>,
    pub pr_number: Option<i64>,
    /// What became of the change when there is no pull request ("no changes", a push error).
    pub change_note: Option<String>,
    /// The team that actually ran, from the session's `session.json` (the plugin may pick
    /// another than `team` asked for).
    pub team_ran: Option<String>,
    /// What the plugin's `/party-board` shows: members, execution, fix_loop, grants.
    #[sqlx(json(nullable))]
    pub board: Option<crate::model::PartyBoard>,
}

/// A validated task ready to insert.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub project_id: i64,
    pub team: String,
    pub prompt: String,
    pub source: Source,
    pub priority: Priority,
    pub dedup_key: Option<String>,
    pub source_ref: serde_json::Value,
    pub created_by: String,
    /// The principal whose request started the task, when one is known.
    pub requested_by: Option<i64>,
}

/// Filters of a task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub project_id: Option<i64>,
    pub status: Option<TaskStatus>,
    /// Only tasks with a smaller id (the page cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// What the engine needs to know about a task to run it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskExec {
    pub id: i64,
    pub project_id: i64,
    pub team: String,
    pub prompt: String,
    pub priority: Priority,
    pub status: TaskStatus,
    pub phase: Option<String>,
    pub branch: Option<String>,
    pub worktree_path: Option<String>,
    pub repo_path: Option<String>,
    pub base_ref: Option<String>,
    pub party_session_id: Option<String>,
    pub events_offset: i64,
    /// `events_offset` is inside an over-long line whose end is not read yet.
    pub events_inside_line: bool,
    pub claude_session_id: Option<String>,
    pub infra_attempts: i64,
    pub cancel_requested_at: Option<DateTime<Utc>>,
}
