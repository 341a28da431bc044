//! The audit log: who did what to what, from where, and how it ended.
//!
//! Append-only. Every mutation through the API (by the HTTP middleware) and the CLI
//! writes one entry; nothing updates or deletes entries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;

/// One audit log entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub principal_id: Option<i64>,
    pub principal_name: String,
    /// What was attempted, e.g. `POST /api/v1/projects` or `cli secret set`.
    pub action: String,
    /// What it was done to, e.g. `projects/shop`.
    pub target: String,
    /// Client address, or `cli`.
    pub source: String,
    /// HTTP status, or `ok` / `error` for the CLI.
    pub outcome: String,
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub principal: Option<Principal>,
    pub action: String,
    pub target: String,
    pub source: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// Filters of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub target: Option<String>,
    pub principal: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: i64,
}
