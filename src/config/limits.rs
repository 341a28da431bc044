//! The settings that bound what untrusted input can do: where user-given paths and URLs may
//! point (`[inputs]`), how much traffic the HTTP server takes (`[intake]`), and how much a
//! pipeline's files can make the service store (`[ingest]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a project's `local_path`, `repo_url` and a webhook channel's URL may point.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// Directories a project's `local_path` must be inside; none: no `local_path` is accepted.
    pub local_roots: Vec<PathBuf>,
    /// Whether `repo_url` and webhook channel URLs may name loopback, link-local and private
    /// addresses (a test's stand-in server, a Git server on the LAN).
    pub allow_private_targets: bool,
}

/// How much unauthenticated and long-lived traffic the HTTP server takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// A connection that has not sent a request's headers within this is closed.
    pub header_read_timeout_secs: u64,
    /// Open connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// Concurrent event streams (SSE) in total, and per token; past either: 429.
    pub max_sse_streams: usize,
    pub max_sse_streams_per_token: usize,
    /// Requests per second each client address may send to `/webhooks/*`, and the burst.
    pub webhook_per_second: u32,
    pub webhook_burst: u32,
    /// Audit rows one client's refused (unauthenticated) requests may write per minute; the
    /// rest are counted into the last row.
    pub refusals_audited_per_minute: u32,
    /// Group commit of deliveries and task creations: how long a batch's first write waits
    /// for others to share its transaction (0: only those already waiting), and how many
    /// writes one transaction takes at most (0 or 1: every write commits alone).
    pub group_commit_window_ms: u64,
    pub group_commit_max: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            max_connections: 1024,
            max_sse_streams: 256,
            max_sse_streams_per_token: 16,
            webhook_per_second: 20,
            webhook_burst: 100,
            refusals_audited_per_minute: 10,
            group_commit_window_ms: 2,
            group_commit_max: 64,
        }
    }
}

/// Per-task caps on what a pipeline's `.party/` files can make the service store; what is
/// over a cap is skipped with one `ingest_limited` event naming it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub max_findings: usize,
    pub max_findings_bytes: u64,
    pub max_tickets: usize,
    pub max_approval_files: usize,
    pub max_events: u64,
    pub max_events_per_second: u64,
    /// An `events.ndjson` line longer than this is skipped unread.
    pub max_event_line_bytes: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_findings: 200,
            max_findings_bytes: 16 * 1024 * 1024,
            max_tickets: 1000,
            max_approval_files: 100,
            max_events: 100_000,
            max_events_per_second: 500,
            max_event_line_bytes: 1024 * 1024,
        }
    }
}

/// Whether agents run in the sandbox (`engine.sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Every agent is confined; where the sandbox cannot be applied, no agent starts.
    On,
    /// Agents run unconfined (still killed with their task and with the service).
    Off,
}
