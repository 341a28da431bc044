//! Schedules: cron definitions that create tasks, and where a definition lives.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Priority, text_enum};

text_enum! {
    /// What a tick does while the schedule's previous task is still open.
    Overlap("overlap") {
        /// No new task while the previous one is queued, running or awaiting approval.
        Skip = "skip",
        /// A new task at every tick, whatever the previous one is doing.
        Queue = "queue",
    }
}

text_enum! {
    /// What happens to ticks missed while no scheduler ran (downtime).
    Missed("missed") {
        /// One task, for the latest missed tick.
        RunOnce = "run_once",
        /// No task; the schedule carries on from the next tick.
        Skip = "skip",
    }
}

text_enum! {
    /// Where a schedule or routing rule is defined.
    Origin("origin") {
        /// Through the API (`/api/v1/schedules`, `/api/v1/routing-rules`).
        Api = "api",
        /// In a `jobs/*.toml` file; changed only there (and `aiops jobs reload`).
        File = "file",
    }
}

/// A schedule as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Schedule {
    pub id: i64,
    /// Unique slug, used in URLs.
    pub name: String,
    /// Project name.
    pub project: String,
    #[serde(skip)]
    pub project_id: i64,
    /// Team preset of the tasks it creates.
    pub team: String,
    /// Prompt of each task; `{date}` and `{schedule}` are filled in.
    pub prompt_template: String,
    /// Cron expression: 5 fields (at second 0), or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the cron fields are read in.
    pub timezone: String,
    pub priority: Priority,
    pub overlap: Overlap,
    pub missed: Missed,
    pub enabled: bool,
    pub origin: Origin,
    /// When the next task is due; null while disabled.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last tick handled: a task created for it, or skipped by the overlap or missed policy.
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A complete, validated schedule definition, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub name: String,
    /// Project name; resolved when stored.
    pub project: String,
    pub team: String,
    pub prompt_template: String,
    pub cron: String,
    pub timezone: String,
    pub priority: Priority,
    pub overlap: Overlap,
    pub missed: Missed,
    pub enabled: bool,
}
