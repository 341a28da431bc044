//! Configuration: one typed struct from `config/aiops.toml` and `AIOPS_*` variables.
//!
//! Owns loading and validation. Every default here is also written, with a comment,
//! in `config/aiops.toml`; the two must stay in step. Never holds a secret value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod auth;
mod checks;
mod costs;
mod errors;
mod limits;
mod notify;
pub use auth::{AuthConfig, ClaimRole, ClientSecretSource, GithubSignIn, McpConfig, OidcSignIn};
pub use costs::{CostsConfig, ModelPrice, OverBudget};
pub use limits::{IngestConfig, InputsConfig, IntakeConfig, SandboxMode};
pub use notify::NotifyConfig;

/// Variables with the `AIOPS_` prefix that are not configuration keys.
const NON_CONFIG_VARS: &[&str] = &[
    "master_key",
    "test_database_url",
    "config",
    "test_sandbox_unsupported",
];

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "config/aiops.toml";

/// All settings of an aiops process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub teams_dir: PathBuf,
    pub database_url: String,
    pub listen: String,
    pub public_url: String,
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub vault: VaultConfig,
    pub log: LogConfig,
    pub tasks: TasksConfig,
    pub engine: EngineConfig,
    pub github: GithubConfig,
    pub alerts: AlertsConfig,
    pub scheduler: SchedulerConfig,
    pub approvals: ApprovalsConfig,
    pub pull_requests: PullRequestsConfig,
    pub notify: NotifyConfig,
    pub inputs: InputsConfig,
    pub intake: IntakeConfig,
    pub ingest: IngestConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
    pub costs: CostsConfig,
    pub auth: AuthConfig,
    pub mcp: McpConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub sqlite_synchronous: SqliteSynchronous,
    /// How often `serve` checkpoints SQLite's write-ahead log in the background, in
    /// milliseconds, so a commit seldom has to while writers wait; 0 leaves it all to
    /// SQLite's automatic checkpoint (which stays, as the log's bound under a flood).
    pub sqlite_checkpoint_ms: u64,
}

/// SQLite `PRAGMA synchronous` levels aiops allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultConfig {
    pub key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    pub default_team: String,
    pub default_priority: crate::model::Priority,
    pub page_size: u32,
}

/// How tasks are executed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub workers: usize,
    pub max_concurrent_tasks: i64,
    pub command: String,
    pub resume_command: String,
    pub timeout_secs: u64,
    pub max_log_bytes: usize,
    pub env_passthrough: Vec<String>,
    pub queue_poll_ms: u64,
    pub ingest_interval_ms: u64,
    /// Read `.party/` on kernel file notifications; off: only every `ingest_interval_ms`.
    pub file_notifications: bool,
    pub heartbeat_secs: u64,
    pub slot_ttl_secs: u64,
    pub slot_wait_secs: u64,
    pub max_infra_attempts: i64,
    pub retry_backoff_secs: u64,
    pub worktree_retention: WorktreeRetention,
    pub max_finding_bytes: u64,
    pub max_party_json_bytes: u64,
    /// The agent sandbox (`on`: required, agents do not start where it cannot be applied).
    pub sandbox: SandboxMode,
    /// When the service runs as root: the Unix user agents run as; empty: the service's.
    pub run_as_user: String,
    /// Directories (or files) agents may read besides the system's.
    pub sandbox_read_paths: Vec<PathBuf>,
    /// TCP ports agents may connect to (any address).
    pub sandbox_connect_ports: Vec<u16>,
    /// Every agent's HOME (read-write; Claude Code's login and plugins); empty: a private
    /// home per task.
    pub agent_home: PathBuf,
    /// The `aiops` binary whose `agent-shim` starts agents; empty: the running binary.
    pub shim_program: PathBuf,
}

/// How GitHub webhooks become tasks and how aiops replies on GitHub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubConfig {
    pub api_url: String,
    pub on_issue_opened: bool,
    pub labels: Vec<String>,
    pub bot_logins: Vec<String>,
    pub on_workflow_failure: bool,
    pub workflow_failure_team: String,
    pub priority: crate::model::Priority,
    pub app_secret_credential: String,
    pub token_credential: String,
    pub app_credential: String,
    pub reply: bool,
    pub max_body_bytes: usize,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".into(),
            on_issue_opened: false,
            labels: vec!["ai-party".into()],
            bot_logins: Vec::new(),
            on_workflow_failure: true,
            workflow_failure_team: "bugfix".into(),
            priority: crate::model::Priority::Normal,
            app_secret_credential: "github-webhook".into(),
            token_credential: "github-token".into(),
            app_credential: "github-app".into(),
            reply: true,
            max_body_bytes: 26 * 1024 * 1024,
        }
    }
}

/// How cron schedules fire (`src/schedules/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    pub enabled: bool,
    pub max_sleep_ms: u64,
    pub missed_after_secs: u64,
    pub jobs_dir: PathBuf,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_sleep_ms: 5000,
            missed_after_secs: 60,
            jobs_dir: PathBuf::from("./jobs"),
        }
    }
}

/// How long a human has to decide, and what an approval shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    pub expires_after_secs: u64,
    pub on_expiry: OnExpiry,
    pub link_ttl_secs: u64,
    pub max_diff_bytes: usize,
    pub expiry_check_secs: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            expires_after_secs: 3 * 24 * 3600,
            on_expiry: OnExpiry::Reject,
            link_ttl_secs: 7 * 24 * 3600,
            max_diff_bytes: 256 * 1024,
            expiry_check_secs: 30,
        }
    }
}

/// What happens to an approval nobody decided in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// Decided as a rejection by the platform; the pipeline rolls back.
    Reject,
    /// Stays pending; its links stop working, the API and CLI can still decide it.
    LeaveOpen,
}

/// How approved work becomes a pull request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullRequestsConfig {
    pub enabled: bool,
    pub draft: bool,
    pub author_name: String,
    pub author_email: String,
    pub push_credential: String,
}

impl Default for PullRequestsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            draft: false,
            author_name: "aiops".into(),
            author_email: "aiops@localhost".into(),
            push_credential: "github-token".into(),
        }
    }
}

/// How Prometheus reads `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A listener of its own for `/metrics` (host:port), without a token; empty: `/metrics`
    /// is on the service's listener behind the scrape token.
    pub listen: String,
    /// Name of the global credential holding the scrape token (kind webhook_secret, so no
    /// agent gets it).
    pub token_credential: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            token_credential: "metrics-token".into(),
        }
    }
}

/// How long events, run logs and webhook deliveries are kept (`src/retention.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Ages in days; 0 keeps them forever.
    pub events_days: u32,
    pub run_logs_days: u32,
    pub deliveries_days: u32,
    pub batch_size: u32,
    /// Milliseconds between two batches (API statements go first); 0 only yields.
    pub pause_ms: u64,
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events_days: 0,
            run_logs_days: 0,
            deliveries_days: 0,
            batch_size: 500,
            pause_ms: 10,
            interval_secs: 3600,
        }
    }
}

/// How monitoring alerts become tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub cancel_queued_on_resolve: bool,
    pub default_team: String,
    pub severity_priority: std::collections::BTreeMap<String, crate::model::Priority>,
    pub sources: Vec<AlertSource>,
    pub rules: Vec<AlertRule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        use crate::model::Priority;
        Self {
            cancel_queued_on_resolve: true,
            default_team: "bugfix".into(),
            severity_priority: [
                ("critical", Priority::Critical),
                ("error", Priority::High),
                ("warning", Priority::High),
                ("info", Priority::Low),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            sources: vec![
                AlertSource {
                    name: "alertmanager".into(),
                    auth: AlertAuth::Bearer,
                    credential: "alertmanager-webhook".into(),
                },
                AlertSource {
                    name: "grafana".into(),
                    auth: AlertAuth::Bearer,
                    credential: "grafana-webhook".into(),
                },
            ],
            rules: Vec::new(),
        }
    }
}

/// One alert sender and how it proves itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSource {
    /// `alertmanager`, `grafana`, or the `:source` of `/webhooks/generic/:source`.
    pub name: String,
    pub auth: AlertAuth,
    /// Name of the global credential holding the token or HMAC key.
    pub credential: String,
}

/// How an alert sender authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertAuth {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Hmac,
}

/// Routes alerts whose labels match to a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Only alerts from this source (any when empty).
    #[serde(default)]
    pub source: String,
    /// Label values that must all be equal.
    #[serde(rename = "match")]
    pub matchers: std::collections::BTreeMap<String, String>,
    pub project: String,
    #[serde(default)]
    pub team: Option<String>,
    /// Overrides the severity mapping.
    #[serde(default)]
    pub priority: Option<crate::model::Priority>,
}

/// What happens to a task's worktree once the task has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorktreeRetention {
    /// Remove it (and its branch, unless the task is done) when the task ends.
    Remove,
    /// Keep it for inspection; clean up by hand.
    Keep,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            max_concurrent_tasks: 4,
            command: "claude -p \"/ai-party:party --team {team} {prompt}\" --output-format stream-json --verbose --permission-mode acceptEdits --max-budget-usd {max_budget_usd}".into(),
            resume_command: "claude -p {decision} --resume {claude_session_id} --output-format stream-json --verbose --permission-mode acceptEdits --max-budget-usd {max_budget_usd}".into(),
            timeout_secs: 3600,
            max_log_bytes: 4 * 1024 * 1024,
            env_passthrough: ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"]
                .map(String::from)
                .to_vec(),
            queue_poll_ms: 1000,
            ingest_interval_ms: 5000,
            file_notifications: true,
            heartbeat_secs: 10,
            slot_ttl_secs: 30,
            slot_wait_secs: 5,
            max_infra_attempts: 3,
            retry_backoff_secs: 5,
            worktree_retention: WorktreeRetention::Remove,
            max_finding_bytes: 1024 * 1024,
            max_party_json_bytes: 1024 * 1024,
            sandbox: SandboxMode::On,
            run_as_user: String::new(),
            sandbox_read_paths: Vec::new(),
            sandbox_connect_ports: vec![443, 22],
            agent_home: PathBuf::new(),
            shim_program: PathBuf::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            teams_dir: PathBuf::from("./config/teams"),
            database_url: String::new(),
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            vault: VaultConfig::default(),
            log: LogConfig::default(),
            tasks: TasksConfig::default(),
            engine: EngineConfig::default(),
            github: GithubConfig::default(),
            alerts: AlertsConfig::default(),
            scheduler: SchedulerConfig::default(),
            approvals: ApprovalsConfig::default(),
            pull_requests: PullRequestsConfig::default(),
            notify: NotifyConfig::default(),
            inputs: InputsConfig::default(),
            intake: IntakeConfig::default(),
            ingest: IngestConfig::default(),
            metrics: MetricsConfig::default(),
            retention: RetentionConfig::default(),
            costs: CostsConfig::default(),
            auth: AuthConfig::default(),
            mcp: McpConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            busy_timeout_ms: 5000,
            sqlite_synchronous: SqliteSynchronous::Full,
            sqlite_checkpoint_ms: 250,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            default_team: "feature".into(),
            default_priority: crate::model::Priority::Normal,
            page_size: 50,
        }
    }
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
}

/// A configuration that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then the file, then `AIOPS_*` variables, then `overrides`, and validates.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match &overrides.config_file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist; pass an existing file to --config / AIOPS_CONFIG or leave it unset",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("AIOPS_").split("__").ignore(NON_CONFIG_VARS));
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError(errors::describe(e)))?;
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &overrides.database_url {
            config.database_url = url.clone();
        }
        if let Some(listen) = &overrides.listen {
            config.listen = listen.clone();
        }
        checks::anchor_engine_programs(&mut config, overrides.config_file.as_deref());
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that serde's types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_service()?;
        self.validate_tasks_and_engine()?;
        self.costs.validate().map_err(ConfigError)?;
        self.auth.validate()?;
        self.mcp.validate()?;
        self.validate_approvals_and_notify()
    }

    /// The listener, the store, the public URL, HTTP limits and the log filter.
    fn validate_service(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "listen",
                format!(
                    "{:?} is not an address; use host:port such as 127.0.0.1:8080 (--listen / AIOPS_LISTEN)",
                    self.listen
                ),
            );
        }
        if !self.database_url.is_empty()
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| self.database_url.starts_with(p))
        {
            return bad(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://; leave it empty for the embedded SQLite file (--database-url / AIOPS_DATABASE_URL)".into(),
            );
        }
        if !self.public_url.is_empty() && url::Url::parse(&self.public_url).is_err() {
            return bad(
                "public_url",
                format!(
                    "{:?} is not a URL; use e.g. https://aiops.example.com",
                    self.public_url
                ),
            );
        }
        if self.http.max_body_bytes < 1024 {
            return bad(
                "http.max_body_bytes",
                format!(
                    "{} is too small; use at least 1024",
                    self.http.max_body_bytes
                ),
            );
        }
        if self.http.request_timeout_secs == 0 {
            return bad("http.request_timeout_secs", "must be at least 1".into());
        }
        if self.store.max_connections == 0 {
            return bad("store.max_connections", "must be at least 1".into());
        }
        if self.intake.group_commit_window_ms > 1000 {
            return bad(
                "intake.group_commit_window_ms",
                "must be at most 1000: every delivery may wait that long (2 is the default)".into(),
            );
        }
        if self.intake.group_commit_max > 1000 {
            return bad(
                "intake.group_commit_max",
                "must be at most 1000: a batch's writes share multi-row statements (64 is the default)".into(),
            );
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "metrics.listen",
                format!(
                    "{:?} is not an address; use host:port such as 127.0.0.1:9464, or leave it empty",
                    self.metrics.listen
                ),
            );
        }
        checks::validate_log_level(&self.log.level)
    }

    /// Task defaults and the engine: limits, intervals and the command templates.
    fn validate_tasks_and_engine(&self) -> Result<(), ConfigError> {
        if !crate::model::is_slug(&self.tasks.default_team) {
            return bad(
                "tasks.default_team",
                "must be a team name: lower-case letters, digits and '-'".into(),
            );
        }
        if !(1..=200).contains(&self.tasks.page_size) {
            return bad("tasks.page_size", "must be between 1 and 200".into());
        }
        let engine = &self.engine;
        if engine.max_concurrent_tasks < 1 {
            return bad("engine.max_concurrent_tasks", "must be at least 1".into());
        }
        for (key, template) in [
            ("engine.command", &engine.command),
            ("engine.resume_command", &engine.resume_command),
        ] {
            if let Err(e) = crate::command_template::render_command(
                template,
                &crate::command_template::TEMPLATE_CHECK_VARS,
            ) {
                return bad(key, format!("{e}"));
            }
        }
        if engine.timeout_secs == 0 || engine.heartbeat_secs == 0 || engine.slot_ttl_secs < 2 {
            return bad(
                "engine.timeout_secs / heartbeat_secs / slot_ttl_secs",
                "must be positive (slot_ttl_secs at least 2)".into(),
            );
        }
        if engine.ingest_interval_ms < 50 || engine.queue_poll_ms < 50 {
            return bad(
                "engine.ingest_interval_ms / queue_poll_ms",
                "must be at least 50".into(),
            );
        }
        checks::validate_sandbox(engine)
    }

    /// The scheduler, the approval gate, pull requests and notifications.
    fn validate_approvals_and_notify(&self) -> Result<(), ConfigError> {
        if self.retention.batch_size == 0 || self.retention.interval_secs == 0 {
            return bad(
                "retention.batch_size / interval_secs",
                "must be at least 1".into(),
            );
        }
        if self.retention.pause_ms > 10_000 {
            return bad("retention.pause_ms", "must be at most 10000".into());
        }
        if self.scheduler.max_sleep_ms < 100 {
            return bad("scheduler.max_sleep_ms", "must be at least 100".into());
        }
        if self.scheduler.missed_after_secs == 0 {
            return bad("scheduler.missed_after_secs", "must be at least 1".into());
        }
        if self.approvals.link_ttl_secs == 0 || self.approvals.expiry_check_secs == 0 {
            return bad(
                "approvals.link_ttl_secs / expiry_check_secs",
                "must be at least 1".into(),
            );
        }
        if self.pull_requests.author_name.trim().is_empty()
            || !self.pull_requests.author_email.contains('@')
        {
            return bad(
                "pull_requests.author_name / author_email",
                "need a name and an e-mail address for the commits of approved work".into(),
            );
        }
        self.notify.validate()
    }

    /// The store URL to connect to: the configured one, or the SQLite file in the data dir.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("aiops.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    /// Path of the master key file.
    pub fn key_file(&self) -> PathBuf {
        if self.vault.key_file.is_empty() {
            self.data_dir.join("master.key")
        } else {
            PathBuf::from(&self.vault.key_file)
        }
    }

    /// Base URL for links that leave the server.
    pub fn public_base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// A refused setting: `key: why`.
fn bad(key: &str, why: String) -> Result<(), ConfigError> {
    Err(ConfigError(format!("{key}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config/aiops.toml` lists every key with its default: reading it changes nothing.
    #[test]
    fn the_shipped_config_file_holds_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let from_file: Config = Figment::from(Toml::file_exact(&path))
            .extract()
            .expect("config/aiops.toml parses into Config");
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
        from_file.validate().expect("the defaults are valid");
    }

    /// A batch's writes share multi-row statements, whose bound values databases cap.
    #[test]
    fn a_group_commit_batch_over_1000_writes_is_refused() {
        let mut config = Config::default();
        config.intake.group_commit_max = 1001;
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.contains("intake.group_commit_max"), "{error}");
        config.intake.group_commit_max = 1000;
        config.validate().expect("1000 writes are allowed");
    }
}
