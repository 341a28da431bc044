//! Queue jobs: what a worker is asked to do. The jobs only name their work; the rows they
//! name hold its state.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Priority;

/// Name of the apalis queue (job_type) of pipeline runs.
pub const RUN_QUEUE: &str = "aiops-run";

/// Name of the apalis queue (job_type) of notifications.
pub const NOTIFY_QUEUE: &str = "aiops-notify";

/// A unit of work for a worker: bring task `task_id` forward (start, recover, or resume
/// after a decision). The handler reads the task's state; the job only names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub task_id: i64,
    /// Set when a human decision should be fed back to the pipeline.
    #[serde(default)]
    pub resume_approval_id: Option<i64>,
}

/// A unit of work for a notification worker: send notification `notification_id` (a row
/// of `notifications`, which holds what to send, where, and how often it was tried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    pub notification_id: i64,
}

/// A job of one of aiops' queues.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The apalis queue (job_type) it goes to.
    const QUEUE: &'static str;
}

impl Job for RunJob {
    const QUEUE: &'static str = RUN_QUEUE;
}

impl Job for NotifyJob {
    const QUEUE: &'static str = NOTIFY_QUEUE;
}

/// A job to push: what, how urgent, and not before when.
#[derive(Debug, Clone)]
pub struct NewJob<J = RunJob> {
    pub job: J,
    pub priority: Priority,
    pub delay: Duration,
}

impl NewJob {
    /// A job for `task_id` due now.
    pub fn now(task_id: i64, priority: Priority) -> Self {
        Self {
            job: RunJob {
                task_id,
                resume_approval_id: None,
            },
            priority,
            delay: Duration::ZERO,
        }
    }
}

impl NewJob<NotifyJob> {
    /// A job sending notification `notification_id` after `delay`.
    pub fn notify(notification_id: i64, delay: Duration) -> Self {
        Self {
            job: NotifyJob { notification_id },
            priority: Priority::Normal,
            delay,
        }
    }
}
