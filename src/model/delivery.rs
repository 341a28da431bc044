//! Deliveries: inbound webhook events and alerts, and what became of each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{TaskStatus, text_enum};

text_enum! {
    /// What became of a delivery.
    DeliveryStatus("outcome") {
        /// Stored; what it does is being decided in the same transaction.
        Received = "received",
        TaskCreated = "task_created",
        /// Its delivery id was received before.
        Duplicate = "duplicate",
        /// The task it would create exists already (same dedup key).
        DuplicateTask = "duplicate_task",
        /// No rule turns it into a task.
        Ignored = "ignored",
        /// GitHub's ping.
        Pong = "pong",
    }
}

/// An inbound delivery to record.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub source: String,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    /// The payload as kept: its JSON text, as received.
    pub payload: Box<serde_json::value::RawValue>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryOutcome {
    /// Row id of the delivery record.
    pub id: i64,
    pub outcome: DeliveryStatus,
    pub reason: Option<String>,
    pub task_id: Option<i64>,
}

/// A stored delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub source: String,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub received_at: DateTime<Utc>,
    pub outcome: DeliveryStatus,
    pub reason: Option<String>,
    pub task_id: Option<i64>,
}

/// What an alert occurrence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEffect {
    /// A new task for this fingerprint.
    Created(i64),
    /// Added to the fingerprint's open task.
    Coalesced(i64),
    /// Recorded as resolved on the open task; `true` when the queued task was cancelled.
    Resolved(i64, bool),
    /// Resolved, but no task of this fingerprint is open.
    NothingOpen,
}

/// The open alert group of a fingerprint: its row and its task.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenAlertGroup {
    pub id: i64,
    pub task_id: i64,
    pub task_status: TaskStatus,
}

/// What a GitHub delivery's signature check and routing read about its repository and its
/// sender, in one query before its write.
#[derive(Debug, Clone, Default)]
pub struct GithubDeliveryContext {
    /// The project registered for the repository (the first by id).
    pub project_id: Option<i64>,
    /// The secrets that may sign it, sealed: the project's webhook secrets and the GitHub
    /// App's global one.
    pub secrets: Vec<super::SealedCredential>,
    /// The enabled GitHub rules of the project and those for every project, in the order
    /// routing tries them.
    pub rules: Vec<super::GithubRuleSpec>,
    /// The user linked to the sender's GitHub login.
    pub sender: Option<i64>,
}
