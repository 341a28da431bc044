//! One agent run from spawn to outcome: the loop that takes its output, enforces the timeout,
//! honours cancellation and ends once the agent has exited and its output is read.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::output::{CappedLog, spawn_readers};
use super::process::{
    GroupGuard, KILL_GRACE, SHIM_MARGIN, kill_group, spawn_in_own_group, terminate_group,
    wait_for_group_exit,
};
use super::stream_json::StreamJsonStats;
use super::{AgentError, AgentEvent, AgentOutcome, AgentSpec, Stream};

/// How long output is still read after the agent exited and its group was killed; only a
/// process that left the group can keep the pipes open longer.
pub(super) const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Runs one agent to its end. The agent gets a new process group, only `spec.env`, no stdin,
/// and dies with the server. It is stopped (SIGTERM to the group, SIGKILL after a grace
/// period) on timeout or when `cancel` fires; when it exits, whatever is left of its group
/// is killed. `on_event` is called for each [`AgentEvent`]; keep it cheap.
///
/// Errs only when the process cannot be started.
pub async fn run_agent(
    spec: AgentSpec,
    cancel: CancellationToken,
    mut on_event: impl FnMut(AgentEvent) + Send,
) -> Result<AgentOutcome, AgentError> {
    let mut child = spawn_in_own_group(&spec)?;
    let started_at = Instant::now();
    let pid = child
        .id()
        .expect("a child that has not been waited for has a pid");
    let pgid = pid as i32;
    let group_guard = GroupGuard::arm(pgid, spec.shim.is_some());
    tracing::debug!(pid, binary = %spec.argv[0], cwd = %spec.cwd.display(), "agent started");
    on_event(AgentEvent::Started { pid });

    // Dropping the set (at the end, or with this future) stops the readers.
    let (mut lines, readers) = spawn_readers(&mut child);
    let mut run = Supervisor::new(&spec, pid, started_at);
    run.supervise(&mut child, &mut lines, &cancel, &mut on_event)
        .await;
    drop(readers);
    wait_for_group_exit(pgid).await;
    group_guard.disarm();
    Ok(run.outcome(started_at))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StopReason {
    TimedOut,
    Cancelled,
    /// Why, with the figures.
    OverBudget(String),
}

/// What one run has seen so far and which of its deadlines are pending.
struct Supervisor<'a> {
    spec: &'a AgentSpec,
    pid: u32,
    deadline: Option<Instant>,
    log: CappedLog,
    stats: StreamJsonStats,
    stop: Option<StopReason>,
    sigkill_at: Option<Instant>,
    exit: Option<Option<ExitStatus>>,
    drain_until: Option<Instant>,
}

impl<'a> Supervisor<'a> {
    fn new(spec: &'a AgentSpec, pid: u32, started_at: Instant) -> Self {
        Self {
            spec,
            pid,
            deadline: started_at.checked_add(spec.timeout),
            log: CappedLog::new(spec.max_output_bytes),
            stats: StreamJsonStats::priced(spec.budget.prices.clone()),
            stop: None,
            sigkill_at: None,
            exit: None,
            drain_until: None,
        }
    }

    /// The agent's process group; its id is the agent's pid.
    fn pgid(&self) -> i32 {
        self.pid as i32
    }

    /// Takes output and events until the agent exited and both pipes closed, or until a
    /// process that left the group holds them open past [`DRAIN_AFTER_EXIT`].
    async fn supervise(
        &mut self,
        child: &mut Child,
        lines: &mut mpsc::Receiver<(Stream, String)>,
        cancel: &CancellationToken,
        on_event: &mut impl FnMut(AgentEvent),
    ) {
        let pid = self.pid;
        let mut streams_open = true;
        while streams_open || self.exit.is_none() {
            tokio::select! {
                line = lines.recv(), if streams_open => match line {
                    Some((stream, raw)) => self.take_line(stream, &raw, on_event),
                    None => streams_open = false,
                },
                waited = child.wait(), if self.exit.is_none() => self.exited(waited),
                () = sleep_until_if_set(self.deadline), if self.stop.is_none() && self.exit.is_none() => {
                    tracing::info!(pid, timeout = ?self.spec.timeout, "agent timed out; stopping it");
                    self.begin_stop(StopReason::TimedOut);
                },
                () = cancel.cancelled(), if self.stop.is_none() && self.exit.is_none() => {
                    tracing::info!(pid, "agent cancelled; stopping it");
                    self.begin_stop(StopReason::Cancelled);
                },
                () = sleep_until_if_set(self.sigkill_at), if self.exit.is_none() => {
                    tracing::warn!(pid, grace = ?KILL_GRACE, "agent ignored SIGTERM; killing its group");
                    kill_group(self.pgid());
                    self.sigkill_at = None;
                },
                () = sleep_until_if_set(self.drain_until) => {
                    tracing::warn!(pid, "a process that left the agent's group keeps its output open; not reading further");
                    break;
                },
            }
        }
    }

    /// One output line: its session id noted (stdout only), then redacted into the log and
    /// the events.
    fn take_line(&mut self, stream: Stream, raw: &str, on_event: &mut impl FnMut(AgentEvent)) {
        if stream == Stream::Stdout {
            let before = self.stats.spent();
            if let Some(session_id) = self.stats.observe(raw) {
                on_event(AgentEvent::SessionId(session_id));
            }
            let spent = self.stats.spent();
            if spent != before {
                on_event(AgentEvent::Spent(spent));
                self.check_budget(spent);
            }
        }
        let text = (self.spec.redact)(raw);
        self.log.push_line(stream, &text);
        on_event(AgentEvent::Line { stream, text });
    }

    /// Stops the agent once what it spent passes the budget (once; not after it exited).
    fn check_budget(&mut self, spent: super::Spent) {
        if self.stop.is_some() || self.exit.is_some() {
            return;
        }
        if let Some(why) = self.spec.budget.exceeded(spent) {
            tracing::info!(
                pid = self.pid,
                cost_usd = spent.cost_usd,
                turns = spent.turns,
                "agent over its budget; stopping it"
            );
            self.begin_stop(StopReason::OverBudget(why));
        }
    }

    /// The agent exited (or cannot be waited for); output is read a little longer.
    fn exited(&mut self, waited: io::Result<ExitStatus>) {
        let pid = self.pid;
        let status = waited
            .inspect_err(|e| tracing::warn!(pid, error = %e, "cannot wait for agent"))
            .ok();
        self.exit = Some(status);
        // Nothing the agent started may outlive it, whether it ended well or not.
        kill_group(self.pgid());
        self.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
    }

    /// SIGTERM to the group now, SIGKILL when the grace is over.
    fn begin_stop(&mut self, reason: StopReason) {
        self.stop = Some(reason);
        let margin = if self.spec.shim.is_some() {
            SHIM_MARGIN
        } else {
            Duration::ZERO
        };
        self.sigkill_at = Some(terminate_group(self.pgid()) + margin);
    }

    /// How the run ended, with its duration counted up to now.
    fn outcome(self, started_at: Instant) -> AgentOutcome {
        let status = self.exit.flatten();
        let budget_exceeded = match &self.stop {
            Some(StopReason::OverBudget(why)) => Some(why.clone()),
            _ => None,
        };
        AgentOutcome {
            budget_exceeded,
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
            timed_out: self.stop == Some(StopReason::TimedOut),
            cancelled: self.stop == Some(StopReason::Cancelled),
            stats: self.stats.finish(),
            log_truncated: self.log.truncated,
            log: self.log.text,
            duration: started_at.elapsed(),
        }
    }
}

async fn sleep_until_if_set(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
