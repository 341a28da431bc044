//! What the dashboard asks of the store beyond the API's listings: task searches, the
//! overview's counts, the approvals inbox, a person's language and time zone, and how a
//! project's approval links decide.

use chrono::{DateTime, Utc};

use super::text_enum;
use super::{ApprovalRecord, Priority, Source, TaskStatus};

text_enum! {
    /// What a signed approval link of a project may do.
    ApprovalLinks("approval_links") {
        /// The link alone decides (recorded as "via link sent to <channel>").
        Link = "link",
        /// The link opens the page; deciding needs a signed-in person allowed to decide.
        SignIn = "sign_in",
    }
}

text_enum! {
    /// A language the pages are written in.
    Language("language") {
        En = "en",
        Ko = "ko",
    }
}

/// Filters of the dashboard's task list; every one optional.
#[derive(Debug, Clone, Default)]
pub struct TaskSearch {
    pub project_id: Option<i64>,
    pub status: Option<TaskStatus>,
    pub team: Option<String>,
    pub source: Option<Source>,
    pub priority: Option<Priority>,
    /// Words the prompt contains (case-insensitive).
    pub text: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Only tasks with a smaller id (the page cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One project's line on the overview.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectCounts {
    pub project: String,
    pub running: i64,
    pub queued: i64,
    pub awaiting: i64,
    /// Failed since the start of the reader's day.
    pub failed_today: i64,
}

/// A pending approval with the project of its task, for the inbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxItem {
    #[sqlx(flatten)]
    pub approval: ApprovalRecord,
    pub project: String,
    pub project_id: i64,
    pub prompt: String,
}

/// A person's page settings; None: not chosen (the browser's language, UTC).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Preferences {
    pub language: Option<String>,
    pub time_zone: Option<String>,
}
