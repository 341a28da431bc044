//! What a task's execution leaves behind: runs, events, findings, tickets, approvals.
//!
//! Plain record types shared by the engine (which writes them), the store and the API
//! (which read them). Everything textual in them was redacted before it was stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One execution attempt of a task's agent process.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Run {
    pub id: i64,
    pub task_id: i64,
    /// start | resume | recover
    pub kind: String,
    /// running | succeeded | failed | timed_out | cancelled
    pub status: String,
    pub pid: Option<i64>,
    pub exit_code: Option<i64>,
    pub claude_session_id: Option<String>,
    pub result_subtype: Option<String>,
    pub num_turns: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cost_usd: f64,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from the pipeline's `events.ndjson`.
    Party,
    /// Written by aiops itself (task_queued, run_started, status_changed, …).
    Platform,
}

impl Origin {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Party => "party",
            Origin::Platform => "platform",
        }
    }
}

/// One entry of the ordered event log; `id` is the SSE event id.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Event {
    pub id: i64,
    pub task_id: Option<i64>,
    pub project_id: Option<i64>,
    pub kind: String,
    pub origin: String,
    pub ts: DateTime<Utc>,
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub task_id: i64,
    pub project_id: i64,
    pub kind: String,
    pub origin: Origin,
    pub ts: DateTime<Utc>,
    pub data: serde_json::Value,
    /// For party events: the party session and byte offset that identify the line.
    pub source: Option<(String, i64)>,
}

impl NewEvent {
    /// A platform event about a task, now.
    pub fn platform(task_id: i64, project_id: i64, kind: &str, data: serde_json::Value) -> Self {
        NewEvent {
            task_id,
            project_id,
            kind: kind.to_string(),
            origin: Origin::Platform,
            ts: Utc::now(),
            data,
            source: None,
        }
    }
}

/// A hand-off document of the pipeline, latest content.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct FindingRecord {
    pub name: String,
    pub content: String,
    pub changed_at: DateTime<Utc>,
}

/// A work item of the pipeline.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TicketRecord {
    pub ticket_id: String,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub status: Option<String>,
    pub phase: Option<String>,
    pub assignee: Option<String>,
    pub parent_id: Option<String>,
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

/// An approval request of the pipeline and its decision.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApprovalRecord {
    pub id: i64,
    pub task_id: i64,
    pub request_id: String,
    /// tool | result
    pub kind: String,
    pub risk_level: Option<String>,
    pub tool_name: Option<String>,
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<Object>)]
    pub tool_input: Option<serde_json::Value>,
    pub summary: Option<String>,
    pub diff_stat: Option<String>,
    /// pending | decided | expired
    pub status: String,
    pub decision: Option<String>,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub channel: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the change and the findings shown with the request were taken.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// When a resume run handed the decision to the pipeline.
    pub resumed_at: Option<DateTime<Utc>>,
}

/// What a human sees when deciding: the worktree's change and the findings at request time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct ApprovalSnapshot {
    /// Changed files: path, insertions, deletions, status.
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<Vec<Object>>)]
    pub diff_files: Option<Vec<ChangedFile>>,
    /// The unified diff, cut at `approvals.max_diff_bytes`.
    pub diff_patch: Option<String>,
    pub diff_truncated: bool,
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<Vec<Object>>)]
    pub findings: Option<Vec<FindingText>>,
}

/// One changed file of a worktree's diff (and of an approval's).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangedFile {
    /// Path in the worktree; for a rename, the new path.
    pub path: String,
    /// Lines added (0 for binary files).
    pub insertions: u64,
    /// Lines removed (0 for binary files).
    pub deletions: u64,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: String,
}

/// A finding as it read when an approval was requested (redacted).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingText {
    pub name: String,
    pub content: String,
}
