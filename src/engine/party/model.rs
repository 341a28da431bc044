//! What is read from `.party/`: a session's state, findings, tickets, approval requests and
//! events, and how the engine process ended.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One party session's pipeline state (`session.json`).
#[derive(Debug, Clone)]
pub struct SessionState {
    /// The session directory's name, which every path of the session is built from.
    pub id: String,
    pub team: Option<String>,
    pub phase: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `{request_id, previous_phase}` while a tool call waits for a human.
    pub approval_context: Option<Value>,
    /// Members, execution progress, revision loop and grants.
    pub board: crate::model::PartyBoard,
    /// The whole file, unknown fields included.
    pub raw: Value,
}

/// One hand-off document (`findings/<name>.md`), latest content.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The file name, e.g. `analysis.md`.
    pub name: String,
    /// The content, invalid UTF-8 replaced.
    pub content: String,
    pub modified: DateTime<Utc>,
}

/// One work item (`tickets/<id>.json`).
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The file's `id`, else the file name without `.json`.
    pub id: String,
    /// `type`: epic, story or task.
    pub kind: Option<String>,
    pub title: Option<String>,
    pub status: Option<String>,
    pub phase: Option<String>,
    pub assignee: Option<String>,
    /// `parentId`.
    pub parent_id: Option<String>,
    /// `createdAt`: when the plugin opened it.
    pub created_at: Option<DateTime<Utc>>,
    /// `completedAt`: when the plugin last marked it DONE.
    pub completed_at: Option<DateTime<Utc>>,
    pub raw: Value,
}

pub use crate::model::ApprovalKind;

/// One approval request (`approvals/<name>.json`) and its decision, if made.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// `request_id` (`APR-…`), else the file name without `.json`.
    pub request_id: String,
    /// `Tool` when the file has `tool_name` or `risk_level` or the id starts with `APR-`.
    pub kind: ApprovalKind,
    /// `pending`, `decided`, …; `unknown` when the file has none.
    pub status: String,
    pub risk_level: Option<String>,
    pub tool_name: Option<String>,
    pub tool_input: Option<Value>,
    pub summary: Option<String>,
    /// `git_diff_stat` of a result approval.
    pub diff_stat: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub decision: Option<String>,
    pub raw: Value,
}

/// Everything of one party session except its events, as it is on disk now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `None` while `session.json` is missing or unusable.
    pub session: Option<SessionState>,
    /// Sorted by file name.
    pub findings: Vec<Finding>,
    /// Sorted by file name.
    pub tickets: Vec<Ticket>,
    /// Sorted by file name.
    pub approvals: Vec<ApprovalRequest>,
    /// Files left out: (path relative to the worktree, reason).
    pub skipped: Vec<(PathBuf, String)>,
    /// The limits (`Limits` field names) that left files unread.
    pub limited: Vec<&'static str>,
}

/// One line of `events.ndjson`.
#[derive(Debug, Clone)]
pub struct PartyEvent {
    /// Byte offset of the line's start in `events.ndjson`: the event's idempotency key.
    pub offset: u64,
    pub ts: Option<DateTime<Utc>>,
    /// `type`, or `unknown` when missing.
    pub kind: String,
    /// The whole line, unknown fields included.
    pub raw: Value,
}

/// What one `read_events` call found.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub events: Vec<PartyEvent>,
    /// Where the next call starts: just past the last line consumed.
    pub next_offset: u64,
    /// Lines or states that were not events: (offset, reason).
    pub skipped: Vec<(u64, String)>,
    /// `next_offset` is inside a line longer than the read cap whose end is not written
    /// yet: the next call passes this on and skips to that line's end without rescanning.
    pub inside_long_line: bool,
    /// No '\n' from `next_offset` up to here: the unfinished last line was looked at this far.
    pub scanned_to: u64,
}

/// How the engine process ended.
#[derive(Debug, Clone)]
pub struct ExitSummary {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// e.g. the result subtype `error_max_turns`.
    pub error: Option<String>,
}
