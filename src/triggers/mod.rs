//! Triggers: turn inbound events (GitHub webhooks, monitoring alerts) into task requests.
//!
//! It verifies signatures and maps a payload to a task request or a reason to ignore it;
//! `intake` stores the delivery and its task in one transaction. Answering HTTP is
//! `http::webhooks`'.

use serde_json::Value;

use crate::model::Priority;

pub mod alerts;
pub mod github;
pub mod github_payload;
pub mod intake;
pub mod reply;

/// What an inbound event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// Create this task (unless one with the same dedup key exists).
    Task(TaskRequest),
    /// Do nothing, for this reason (recorded on the delivery).
    Ignore(String),
}

/// A task an event asks for, before it is bound to a project.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub team: String,
    pub prompt: String,
    pub priority: Priority,
    /// One task per issue, comment or workflow run.
    pub dedup_key: String,
    /// Where it came from (issue URL, alert fingerprint …), kept on the task.
    pub source_ref: Value,
}
