//! Routing rules: which GitHub events and alerts become tasks, with what team and priority.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Origin, Priority};

/// Position of a rule that names none.
pub const DEFAULT_POSITION: i64 = 100;

fn default_position() -> i64 {
    DEFAULT_POSITION
}

fn enabled_by_default() -> bool {
    true
}

/// Which issue and workflow events of a repository start tasks, with what team and priority.
/// A `[[github_rule]]` table of a jobs file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubRuleSpec {
    /// Unique slug (among rules of both kinds), used in URLs.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// Project whose repository the rule applies to; every registered repository when omitted.
    pub project: Option<String>,
    /// Every issue opened starts a task.
    #[serde(default)]
    pub on_issue_opened: bool,
    /// Adding one of these labels to an issue starts a task.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Assigning an issue to one of these logins starts a task.
    #[serde(default)]
    pub bot_logins: Vec<String>,
    /// A workflow run that fails on the default branch starts a task.
    #[serde(default)]
    pub on_workflow_failure: bool,
    /// Team of workflow failure tasks; `github.workflow_failure_team` when omitted.
    pub workflow_failure_team: Option<String>,
    /// Team of issue tasks whose text matches no preset's keywords; `tasks.default_team`
    /// when omitted.
    pub default_team: Option<String>,
    /// `github.priority` when omitted.
    pub priority: Option<Priority>,
    /// Rules are tried by position, then name: the first that turns an event on gives the
    /// task its team and priority. 100 when omitted.
    #[serde(default = "default_position")]
    pub position: i64,
    /// true when omitted.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

/// Which alerts go to which project, team and priority. An `[[alert_rule]]` table of a
/// jobs file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    /// Unique slug (among rules of both kinds), used in URLs.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// Only alerts from this source (`alertmanager`, `grafana` or a generic source's name);
    /// any when omitted.
    pub source: Option<String>,
    /// Label values that must all be equal, e.g. `{"service": "shopping-md"}`; at least one.
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Project of the tasks.
    pub project: String,
    /// `alerts.default_team` when omitted.
    pub team: Option<String>,
    /// By the alert's `severity` label (`alerts.severity_priority`) when omitted.
    pub priority: Option<Priority>,
    /// Rules are tried by position, then name, before `[[alerts.rules]]`; the first that
    /// matches decides. 100 when omitted.
    #[serde(default = "default_position")]
    pub position: i64,
    /// true when omitted.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

/// A routing rule's definition: the body of `POST /api/v1/routing-rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoutingRuleSpec {
    Github(GithubRuleSpec),
    Alert(AlertRuleSpec),
}

/// A routing rule as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct RoutingRule {
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    #[sqlx(json, rename = "definition")]
    pub spec: RoutingRuleSpec,
    pub origin: Origin,
    /// The jobs file that declares it (origin `file`), e.g. `routing.toml`.
    pub file: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
