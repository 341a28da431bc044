//! Analytics: the history of tasks, runs and approvals read back as figures per time bucket
//! and group.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// How long one bucket of a time series is (calendar periods in UTC).
    BucketSize("bucket") {
        Day = "day",
        /// ISO weeks, Monday to Sunday.
        Week = "week",
        Month = "month",
    }
}

text_enum! {
    /// What the figures of a bucket are split by.
    GroupBy("group_by") {
        Project = "project",
        Team = "team",
        Source = "source",
    }
}

/// Which projects' figures a reader may see. Today every token has a global role, so every
/// reader sees `All`; per-project roles narrow it to `Only`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    All,
    /// These project ids (none: nothing at all).
    Only(Vec<i64>),
}

/// One bucket of a time series: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What an analytics query reads: the buckets (consecutive, oldest first, at least one)
/// and their size, the split and the projects in scope.
#[derive(Debug, Clone)]
pub struct AnalyticsQuery {
    pub buckets: Vec<Bucket>,
    pub size: BucketSize,
    pub group_by: GroupBy,
    pub scope: ProjectScope,
}

/// The sums of the tasks created in one bucket and group, as the store adds them up.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskSums {
    pub bucket_start: DateTime<Utc>,
    pub group: String,
    pub tasks: i64,
    pub started: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub rolled_back: i64,
    pub duration_p50_ms: Option<i64>,
    pub duration_p90_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_usd: f64,
}

/// The sums of the approval requests filed in one bucket and group.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApprovalSums {
    pub bucket_start: DateTime<Utc>,
    pub group: String,
    pub requested: i64,
    pub decided: i64,
    pub approved: i64,
    pub rejected: i64,
    pub revised: i64,
    pub expired: i64,
    pub pending: i64,
    pub decision_p50_ms: Option<i64>,
    pub decision_p90_ms: Option<i64>,
}

/// The sums of one agent's tickets opened in a range, as the store adds them up.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AgentSums {
    pub agent: String,
    pub tickets: i64,
    pub done: i64,
    pub blocked: i64,
    pub failed: i64,
    pub reopened: i64,
    pub failed_or_reopened: i64,
    pub time_p50_ms: Option<i64>,
    pub time_p90_ms: Option<i64>,
}

/// A task and what its runs cost, for the most expensive tasks.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct TaskCost {
    pub task_id: i64,
    pub project: String,
    pub team: String,
    pub source: super::Source,
    pub status: super::TaskStatus,
    pub created_at: DateTime<Utc>,
    pub runs: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_usd: f64,
}
