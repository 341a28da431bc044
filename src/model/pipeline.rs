//! What a pipeline's `.party/` directory leaves in the store: findings and tickets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A hand-off document of the pipeline, latest content (a row of `findings`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct FindingRecord {
    pub name: String,
    pub content: String,
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
