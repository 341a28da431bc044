//! Runs: one execution attempt of a task's agent process, and what it cost.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// Why a run was started.
    RunKind("kind") {
        /// The task's first run.
        Start = "start",
        /// Handing a human decision back to the pipeline.
        Resume = "resume",
        /// Running the task again after its worker died.
        Recover = "recover",
    }
}

text_enum! {
    /// How a run ended (or that it has not).
    RunStatus("status") {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        TimedOut = "timed_out",
        Cancelled = "cancelled",
    }
}

/// What a run reported about itself: Claude's session, turns, tokens and cost (from the
/// stream-json result line, or summed per message when it never came).
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct RunTotals {
    /// What `--resume` needs to continue this conversation.
    pub claude_session_id: Option<String>,
    /// The result line's `subtype` (`success`, `error_max_turns`, …); none without a result.
    pub result_subtype: Option<String>,
    pub num_turns: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
    /// `total_cost_usd` of the result line; without one (a stopped or crashed run), what its
    /// streamed messages cost at the `[costs]` prices.
    pub cost_usd: f64,
    /// Claude's own measure of the run, from the result line.
    pub duration_ms: Option<i64>,
}

/// A run as stored (a row of `runs`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Run {
    pub id: i64,
    pub task_id: i64,
    pub kind: RunKind,
    pub status: RunStatus,
    pub pid: Option<i64>,
    pub exit_code: Option<i64>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub totals: RunTotals,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How a run ended: what finishing it writes to its row.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub status: RunStatus,
    pub exit_code: Option<i64>,
    pub totals: RunTotals,
    pub error: Option<String>,
    /// The tail of the agent's output, redacted.
    pub log: String,
}
