//! What a pipeline's `.party/` directory leaves in the store: findings and tickets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A hand-off document of the pipeline, latest content (a row of `findings`). In a task's
/// detail `content` is the finding's beginning (`truncated` says so); the whole one is at
/// `/tasks/{id}/findings/{name}`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct FindingRecord {
    pub name: String,
    pub content: String,
    /// Length of the whole finding, in characters.
    pub size: i64,
    /// `content` is only the beginning of the finding.
    pub truncated: bool,
    pub changed_at: DateTime<Utc>,
}

/// A work item of the pipeline (a row of `tickets`).
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

/// When the plugin says a ticket was opened (`createdAt`) and last done (`completedAt`), as
/// far as its file says; the store falls back on when it saw the ticket (`opened_at`,
/// `done_at` of `tickets`, for the agents' figures).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TicketTimes {
    pub created_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// What the plugin's `/party-board` shows of a session, as its `session.json` says: the
/// team's members and whether each was spawned, the execution progress, the revision loop
/// and the approval grants in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct PartyBoard {
    pub members: Vec<BoardMember>,
    /// `execution`: `{workers_total, workers_active, tasks_total, tasks_completed}`.
    #[schema(value_type = Option<Object>)]
    pub execution: Option<serde_json::Value>,
    /// `fix_loop`: `{attempt, max_attempts}`.
    #[schema(value_type = Option<Object>)]
    pub fix_loop: Option<serde_json::Value>,
    /// `approval_grants[]` entries that carry `uses_left` and `expires_at` (the plugin
    /// ignores the others).
    #[schema(value_type = Vec<Object>)]
    pub approval_grants: Vec<serde_json::Value>,
}

/// One member of a party team (`members[]` of `session.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct BoardMember {
    pub name: String,
    pub agent: Option<String>,
    /// e.g. `orchestrator` for the leader, `analyst`, `reviewer`.
    pub role: Option<String>,
    /// The phases the member works in.
    pub phases: Vec<String>,
    pub spawned: bool,
}
