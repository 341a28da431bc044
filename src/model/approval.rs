//! Approvals: a pipeline's request for a human decision, the decision, and what the human
//! saw when deciding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// What a human decided.
    Decision("decision") {
        Approve = "approve",
        Reject = "reject",
        Revise = "revise",
    }
}

text_enum! {
    /// Where a decision was made.
    Channel("channel") {
        /// The approval page a notification links to.
        Web = "web",
        /// The dashboard, by a signed-in person.
        Dashboard = "dashboard",
        Slack = "slack",
        Kakaowork = "kakaowork",
        Api = "api",
        Cli = "cli",
        /// Claude (or another MCP client) through the MCP server.
        Mcp = "mcp",
        /// The platform itself: an approval that expired.
        System = "system",
        /// The pipeline decided its own request before the platform did.
        Pipeline = "pipeline",
    }
}

text_enum! {
    /// Whether a human approves one tool call or the pipeline's whole result.
    ApprovalKind("kind") {
        Tool = "tool",
        Result = "result",
    }
}

text_enum! {
    /// Where an approval request is in its lifecycle.
    ApprovalStatus("status") {
        /// Waiting for a decision.
        Pending = "pending",
        /// Decided, once, by a human, the platform or the pipeline.
        Decided = "decided",
        /// Its deadline passed without a decision.
        Expired = "expired",
    }
}

/// Who decides, through which channel, from where.
#[derive(Debug, Clone)]
pub struct Decider {
    /// The person or principal, as shown to others.
    pub name: String,
    /// The API principal, when the decision came with a token.
    pub principal_id: Option<i64>,
    pub channel: Channel,
    /// Client address, or `cli`.
    pub source: String,
}

/// One person's vote on an approval that needs several approvers.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApprovalVote {
    /// The voter's login.
    pub login: String,
    pub decision: Decision,
    pub channel: Channel,
    pub voted_at: DateTime<Utc>,
}

/// An approval request of the pipeline and its decision (a row of `approvals`, without the
/// snapshot columns).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApprovalRecord {
    pub id: i64,
    pub task_id: i64,
    pub request_id: String,
    pub kind: ApprovalKind,
    pub risk_level: Option<String>,
    pub tool_name: Option<String>,
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<Object>)]
    pub tool_input: Option<serde_json::Value>,
    pub summary: Option<String>,
    pub diff_stat: Option<String>,
    pub status: ApprovalStatus,
    pub decision: Option<Decision>,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub channel: Option<Channel>,
    pub requested_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the change and the findings shown with the request were taken.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// When a resume run handed the decision to the pipeline.
    pub resumed_at: Option<DateTime<Utc>>,
}

/// An approval request as the pipeline wrote it, to mirror into the store (its decision
/// fields are the platform's, not the file's).
#[derive(Debug, Clone)]
pub struct ApprovalRequestMirror {
    pub request_id: String,
    pub kind: ApprovalKind,
    pub risk_level: Option<String>,
    pub tool_name: Option<String>,
    pub tool_input: Option<serde_json::Value>,
    pub summary: Option<String>,
    pub diff_stat: Option<String>,
    /// The file's status: pending, or decided when the pipeline already moved on.
    pub file_status: String,
    pub file_decision: Option<String>,
    pub requested_at: DateTime<Utc>,
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

/// A finding as it read when an approval was requested (redacted): its beginning, as much
/// as a task's detail shows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingText {
    pub name: String,
    pub content: String,
    /// `content` is only the beginning; the task's page has the whole finding.
    #[serde(default)]
    pub truncated: bool,
}

/// Filters of an approval listing.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    pub project_id: Option<i64>,
    pub task_id: Option<i64>,
    /// Only approvals with a smaller id (the page cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// "approval 7 was already decided: approve by alice via slack at …".
pub fn already_decided(approval: &ApprovalRecord) -> String {
    format!(
        "approval {} was already decided: {} by {} via {} at {}",
        approval.id,
        approval
            .decision
            .map_or(approval.status.as_str(), Decision::as_str),
        approval.decided_by.as_deref().unwrap_or("unknown"),
        approval.channel.map_or("unknown", Channel::as_str),
        approval
            .decided_at
            .map_or_else(|| "an unknown time".into(), |at| at.to_rfc3339())
    )
}
