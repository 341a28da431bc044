//! The agent process runner: starts `claude` (or whatever `engine.command` names) as a child
//! process, reads its stream-json output into a log and run statistics, and makes sure that
//! nothing it started outlives it.
//!
//! Boundary: this module knows processes, pipes and the stream-json line format. It never
//! touches the store, the vault or `.party/` files; secrets reach it only as environment
//! values the caller chose and leave it only through the caller's `redact` function.
//!
//! Every agent runs in its own process group, so one `killpg` reaches the whole tree it
//! spawned (a process that moves itself to another group or session escapes; only a cgroup
//! would catch that).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp, getppid};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

/// How long a stopped agent gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long output is still read after the agent exited and its group was killed; only a
/// process that left the group can keep the pipes open longer.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How long to wait for the killed group's processes to finish dying.
const GROUP_EXIT_WAIT: Duration = Duration::from_secs(2);
const GROUP_EXIT_POLL: Duration = Duration::from_millis(10);
/// Longest line kept; the rest of a longer line is read and dropped.
const MAX_LINE_BYTES: usize = 1024 * 1024;
const LINE_CHANNEL_CAPACITY: usize = 256;
const STDERR_PREFIX: &str = "[stderr] ";
const TRUNCATION_NOTE: &str = "\n[aiops] log truncated: further output was read but not kept\n";
/// Never handed to an agent, whatever the configuration says.
const MASTER_KEY_VAR: &str = "AIOPS_MASTER_KEY";
/// The server's own settings (database URL, master key, …) are not the agent's business.
const SERVER_VAR_PREFIX: &str = "AIOPS_";
/// Set for every agent: approvals go to aiops, and the ai-party plugin may spawn teams.
const FIXED_AGENT_VARS: &[(&str, &str)] = &[
    ("AI_PARTY_APPROVAL_MODE", "platform"),
    ("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"),
];

/// Why an agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The command template has no words.
    #[error(
        "the command template setting `engine.command` is empty; set it to a command line such as \
         `claude -p {{prompt}} --output-format stream-json --verbose`"
    )]
    EmptyCommand,
    /// The command template is not a valid shell-style command line.
    #[error("the command template setting `engine.command` cannot be split into arguments: {0}")]
    Unsplittable(#[from] shell_words::ParseError),
    /// The command template names a placeholder nobody fills.
    #[error(
        "the command template setting `engine.command` uses the unknown placeholder `{{{name}}}`; \
         the known ones are: {known}"
    )]
    UnknownPlaceholder { name: String, known: String },
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

/// Renders a command template into argv: split the template with shell-words FIRST, then
/// replace placeholders `{name}` inside each word from `vars` (so a value with spaces or
/// quotes stays inside its one argument and can never inject extra arguments). Unknown
/// placeholder → error naming it. Empty template → error.
///
/// A placeholder is `{` + letters, digits or `_` + `}`; any other brace is literal text, and
/// inserted values are never scanned again.
pub fn render_command(template: &str, vars: &[(&str, &str)]) -> Result<Vec<String>, AgentError> {
    let words = shell_words::split(template)?;
    if words.is_empty() {
        return Err(AgentError::EmptyCommand);
    }
    words
        .iter()
        .map(|word| fill_placeholders(word, vars))
        .collect()
}

fn fill_placeholders(word: &str, vars: &[(&str, &str)]) -> Result<String, AgentError> {
    let mut filled = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        filled.push_str(&rest[..open]);
        let after_open = &rest[open + 1..];
        let name_len = after_open
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after_open.len());
        let is_placeholder = name_len > 0 && after_open[name_len..].starts_with('}');
        if !is_placeholder {
            filled.push('{');
            rest = after_open;
            continue;
        }
        let name = &after_open[..name_len];
        let value = vars
            .iter()
            .find_map(|(var, value)| (*var == name).then_some(*value))
            .ok_or_else(|| AgentError::UnknownPlaceholder {
                name: name.to_owned(),
                known: known_placeholders(vars),
            })?;
        filled.push_str(value);
        rest = &after_open[name_len + 1..];
    }
    filled.push_str(rest);
    Ok(filled)
}

fn known_placeholders(vars: &[(&str, &str)]) -> String {
    if vars.is_empty() {
        return "none".to_owned();
    }
    vars.iter()
        .map(|(name, _)| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The environment an agent gets: only `passthrough` variables copied from this process's
/// env if set (the caller passes e.g. PATH, HOME, LANG, TZ, TMPDIR, USER), then
/// AI_PARTY_APPROVAL_MODE=platform and CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS=1, then `extra`
/// (the project's credentials as (VAR, value)). Never anything else; in particular never
/// AIOPS_MASTER_KEY even if listed in passthrough.
///
/// No `AIOPS_*` variable is passed through (they are the server's own settings). A name
/// appears once; a later source overrides an earlier one. Variables that are not valid
/// UTF-8 are not passed through.
pub fn agent_env(passthrough: &[String], extra: &[(String, String)]) -> Vec<(String, String)> {
    let inherited = passthrough
        .iter()
        .filter(|name| !name.starts_with(SERVER_VAR_PREFIX))
        .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)));
    let fixed = FIXED_AGENT_VARS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()));
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in inherited.chain(fixed).chain(extra.iter().cloned()) {
        if name == MASTER_KEY_VAR {
            continue;
        }
        match env.iter_mut().find(|(existing, _)| *existing == name) {
            Some(entry) => entry.1 = value,
            None => env.push((name, value)),
        }
    }
    env
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
}

/// Figures a run leaves behind, from the stream-json output.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    /// What `--resume` needs to continue this conversation.
    pub claude_session_id: Option<String>,
    /// The result line's `subtype` (`success`, `error_max_turns`, …); none without a result.
    pub result_subtype: Option<String>,
    pub is_error: Option<bool>,
    pub num_turns: Option<i64>,
    /// Token counts from the result line, or summed per message when it never came.
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
    /// `total_cost_usd` of the result line; 0 without one.
    pub cost_usd: f64,
    /// Claude's own measure of the run, from the result line.
    pub duration_ms: Option<i64>,
    /// Stdout lines that were not a JSON object.
    pub garbage_lines: u64,
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
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

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
    let mut group_guard = GroupGuard { pgid, armed: true };
    tracing::debug!(pid, binary = %spec.argv[0], cwd = %spec.cwd.display(), "agent started");
    on_event(AgentEvent::Started { pid });

    let (line_tx, mut line_rx) = mpsc::channel(LINE_CHANNEL_CAPACITY);
    // Dropping the set (at the end, or with this future) stops the readers.
    let mut readers = JoinSet::new();
    readers.spawn(forward_lines(
        child.stdout.take().expect("stdout is piped"),
        Stream::Stdout,
        line_tx.clone(),
    ));
    readers.spawn(forward_lines(
        child.stderr.take().expect("stderr is piped"),
        Stream::Stderr,
        line_tx,
    ));

    let deadline = started_at.checked_add(spec.timeout);
    let mut log = CappedLog::new(spec.max_output_bytes);
    let mut stats = StreamJsonStats::default();
    let mut stop: Option<StopReason> = None;
    let mut sigkill_at: Option<Instant> = None;
    let mut exit: Option<Option<ExitStatus>> = None;
    let mut drain_until: Option<Instant> = None;
    let mut streams_open = true;

    while streams_open || exit.is_none() {
        tokio::select! {
            line = line_rx.recv(), if streams_open => match line {
                Some((stream, raw)) => {
                    if stream == Stream::Stdout
                        && let Some(session_id) = stats.observe(&raw)
                    {
                        on_event(AgentEvent::SessionId(session_id));
                    }
                    let text = (spec.redact)(&raw);
                    log.push_line(stream, &text);
                    on_event(AgentEvent::Line { stream, text });
                }
                None => streams_open = false,
            },
            waited = child.wait(), if exit.is_none() => {
                let status = waited
                    .inspect_err(|e| tracing::warn!(pid, error = %e, "cannot wait for agent"))
                    .ok();
                exit = Some(status);
                // Nothing the agent started may outlive it, whether it ended well or not.
                kill_group(pgid);
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            },
            () = sleep_until_if_set(deadline), if stop.is_none() && exit.is_none() => {
                tracing::info!(pid, timeout = ?spec.timeout, "agent timed out; stopping it");
                stop = Some(StopReason::TimedOut);
                sigkill_at = Some(terminate_group(pgid));
            },
            () = cancel.cancelled(), if stop.is_none() && exit.is_none() => {
                tracing::info!(pid, "agent cancelled; stopping it");
                stop = Some(StopReason::Cancelled);
                sigkill_at = Some(terminate_group(pgid));
            },
            () = sleep_until_if_set(sigkill_at), if exit.is_none() => {
                tracing::warn!(pid, grace = ?KILL_GRACE, "agent ignored SIGTERM; killing its group");
                kill_group(pgid);
                sigkill_at = None;
            },
            () = sleep_until_if_set(drain_until) => {
                tracing::warn!(pid, "a process that left the agent's group keeps its output open; not reading further");
                break;
            },
        }
    }
    drop(readers);
    wait_for_group_exit(pgid).await;
    group_guard.armed = false;

    let status = exit.flatten();
    Ok(AgentOutcome {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
        timed_out: stop == Some(StopReason::TimedOut),
        cancelled: stop == Some(StopReason::Cancelled),
        stats: stats.finish(),
        log_truncated: log.truncated,
        log: log.text,
        duration: started_at.elapsed(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    TimedOut,
    Cancelled,
}

fn spawn_in_own_group(spec: &AgentSpec) -> Result<Child, AgentError> {
    let (binary, args) = spec.argv.split_first().ok_or(AgentError::EmptyCommand)?;
    if !spec.cwd.is_dir() {
        return Err(AgentError::MissingWorkDir {
            path: spec.cwd.clone(),
        });
    }
    let server_pid = std::process::id() as i32;
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs between fork and exec; it only makes the prctl and getppid
    // system calls, which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || die_with_server(server_pid));
    }
    command.spawn().map_err(|source| AgentError::Spawn {
        binary: binary.clone(),
        source,
    })
}

/// Makes the kernel SIGKILL the agent when the server dies, so a crashed server leaves no
/// agent running unsupervised. (The kernel watches the thread that forked, which for tokio
/// is a runtime worker living as long as the runtime.)
fn die_with_server(server_pid: i32) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The server may have died between fork and prctl; then the signal would never come.
    if getppid().as_raw() != server_pid {
        return Err(Errno::ESRCH.into());
    }
    Ok(())
}

/// Kills the group if `run_agent` is dropped before it finished (its task aborted).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pgid);
        }
    }
}

/// Sends SIGTERM to the group and returns when SIGKILL is due.
fn terminate_group(pgid: i32) -> Instant {
    signal_group(pgid, Some(Signal::SIGTERM));
    Instant::now() + KILL_GRACE
}

async fn sleep_until_if_set(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits (briefly) until SIGKILLed members of the group are really gone, so a caller that
/// checks [`group_alive`] after `run_agent` returns sees the truth.
async fn wait_for_group_exit(pgid: i32) {
    let give_up_at = Instant::now() + GROUP_EXIT_WAIT;
    while group_alive(pgid) {
        if Instant::now() >= give_up_at {
            tracing::warn!(pgid, "processes of the agent's group survive SIGKILL");
            return;
        }
        sleep(GROUP_EXIT_POLL).await;
    }
}

/// True if any process of this process group is still alive (killpg with signal 0).
///
/// On Linux a zombie (dead, not yet reaped; a container's PID 1 may never reap) also answers
/// signal 0, so a positive answer is confirmed against /proc.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    match killpg(Pid::from_raw(pgid), None) {
        Ok(()) => group_has_running_member(pgid).unwrap_or(true),
        // The group exists but belongs to another user.
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Whether /proc lists a process of group `pgid` that is not a zombie; `None` if /proc cannot
/// be read.
fn group_has_running_member(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let running = entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(is_pid))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| parse_state_and_pgrp(&stat))
        .any(|(state, pgrp)| pgrp == pgid && !matches!(state, 'Z' | 'X' | 'x'));
    Some(running)
}

fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// From `/proc/<pid>/stat` ("pid (comm) state ppid pgrp …"; comm may hold spaces and
/// parentheses, so fields are counted from the last ')').
fn parse_state_and_pgrp(stat: &str) -> Option<(char, i32)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Sends SIGKILL to a whole process group left from an earlier server life (recovery after a
/// crash); no error if it is gone.
pub fn kill_group(pgid: i32) {
    signal_group(pgid, Some(Signal::SIGKILL));
}

/// Signals a group, refusing the ids that would hit far more than an agent: 0 is our own
/// group, 1 (as `kill(-1)`) every process we may signal, and our own group id can only come
/// from a reused pid.
fn signal_group(pgid: i32, signal: Option<Signal>) {
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        tracing::warn!(pgid, "refusing to signal this process group");
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, error = %e, "cannot signal the agent's process group"),
    }
}

/// Reads lines (cut at [`MAX_LINE_BYTES`]) and sends them on until end of stream, a read
/// error, or the receiver is gone.
async fn forward_lines(
    pipe: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::Sender<(Stream, String)>,
) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line).await {
            Ok(true) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\r').unwrap_or(&text).to_owned();
                if lines.send((stream, text)).await.is_err() {
                    return;
                }
            }
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(?stream, error = %e, "cannot read the agent's output");
                return;
            }
        }
    }
}

/// Reads one line without its '\n' into `line`, keeping at most [`MAX_LINE_BYTES`] of it and
/// consuming the rest. False at end of stream.
async fn read_capped_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let content = &available[..newline.unwrap_or(available.len())];
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        let consumed = newline.map_or(available.len(), |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(true);
        }
    }
}

/// The stored log: whole lines while they fit, then the start of the first line that does
/// not, then a note.
struct CappedLog {
    text: String,
    cap: usize,
    truncated: bool,
}

impl CappedLog {
    fn new(cap: usize) -> Self {
        Self {
            text: String::new(),
            cap,
            truncated: false,
        }
    }

    fn push_line(&mut self, stream: Stream, line: &str) {
        if self.truncated {
            return;
        }
        let prefix = match stream {
            Stream::Stdout => "",
            Stream::Stderr => STDERR_PREFIX,
        };
        let entry = format!("{prefix}{line}\n");
        let room = self.cap - self.text.len();
        if entry.len() <= room {
            self.text.push_str(&entry);
        } else {
            self.text
                .push_str(&entry[..entry.floor_char_boundary(room)]);
            self.text.push_str(TRUNCATION_NOTE);
            self.truncated = true;
        }
    }
}

/// Token counts as stream-json reports them.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input: i64,
    output: i64,
    cache_read: i64,
    cache_creation: i64,
}

impl Usage {
    fn from_json(usage: &Value) -> Self {
        let count = |key: &str| usage.get(key).and_then(Value::as_i64).unwrap_or(0);
        Self {
            input: count("input_tokens"),
            output: count("output_tokens"),
            cache_read: count("cache_read_input_tokens"),
            cache_creation: count("cache_creation_input_tokens"),
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            input: self.input.saturating_add(other.input),
            output: self.output.saturating_add(other.output),
            cache_read: self.cache_read.saturating_add(other.cache_read),
            cache_creation: self.cache_creation.saturating_add(other.cache_creation),
        }
    }
}

/// Folds stdout lines into [`RunStats`]. The `result` line is authoritative; per-message
/// usage only stands in when no result line came (the agent was killed or crashed).
#[derive(Default)]
struct StreamJsonStats {
    stats: RunStats,
    result_usage: Option<Usage>,
    /// Keyed by message id: Claude repeats a message's usage on each of its content blocks.
    message_usage: BTreeMap<String, Usage>,
    unnamed_message_usage: Usage,
}

impl StreamJsonStats {
    /// Takes one stdout line; returns the session id when this line announced a new one.
    fn observe(&mut self, line: &str) -> Option<String> {
        if line.trim().is_empty() {
            return None;
        }
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) else {
            self.stats.garbage_lines += 1;
            return None;
        };
        let text = |key: &str| event.get(key).and_then(Value::as_str);
        match text("type") {
            Some("system") if text("subtype") == Some("init") => {
                self.set_session_id(text("session_id"))
            }
            Some("assistant" | "user") => {
                let message = event.get("message");
                if let Some(usage) = message.and_then(|m| m.get("usage")) {
                    let usage = Usage::from_json(usage);
                    match message.and_then(|m| m.get("id")).and_then(Value::as_str) {
                        Some(id) => {
                            self.message_usage.insert(id.to_owned(), usage);
                        }
                        None => self.unnamed_message_usage = self.unnamed_message_usage.add(usage),
                    }
                }
                None
            }
            Some("result") => {
                let stats = &mut self.stats;
                stats.result_subtype = text("subtype").map(str::to_owned);
                stats.is_error = event.get("is_error").and_then(Value::as_bool);
                stats.num_turns = event.get("num_turns").and_then(Value::as_i64);
                stats.duration_ms = event.get("duration_ms").and_then(Value::as_i64);
                stats.cost_usd = event
                    .get("total_cost_usd")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                self.result_usage = Some(
                    event
                        .get("usage")
                        .map_or_else(Usage::default, Usage::from_json),
                );
                self.set_session_id(text("session_id"))
            }
            _ => None,
        }
    }

    fn set_session_id(&mut self, session_id: Option<&str>) -> Option<String> {
        let session_id = session_id?;
        if self.stats.claude_session_id.as_deref() == Some(session_id) {
            return None;
        }
        self.stats.claude_session_id = Some(session_id.to_owned());
        Some(session_id.to_owned())
    }

    fn finish(mut self) -> RunStats {
        let usage = self.result_usage.unwrap_or_else(|| {
            self.message_usage
                .values()
                .fold(self.unnamed_message_usage, |sum, usage| sum.add(*usage))
        });
        self.stats.input_tokens = usage.input;
        self.stats.output_tokens = usage.output;
        self.stats.cache_read_tokens = usage.cache_read;
        self.stats.cache_creation_tokens = usage.cache_creation;
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/claude/stream-json.ndjson"
    );

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
    }

    fn spec(argv: Vec<String>) -> AgentSpec {
        AgentSpec {
            argv,
            cwd: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            env: agent_env(&["PATH".to_owned()], &[]),
            timeout: Duration::from_secs(10),
            max_output_bytes: 1024 * 1024,
            redact: Arc::new(str::to_owned),
        }
    }

    /// Runs the agent to its end, collecting every event.
    async fn run(spec: AgentSpec) -> (AgentOutcome, Vec<AgentEvent>) {
        let mut events = Vec::new();
        let outcome = run_agent(spec, CancellationToken::new(), |event| events.push(event))
            .await
            .expect("agent starts");
        (outcome, events)
    }

    fn started_pid(events: &[AgentEvent]) -> i32 {
        match events.first() {
            Some(AgentEvent::Started { pid }) => *pid as i32,
            other => panic!("first event is not Started: {other:?}"),
        }
    }

    fn line_texts(events: &[AgentEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|event| match event {
                AgentEvent::Line { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Alive and not a zombie, by /proc.
    fn process_running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_state_and_pgrp(&stat))
            .is_some_and(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
    }

    /// Polls a condition that no event announces (the death of a process we are not the
    /// parent of) until it holds or the deadline passes.
    async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !condition() {
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Runs `body` with these variables set (or unset) in this process's environment, then
    /// puts the previous values back, keeping the window in which other tests of this
    /// binary could see them as short as possible.
    fn with_process_env<T>(vars: &[(&str, Option<&str>)], body: impl FnOnce() -> T) -> T {
        let set = |name: &str, value: Option<&str>| {
            // SAFETY: tests read the environment only through std, which serialises access
            // with its own lock; no test thread calls libc's getenv directly.
            unsafe {
                match value {
                    Some(value) => std::env::set_var(name, value),
                    None => std::env::remove_var(name),
                }
            }
        };
        let previous: Vec<(&str, Option<String>)> = vars
            .iter()
            .map(|(name, _)| (*name, std::env::var(name).ok()))
            .collect();
        for (name, value) in vars {
            set(name, *value);
        }
        let result = body();
        for (name, value) in &previous {
            set(name, value.as_deref());
        }
        result
    }

    /// The stats the fixture's result line states, read straight from the JSON.
    fn fixture_result_stats() -> RunStats {
        let text = std::fs::read_to_string(FIXTURE).expect("fixture is readable");
        let result: Value = text
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("fixture line is JSON"))
            .find(|event| event["type"] == "result")
            .expect("fixture has a result line");
        let usage = &result["usage"];
        RunStats {
            claude_session_id: result["session_id"].as_str().map(str::to_owned),
            result_subtype: result["subtype"].as_str().map(str::to_owned),
            is_error: result["is_error"].as_bool(),
            num_turns: result["num_turns"].as_i64(),
            input_tokens: usage["input_tokens"].as_i64().unwrap(),
            output_tokens: usage["output_tokens"].as_i64().unwrap(),
            cache_read_tokens: usage["cache_read_input_tokens"].as_i64().unwrap(),
            cache_creation_tokens: usage["cache_creation_input_tokens"].as_i64().unwrap(),
            cost_usd: result["total_cost_usd"].as_f64().unwrap(),
            duration_ms: result["duration_ms"].as_i64(),
            garbage_lines: 0,
        }
    }

    fn assert_stats_eq(actual: &RunStats, expected: &RunStats) {
        assert_eq!(
            serde_json::to_value(actual).unwrap(),
            serde_json::to_value(expected).unwrap()
        );
    }

    #[test]
    fn render_command_keeps_a_hostile_value_in_one_argument() {
        let prompt = r#"fix "the bug" it's $(rm -rf /); echo x `id` > /tmp/y"#;
        let argv = render_command(
            r#"claude -p "/ai-party:party {prompt}" --resume {claude_session_id} --verbose"#,
            &[("prompt", prompt), ("claude_session_id", "abc 123")],
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "claude".to_owned(),
                "-p".to_owned(),
                format!("/ai-party:party {prompt}"),
                "--resume".to_owned(),
                "abc 123".to_owned(),
                "--verbose".to_owned(),
            ]
        );
        let argv = render_command("claude -p {prompt}", &[("prompt", prompt)]).unwrap();
        assert_eq!(argv, ["claude", "-p", prompt]);
    }

    #[test]
    fn render_command_leaves_other_braces_and_inserted_values_alone() {
        let argv = render_command(
            r#"run --json '{"a":1}' {} {task}x{ {task}"#,
            &[("task", "{prompt}")],
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "run",
                "--json",
                r#"{"a":1}"#,
                "{}",
                "{prompt}x{",
                "{prompt}"
            ]
        );
    }

    #[test]
    fn render_command_names_an_unknown_placeholder() {
        let err =
            render_command("claude -p {prompt} --model {model}", &[("prompt", "hi")]).unwrap_err();
        assert!(
            matches!(&err, AgentError::UnknownPlaceholder { name, .. } if name == "model"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("{model}"), "{message}");
        assert!(message.contains("{prompt}"), "{message}");
        assert!(message.contains("engine.command"), "{message}");
    }

    #[test]
    fn render_command_rejects_empty_and_unbalanced_templates() {
        assert!(matches!(
            render_command("", &[]),
            Err(AgentError::EmptyCommand)
        ));
        assert!(matches!(
            render_command("  \t ", &[]),
            Err(AgentError::EmptyCommand)
        ));
        assert!(matches!(
            render_command("claude -p 'open", &[]),
            Err(AgentError::Unsplittable(_))
        ));
    }

    #[test]
    fn agent_env_holds_only_passthrough_fixed_vars_and_credentials() {
        let passthrough = [
            "PATH",
            "AGENT_TEST_PASSTHROUGH",
            "AGENT_TEST_UNSET",
            "AIOPS_MASTER_KEY",
            "AIOPS_DATABASE_URL",
            "AI_PARTY_APPROVAL_MODE",
        ]
        .map(str::to_owned);
        let credentials = [
            ("ANTHROPIC_API_KEY".to_owned(), "sk-test".to_owned()),
            ("AIOPS_MASTER_KEY".to_owned(), "still-not".to_owned()),
        ];

        let env = with_process_env(
            &[
                ("AIOPS_MASTER_KEY", Some("master-key-must-not-leak")),
                ("AIOPS_DATABASE_URL", Some("postgres://u:pw@db/aiops")),
                ("OTHER_SECRET", Some("other-secret-must-not-leak")),
                ("AGENT_TEST_PASSTHROUGH", Some("kept")),
                ("AI_PARTY_APPROVAL_MODE", Some("terminal")),
                ("AGENT_TEST_UNSET", None),
            ],
            || agent_env(&passthrough, &credentials),
        );

        let path = std::env::var("PATH").expect("tests run with PATH set");
        let expected = [
            ("PATH", path.as_str()),
            ("AGENT_TEST_PASSTHROUGH", "kept"),
            ("AI_PARTY_APPROVAL_MODE", "platform"),
            ("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"),
            ("ANTHROPIC_API_KEY", "sk-test"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(env, expected);
    }

    #[tokio::test]
    async fn the_child_sees_exactly_agent_env() {
        let passthrough = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER"].map(str::to_owned);
        let credentials = [(
            "GITHUB_TOKEN".to_owned(),
            "ghp with spaces $HOME 'q'".to_owned(),
        )];
        let env = agent_env(&passthrough, &credentials);
        let mut spec = spec(vec!["env".to_owned()]);
        spec.env = env.clone();

        let (outcome, _) = run(spec).await;

        assert_eq!(outcome.exit_code, Some(0));
        let mut seen: Vec<(String, String)> = outcome
            .log
            .lines()
            .map(|line| {
                let (name, value) = line.split_once('=').expect("env prints NAME=value");
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let mut expected = env;
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn the_fixture_stream_yields_the_result_line_stats() {
        let (outcome, events) = run(spec(vec!["cat".to_owned(), FIXTURE.to_owned()])).await;

        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.signal, None);
        assert!(!outcome.timed_out && !outcome.cancelled && !outcome.log_truncated);
        assert_stats_eq(&outcome.stats, &fixture_result_stats());
        assert_eq!(
            outcome.log,
            std::fs::read_to_string(FIXTURE).unwrap(),
            "stdout is logged line for line"
        );
        let session_ids: Vec<&AgentEvent> = events
            .iter()
            .filter(|event| matches!(event, AgentEvent::SessionId(_)))
            .collect();
        assert!(
            matches!(session_ids.as_slice(), [AgentEvent::SessionId(id)] if id == "3f8a1c2e-7b4d-4e9a-9c1f-2d6e8b0a5c71"),
            "{session_ids:?}"
        );
        assert_eq!(line_texts(&events).len(), 5);
    }

    #[tokio::test]
    async fn garbage_between_fixture_lines_is_counted_and_kept() {
        let script = r#"
            while IFS= read -r line || [ -n "$line" ]; do
                printf '%s\n' "$line"
                echo 'npm WARN not json at all'
                printf '%s\n' '{"type":"assistant","message":{"usage":{"input_tok'
                echo '[1, 2, 3]'
                echo '"a string"'
                echo 'a warning on stderr' >&2
            done < "$0"
        "#;
        let mut argv = sh(script);
        argv.push(FIXTURE.to_owned());

        let (outcome, _) = run(spec(argv)).await;

        assert_eq!(outcome.exit_code, Some(0));
        let expected = RunStats {
            garbage_lines: 5 * 4,
            ..fixture_result_stats()
        };
        assert_stats_eq(&outcome.stats, &expected);
        assert!(outcome.log.contains("npm WARN not json at all\n"));
        assert!(outcome.log.contains("\n[1, 2, 3]\n"));
        assert!(outcome.log.contains("[stderr] a warning on stderr\n"));
    }

    #[tokio::test]
    async fn without_a_result_line_message_usage_is_summed_once_per_message() {
        // The fixture without its result line, its first message repeated as Claude does
        // for a message with several content blocks.
        let script = r#"head -n 1 "$0"; head -n 2 "$0" | tail -n 1; head -n 4 "$0""#;
        let mut argv = sh(script);
        argv.push(FIXTURE.to_owned());

        let (outcome, _) = run(spec(argv)).await;

        let stats = outcome.stats;
        assert_eq!(
            stats.claude_session_id.as_deref(),
            Some("3f8a1c2e-7b4d-4e9a-9c1f-2d6e8b0a5c71")
        );
        assert_eq!(stats.result_subtype, None);
        assert_eq!(stats.num_turns, None);
        assert_eq!(stats.input_tokens, 5120 + 5300);
        assert_eq!(stats.output_tokens, 64 + 41);
        assert_eq!(stats.cache_creation_tokens, 2048);
        assert_eq!(stats.cache_read_tokens, 5120);
        assert_eq!(stats.cost_usd, 0.0);
        assert_eq!(stats.garbage_lines, 0);
    }

    #[tokio::test]
    async fn secrets_are_redacted_from_the_log_and_the_events() {
        const SECRET: &str = "hunter2-5ecret";
        let mut spec = spec(sh(&format!(
            r#"echo "token={SECRET}"; echo '{{"type":"user","text":"{SECRET}"}}'; echo "{SECRET}" >&2"#
        )));
        spec.redact = Arc::new(|line: &str| line.replace(SECRET, "[REDACTED]"));

        let (outcome, events) = run(spec).await;

        assert!(!outcome.log.contains(SECRET), "{}", outcome.log);
        assert!(outcome.log.contains("token=[REDACTED]\n"));
        assert!(outcome.log.contains("[stderr] [REDACTED]\n"));
        let texts = line_texts(&events);
        assert_eq!(texts.len(), 3);
        assert!(texts.iter().all(|text| !text.contains(SECRET)), "{texts:?}");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let mut spec = spec(sh("sleep 1000 & echo $!; sleep 1000"));
        spec.timeout = Duration::from_millis(300);

        let (outcome, events) = run(spec).await;

        let pgid = started_pid(&events);
        let grandchild: i32 = outcome.log.trim().parse().expect("the script prints $!");
        assert!(outcome.timed_out && !outcome.cancelled);
        assert_eq!(outcome.signal, Some(Signal::SIGTERM as i32));
        assert_eq!(outcome.exit_code, None);
        assert!(!group_alive(pgid));
        assert!(!process_running(grandchild));
        assert!(
            outcome.duration < KILL_GRACE,
            "SIGTERM was enough: {:?}",
            outcome.duration
        );
    }

    #[tokio::test]
    async fn an_agent_ignoring_sigterm_gets_sigkill_after_the_grace() {
        let mut spec = spec(sh("trap '' TERM; sleep 1000 & echo $!; sleep 1000"));
        spec.timeout = Duration::from_millis(100);

        let (outcome, events) = run(spec).await;

        let grandchild: i32 = outcome.log.trim().parse().expect("the script prints $!");
        assert!(outcome.timed_out);
        assert_eq!(outcome.signal, Some(Signal::SIGKILL as i32));
        assert!(outcome.duration >= KILL_GRACE);
        assert!(!group_alive(started_pid(&events)));
        assert!(!process_running(grandchild));
    }

    #[tokio::test]
    async fn cancelling_stops_the_whole_group() {
        let cancel = CancellationToken::new();
        let mut events = Vec::new();
        let spec = spec(sh("sleep 1000 & echo $!; echo ready; sleep 1000"));

        let outcome = run_agent(spec, cancel.clone(), |event| {
            if matches!(&event, AgentEvent::Line { text, .. } if text == "ready") {
                cancel.cancel();
            }
            events.push(event);
        })
        .await
        .unwrap();

        let grandchild: i32 = line_texts(&events)[0].parse().unwrap();
        assert!(outcome.cancelled && !outcome.timed_out);
        assert!(!group_alive(started_pid(&events)));
        assert!(!process_running(grandchild));
    }

    #[tokio::test]
    async fn dropping_a_run_kills_its_group() {
        let (event_tx, mut event_rx) = mpsc::unbounded_channel();
        let run = tokio::spawn(run_agent(
            spec(sh("sleep 1000 & echo $!; sleep 1000")),
            CancellationToken::new(),
            move |event| {
                let _ = event_tx.send(event);
            },
        ));
        let Some(AgentEvent::Started { pid }) = event_rx.recv().await else {
            panic!("first event is Started");
        };
        let Some(AgentEvent::Line { text, .. }) = event_rx.recv().await else {
            panic!("second event is the grandchild's pid");
        };
        let grandchild: i32 = text.parse().unwrap();

        run.abort();
        assert!(run.await.unwrap_err().is_cancelled());

        assert!(wait_until(|| !group_alive(pid as i32)).await);
        assert!(!process_running(grandchild));
    }

    #[tokio::test]
    async fn a_process_that_left_the_group_cannot_hold_the_run_open() {
        let (outcome, _) = run(spec(sh("setsid sleep 1000 & echo $!"))).await;

        let escaped = Pid::from_raw(outcome.log.trim().parse().expect("the script prints $!"));
        nix::sys::signal::kill(escaped, Signal::SIGKILL).expect("the escaped sleep was running");
        assert_eq!(outcome.exit_code, Some(0));
        assert!(outcome.duration < DRAIN_AFTER_EXIT + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn output_beyond_the_cap_is_drained_but_not_kept() {
        const CAP: usize = 64 * 1024;
        let mut spec = spec(sh(
            "yes 0123456789012345678901234567890123456789 | head -c 5000000; echo done >&2",
        ));
        spec.max_output_bytes = CAP;

        let (outcome, events) = run(spec).await;

        assert_eq!(outcome.exit_code, Some(0), "the child was never blocked");
        assert!(!outcome.timed_out);
        assert!(outcome.log_truncated);
        assert!(outcome.log.len() <= CAP + TRUNCATION_NOTE.len());
        assert!(outcome.log.len() >= CAP);
        assert!(!outcome.log.contains("done"));
        let stdout_lines = events
            .iter()
            .filter(|event| {
                matches!(
                    event,
                    AgentEvent::Line {
                        stream: Stream::Stdout,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(
            stdout_lines,
            5_000_000_usize.div_ceil(41),
            "every line was read"
        );
        assert!(line_texts(&events).contains(&"done"));
    }

    #[tokio::test]
    async fn an_overlong_line_is_cut() {
        let (outcome, events) = run(spec(sh(
            "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo after",
        )))
        .await;

        let texts = line_texts(&events);
        assert_eq!(texts.len(), 2);
        assert_eq!(texts[0].len(), MAX_LINE_BYTES);
        assert_eq!(texts[1], "after");
        assert_eq!(outcome.stats.garbage_lines, 2);
    }

    #[tokio::test]
    async fn the_exit_code_is_propagated() {
        let (outcome, _) = run(spec(sh("echo oops >&2; exit 7"))).await;

        assert_eq!(outcome.exit_code, Some(7));
        assert_eq!(outcome.signal, None);
        assert!(!outcome.timed_out && !outcome.cancelled);
        assert_eq!(outcome.log, "[stderr] oops\n");
    }

    #[tokio::test]
    async fn a_missing_binary_is_an_error_naming_it() {
        let mut events = Vec::new();
        let err = run_agent(
            spec(vec![
                "aiops-test-no-such-claude".to_owned(),
                "-p".to_owned(),
            ]),
            CancellationToken::new(),
            |event| events.push(event),
        )
        .await
        .unwrap_err();

        assert!(matches!(err, AgentError::Spawn { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("aiops-test-no-such-claude"), "{message}");
        assert!(message.contains("engine.command"), "{message}");
        assert!(events.is_empty());
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_an_error() {
        let gone = tempfile::tempdir().unwrap().path().to_owned();
        let mut spec = spec(vec!["true".to_owned()]);
        spec.cwd = gone.clone();

        let err = run_agent(spec, CancellationToken::new(), |_| {})
            .await
            .unwrap_err();

        assert!(matches!(err, AgentError::MissingWorkDir { path } if path == gone));
    }

    #[tokio::test]
    async fn kill_group_kills_a_detached_group() {
        use std::io::BufRead;
        use std::os::unix::process::{CommandExt, ExitStatusExt};

        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & echo $!; sleep 1000"])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        std::io::BufReader::new(leader.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let grandchild: i32 = first_line.trim().parse().unwrap();
        let pgid = leader.id() as i32;
        assert!(group_alive(pgid));

        kill_group(pgid);

        let status = leader.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert!(wait_until(|| !group_alive(pgid)).await);
        assert!(!process_running(grandchild));
        kill_group(pgid);
    }

    #[test]
    fn group_alive_is_false_for_ids_that_are_no_agent_group() {
        assert!(!group_alive(0));
        assert!(!group_alive(1));
        assert!(!group_alive(-1));
    }

    #[test]
    fn proc_stat_is_parsed_from_after_the_command_name() {
        assert_eq!(
            parse_state_and_pgrp("42 (a) b (c)) S 1 4242 4242 0 -1"),
            Some(('S', 4242))
        );
        assert_eq!(parse_state_and_pgrp("42 (sleep"), None);
    }
}
