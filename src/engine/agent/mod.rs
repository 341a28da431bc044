//! The agent process runner: starts `claude` (or whatever `engine.command` names) as a child
//! process, reads its stream-json output into a log and run statistics, and makes sure that
//! nothing it started outlives it.
//!
//! Boundary: this module knows processes, pipes and the stream-json line format. It never
//! touches the store, the vault or `.party/` files; secrets reach it only as environment
//! values the caller chose and leave it only through the caller's `redact` function.
//!
//! The engine starts every agent through the shim (`aiops agent-shim`, [`shim`]): a subreaper
//! that confines the agent (Landlock, [`sandbox`]) and kills everything the agent started
//! when the agent ends, when the run is stopped and when the service dies, including
//! processes that left the group with `setsid`. The shim leads a new process group, so one
//! `killpg` also reaches the tree as a last resort.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod env;
mod output;
mod process;
mod run;
pub mod sandbox;
pub mod shim;
mod stream_json;
#[cfg(test)]
mod tests;

pub use crate::command_template::{TemplateError, render_command};
pub use env::agent_env;
pub use process::{KILL_GRACE, group_alive, kill_group};
pub use run::run_agent;
pub use stream_json::{RunStats, Spent};

/// Why an agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The command template is unusable, or rendered no command at all.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The directory the agent should run in does not exist.
    #[error("the agent's working directory {} does not exist", path.display())]
    MissingWorkDir { path: PathBuf },
    /// The operating system refused to start the binary.
    #[error(
        "cannot start `{binary}`: {source}; install it or fix the command template setting \
         `engine.command`"
    )]
    Spawn { binary: String, source: io::Error },
}

/// What to run, where, and within which limits.
pub struct AgentSpec {
    /// The rendered command line; the first word is the binary.
    pub argv: Vec<String>,
    /// The task's worktree.
    pub cwd: PathBuf,
    /// The complete environment (see [`agent_env`]); nothing else is inherited.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit, counted from the start.
    pub timeout: Duration,
    /// Cap on the stored log; beyond it output is still drained (so the child never blocks)
    /// but not kept.
    pub max_output_bytes: usize,
    /// Applied to every output line before it is stored or reported.
    pub redact: Arc<dyn Fn(&str) -> String + Send + Sync>,
    /// What the run may spend; the agent is stopped once its streamed usage passes it.
    pub budget: Budget,
    /// Start the agent through this shim; none: directly (the unit tests of this module).
    pub shim: Option<Shim>,
}

/// A run's spending limit: what the task spent before this run plus what this run has
/// streamed may not pass `max_cost_usd` dollars or `max_turns` turns (None: no limit).
#[derive(Debug, Clone)]
pub struct Budget {
    pub prices: Arc<crate::config::CostsConfig>,
    pub spent_before: Spent,
    pub max_cost_usd: Option<f64>,
    pub max_turns: Option<i64>,
}

impl Budget {
    /// Why `spent` (this run's, added to `spent_before`) is over the limit, if it is.
    pub fn exceeded(&self, spent: Spent) -> Option<String> {
        let cost = self.spent_before.cost_usd + spent.cost_usd;
        let turns = self.spent_before.turns + spent.turns;
        if let Some(max) = self.max_cost_usd.filter(|max| cost > *max) {
            return Some(format!(
                "stopped: the task has cost ${cost:.4}, over its limit of ${max:.2} (costs.task_max_cost_usd)"
            ));
        }
        if let Some(max) = self.max_turns.filter(|max| turns > *max) {
            return Some(format!(
                "stopped: the task has taken {turns} turns, over its limit of {max} (costs.task_max_turns)"
            ));
        }
        None
    }
}

/// The shim an agent is started through and the confinement it applies.
#[derive(Debug, Clone)]
pub struct Shim {
    /// The `aiops` binary, whose hidden subcommand [`shim::SUBCOMMAND`] is the shim.
    pub program: PathBuf,
    pub confinement: sandbox::Confinement,
}

/// How a run ended and what it said.
#[derive(Debug)]
pub struct AgentOutcome {
    /// The agent's exit code, if it exited rather than being killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that ended the agent, if any.
    pub signal: Option<i32>,
    /// Stopped because `spec.timeout` passed.
    pub timed_out: bool,
    /// Stopped because the cancellation token fired.
    pub cancelled: bool,
    /// Stopped because the streamed usage passed the budget: why, with the figures.
    pub budget_exceeded: Option<String>,
    pub stats: RunStats,
    /// Redacted stdout+stderr interleaved in arrival order, lines prefixed "[stderr] " for
    /// stderr, capped.
    pub log: String,
    /// Output went beyond `spec.max_output_bytes` and the rest was not kept.
    pub log_truncated: bool,
    /// Wall-clock time from start to the end of the run.
    pub duration: Duration,
}

/// Something seen while the agent runs, for live updates.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// The agent process exists; its pid is also its process group id.
    Started { pid: u32 },
    /// Claude announced (or changed) the session id that resumes this conversation.
    SessionId(String),
    /// One output line, already redacted.
    Line { stream: Stream, text: String },
    /// What the run has spent so far changed (a streamed message's usage).
    Spent(Spent),
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}
