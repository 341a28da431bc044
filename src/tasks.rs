//! Tasks: requests to run a team on a project, and the values they may take.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::TasksConfig;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::teams::Teams;

/// Largest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// How urgent a task is; higher runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    Normal,
    Low,
}

impl Priority {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// Parses a stored name; anything unknown reads as normal.
    pub fn from_stored(stored: &str) -> Priority {
        match stored {
            "critical" => Priority::Critical,
            "high" => Priority::High,
            "low" => Priority::Low,
            _ => Priority::Normal,
        }
    }

    /// Ordering weight: larger is claimed first.
    pub fn rank(self) -> i32 {
        match self {
            Priority::Critical => 3,
            Priority::High => 2,
            Priority::Normal => 1,
            Priority::Low => 0,
        }
    }
}

/// Where a task came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Api,
    Github,
    Cron,
    Alert,
    Chat,
    Cli,
}

impl Source {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Github => "github",
            Source::Cron => "cron",
            Source::Alert => "alert",
            Source::Chat => "chat",
            Source::Cli => "cli",
        }
    }
}

/// Statuses after which nothing more happens to a task.
pub const ENDED_STATUSES: &[&str] = &["done", "failed", "rolled_back", "cancelled"];

/// True when a task in `status` has ended.
pub fn has_ended(status: &str) -> bool {
    ENDED_STATUSES.contains(&status)
}

/// Every status a task can have, in lifecycle order.
pub const STATUSES: &[&str] = &[
    "queued",
    "running",
    "awaiting_approval",
    "done",
    "failed",
    "rolled_back",
    "cancelled",
];

/// A task as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Task {
    pub id: i64,
    /// Project name.
    pub project: String,
    pub team: String,
    pub prompt: String,
    pub source: String,
    pub priority: String,
    /// queued | running | awaiting_approval | done | failed | rolled_back | cancelled
    pub status: String,
    pub status_reason: Option<String>,
    pub dedup_key: Option<String>,
    /// The last ai-party phase seen.
    pub phase: Option<String>,
    pub party_session_id: Option<String>,
    pub branch: Option<String>,
    /// Where the task came from (issue, schedule, alert).
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub source_ref: serde_json::Value,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The pull request made of the approved work.
    pub pr_url: Option<String>,
    pub pr_number: Option<i64>,
    /// What became of the change when there is no pull request ("no changes", a push error).
    pub change_note: Option<String>,
}

/// Body of a task creation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// Project name.
    pub project: String,
    /// Team preset; the configured default when omitted.
    pub team: Option<String>,
    pub prompt: String,
    pub priority: Option<Priority>,
    /// A second task with the same key on the same project is refused with 409.
    pub dedup_key: Option<String>,
}

/// A validated task ready to insert.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub project_id: i64,
    pub team: String,
    pub prompt: String,
    pub source: Source,
    pub priority: Priority,
    pub dedup_key: Option<String>,
    pub source_ref: serde_json::Value,
    pub created_by: String,
}

/// Validates a task request against the registry and the defaults.
pub async fn task_spec(
    store: &Store,
    defaults: &TasksConfig,
    teams: &Teams,
    new: NewTask,
    source: Source,
    created_by: &str,
) -> Result<TaskSpec> {
    let team = match new.team {
        Some(team) => team,
        None => teams.pick(&new.prompt, &defaults.default_team).to_string(),
    };
    teams.check("team", &team)?;
    if new.prompt.trim().is_empty() {
        return Err(Error::invalid("prompt", "must not be empty"));
    }
    if new.prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::invalid(
            "prompt",
            format!("must be at most {MAX_PROMPT_BYTES} bytes"),
        ));
    }
    if let Some(key) = &new.dedup_key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(Error::invalid("dedup_key", "must be 1-200 characters"));
    }
    let project = store.project(&new.project).await?;
    Ok(TaskSpec {
        project_id: project.id,
        team,
        prompt: new.prompt,
        source,
        priority: new.priority.unwrap_or(defaults.default_priority),
        dedup_key: new.dedup_key,
        source_ref: serde_json::json!({}),
        created_by: created_by.to_string(),
    })
}

/// Filters of a task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub project_id: Option<i64>,
    pub status: Option<String>,
    /// Only tasks with a smaller id (the page cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Checks a status filter value.
pub fn validate_status(status: &str) -> Result<()> {
    if STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(Error::invalid(
            "status",
            format!("must be one of {}", STATUSES.join(", ")),
        ))
    }
}
