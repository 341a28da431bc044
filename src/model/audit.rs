//! The audit log: who did what to what, from where, and how it ended.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Principal;

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

/// Who an audit entry names: a principal's id (none for the CLI and for people deciding
/// through a chat or a link) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: Option<i64>,
    pub name: String,
}

impl From<Principal> for Actor {
    fn from(principal: Principal) -> Self {
        Actor {
            id: principal.id,
            name: principal.name,
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// None: an unauthenticated request, recorded as `anonymous`.
    pub principal: Option<Actor>,
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
