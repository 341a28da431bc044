//! Notifications: what people hear about, where, and how each delivery went.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// What happened.
    NoticeKind("events") {
        ApprovalRequested = "approval_requested",
        TaskFailed = "task_failed",
        TaskDone = "task_done",
        /// A monthly budget passed `costs.warn_percent` (sent once per month and budget, to
        /// every enabled channel of the project, whatever its events).
        BudgetWarning = "budget_warning",
        /// A monthly budget is spent: new tasks wait or are refused (sent the same way).
        BudgetSpent = "budget_spent",
    }
}

text_enum! {
    /// Where a channel's notifications go.
    ChannelKind("kind") {
        Slack = "slack",
        Kakaowork = "kakaowork",
        Webhook = "webhook",
    }
}

text_enum! {
    /// How a notification's delivery stands.
    NotificationStatus("status") {
        /// Waiting for its (next) send.
        Queued = "queued",
        Sent = "sent",
        /// Refused, or out of attempts: a dead letter.
        Dead = "dead",
    }
}

impl NoticeKind {
    /// A budget notice, which every enabled channel of the project gets.
    pub fn is_budget(self) -> bool {
        matches!(self, NoticeKind::BudgetWarning | NoticeKind::BudgetSpent)
    }
}

/// Something people should hear about; rendered from the store when it is delivered.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub task_id: i64,
    pub approval_id: Option<i64>,
}

/// A place a project's notifications go.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct NotificationChannel {
    pub id: i64,
    /// Project name.
    pub project: String,
    pub kind: ChannelKind,
    /// Slack channel id (none: the credential is an incoming-webhook URL), KakaoWork
    /// conversation id, or the webhook URL.
    pub target: Option<String>,
    /// Name of the credential holding the channel's secret.
    pub credential: String,
    #[sqlx(json)]
    pub events: Vec<NoticeKind>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A checked channel, ready to store.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub kind: ChannelKind,
    pub target: Option<String>,
    pub credential: String,
    pub events: Vec<NoticeKind>,
    pub enabled: bool,
}

/// One notification to one channel and how its delivery went; a dead one is a dead letter.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Notification {
    pub id: i64,
    /// Project name.
    pub project: String,
    pub channel_id: i64,
    pub channel_kind: ChannelKind,
    pub event: NoticeKind,
    pub task_id: i64,
    pub approval_id: Option<i64>,
    pub status: NotificationStatus,
    /// Sends tried so far.
    pub attempts: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the queued retry is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}
