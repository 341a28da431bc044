//! The ordered event log every live view reads.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// Where an event came from.
    EventOrigin("origin") {
        /// Read from the pipeline's `events.ndjson`.
        Party = "party",
        /// Written by aiops itself (task_queued, run_started, status_changed, …).
        Platform = "platform",
    }
}

/// One entry of the ordered event log; `id` is the SSE event id.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Event {
    pub id: i64,
    pub task_id: Option<i64>,
    pub project_id: Option<i64>,
    pub kind: String,
    pub origin: EventOrigin,
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
    pub origin: EventOrigin,
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
            origin: EventOrigin::Platform,
            ts: Utc::now(),
            data,
            source: None,
        }
    }
}
