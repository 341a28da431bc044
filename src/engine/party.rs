//! Reads what the ai-party plugin writes under `.party/` in a task's worktree, and writes a
//! human's decision back the way the plugin's own prompt hook would.
//!
//! Boundary: plain files under one worktree; no database, no network, no async. Nothing under
//! `.party/` can make this module read or write outside the worktree: every path is relative
//! and checked component by component, links are refused and never followed, only regular
//! files are opened, and every read is capped. A missing, empty or corrupt file is skipped and
//! reported, never fatal to a whole read. See `PARTY-CONTRACT.md` for the file contract.
//! Linux only: `O_NOFOLLOW` differs between architectures and std does not export it.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const O_NOFOLLOW: i32 = 0o100_000;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("engine::party knows the O_NOFOLLOW value only for Linux on x86_64 and aarch64");
/// The same on x86_64 and aarch64. A FIFO planted under `.party/` must not block the open.
const O_NONBLOCK: i32 = 0o4000;
/// What `open` fails with when `O_NOFOLLOW` meets a link (the same on x86_64 and aarch64).
const ELOOP: i32 = 40;

/// How long a tool approval granted by `apply_decision` stays usable, as in the plugin's hook.
const GRANT_LIFETIME_MINUTES: i64 = 10;

/// Files that could not be used, with why: (path relative to the worktree, reason).
type Skipped = Vec<(PathBuf, String)>;

/// Caps on what one call may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `session.json`, `active-session.json`, tickets and approvals.
    pub max_json_bytes: u64,
    /// One finding document.
    pub max_finding_bytes: u64,
    /// One `read_events` call; also the longest event line that can be read.
    pub max_events_read_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_bytes: 1 << 20,
            max_finding_bytes: 1 << 20,
            max_events_read_bytes: 4 << 20,
        }
    }
}

/// Why a file under `.party/` could not be read or written. Paths are relative to the worktree.
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    /// An absolute path, `..`, `.` or an empty path.
    #[error("{}: not a plain relative path inside the worktree", .path.display())]
    Escape { path: PathBuf },
    /// A link somewhere below the worktree root.
    #[error("{}: is a symbolic link, which .party/ must not contain", .path.display())]
    Symlink { path: PathBuf },
    /// A directory, socket, FIFO or device where a file belongs.
    #[error("{}: not a regular file", .path.display())]
    NotRegular { path: PathBuf },
    /// Something else where a directory belongs.
    #[error("{}: not a directory", .path.display())]
    NotDirectory { path: PathBuf },
    /// The file or a directory above it was swapped between the checks and the open.
    #[error("{}: was replaced while being opened", .path.display())]
    Replaced { path: PathBuf },
    /// Over the read cap; nothing of it is returned.
    #[error("{}: {size} bytes, over the limit of {max}", .path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    /// Empty, not JSON, or not a JSON object.
    #[error("{}: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The file system refused; `is_not_found` tells a missing file apart.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not a plain session directory name.
    #[error("{id:?} is not a party session id (letters, digits, '.', '_' and '-' only)")]
    InvalidSessionId { id: String },
    /// Not approve, reject or revise.
    #[error("{decision:?} is not a decision; use approve, reject or revise")]
    InvalidDecision { decision: String },
    /// No readable request with this id in the session.
    #[error("approval request {request_id} is not in party session {session_id}")]
    RequestNotFound {
        session_id: String,
        request_id: String,
    },
    /// The request file names another session.
    #[error("approval request {request_id} belongs to party session {owner}, not {session_id}")]
    WrongSession {
        session_id: String,
        request_id: String,
        owner: String,
    },
    /// Decided already: a decision is applied once.
    #[error("approval request {request_id} is {status}, not pending; it was decided already")]
    NotPending { request_id: String, status: String },
}

impl PartyError {
    /// True when the file or one of its directories does not exist (yet): a normal state.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// One party session's pipeline state (`session.json`).
#[derive(Debug, Clone)]
pub struct SessionState {
    /// The session directory's name, which every path of the session is built from.
    pub id: String,
    pub team: Option<String>,
    pub phase: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `{request_id, previous_phase}` while a tool call waits for a human.
    pub approval_context: Option<Value>,
    /// The whole file, unknown fields included.
    pub raw: Value,
}

/// One hand-off document (`findings/<name>.md`), latest content.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The file name, e.g. `analysis.md`.
    pub name: String,
    /// The content, invalid UTF-8 replaced.
    pub content: String,
    pub modified: DateTime<Utc>,
}

/// One work item (`tickets/<id>.json`).
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The file's `id`, else the file name without `.json`.
    pub id: String,
    /// `type`: epic, story or task.
    pub kind: Option<String>,
    pub title: Option<String>,
    pub status: Option<String>,
    pub phase: Option<String>,
    pub assignee: Option<String>,
    /// `parentId`.
    pub parent_id: Option<String>,
    pub raw: Value,
}

/// Whether a human approves one tool call or the pipeline's whole result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalKind {
    Tool,
    Result,
}

/// One approval request (`approvals/<name>.json`) and its decision, if made.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// `request_id` (`APR-…`), else the file name without `.json`.
    pub request_id: String,
    /// `Tool` when the file has `tool_name` or `risk_level` or the id starts with `APR-`.
    pub kind: ApprovalKind,
    /// `pending`, `decided`, …; `unknown` when the file has none.
    pub status: String,
    pub risk_level: Option<String>,
    pub tool_name: Option<String>,
    pub tool_input: Option<Value>,
    pub summary: Option<String>,
    /// `git_diff_stat` of a result approval.
    pub diff_stat: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub decision: Option<String>,
    pub raw: Value,
}

/// Everything of one party session except its events, as it is on disk now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `None` while `session.json` is missing or unusable.
    pub session: Option<SessionState>,
    /// Sorted by file name.
    pub findings: Vec<Finding>,
    /// Sorted by file name.
    pub tickets: Vec<Ticket>,
    /// Sorted by file name.
    pub approvals: Vec<ApprovalRequest>,
    /// Files left out: (path relative to the worktree, reason).
    pub skipped: Vec<(PathBuf, String)>,
}

/// One line of `events.ndjson`.
#[derive(Debug, Clone)]
pub struct PartyEvent {
    /// Byte offset of the line's start in `events.ndjson`: the event's idempotency key.
    pub offset: u64,
    pub ts: Option<DateTime<Utc>>,
    /// `type`, or `unknown` when missing.
    pub kind: String,
    /// The whole line, unknown fields included.
    pub raw: Value,
}

/// What one `read_events` call found.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub events: Vec<PartyEvent>,
    /// Where the next call starts: just past the last line consumed.
    pub next_offset: u64,
    /// Lines or states that were not events: (offset, reason).
    pub skipped: Vec<(u64, String)>,
}

/// How the engine process ended.
#[derive(Debug, Clone)]
pub struct ExitSummary {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// e.g. the result subtype `error_max_turns`.
    pub error: Option<String>,
}

/// Which party session is active: `.party/active-session.json`'s `session_id`, else
/// `override_id` (`AI_PARTY_SESSION_ID`), else the newest `sessions/<id>/` directory by the
/// timestamp in its name `party-<team>-<YYYYMMDDhhmmss>`. Ids that are not plain names
/// (`^[A-Za-z0-9._-]+$`, not starting with '.') are ignored.
pub fn active_session_id(
    worktree: &Path,
    override_id: Option<&str>,
    limits: &Limits,
) -> Option<String> {
    recorded_active_session(worktree, limits)
        .or_else(|| {
            override_id
                .filter(|id| is_valid_session_id(id))
                .map(str::to_owned)
        })
        .or_else(|| newest_session_dir(worktree))
}

/// Reads `session.json`, findings, tickets and approvals of one session (not events).
pub fn read_snapshot(worktree: &Path, session_id: &str, limits: &Limits) -> Snapshot {
    let mut snapshot = Snapshot::default();
    if !is_valid_session_id(session_id) {
        let error = PartyError::InvalidSessionId {
            id: session_id.to_owned(),
        };
        snapshot
            .skipped
            .push((PathBuf::from(session_id), error.to_string()));
        return snapshot;
    }
    let dir = session_dir(session_id);
    let skipped = &mut snapshot.skipped;
    snapshot.session = read_json_object(
        worktree,
        &dir.join("session.json"),
        limits.max_json_bytes,
        skipped,
    )
    .map(|object| session_state(session_id, object));
    snapshot.findings = read_findings(worktree, &dir, limits, skipped);
    snapshot.tickets = read_tickets(worktree, &dir, limits, skipped);
    snapshot.approvals = read_approvals(worktree, &dir, limits, skipped)
        .into_iter()
        .map(|(_, approval)| approval)
        .collect();
    snapshot
}

/// Reads complete lines of `sessions/<id>/events.ndjson` from byte `from_offset`, at most
/// `limits.max_events_read_bytes` per call. A last line without '\n' is not consumed (it is
/// being written); lines that are not JSON objects are skipped and reported; a line longer
/// than the cap is skipped once its end is written, so the reader never gets stuck. A file
/// shorter than `from_offset` (truncated or replaced) gives an empty batch that says so.
pub fn read_events(
    worktree: &Path,
    session_id: &str,
    from_offset: u64,
    limits: &Limits,
) -> Result<EventBatch, PartyError> {
    if !is_valid_session_id(session_id) {
        return Err(PartyError::InvalidSessionId {
            id: session_id.to_owned(),
        });
    }
    let relative = session_dir(session_id).join("events.ndjson");
    let mut batch = EventBatch {
        events: Vec::new(),
        next_offset: from_offset,
        skipped: Vec::new(),
    };
    let (mut file, length) = match open_checked(worktree, &relative, OpenOptions::new().read(true))
    {
        Ok((file, metadata)) => (Some(file), metadata.len()),
        Err(error) if error.is_not_found() => (None, 0),
        Err(error) => return Err(error),
    };
    if length < from_offset {
        batch.skipped.push((
            from_offset,
            format!(
                "events.ndjson has {length} bytes, fewer than offset {from_offset}: \
                 it was truncated or replaced"
            ),
        ));
        return Ok(batch);
    }
    let Some(file) = file.as_mut() else {
        return Ok(batch);
    };

    let window = limits.max_events_read_bytes.max(1);
    let io_failure = |source| io_error(&relative, source);
    file.seek(SeekFrom::Start(from_offset))
        .map_err(io_failure)?;
    let mut bytes = Vec::new();
    Read::take(&mut *file, window)
        .read_to_end(&mut bytes)
        .map_err(io_failure)?;

    let mut consumed = 0;
    while let Some(newline) = bytes[consumed..].iter().position(|&b| b == b'\n') {
        let offset = from_offset + consumed as u64;
        match parse_event(offset, &bytes[consumed..consumed + newline]) {
            Ok(Some(event)) => batch.events.push(event),
            Ok(None) => {}
            Err(reason) => batch.skipped.push((offset, reason)),
        }
        consumed += newline + 1;
    }
    batch.next_offset = from_offset + consumed as u64;

    if consumed == 0 && bytes.len() as u64 == window {
        // The first line does not fit in one read: skip it whole once its end is written.
        if let Some(end) = find_newline(file).map_err(io_failure)? {
            batch.skipped.push((
                from_offset,
                format!("line longer than the {window}-byte read limit"),
            ));
            batch.next_offset = end + 1;
        }
    }
    Ok(batch)
}

/// Phases after which nothing more happens.
pub fn is_terminal_phase(phase: &str) -> bool {
    matches!(phase, "DONE" | "ROLLED_BACK" | "FAILED")
}

/// The task status the platform shows, and why when it failed, from the pipeline's phase,
/// whether an approval request is pending, and how the engine process ended (`None` while it
/// runs). A terminal phase wins; then a pending approval; an engine that ended anywhere else
/// failed.
pub fn derive_status(
    phase: Option<&str>,
    has_pending_request: bool,
    exited: Option<&ExitSummary>,
) -> (String, Option<String>) {
    let (status, reason) = match phase {
        Some("DONE") => ("done", None),
        Some("ROLLED_BACK") => ("rolled_back", None),
        Some("FAILED") => (
            "failed",
            Some("the pipeline ended in phase FAILED".to_owned()),
        ),
        _ => {
            let waiting = match phase {
                Some("PENDING_APPROVAL") => true,
                Some("AWAITING_APPROVAL") => has_pending_request,
                _ => false,
            };
            match exited {
                None if waiting => ("awaiting_approval", None),
                None => ("running", None),
                Some(_) if has_pending_request => ("awaiting_approval", None),
                Some(exit) => ("failed", Some(describe_exit(exit, phase))),
            }
        }
    };
    (status.to_owned(), reason)
}

/// How old a session may be before the plugin's UserPromptSubmit hook ignores it.
pub const HOOK_IGNORES_AFTER_HOURS: i64 = 4;

/// True when the plugin's hook would ignore a decision prompt for `session_id`: the session
/// was created more than [`HOOK_IGNORES_AFTER_HOURS`] ago, its `session.json` is unusable,
/// or no session is recorded as active. aiops then applies the decision itself.
pub fn hook_ignores(
    worktree: &Path,
    session_id: &str,
    now: DateTime<Utc>,
    limits: &Limits,
) -> bool {
    if recorded_active_session(worktree, limits).is_none() {
        return true;
    }
    match read_snapshot(worktree, session_id, limits)
        .session
        .and_then(|session| session.created_at)
    {
        Some(created) => now - created > chrono::Duration::hours(HOOK_IGNORES_AFTER_HOURS),
        None => true,
    }
}

/// Applies a human decision to the files as the plugin's UserPromptSubmit hook would, for
/// sessions the hook ignores (created more than 4 hours ago). The request is re-read from disk
/// and must still be pending. Tool approval: the request is marked decided, the session goes
/// back to `approval_context.previous_phase`, `approval_context` is removed and an approve adds
/// a one-use `approval_grants` entry valid for 10 minutes (so resume right after). Result
/// approval: the request is marked decided and the session moves from AWAITING_APPROVAL to
/// APPROVED, REJECTED or REVISION. Then `decision_made` and `phase_changed` events are
/// appended. The phase only moves from the waiting phase, as in the hook; otherwise only
/// `decision_made` is appended. Call it only while no engine process runs in the worktree.
pub fn apply_decision(
    worktree: &Path,
    session_id: &str,
    request_id: &str,
    decision: &str,
    comment: Option<&str>,
    decided_by: &str,
    limits: &Limits,
) -> Result<(), PartyError> {
    if !is_valid_session_id(session_id) {
        return Err(PartyError::InvalidSessionId {
            id: session_id.to_owned(),
        });
    }
    if !matches!(decision, "approve" | "reject" | "revise") {
        return Err(PartyError::InvalidDecision {
            decision: decision.to_owned(),
        });
    }
    let (approval_path, kind, mut approval) =
        find_pending_request(worktree, session_id, request_id, limits)?;
    // Everything that can be refused is read or opened before anything is written.
    let dir = session_dir(session_id);
    let session_path = dir.join("session.json");
    let mut session = load_json_object(worktree, &session_path, limits.max_json_bytes)?;
    let events_path = dir.join("events.ndjson");
    let (mut events, _) = open_checked(
        worktree,
        &events_path,
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o644),
    )?;

    let decided = Decision {
        request_id,
        decision,
        comment: comment.unwrap_or(""),
        decided_by,
        at: Utc::now(),
    };
    decided.record_on(&mut approval);
    let phase_change = decided.apply_to_session(&mut session, &kind, &approval);
    let lines = decided.event_lines(session_id, &session, phase_change.as_ref());

    write_json_atomically(worktree, &approval_path, &approval)?;
    write_json_atomically(worktree, &session_path, &session)?;
    append_lines(&mut events, &events_path, &lines)
}

/// The still-pending request `request_id` of a session as it is on disk now: its file, its
/// kind and its content.
fn find_pending_request(
    worktree: &Path,
    session_id: &str,
    request_id: &str,
    limits: &Limits,
) -> Result<(PathBuf, ApprovalKind, Map<String, Value>), PartyError> {
    let dir = session_dir(session_id);
    let (file_name, current) = read_approvals(worktree, &dir, limits, &mut Vec::new())
        .into_iter()
        .find(|(_, approval)| approval.request_id == request_id)
        .ok_or_else(|| PartyError::RequestNotFound {
            session_id: session_id.to_owned(),
            request_id: request_id.to_owned(),
        })?;
    if current.status != "pending" {
        return Err(PartyError::NotPending {
            request_id: request_id.to_owned(),
            status: current.status,
        });
    }
    let Value::Object(approval) = current.raw else {
        unreachable!("read_approvals keeps JSON objects only")
    };
    if let Some(owner) = text(&approval, "session_id").filter(|owner| owner != session_id) {
        return Err(PartyError::WrongSession {
            session_id: session_id.to_owned(),
            request_id: request_id.to_owned(),
            owner,
        });
    }
    Ok((
        dir.join("approvals").join(file_name),
        current.kind,
        approval,
    ))
}

/// A human's decision on one request, as `apply_decision` writes it into the files.
struct Decision<'a> {
    request_id: &'a str,
    decision: &'a str,
    comment: &'a str,
    decided_by: &'a str,
    at: DateTime<Utc>,
}

/// The phase move a decision made.
struct PhaseChange {
    from: &'static str,
    to: String,
}

impl Decision<'_> {
    /// JavaScript's `toISOString()` format, as in the plugin's files.
    fn at_text(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn reason(&self) -> String {
        format!("approval decision: {} ({})", self.decision, self.request_id)
    }

    /// Marks the request decided, as the plugin's `decideApprovalRequest` does.
    fn record_on(&self, approval: &mut Map<String, Value>) {
        approval.insert("status".into(), json!("decided"));
        approval.insert("decision".into(), json!(self.decision));
        approval.insert("decision_comment".into(), json!(self.comment));
        approval.insert("decided_by".into(), json!(self.decided_by));
        approval.insert("decided_at".into(), json!(self.at_text()));
    }

    /// Updates the session as the hook does; the phase moves only out of the phase that waits
    /// for this kind of approval.
    fn apply_to_session(
        &self,
        session: &mut Map<String, Value>,
        kind: &ApprovalKind,
        approval: &Map<String, Value>,
    ) -> Option<PhaseChange> {
        let (waiting_phase, next_phase) = match kind {
            ApprovalKind::Tool => {
                let context = session.get("approval_context");
                let previous = [
                    context.and_then(|context| context.get("previous_phase")),
                    approval.get("previous_phase"),
                    session.get("phase"),
                ]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find(|phase| !phase.is_empty())
                .map(str::to_owned);
                session.remove("approval_context");
                if self.decision == "approve" {
                    let expires_at = self.at + TimeDelta::minutes(GRANT_LIFETIME_MINUTES);
                    let grant = json!({
                        "request_id": self.request_id,
                        "tool_name": approval.get("tool_name"),
                        "fingerprint": approval.get("fingerprint"),
                        "granted_at": self.at_text(),
                        "uses_left": 1,
                        "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    });
                    push_to_array(session, "approval_grants", grant);
                }
                ("PENDING_APPROVAL", previous)
            }
            ApprovalKind::Result => {
                let next = match self.decision {
                    "approve" => "APPROVED",
                    "reject" => "REJECTED",
                    _ => "REVISION",
                };
                ("AWAITING_APPROVAL", Some(next.to_owned()))
            }
        };
        if text(session, "phase").as_deref() != Some(waiting_phase) {
            return None;
        }
        let to = next_phase?;
        push_to_array(
            session,
            "phase_history",
            json!({ "phase": to, "entered_at": self.at_text(), "reason": self.reason() }),
        );
        session.insert("phase".into(), json!(to));
        Some(PhaseChange {
            from: waiting_phase,
            to,
        })
    }

    /// `decision_made`, then `phase_changed` when the phase moved.
    fn event_lines(
        &self,
        session_id: &str,
        session: &Map<String, Value>,
        change: Option<&PhaseChange>,
    ) -> Vec<String> {
        let made = json!({
            "request_id": self.request_id,
            "decision": self.decision,
            "comment": self.comment,
            "decided_by": self.decided_by,
            "phase": session.get("phase"),
        });
        let mut lines = vec![event_line(
            session_id,
            "decision_made",
            &made,
            &self.at_text(),
        )];
        if let Some(change) = change {
            let changed = json!({ "from": change.from, "to": change.to, "reason": self.reason() });
            lines.push(event_line(
                session_id,
                "phase_changed",
                &changed,
                &self.at_text(),
            ));
        }
        lines
    }
}

/// Reads a whole regular file at `root/relative`, refusing anything that leaves `root` (an
/// absolute path, `..`, a link in any component) and files over `max_bytes` (an error, not a
/// truncation). Never reads more than `max_bytes + 1` bytes, even from a growing file.
pub fn read_capped(root: &Path, relative: &Path, max_bytes: u64) -> Result<Vec<u8>, PartyError> {
    read_capped_with_metadata(root, relative, max_bytes).map(|(bytes, _)| bytes)
}

/// `read_capped`, also returning the opened file's metadata.
fn read_capped_with_metadata(
    root: &Path,
    relative: &Path,
    max_bytes: u64,
) -> Result<(Vec<u8>, Metadata), PartyError> {
    let (file, metadata) = open_checked(root, relative, OpenOptions::new().read(true))?;
    if metadata.len() > max_bytes {
        return Err(PartyError::TooLarge {
            path: relative.to_path_buf(),
            size: metadata.len(),
            max: max_bytes,
        });
    }
    let bytes = read_at_most(file, max_bytes, relative)?;
    Ok((bytes, metadata))
}

/// Reads to the end, but fails as soon as there is one byte more than `max_bytes`: the file
/// grew past the cap after it was measured.
fn read_at_most(reader: impl Read, max_bytes: u64, relative: &Path) -> Result<Vec<u8>, PartyError> {
    let mut bytes = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(relative, source))?;
    if bytes.len() as u64 > max_bytes {
        return Err(PartyError::TooLarge {
            path: relative.to_path_buf(),
            size: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// The one gate every open under `.party/` goes through: opens `root/relative` (as `options`
/// says: read, append, create) only if no component below `root` is a link, every parent is a
/// directory and the file is regular, and only if nothing was swapped while it was opened.
fn open_checked(
    root: &Path,
    relative: &Path,
    options: &mut OpenOptions,
) -> Result<(File, Metadata), PartyError> {
    open_checked_with_race_windows(root, relative, options, |_| ())
}

/// A moment in `open_checked` where a swap would be attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckPoint {
    DirectoriesChecked,
    FileChecked,
}

/// `open_checked`, calling `at` at each `CheckPoint`, where tests stage the swaps it defends
/// against.
fn open_checked_with_race_windows(
    root: &Path,
    relative: &Path,
    options: &mut OpenOptions,
    mut at: impl FnMut(CheckPoint),
) -> Result<(File, Metadata), PartyError> {
    let parts = normal_components(relative)?;
    let directories = check_directories(root, relative, &parts[..parts.len() - 1])?;
    at(CheckPoint::DirectoriesChecked);
    let path = root.join(relative);
    let checked = match fs::symlink_metadata(&path) {
        Ok(metadata) => {
            ensure_regular(relative, &metadata)?;
            Some(FileIdentity::of(&metadata))
        }
        // `open` decides: it fails, or creates the file when `options` asks it to.
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(io_error(relative, source)),
    };
    at(CheckPoint::FileChecked);
    let file = open_no_follow(&path, relative, options)?;
    let opened = file
        .metadata()
        .map_err(|source| io_error(relative, source))?;
    ensure_regular(relative, &opened)?;
    let expected = match checked {
        Some(identity) => identity,
        None => fs::symlink_metadata(&path)
            .map(|metadata| FileIdentity::of(&metadata))
            .map_err(|source| io_error(relative, source))?,
    };
    ensure_same_file(relative, expected, FileIdentity::of(&opened))?;
    recheck_directories(&directories)?;
    Ok((file, opened))
}

/// Opens without following a link in the last component; a link there is refused.
fn open_no_follow(
    path: &Path,
    relative: &Path,
    options: &mut OpenOptions,
) -> Result<File, PartyError> {
    options
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(ELOOP) {
                PartyError::Symlink {
                    path: relative.to_path_buf(),
                }
            } else {
                io_error(relative, source)
            }
        })
}

/// The components of `relative`, if it is a plain relative path: no root, no `.` or `..`.
fn normal_components(relative: &Path) -> Result<Vec<&OsStr>, PartyError> {
    let escape = || PartyError::Escape {
        path: relative.to_path_buf(),
    };
    let parts = relative
        .components()
        .map(|component| match component {
            Component::Normal(part) => Ok(part),
            _ => Err(escape()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err(escape());
    }
    Ok(parts)
}

/// Which file a path named when it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(metadata: &Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// A directory as it was checked: absolute path, path relative to the worktree, identity.
type CheckedDirectory = (PathBuf, PathBuf, FileIdentity);

/// Checks that each of `parts` below `root` is a real directory, not a link, and remembers
/// which one it was.
fn check_directories(
    root: &Path,
    relative: &Path,
    parts: &[&OsStr],
) -> Result<Vec<CheckedDirectory>, PartyError> {
    let mut path = root.to_path_buf();
    let mut shown = PathBuf::new();
    let mut checked = Vec::with_capacity(parts.len());
    for part in parts {
        path.push(part);
        shown.push(part);
        let metadata = fs::symlink_metadata(&path).map_err(|source| io_error(&shown, source))?;
        if metadata.file_type().is_symlink() {
            tracing::warn!(path = %shown.display(), target = %relative.display(), "link under .party/ refused");
            return Err(PartyError::Symlink { path: shown });
        }
        if !metadata.is_dir() {
            return Err(PartyError::NotDirectory { path: shown });
        }
        checked.push((path.clone(), shown.clone(), FileIdentity::of(&metadata)));
    }
    Ok(checked)
}

/// Fails when a checked directory has since been swapped for a link or another directory.
fn recheck_directories(checked: &[CheckedDirectory]) -> Result<(), PartyError> {
    for (path, shown, identity) in checked {
        let unchanged = fs::symlink_metadata(path).is_ok_and(|metadata| {
            !metadata.file_type().is_symlink()
                && metadata.is_dir()
                && FileIdentity::of(&metadata) == *identity
        });
        if !unchanged {
            return Err(PartyError::Replaced {
                path: shown.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a link or anything but a regular file.
fn ensure_regular(relative: &Path, metadata: &Metadata) -> Result<(), PartyError> {
    if metadata.file_type().is_symlink() {
        tracing::warn!(path = %relative.display(), "link under .party/ refused");
        return Err(PartyError::Symlink {
            path: relative.to_path_buf(),
        });
    }
    if !metadata.is_file() {
        return Err(PartyError::NotRegular {
            path: relative.to_path_buf(),
        });
    }
    Ok(())
}

/// Refuses a file other than the one that was checked.
fn ensure_same_file(
    relative: &Path,
    checked: FileIdentity,
    opened: FileIdentity,
) -> Result<(), PartyError> {
    if checked != opened {
        tracing::warn!(path = %relative.display(), "file under .party/ swapped while opened");
        return Err(PartyError::Replaced {
            path: relative.to_path_buf(),
        });
    }
    Ok(())
}

fn io_error(relative: &Path, source: io::Error) -> PartyError {
    PartyError::Io {
        path: relative.to_path_buf(),
        source,
    }
}

/// A party session id is a plain name: `^[A-Za-z0-9._-]+$`, and not `.`, `..` or hidden.
fn is_valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn session_dir(session_id: &str) -> PathBuf {
    Path::new(".party").join("sessions").join(session_id)
}

/// The timestamp in a session id shaped `party-<team>-<YYYYMMDDhhmmss>`.
fn session_timestamp(id: &str) -> Option<NaiveDateTime> {
    let (_, stamp) = id.strip_prefix("party-")?.rsplit_once('-')?;
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").ok()
}

fn recorded_active_session(worktree: &Path, limits: &Limits) -> Option<String> {
    let relative = Path::new(".party").join("active-session.json");
    let object = match load_json_object(worktree, &relative, limits.max_json_bytes) {
        Ok(object) => object,
        Err(error) => {
            if !error.is_not_found() {
                tracing::warn!(%error, "active session file not usable");
            }
            return None;
        }
    };
    let id = text(&object, "session_id")?;
    if is_valid_session_id(&id) {
        Some(id)
    } else {
        tracing::warn!(id, "active session file names an invalid session id");
        None
    }
}

fn newest_session_dir(worktree: &Path) -> Option<String> {
    let sessions = Path::new(".party").join("sessions");
    let accept = |name: &str| is_valid_session_id(name) && session_timestamp(name).is_some();
    list_names(
        worktree,
        &sessions,
        EntryKind::Directory,
        accept,
        &mut Vec::new(),
    )
    .into_iter()
    .max_by_key(|name| (session_timestamp(name), name.clone()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    Directory,
}

/// Sorted names of the entries of `kind` in `root/relative` whose names `accept` takes (never
/// hidden ones). A link or an entry of another kind under such a name is reported in
/// `skipped`, never followed. A missing directory lists as empty.
fn list_names(
    root: &Path,
    relative: &Path,
    kind: EntryKind,
    accept: impl Fn(&str) -> bool,
    skipped: &mut Skipped,
) -> Vec<String> {
    match try_list_names(root, relative, kind, accept, skipped) {
        Ok(names) => names,
        Err(error) => {
            skip_unless_missing(skipped, relative, &error);
            Vec::new()
        }
    }
}

fn try_list_names(
    root: &Path,
    relative: &Path,
    kind: EntryKind,
    accept: impl Fn(&str) -> bool,
    skipped: &mut Skipped,
) -> Result<Vec<String>, PartyError> {
    let parts = normal_components(relative)?;
    check_directories(root, relative, &parts)?;
    let entries = fs::read_dir(root.join(relative)).map_err(|source| io_error(relative, source))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| io_error(relative, source))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || name.contains(['/', '\\']) || !accept(&name) {
            continue;
        }
        let path = relative.join(&name);
        let file_type = entry
            .file_type()
            .map_err(|source| io_error(&path, source))?;
        let wanted = match kind {
            EntryKind::File => file_type.is_file(),
            EntryKind::Directory => file_type.is_dir(),
        };
        if wanted {
            names.push(name);
        } else if file_type.is_symlink() {
            tracing::warn!(path = %path.display(), "link under .party/ skipped");
            skipped.push((path, "symbolic link, not followed".to_owned()));
        } else {
            let expected = match kind {
                EntryKind::File => "not a regular file",
                EntryKind::Directory => "not a directory",
            };
            skipped.push((path, expected.to_owned()));
        }
    }
    names.sort();
    Ok(names)
}

/// Records why a file was left out; a file that is simply not there (yet) is not recorded.
fn skip_unless_missing(skipped: &mut Skipped, relative: &Path, error: &PartyError) {
    if !error.is_not_found() {
        tracing::debug!(path = %relative.display(), %error, "skipped under .party/");
        skipped.push((relative.to_path_buf(), error.to_string()));
    }
}

fn has_extension(name: &str, extension: &str) -> bool {
    name.len() > extension.len() && name.ends_with(extension)
}

/// Reads and parses one JSON object file under the cap.
fn load_json_object(
    root: &Path,
    relative: &Path,
    max_bytes: u64,
) -> Result<Map<String, Value>, PartyError> {
    let bytes = read_capped(root, relative, max_bytes)?;
    let corrupt = |reason: String| PartyError::Corrupt {
        path: relative.to_path_buf(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("empty file".to_owned()));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(corrupt("not a JSON object".to_owned())),
        Err(error) => Err(corrupt(format!("invalid JSON: {error}"))),
    }
}

/// `load_json_object` for readers: any failure but a missing file is recorded in `skipped`.
fn read_json_object(
    root: &Path,
    relative: &Path,
    max_bytes: u64,
    skipped: &mut Skipped,
) -> Option<Map<String, Value>> {
    load_json_object(root, relative, max_bytes)
        .map_err(|error| skip_unless_missing(skipped, relative, &error))
        .ok()
}

fn session_state(session_id: &str, object: Map<String, Value>) -> SessionState {
    SessionState {
        id: session_id.to_owned(),
        team: text(&object, "team"),
        phase: text(&object, "phase"),
        created_at: timestamp(&object, "created_at"),
        completed_at: timestamp(&object, "completed_at"),
        approval_context: object
            .get("approval_context")
            .filter(|context| !context.is_null())
            .cloned(),
        raw: Value::Object(object),
    }
}

fn read_findings(root: &Path, dir: &Path, limits: &Limits, skipped: &mut Skipped) -> Vec<Finding> {
    let findings = dir.join("findings");
    let names = list_names(
        root,
        &findings,
        EntryKind::File,
        |name| has_extension(name, ".md"),
        skipped,
    );
    names
        .into_iter()
        .filter_map(|name| {
            let relative = findings.join(&name);
            match read_capped_with_metadata(root, &relative, limits.max_finding_bytes) {
                Ok((bytes, metadata)) => Some(Finding {
                    name,
                    content: String::from_utf8_lossy(&bytes).into_owned(),
                    modified: metadata
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_default(),
                }),
                Err(error) => {
                    skip_unless_missing(skipped, &relative, &error);
                    None
                }
            }
        })
        .collect()
}

/// The JSON objects in `dir/<sub>/*.json`, with their file stems, sorted by file name.
fn read_json_dir(
    root: &Path,
    dir: &Path,
    sub: &str,
    limits: &Limits,
    skipped: &mut Skipped,
) -> Vec<(String, Map<String, Value>)> {
    let sub_dir = dir.join(sub);
    let names = list_names(
        root,
        &sub_dir,
        EntryKind::File,
        |name| has_extension(name, ".json"),
        skipped,
    );
    names
        .into_iter()
        .filter_map(|name| {
            let object =
                read_json_object(root, &sub_dir.join(&name), limits.max_json_bytes, skipped)?;
            Some((name, object))
        })
        .collect()
}

fn read_tickets(root: &Path, dir: &Path, limits: &Limits, skipped: &mut Skipped) -> Vec<Ticket> {
    read_json_dir(root, dir, "tickets", limits, skipped)
        .into_iter()
        .map(|(name, object)| Ticket {
            id: text(&object, "id").unwrap_or_else(|| file_stem(&name)),
            kind: text(&object, "type"),
            title: text(&object, "title"),
            status: text(&object, "status"),
            phase: text(&object, "phase"),
            assignee: text(&object, "assignee"),
            parent_id: text(&object, "parentId"),
            raw: Value::Object(object),
        })
        .collect()
}

/// The approval requests of a session with their file names.
fn read_approvals(
    root: &Path,
    dir: &Path,
    limits: &Limits,
    skipped: &mut Skipped,
) -> Vec<(String, ApprovalRequest)> {
    read_json_dir(root, dir, "approvals", limits, skipped)
        .into_iter()
        .map(|(name, object)| {
            let request_id = text(&object, "request_id").unwrap_or_else(|| file_stem(&name));
            let is_tool = has_value(&object, "tool_name")
                || has_value(&object, "risk_level")
                || request_id.starts_with("APR-");
            let approval = ApprovalRequest {
                kind: if is_tool {
                    ApprovalKind::Tool
                } else {
                    ApprovalKind::Result
                },
                status: text(&object, "status").unwrap_or_else(|| "unknown".to_owned()),
                risk_level: text(&object, "risk_level"),
                tool_name: text(&object, "tool_name"),
                tool_input: object
                    .get("tool_input")
                    .filter(|input| !input.is_null())
                    .cloned(),
                summary: text(&object, "summary"),
                diff_stat: text(&object, "git_diff_stat"),
                requested_at: timestamp(&object, "requested_at"),
                decision: text(&object, "decision"),
                request_id,
                raw: Value::Object(object),
            };
            (name, approval)
        })
        .collect()
}

fn file_stem(name: &str) -> String {
    name.rsplit_once('.')
        .map_or(name, |(stem, _)| stem)
        .to_owned()
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key)?.as_str().map(str::to_owned)
}

fn has_value(object: &Map<String, Value>, key: &str) -> bool {
    object.get(key).is_some_and(|value| !value.is_null())
}

fn timestamp(object: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    let text = object.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// One line without its '\n': an event, nothing (a blank line), or why it is not an event.
fn parse_event(offset: u64, line: &[u8]) -> Result<Option<PartyEvent>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(object) = &value else {
        return Err("not a JSON object".to_owned());
    };
    Ok(Some(PartyEvent {
        offset,
        ts: timestamp(object, "ts"),
        kind: text(object, "type").unwrap_or_else(|| "unknown".to_owned()),
        raw: value,
    }))
}

/// The offset of the next '\n' from the reader's position on, reading in small chunks.
fn find_newline(file: &mut File) -> io::Result<Option<u64>> {
    let mut position = file.stream_position()?;
    let mut chunk = [0; 64 * 1024];
    loop {
        let read = file.read(&mut chunk)?;
        if read == 0 {
            return Ok(None);
        }
        if let Some(index) = chunk[..read].iter().position(|&b| b == b'\n') {
            return Ok(Some(position + index as u64));
        }
        position += read as u64;
    }
}

fn describe_exit(exit: &ExitSummary, phase: Option<&str>) -> String {
    let how = if exit.cancelled {
        "was cancelled".to_owned()
    } else if exit.timed_out {
        "timed out".to_owned()
    } else if let Some(signal) = exit.signal {
        format!("was killed by signal {signal}")
    } else if let Some(code) = exit.code {
        format!("exited with code {code}")
    } else {
        "exited".to_owned()
    };
    let error = exit
        .error
        .as_deref()
        .map(|error| format!(" ({error})"))
        .unwrap_or_default();
    let when = match phase {
        Some(phase) => format!("in phase {phase}"),
        None => "before the pipeline recorded a phase".to_owned(),
    };
    format!("the engine {how}{error} {when}, with no approval pending")
}

fn push_to_array(object: &mut Map<String, Value>, key: &str, item: Value) {
    match object.get_mut(key) {
        Some(Value::Array(items)) => items.push(item),
        _ => {
            object.insert(key.to_owned(), Value::Array(vec![item]));
        }
    }
}

/// One `events.ndjson` line, fields in the plugin's order.
fn event_line(session_id: &str, kind: &str, data: &Value, ts: &str) -> String {
    format!(
        "{{\"ts\":{},\"type\":{},\"sessionId\":{},\"data\":{}}}\n",
        json!(ts),
        json!(kind),
        json!(session_id),
        data
    )
}

/// Appends whole lines with one write, so a reader never sees a line mixed with another's.
fn append_lines(file: &mut File, relative: &Path, lines: &[String]) -> Result<(), PartyError> {
    let io_failure = |source| io_error(relative, source);
    let mut text = String::new();
    let length = file.metadata().map_err(io_failure)?.len();
    if length > 0 {
        // A writer that died mid-line left no '\n': end that line so it cannot swallow ours.
        let mut last = [0];
        file.read_exact_at(&mut last, length - 1)
            .map_err(io_failure)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.extend(lines.iter().map(String::as_str));
    let written = file.write(text.as_bytes()).map_err(io_failure)?;
    if written != text.len() {
        return Err(io_failure(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short append: {written} of {} bytes", text.len()),
        )));
    }
    Ok(())
}

/// Replaces a JSON file as the plugin does: a temporary file in the same directory, synced,
/// then renamed over the old one, so a reader sees the old file or the new one, never half.
/// The rename replaces a directory entry and follows no link, so it cannot write elsewhere.
fn write_json_atomically(
    root: &Path,
    relative: &Path,
    object: &Map<String, Value>,
) -> Result<(), PartyError> {
    let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
        return Err(PartyError::Escape {
            path: relative.to_path_buf(),
        });
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let temporary = parent.join(format!(
        ".{}.aiops-{}-{nanos}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let (mut file, _) = open_checked(
        root,
        &temporary,
        OpenOptions::new().write(true).create_new(true).mode(0o644),
    )?;
    let mut bytes = serde_json::to_vec_pretty(object).expect("a JSON map always serializes");
    bytes.push(b'\n');
    let written = file
        .write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(&temporary, source))
        .and_then(|()| {
            fs::rename(root.join(&temporary), root.join(relative))
                .map_err(|source| io_error(relative, source))
        });
    if written.is_err() {
        // Best effort: a leftover hidden temporary file is ignored by every reader.
        let _ = fs::remove_file(root.join(&temporary));
        return written;
    }
    // Make the rename durable; the new content is in place whether or not this succeeds.
    if let Err(error) = File::open(root.join(parent)).and_then(|directory| directory.sync_all()) {
        tracing::debug!(path = %parent.display(), %error, "directory sync failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::os::unix::net::UnixListener;

    const FIXTURE_SESSION: &str = "party-bugfix-20261124051937";
    const SESSION: &str = "party-bugfix-20260101120000";
    /// Planted outside the worktree; must never show up in anything read.
    const MARKER: &str = "MARKER-OUTSIDE-THE-WORKTREE-7f3a";

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/party/pending-tool-approval")
    }

    /// A scratch directory (a worktree, or a place outside one) to plant files in.
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().expect("temp dir"),
            }
        }

        fn fixture_copy() -> Self {
            let tree = Self::new();
            copy_tree(&fixture(), tree.root());
            tree
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.root().join(relative)
        }

        fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
            let path = self.path(relative);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, content).expect("write");
            path
        }

        fn append(&self, relative: &str, content: &str) {
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(self.path(relative))
                .expect("open for append");
            file.write_all(content.as_bytes()).expect("append");
        }

        /// Replaces whatever is at `relative` with a link to `target`.
        fn link(&self, relative: &str, target: &Path) {
            let path = self.path(relative);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && !m.is_symlink()) {
                fs::remove_dir_all(&path).expect("remove dir");
            } else {
                let _ = fs::remove_file(&path);
            }
            symlink(target, &path).expect("symlink");
        }
    }

    fn session_file(relative: &str) -> String {
        format!(".party/sessions/{SESSION}/{relative}")
    }

    fn fixture_file(relative: &str) -> String {
        format!(".party/sessions/{FIXTURE_SESSION}/{relative}")
    }

    fn copy_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("read fixture dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                fs::write(&target, fs::read(entry.path()).expect("read")).expect("write");
            }
        }
    }

    fn edit_json(path: &Path, edit: impl FnOnce(&mut Map<String, Value>)) {
        let mut value: Value =
            serde_json::from_slice(&fs::read(path).expect("read")).expect("json");
        edit(value.as_object_mut().expect("object"));
        fs::write(path, serde_json::to_vec_pretty(&value).expect("serialize")).expect("write");
    }

    fn count_files(dir: &Path, extension: &str) -> usize {
        fs::read_dir(dir)
            .expect("read dir")
            .filter(|entry| {
                let name = entry.as_ref().expect("entry").file_name();
                name.to_string_lossy().ends_with(extension)
            })
            .count()
    }

    fn line_count(bytes: &[u8]) -> usize {
        bytes.iter().filter(|&&b| b == b'\n').count()
    }

    /// Reads from `from` until a call makes no progress, as a poller would.
    fn read_until_idle(root: &Path, id: &str, from: u64, limits: &Limits) -> EventBatch {
        let mut all = EventBatch {
            events: Vec::new(),
            next_offset: from,
            skipped: Vec::new(),
        };
        loop {
            let batch = read_events(root, id, all.next_offset, limits).expect("read events");
            let progressed = batch.next_offset != all.next_offset;
            all.events.extend(batch.events);
            all.skipped.extend(batch.skipped);
            all.next_offset = batch.next_offset;
            if !progressed {
                return all;
            }
        }
    }

    fn assert_strictly_increasing(events: &[PartyEvent]) {
        for pair in events.windows(2) {
            assert!(
                pair[0].offset < pair[1].offset,
                "{} then {}",
                pair[0].offset,
                pair[1].offset
            );
        }
    }

    fn pending_request(snapshot: &Snapshot) -> ApprovalRequest {
        snapshot
            .approvals
            .iter()
            .find(|approval| approval.status == "pending")
            .cloned()
            .expect("a pending request")
    }

    fn event_line_for_test(kind: &str, extra: &str) -> String {
        format!(
            "{{\"ts\":\"2026-01-01T12:00:00.000Z\",\"type\":\"{kind}\",\"sessionId\":\"{SESSION}\",\"data\":{{}}{extra}}}\n"
        )
    }

    /// A place outside the worktree holding a party session whose every file carries MARKER.
    fn outside_session() -> Tree {
        let outside = Tree::new();
        outside.write(
            &session_file("session.json"),
            format!(r#"{{"id":"{SESSION}","phase":"EXECUTING","task":"{MARKER}"}}"#),
        );
        outside.write(&session_file("findings/secret.md"), MARKER);
        outside.write(
            &session_file("tickets/T-1.json"),
            format!(r#"{{"id":"{MARKER}"}}"#),
        );
        outside.write(
            &session_file("approvals/APR-1.json"),
            format!(r#"{{"request_id":"APR-1","status":"pending","tool_name":"{MARKER}"}}"#),
        );
        outside.write(
            &session_file("events.ndjson"),
            event_line_for_test(MARKER, ""),
        );
        outside.write(
            ".party/active-session.json",
            format!(r#"{{"session_id":"{SESSION}"}}"#),
        );
        outside
    }

    #[test]
    fn the_fixture_ingests_completely() {
        let root = fixture();
        let limits = Limits::default();
        let id = active_session_id(&root, None, &limits).expect("active session");
        assert_eq!(id, FIXTURE_SESSION);
        let dir = root.join(fixture_file(""));

        let snapshot = read_snapshot(&root, &id, &limits);
        assert!(snapshot.skipped.is_empty(), "{:?}", snapshot.skipped);
        let session = snapshot.session.as_ref().expect("session.json");
        assert_eq!(session.id, FIXTURE_SESSION);
        assert_eq!(session.team.as_deref(), Some("bugfix"));
        assert_eq!(session.phase.as_deref(), Some("PENDING_APPROVAL"));
        assert!(session.created_at.is_some());
        assert_eq!(session.completed_at, None);
        let context = session.approval_context.as_ref().expect("approval context");
        assert_eq!(context["previous_phase"], "EXECUTING");
        assert_eq!(session.raw["starting_phase"], "ANALYZING");

        assert_eq!(
            snapshot.findings.len(),
            count_files(&dir.join("findings"), ".md")
        );
        let analysis = snapshot
            .findings
            .iter()
            .find(|f| f.name == "analysis.md")
            .expect("analysis");
        assert!(analysis.content.contains("Root cause"));

        assert_eq!(
            snapshot.tickets.len(),
            count_files(&dir.join("tickets"), ".json")
        );
        let epic = snapshot
            .tickets
            .iter()
            .find(|t| t.id == "PRT-41FBEB")
            .expect("epic");
        assert_eq!(
            (epic.kind.as_deref(), epic.parent_id.as_deref()),
            (Some("epic"), None)
        );
        let task = snapshot
            .tickets
            .iter()
            .find(|t| t.id == "PRT-41FBEB-ANA-001")
            .expect("task");
        assert_eq!(task.parent_id.as_deref(), Some("PRT-41FBEB-ANA"));
        assert_eq!(task.assignee.as_deref(), Some("analyst"));
        assert_eq!(task.status.as_deref(), Some("DONE"));

        assert_eq!(
            snapshot.approvals.len(),
            count_files(&dir.join("approvals"), ".json")
        );
        let pending: Vec<_> = snapshot
            .approvals
            .iter()
            .filter(|a| a.status == "pending")
            .collect();
        assert_eq!(pending.len(), 1);
        let request = pending[0];
        assert_eq!(request.kind, ApprovalKind::Tool);
        assert_eq!(request.request_id, "APR-1795497578015");
        assert_eq!(request.tool_name.as_deref(), Some("Edit"));
        assert_eq!(request.risk_level.as_deref(), Some("MEDIUM"));
        assert!(
            request
                .tool_input
                .as_ref()
                .is_some_and(|input| input["file_path"].is_string())
        );
        assert!(request.requested_at.is_some());
        assert_eq!(request.decision, None);

        let log = fs::read(dir.join("events.ndjson")).expect("events");
        let batch = read_events(&root, &id, 0, &limits).expect("events");
        assert_eq!(batch.events.len(), line_count(&log));
        assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
        assert_eq!(batch.next_offset, log.len() as u64);
        assert_eq!(batch.events[0].offset, 0);
        assert_strictly_increasing(&batch.events);
        assert!(batch.events.iter().all(|event| event.ts.is_some()));
        assert_eq!(batch.events[0].kind, "pipeline_started");
        assert_eq!(batch.events.last().expect("last").kind, "phase_changed");

        let has_pending = !pending.is_empty();
        let status = derive_status(session.phase.as_deref(), has_pending, None);
        assert_eq!(status, ("awaiting_approval".to_owned(), None));
        let exited = ExitSummary {
            code: Some(0),
            signal: None,
            timed_out: false,
            cancelled: false,
            error: None,
        };
        let status = derive_status(session.phase.as_deref(), has_pending, Some(&exited));
        assert_eq!(status.0, "awaiting_approval");
    }

    #[test]
    fn events_read_in_small_windows_match_one_read() {
        let root = fixture();
        let log = fs::read(root.join(fixture_file("events.ndjson"))).expect("events");
        let longest = log
            .split(|&b| b == b'\n')
            .map(<[u8]>::len)
            .max()
            .expect("lines") as u64;
        let whole = read_events(&root, FIXTURE_SESSION, 0, &Limits::default()).expect("events");
        for window in [longest + 1, longest + 2, 2 * longest + 7] {
            let limits = Limits {
                max_events_read_bytes: window,
                ..Limits::default()
            };
            let pieces = read_until_idle(&root, FIXTURE_SESSION, 0, &limits);
            let offsets: Vec<u64> = pieces.events.iter().map(|e| e.offset).collect();
            let expected: Vec<u64> = whole.events.iter().map(|e| e.offset).collect();
            assert_eq!(offsets, expected, "window {window}");
            assert!(pieces.skipped.is_empty());
            assert_eq!(pieces.next_offset, log.len() as u64);
        }
    }

    #[test]
    fn the_active_session_falls_back_to_the_override_then_the_newest_directory() {
        let tree = Tree::fixture_copy();
        let outside = outside_session();
        let limits = Limits::default();
        fs::remove_file(tree.path(".party/active-session.json")).expect("remove");
        fs::create_dir_all(tree.path(".party/sessions/party-bugfix-20250101000000"))
            .expect("older");
        fs::create_dir_all(tree.path(".party/sessions/no-timestamp-here")).expect("odd name");
        // Newest by name, but a link: never chosen.
        tree.link(
            ".party/sessions/party-evil-20991231235959",
            &outside.path(&session_file("")),
        );

        assert_eq!(
            active_session_id(tree.root(), None, &limits).as_deref(),
            Some(FIXTURE_SESSION)
        );
        assert_eq!(
            active_session_id(tree.root(), Some("party-review-20260202020202"), &limits).as_deref(),
            Some("party-review-20260202020202")
        );
        assert_eq!(
            active_session_id(tree.root(), Some("../../etc"), &limits).as_deref(),
            Some(FIXTURE_SESSION)
        );
        assert_eq!(active_session_id(Tree::new().root(), None, &limits), None);
    }

    #[test]
    fn a_traversal_in_a_session_id_is_rejected() {
        let tree = Tree::fixture_copy();
        let limits = Limits::default();
        tree.write(
            ".party/active-session.json",
            r#"{"session_id":"../../etc"}"#,
        );
        assert_eq!(
            active_session_id(tree.root(), None, &limits).as_deref(),
            Some(FIXTURE_SESSION)
        );

        let snapshot = read_snapshot(tree.root(), "../../etc", &limits);
        assert!(snapshot.session.is_none() && snapshot.findings.is_empty());
        assert_eq!(snapshot.skipped.len(), 1);
        let error = read_events(tree.root(), "../../etc", 0, &limits).expect_err("refused");
        assert!(
            matches!(error, PartyError::InvalidSessionId { .. }),
            "{error}"
        );
        let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
        let error = apply_decision(
            tree.root(),
            "..",
            &request.request_id,
            "approve",
            None,
            "u",
            &limits,
        )
        .expect_err("refused");
        assert!(
            matches!(error, PartyError::InvalidSessionId { .. }),
            "{error}"
        );
    }

    #[test]
    fn session_ids_are_plain_names() {
        for id in [FIXTURE_SESSION, "a", "a.b_c-1", "TICKET-001"] {
            assert!(is_valid_session_id(id), "{id}");
        }
        for id in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a b", "é", "/etc",
        ] {
            assert!(!is_valid_session_id(id), "{id}");
        }
        assert!(!is_valid_session_id(&"a".repeat(256)));
    }

    #[test]
    fn a_half_written_line_waits_and_is_then_read_once() {
        let tree = Tree::new();
        let limits = Limits::default();
        let events = session_file("events.ndjson");
        let first = event_line_for_test("pipeline_started", "");
        let second = event_line_for_test("ticket_created", "");
        tree.write(&events, format!("{first}{second}"));

        let batch = read_events(tree.root(), SESSION, 0, &limits).expect("read");
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.next_offset, (first.len() + second.len()) as u64);

        let third = event_line_for_test("phase_changed", "");
        let (head, tail) = third.split_at(third.len() / 2);
        tree.append(&events, head);
        let waiting = read_events(tree.root(), SESSION, batch.next_offset, &limits).expect("read");
        assert!(waiting.events.is_empty() && waiting.skipped.is_empty());
        assert_eq!(waiting.next_offset, batch.next_offset);

        tree.append(&events, tail);
        let completed =
            read_events(tree.root(), SESSION, waiting.next_offset, &limits).expect("read");
        assert_eq!(completed.events.len(), 1);
        assert_eq!(completed.events[0].offset, batch.next_offset);
        assert_eq!(completed.events[0].kind, "phase_changed");
        assert_eq!(
            completed.next_offset,
            fs::metadata(tree.path(&events)).expect("len").len()
        );

        let again =
            read_events(tree.root(), SESSION, completed.next_offset, &limits).expect("read");
        assert!(again.events.is_empty() && again.skipped.is_empty());
        assert_eq!(again.next_offset, completed.next_offset);

        let all: Vec<PartyEvent> = batch.events.into_iter().chain(completed.events).collect();
        assert_strictly_increasing(&all);
    }

    #[test]
    fn garbage_lines_are_skipped_and_reported_around_valid_ones() {
        let tree = Tree::new();
        let lines = [
            event_line_for_test("pipeline_started", ""),
            "not json at all\n".to_owned(),
            "[1,2,3]\n".to_owned(),
            "\"just a string\"\n".to_owned(),
            "\n".to_owned(),
            "{\"type\":\"cut short\",\n".to_owned(),
            "\u{0}\u{1}binary\n".to_owned(),
            event_line_for_test("phase_changed", ""),
        ];
        let offsets: Vec<u64> = lines
            .iter()
            .scan(0, |start, line| {
                let offset = *start;
                *start += line.len() as u64;
                Some(offset)
            })
            .collect();
        tree.write(&session_file("events.ndjson"), lines.concat());

        let batch = read_events(tree.root(), SESSION, 0, &Limits::default()).expect("read");
        let kinds: Vec<&str> = batch.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["pipeline_started", "phase_changed"]);
        assert_eq!(batch.events[0].offset, offsets[0]);
        assert_eq!(batch.events[1].offset, offsets[7]);
        let skipped: Vec<u64> = batch.skipped.iter().map(|(offset, _)| *offset).collect();
        assert_eq!(
            skipped,
            [offsets[1], offsets[2], offsets[3], offsets[5], offsets[6]]
        );
        assert!(batch.skipped.iter().all(|(_, reason)| !reason.is_empty()));
        assert_eq!(batch.next_offset, lines.concat().len() as u64);
    }

    #[test]
    fn unknown_event_types_and_fields_are_kept() {
        let tree = Tree::new();
        let content = [
            event_line_for_test("brand_new_event", r#","extra":{"nested":true}"#),
            "{\"ts\":\"yesterday\",\"data\":{\"x\":1}}\n".to_owned(),
        ]
        .concat();
        tree.write(&session_file("events.ndjson"), content);

        let batch = read_events(tree.root(), SESSION, 0, &Limits::default()).expect("read");
        assert!(batch.skipped.is_empty());
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.events[0].kind, "brand_new_event");
        assert_eq!(batch.events[0].raw["extra"]["nested"], true);
        assert!(batch.events[0].ts.is_some());
        assert_eq!(batch.events[1].kind, "unknown");
        assert_eq!(batch.events[1].ts, None);
        assert_eq!(batch.events[1].raw["data"]["x"], 1);
    }

    #[test]
    fn a_line_longer_than_the_read_limit_is_skipped_not_stuck() {
        let tree = Tree::new();
        let limits = Limits {
            max_events_read_bytes: 128,
            ..Limits::default()
        };
        let events = session_file("events.ndjson");
        let short = event_line_for_test("a", "");
        let long = event_line_for_test("big", &format!(r#","blob":"{}""#, "x".repeat(1000)));
        assert!(short.len() < 128 && long.len() > 128);
        tree.write(&events, format!("{short}{}", long.trim_end()));

        let waiting = read_until_idle(tree.root(), SESSION, 0, &limits);
        assert_eq!(waiting.events.len(), 1);
        assert!(
            waiting.skipped.is_empty(),
            "an unfinished long line is not garbage yet"
        );
        assert_eq!(waiting.next_offset, short.len() as u64);

        tree.append(&events, &format!("\n{short}"));
        let done = read_until_idle(tree.root(), SESSION, waiting.next_offset, &limits);
        assert_eq!(done.events.len(), 1);
        assert_eq!(
            done.events[0].offset,
            long.len() as u64 + short.len() as u64
        );
        assert_eq!(done.skipped.len(), 1);
        assert_eq!(done.skipped[0].0, short.len() as u64);
        assert!(
            done.skipped[0].1.contains("longer"),
            "{}",
            done.skipped[0].1
        );
        assert_eq!(
            done.next_offset,
            fs::metadata(tree.path(&events)).expect("len").len()
        );
    }

    #[test]
    fn a_truncated_or_removed_log_is_reported_and_the_offset_kept() {
        let tree = Tree::new();
        let limits = Limits::default();
        let events = session_file("events.ndjson");
        assert_eq!(
            read_events(tree.root(), SESSION, 0, &limits)
                .expect("missing")
                .next_offset,
            0
        );
        tree.write(&events, event_line_for_test("a", "").repeat(3));
        let batch = read_events(tree.root(), SESSION, 0, &limits).expect("read");

        tree.write(&events, event_line_for_test("b", ""));
        let after = read_events(tree.root(), SESSION, batch.next_offset, &limits).expect("read");
        assert!(after.events.is_empty());
        assert_eq!(after.next_offset, batch.next_offset);
        assert_eq!(after.skipped.len(), 1);
        assert!(
            after.skipped[0].1.contains("truncated"),
            "{}",
            after.skipped[0].1
        );

        fs::remove_file(tree.path(&events)).expect("remove");
        let gone = read_events(tree.root(), SESSION, batch.next_offset, &limits).expect("read");
        assert_eq!((gone.events.len(), gone.skipped.len()), (0, 1));
        assert_eq!(gone.next_offset, batch.next_offset);
    }

    #[test]
    fn read_capped_rejects_paths_that_leave_the_root() {
        let tree = Tree::new();
        tree.write("ok.txt", "fine");
        tree.write("a/ok.txt", "fine");
        assert_eq!(
            read_capped(tree.root(), Path::new("ok.txt"), 10).expect("read"),
            b"fine"
        );
        let absolute = tree.path("ok.txt");
        for bad in [
            absolute.as_path(),
            Path::new("../ok.txt"),
            Path::new("a/../ok.txt"),
            Path::new("./ok.txt"),
            Path::new(""),
        ] {
            let error = read_capped(tree.root(), bad, 10).expect_err("refused");
            assert!(
                matches!(error, PartyError::Escape { .. }),
                "{}: {error}",
                bad.display()
            );
        }
    }

    #[test]
    fn read_capped_refuses_links_in_any_component() {
        let tree = Tree::new();
        let outside = Tree::new();
        let secret = outside.write("d/secret.txt", MARKER);
        tree.link("link.txt", &secret);
        tree.link("dirlink", &outside.path("d"));
        tree.write("real/ok.txt", "ok");
        tree.link("real/inner", &outside.path("d"));

        for (relative, refused) in [
            ("link.txt", "link.txt"),
            ("dirlink/secret.txt", "dirlink"),
            ("real/inner/secret.txt", "real/inner"),
        ] {
            let error = read_capped(tree.root(), Path::new(relative), 1000).expect_err("refused");
            match error {
                PartyError::Symlink { path } => assert_eq!(path, Path::new(refused)),
                other => panic!("{relative}: {other}"),
            }
        }
    }

    #[test]
    fn the_open_itself_refuses_a_link_in_the_last_component() {
        // Checks the O_NOFOLLOW value for this architecture, without the lstat in front.
        let tree = Tree::new();
        let outside = Tree::new();
        tree.link("link.txt", &outside.write("secret.txt", MARKER));
        let error = open_no_follow(
            &tree.path("link.txt"),
            Path::new("link.txt"),
            OpenOptions::new().read(true),
        )
        .expect_err("refused");
        assert!(matches!(error, PartyError::Symlink { .. }), "{error}");
    }

    #[test]
    fn a_file_swapped_for_a_link_while_opening_is_refused() {
        let tree = Tree::new();
        let outside = Tree::new();
        let secret = outside.write("secret.txt", MARKER);
        let path = tree.write("f.json", "{}");
        let error = open_checked_with_race_windows(
            tree.root(),
            Path::new("f.json"),
            OpenOptions::new().read(true),
            |at| {
                if at != CheckPoint::FileChecked {
                    return;
                }
                fs::remove_file(&path).expect("remove");
                symlink(&secret, &path).expect("symlink");
            },
        )
        .expect_err("refused");
        assert!(matches!(error, PartyError::Symlink { .. }), "{error}");
    }

    #[test]
    fn a_file_swapped_for_another_file_while_opening_is_refused() {
        let tree = Tree::new();
        let path = tree.write("f.json", "{}");
        let other = tree.write("other.json", MARKER);
        let error = open_checked_with_race_windows(
            tree.root(),
            Path::new("f.json"),
            OpenOptions::new().read(true),
            |at| {
                if at != CheckPoint::FileChecked {
                    return;
                }
                fs::rename(&other, &path).expect("rename");
            },
        )
        .expect_err("refused");
        assert!(matches!(error, PartyError::Replaced { .. }), "{error}");
    }

    #[test]
    fn a_file_swapped_for_a_directory_while_opening_is_refused() {
        let tree = Tree::new();
        let path = tree.write("f.json", "{}");
        let error = open_checked_with_race_windows(
            tree.root(),
            Path::new("f.json"),
            OpenOptions::new().read(true),
            |at| {
                if at != CheckPoint::FileChecked {
                    return;
                }
                fs::remove_file(&path).expect("remove");
                fs::create_dir(&path).expect("mkdir");
            },
        )
        .expect_err("refused");
        assert!(matches!(error, PartyError::NotRegular { .. }), "{error}");
    }

    #[test]
    fn a_parent_swapped_for_a_link_while_opening_is_refused() {
        // Before the file is checked (so the file's identity matches) and after it is.
        for moment in [CheckPoint::DirectoriesChecked, CheckPoint::FileChecked] {
            let tree = Tree::new();
            let outside = Tree::new();
            outside.write("d/f.json", MARKER);
            tree.write("d/f.json", "{}");
            let error = open_checked_with_race_windows(
                tree.root(),
                Path::new("d/f.json"),
                OpenOptions::new().read(true),
                |at| {
                    if at == moment {
                        fs::rename(tree.path("d"), tree.path("d-old")).expect("rename");
                        symlink(outside.path("d"), tree.path("d")).expect("symlink");
                    }
                },
            )
            .expect_err("read through a swapped parent");
            assert!(
                matches!(error, PartyError::Replaced { .. }),
                "{moment:?}: {error}"
            );
        }
    }

    #[test]
    fn rechecking_directories_notices_a_swap() {
        let tree = Tree::new();
        let outside = Tree::new();
        tree.write("d/f.json", "{}");
        let parts = [OsStr::new("d")];
        let checked = check_directories(tree.root(), Path::new("d/f.json"), &parts).expect("check");
        recheck_directories(&checked).expect("unchanged");

        fs::rename(tree.path("d"), tree.path("d-old")).expect("rename");
        symlink(outside.root(), tree.path("d")).expect("symlink");
        assert!(matches!(
            recheck_directories(&checked),
            Err(PartyError::Replaced { .. })
        ));

        fs::remove_file(tree.path("d")).expect("remove link");
        fs::create_dir(tree.path("d")).expect("another directory");
        assert!(matches!(
            recheck_directories(&checked),
            Err(PartyError::Replaced { .. })
        ));
    }

    #[test]
    fn read_capped_refuses_what_is_not_a_regular_file() {
        let tree = Tree::new();
        fs::create_dir(tree.path("dir.json")).expect("mkdir");
        let _socket = UnixListener::bind(tree.path("sock.json")).expect("socket");
        tree.write("file/inner.json", "{}");
        tree.write("plain", "x");
        for relative in ["dir.json", "sock.json"] {
            let error = read_capped(tree.root(), Path::new(relative), 100).expect_err("refused");
            assert!(
                matches!(error, PartyError::NotRegular { .. }),
                "{relative}: {error}"
            );
        }
        let error = read_capped(tree.root(), Path::new("plain/x.json"), 100).expect_err("refused");
        assert!(matches!(error, PartyError::NotDirectory { .. }), "{error}");
    }

    #[test]
    fn read_capped_refuses_files_over_the_cap() {
        let tree = Tree::new();
        tree.write("big.md", vec![b'a'; 5000]);
        // Measured before reading: the real size, not the cap plus one.
        let error = read_capped(tree.root(), Path::new("big.md"), 10).expect_err("refused");
        assert!(
            matches!(
                error,
                PartyError::TooLarge {
                    size: 5000,
                    max: 10,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(
            read_capped(tree.root(), Path::new("big.md"), 5000)
                .expect("read")
                .len(),
            5000
        );
    }

    /// A file that keeps growing; reading far past the cap is a failure of the test.
    struct Growing {
        delivered: usize,
    }

    impl Read for Growing {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            assert!(self.delivered < 1000, "read far past the cap");
            let n = buffer.len().min(4);
            buffer[..n].fill(b'a');
            self.delivered += n;
            Ok(n)
        }
    }

    #[test]
    fn reading_stops_one_byte_past_the_cap_even_when_the_file_keeps_growing() {
        let mut growing = Growing { delivered: 0 };
        let error = read_at_most(&mut growing, 10, Path::new("growing")).expect_err("refused");
        assert!(growing.delivered <= 12, "read {} bytes", growing.delivered);
        assert!(
            matches!(
                error,
                PartyError::TooLarge {
                    size: 11,
                    max: 10,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(
            read_at_most(&b"0123456789"[..], 10, Path::new("x"))
                .expect("read")
                .len(),
            10
        );
    }

    #[test]
    fn listings_skip_links_other_kinds_and_odd_names() {
        let tree = Tree::new();
        let outside = Tree::new();
        let findings = session_file("findings");
        tree.write(&format!("{findings}/a.md"), "a");
        tree.write(&format!("{findings}/c.md"), "c");
        tree.link(&format!("{findings}/b.md"), &outside.write("b.md", MARKER));
        fs::create_dir(tree.path(&format!("{findings}/sub.md"))).expect("mkdir");
        tree.write(&format!("{findings}/.hidden.md"), "h");
        tree.write(&format!("{findings}/.md"), "h");
        tree.write(&format!("{findings}/notes.txt"), "n");

        let mut skipped = Vec::new();
        let names = list_names(
            tree.root(),
            Path::new(&findings),
            EntryKind::File,
            |n| has_extension(n, ".md"),
            &mut skipped,
        );
        assert_eq!(names, ["a.md", "c.md"]);
        let mut reported: Vec<String> = skipped
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        reported.sort();
        assert_eq!(reported, ["b.md", "sub.md"]);
    }

    #[test]
    fn a_linked_finding_is_skipped() {
        let tree = Tree::new();
        let outside = Tree::new();
        tree.write(
            &session_file("session.json"),
            format!(r#"{{"id":"{SESSION}","phase":"ANALYZING"}}"#),
        );
        tree.write(&session_file("findings/ok.md"), "# ok");
        tree.link(
            &session_file("findings/evil.md"),
            &outside.write("secret.md", MARKER),
        );

        let snapshot = read_snapshot(tree.root(), SESSION, &Limits::default());
        let names: Vec<&str> = snapshot.findings.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ok.md"]);
        assert!(
            snapshot
                .skipped
                .iter()
                .any(|(path, _)| path.ends_with("findings/evil.md"))
        );
        assert!(!format!("{snapshot:?}").contains(MARKER));
    }

    #[test]
    fn a_linked_session_directory_reads_nothing_outside() {
        let tree = Tree::new();
        let outside = outside_session();
        let limits = Limits::default();
        tree.link(
            session_file("").trim_end_matches('/'),
            &outside.path(&session_file("")),
        );

        assert_eq!(active_session_id(tree.root(), None, &limits), None);
        let snapshot = read_snapshot(tree.root(), SESSION, &limits);
        assert!(snapshot.session.is_none());
        assert!(
            snapshot.findings.is_empty()
                && snapshot.tickets.is_empty()
                && snapshot.approvals.is_empty()
        );
        assert!(!snapshot.skipped.is_empty());
        assert!(!format!("{snapshot:?}").contains(MARKER));
        let error = read_events(tree.root(), SESSION, 0, &limits).expect_err("refused");
        assert!(matches!(error, PartyError::Symlink { .. }), "{error}");
        assert!(!error.to_string().contains(MARKER));
    }

    #[test]
    fn a_linked_party_directory_reads_nothing_outside() {
        let tree = Tree::new();
        let outside = outside_session();
        let limits = Limits::default();
        tree.link(".party", &outside.path(".party"));

        assert_eq!(active_session_id(tree.root(), None, &limits), None);
        let snapshot = read_snapshot(tree.root(), SESSION, &limits);
        assert!(snapshot.session.is_none() && snapshot.findings.is_empty());
        assert!(!format!("{snapshot:?}").contains(MARKER));
        let error = read_events(tree.root(), SESSION, 0, &limits).expect_err("refused");
        assert!(matches!(error, PartyError::Symlink { .. }), "{error}");

        let outside_request = ApprovalRequest {
            request_id: "APR-1".to_owned(),
            kind: ApprovalKind::Tool,
            status: "pending".to_owned(),
            risk_level: None,
            tool_name: None,
            tool_input: None,
            summary: None,
            diff_stat: None,
            requested_at: None,
            decision: None,
            raw: Value::Null,
        };
        let before = fs::read(outside.path(&session_file("approvals/APR-1.json"))).expect("read");
        apply_decision(
            tree.root(),
            SESSION,
            &outside_request.request_id,
            "approve",
            None,
            "u",
            &limits,
        )
        .expect_err("refused");
        assert_eq!(
            fs::read(outside.path(&session_file("approvals/APR-1.json"))).expect("read"),
            before
        );
    }

    #[test]
    fn an_oversized_finding_is_skipped_and_the_others_kept() {
        let tree = Tree::new();
        let limits = Limits {
            max_finding_bytes: 100,
            ..Limits::default()
        };
        tree.write(&session_file("findings/a.md"), "a");
        tree.write(&session_file("findings/big.md"), "b".repeat(101));
        tree.write(&session_file("findings/z.md"), "z");

        let snapshot = read_snapshot(tree.root(), SESSION, &limits);
        let names: Vec<&str> = snapshot.findings.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.md", "z.md"]);
        let (path, reason) = &snapshot.skipped[0];
        assert!(path.ends_with("findings/big.md"));
        assert!(reason.contains("over the limit"), "{reason}");
        assert_eq!(snapshot.skipped.len(), 1);
    }

    #[test]
    fn corrupt_empty_and_half_written_json_is_skipped() {
        let tree = Tree::new();
        tree.write(&session_file("session.json"), r#"{"id":"x","pha"#);
        tree.write(
            &session_file("tickets/good.json"),
            r#"{"id":"T-1","type":"task"}"#,
        );
        tree.write(&session_file("tickets/corrupt.json"), r#"{"id": "T-2", "#);
        tree.write(&session_file("tickets/empty.json"), "");
        tree.write(&session_file("tickets/array.json"), "[1]");
        tree.write(
            &session_file("tickets/no-id.json"),
            r#"{"title":"named by its file"}"#,
        );
        tree.write(&session_file("approvals/APR-2.json"), "  \n");
        tree.write(
            &session_file("approvals/APR-3.json"),
            r#"{"request_id":"APR-3","status":"pending"}"#,
        );

        let snapshot = read_snapshot(tree.root(), SESSION, &Limits::default());
        assert!(snapshot.session.is_none());
        let ids: Vec<&str> = snapshot.tickets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["T-1", "no-id"]);
        let approvals: Vec<&str> = snapshot
            .approvals
            .iter()
            .map(|a| a.request_id.as_str())
            .collect();
        assert_eq!(approvals, ["APR-3"]);
        assert_eq!(snapshot.approvals[0].kind, ApprovalKind::Tool);
        let mut skipped: Vec<String> = snapshot
            .skipped
            .iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        skipped.sort();
        assert_eq!(
            skipped,
            [
                "APR-2.json",
                "array.json",
                "corrupt.json",
                "empty.json",
                "session.json"
            ]
        );
    }

    #[test]
    fn derive_status_follows_the_table() {
        let exit = |code: i32| ExitSummary {
            code: Some(code),
            signal: None,
            timed_out: false,
            cancelled: false,
            error: None,
        };
        let (ok, crash) = (exit(0), exit(1));
        let cases: [(Option<&str>, bool, Option<&ExitSummary>, &str); 18] = [
            (None, false, None, "running"),
            (Some("EXECUTING"), false, None, "running"),
            (Some("EXECUTING"), true, None, "running"),
            (Some("PENDING_APPROVAL"), true, None, "awaiting_approval"),
            (Some("PENDING_APPROVAL"), false, None, "awaiting_approval"),
            (Some("AWAITING_APPROVAL"), true, None, "awaiting_approval"),
            (Some("AWAITING_APPROVAL"), false, None, "running"),
            (Some("DONE"), false, None, "done"),
            (Some("DONE"), false, Some(&crash), "done"),
            (Some("FAILED"), false, Some(&ok), "failed"),
            (Some("ROLLED_BACK"), false, Some(&ok), "rolled_back"),
            (
                Some("PENDING_APPROVAL"),
                true,
                Some(&ok),
                "awaiting_approval",
            ),
            (
                Some("AWAITING_APPROVAL"),
                true,
                Some(&ok),
                "awaiting_approval",
            ),
            (Some("EXECUTING"), true, Some(&ok), "awaiting_approval"),
            (Some("EXECUTING"), false, Some(&ok), "failed"),
            (Some("AWAITING_APPROVAL"), false, Some(&ok), "failed"),
            (Some("PENDING_APPROVAL"), false, Some(&crash), "failed"),
            (None, false, Some(&crash), "failed"),
        ];
        for (phase, pending, exited, expected) in cases {
            let (status, reason) = derive_status(phase, pending, exited);
            assert_eq!(
                status, expected,
                "{phase:?} pending={pending} exited={exited:?}"
            );
            assert_eq!(
                reason.is_some(),
                status == "failed",
                "{phase:?}: {reason:?}"
            );
        }

        let reason =
            |exit: ExitSummary, phase| derive_status(phase, false, Some(&exit)).1.expect("reason");
        let text = reason(exit(1), Some("EXECUTING"));
        assert!(
            text.contains("code 1") && text.contains("EXECUTING"),
            "{text}"
        );
        let killed = ExitSummary {
            code: None,
            signal: Some(9),
            ..exit(0)
        };
        assert!(reason(killed, Some("REVIEWING")).contains("signal 9"));
        let max_turns = ExitSummary {
            error: Some("error_max_turns".to_owned()),
            ..exit(0)
        };
        assert!(reason(max_turns, Some("PLANNING")).contains("error_max_turns"));
        assert!(
            reason(
                ExitSummary {
                    timed_out: true,
                    ..exit(0)
                },
                Some("PLANNING")
            )
            .contains("timed out")
        );
        assert!(
            reason(
                ExitSummary {
                    cancelled: true,
                    ..exit(0)
                },
                Some("PLANNING")
            )
            .contains("cancelled")
        );
        assert!(reason(exit(0), None).contains("before the pipeline"));

        for phase in ["DONE", "ROLLED_BACK", "FAILED"] {
            assert!(is_terminal_phase(phase), "{phase}");
        }
        for phase in [
            "IDLE",
            "EXECUTING",
            "APPROVED",
            "REJECTED",
            "REVISION",
            "AWAITING_APPROVAL",
            "PENDING_APPROVAL",
            "done",
        ] {
            assert!(!is_terminal_phase(phase), "{phase}");
        }
    }

    #[test]
    fn approving_the_fixture_tool_request_updates_the_files_like_the_hook() {
        let tree = Tree::fixture_copy();
        let root = tree.root();
        let limits = Limits::default();
        edit_json(&tree.path(&fixture_file("session.json")), |session| {
            session.insert("x_future_field".into(), json!({ "keep": true }));
        });
        let approval_file = tree.path(&fixture_file("approvals/APR-1795497578015.json"));
        edit_json(&approval_file, |approval| {
            approval.insert("x_extra".into(), json!([1, 2]));
        });
        let before = read_snapshot(root, FIXTURE_SESSION, &limits);
        let history_before = before.session.as_ref().expect("session").raw["phase_history"]
            .as_array()
            .expect("history")
            .len();
        let events_before = read_events(root, FIXTURE_SESSION, 0, &limits).expect("events");
        let request = pending_request(&before);

        apply_decision(
            root,
            FIXTURE_SESSION,
            &request.request_id,
            "approve",
            Some("looks good"),
            "alice@example.com",
            &limits,
        )
        .expect("applied");

        let after = read_snapshot(root, FIXTURE_SESSION, &limits);
        assert!(after.skipped.is_empty(), "{:?}", after.skipped);
        let decided = after
            .approvals
            .iter()
            .find(|a| a.request_id == request.request_id)
            .expect("request");
        assert_eq!(decided.status, "decided");
        assert_eq!(decided.decision.as_deref(), Some("approve"));
        assert_eq!(decided.raw["decision_comment"], "looks good");
        assert_eq!(decided.raw["decided_by"], "alice@example.com");
        let decided_at = decided.raw["decided_at"].as_str().expect("decided_at");
        assert!(
            DateTime::parse_from_rfc3339(decided_at).is_ok(),
            "{decided_at}"
        );
        assert_eq!(decided.raw["x_extra"], json!([1, 2]));
        assert_eq!(decided.raw["tool_input"], request.raw["tool_input"]);
        assert_eq!(decided.raw["retries"], 0);

        let session = after.session.as_ref().expect("session");
        assert_eq!(session.phase.as_deref(), Some("EXECUTING"));
        assert!(session.approval_context.is_none());
        assert!(session.raw.get("approval_context").is_none());
        assert_eq!(session.raw["x_future_field"]["keep"], true);
        assert_eq!(session.raw["starting_phase"], "ANALYZING");
        assert_eq!(session.raw["members"].as_array().expect("members").len(), 4);
        let grants = session.raw["approval_grants"].as_array().expect("grants");
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0]["request_id"], "APR-1795497578015");
        assert_eq!(grants[0]["tool_name"], "Edit");
        assert_eq!(grants[0]["fingerprint"], request.raw["fingerprint"]);
        assert_eq!(grants[0]["uses_left"], 1);
        let granted =
            DateTime::parse_from_rfc3339(grants[0]["granted_at"].as_str().expect("granted_at"))
                .expect("time");
        let expires =
            DateTime::parse_from_rfc3339(grants[0]["expires_at"].as_str().expect("expires_at"))
                .expect("time");
        assert_eq!(
            expires - granted,
            TimeDelta::minutes(GRANT_LIFETIME_MINUTES)
        );
        let history = session.raw["phase_history"].as_array().expect("history");
        assert_eq!(history.len(), history_before + 1);
        assert_eq!(history.last().expect("entry")["phase"], "EXECUTING");

        let new =
            read_events(root, FIXTURE_SESSION, events_before.next_offset, &limits).expect("events");
        assert!(new.skipped.is_empty(), "{:?}", new.skipped);
        let kinds: Vec<&str> = new.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["decision_made", "phase_changed"]);
        let made = &new.events[0].raw;
        assert_eq!(made["sessionId"], FIXTURE_SESSION);
        assert_eq!(made["data"]["request_id"], "APR-1795497578015");
        assert_eq!(made["data"]["decision"], "approve");
        assert_eq!(made["data"]["comment"], "looks good");
        assert_eq!(made["data"]["decided_by"], "alice@example.com");
        let changed = &new.events[1].raw["data"];
        assert_eq!(
            (changed["from"].as_str(), changed["to"].as_str()),
            (Some("PENDING_APPROVAL"), Some("EXECUTING"))
        );
        assert!(
            changed["reason"]
                .as_str()
                .expect("reason")
                .contains("APR-1795497578015")
        );
        assert!(new.events.iter().all(|e| e.ts.is_some()));
        let all = read_events(root, FIXTURE_SESSION, 0, &limits).expect("events");
        assert_eq!(all.events.len(), events_before.events.len() + 2);
        assert_strictly_increasing(&all.events);

        assert_eq!(
            derive_status(session.phase.as_deref(), false, None).0,
            "running"
        );
        for dir in ["approvals", ""] {
            let leftovers: Vec<_> = fs::read_dir(tree.path(&fixture_file(dir)))
                .expect("dir")
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }

        let error = apply_decision(
            root,
            FIXTURE_SESSION,
            &request.request_id,
            "approve",
            None,
            "bob",
            &limits,
        )
        .expect_err("decided already");
        assert!(
            matches!(error, PartyError::NotPending { ref status, .. } if status == "decided"),
            "{error}"
        );
        let unchanged = read_events(root, FIXTURE_SESSION, 0, &limits).expect("events");
        assert_eq!(unchanged.events.len(), all.events.len());
    }

    #[test]
    fn a_result_decision_moves_the_phase_out_of_awaiting_approval() {
        for (decision, phase) in [
            ("approve", "APPROVED"),
            ("reject", "REJECTED"),
            ("revise", "REVISION"),
        ] {
            let tree = Tree::new();
            let limits = Limits::default();
            tree.write(
                &session_file("session.json"),
                format!(r#"{{"id":"{SESSION}","phase":"AWAITING_APPROVAL","custom":1}}"#),
            );
            tree.write(
                &session_file("approvals/20260101T120500.json"),
                format!(r#"{{"session_id":"{SESSION}","summary":"null guard added","git_diff_stat":"1 file changed","requested_at":"2026-01-01T12:05:00.000Z","status":"pending"}}"#),
            );
            let snapshot = read_snapshot(tree.root(), SESSION, &limits);
            let request = pending_request(&snapshot);
            assert_eq!(request.kind, ApprovalKind::Result);
            assert_eq!(request.request_id, "20260101T120500");
            assert_eq!(request.summary.as_deref(), Some("null guard added"));
            assert_eq!(request.diff_stat.as_deref(), Some("1 file changed"));
            assert_eq!(
                derive_status(Some("AWAITING_APPROVAL"), true, None).0,
                "awaiting_approval"
            );

            apply_decision(
                tree.root(),
                SESSION,
                &request.request_id,
                decision,
                None,
                "carol",
                &limits,
            )
            .expect("applied");

            let after = read_snapshot(tree.root(), SESSION, &limits);
            let session = after.session.expect("session");
            assert_eq!(session.phase.as_deref(), Some(phase));
            assert_eq!(session.raw["custom"], 1);
            assert!(session.raw.get("approval_grants").is_none());
            assert_eq!(after.approvals[0].status, "decided");
            assert_eq!(after.approvals[0].decision.as_deref(), Some(decision));
            assert_eq!(after.approvals[0].raw["decision_comment"], "");
            let events = read_events(tree.root(), SESSION, 0, &limits).expect("events");
            let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(kinds, ["decision_made", "phase_changed"]);
            assert_eq!(events.events[1].raw["data"]["from"], "AWAITING_APPROVAL");
            assert_eq!(events.events[1].raw["data"]["to"], phase);
        }
    }

    #[test]
    fn a_decision_moves_the_phase_only_out_of_the_waiting_phase() {
        let tree = Tree::new();
        let limits = Limits::default();
        tree.write(
            &session_file("session.json"),
            format!(r#"{{"id":"{SESSION}","phase":"REVIEWING"}}"#),
        );
        tree.write(
            &session_file("approvals/20260101T120500.json"),
            format!(r#"{{"session_id":"{SESSION}","summary":"s","status":"pending"}}"#),
        );
        let request = pending_request(&read_snapshot(tree.root(), SESSION, &limits));

        apply_decision(
            tree.root(),
            SESSION,
            &request.request_id,
            "approve",
            None,
            "erin",
            &limits,
        )
        .expect("applied");

        let after = read_snapshot(tree.root(), SESSION, &limits);
        let session = after.session.expect("session");
        assert_eq!(session.phase.as_deref(), Some("REVIEWING"));
        assert!(session.raw.get("phase_history").is_none());
        assert_eq!(after.approvals[0].status, "decided");
        let events = read_events(tree.root(), SESSION, 0, &limits).expect("events");
        let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["decision_made"]);
        assert_eq!(events.events[0].raw["data"]["phase"], "REVIEWING");
    }

    #[test]
    fn a_decision_refuses_linked_files_and_changes_nothing() {
        let limits = Limits::default();
        for linked in ["session.json", "events.ndjson"] {
            let tree = Tree::fixture_copy();
            let outside = Tree::new();
            let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
            let target = outside.write(
                "target",
                fs::read(tree.path(&fixture_file(linked))).expect("read"),
            );
            tree.link(&fixture_file(linked), &target);
            let approval_before =
                fs::read(tree.path(&fixture_file("approvals/APR-1795497578015.json")))
                    .expect("read");

            let error = apply_decision(
                tree.root(),
                FIXTURE_SESSION,
                &request.request_id,
                "approve",
                None,
                "u",
                &limits,
            )
            .expect_err("refused");
            assert!(
                matches!(error, PartyError::Symlink { .. }),
                "{linked}: {error}"
            );
            assert_eq!(
                fs::read(&target).expect("read"),
                fs::read(fixture().join(fixture_file(linked))).expect("read")
            );
            assert_eq!(
                fs::read(tree.path(&fixture_file("approvals/APR-1795497578015.json")))
                    .expect("read"),
                approval_before
            );
        }

        let tree = Tree::fixture_copy();
        let outside = Tree::new();
        let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
        let approval = fixture_file("approvals/APR-1795497578015.json");
        let target = outside.write(
            "approval.json",
            fs::read(tree.path(&approval)).expect("read"),
        );
        tree.link(&approval, &target);
        let error = apply_decision(
            tree.root(),
            FIXTURE_SESSION,
            &request.request_id,
            "approve",
            None,
            "u",
            &limits,
        )
        .expect_err("refused");
        assert!(
            matches!(error, PartyError::RequestNotFound { .. }),
            "{error}"
        );
        assert_eq!(
            fs::read(&target).expect("read"),
            fs::read(fixture().join(&approval)).expect("read")
        );
    }

    #[test]
    fn a_decision_checks_its_words_and_its_session() {
        let tree = Tree::fixture_copy();
        let limits = Limits::default();
        let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
        let error = apply_decision(
            tree.root(),
            FIXTURE_SESSION,
            &request.request_id,
            "maybe",
            None,
            "u",
            &limits,
        )
        .expect_err("refused");
        assert!(
            matches!(error, PartyError::InvalidDecision { .. }),
            "{error}"
        );

        edit_json(
            &tree.path(&fixture_file("approvals/APR-1795497578015.json")),
            |approval| {
                approval.insert("session_id".into(), json!("party-other-20260101000000"));
            },
        );
        let error = apply_decision(
            tree.root(),
            FIXTURE_SESSION,
            &request.request_id,
            "approve",
            None,
            "u",
            &limits,
        )
        .expect_err("refused");
        assert!(matches!(error, PartyError::WrongSession { .. }), "{error}");
        let still = read_snapshot(tree.root(), FIXTURE_SESSION, &limits);
        assert_eq!(
            still.session.expect("session").phase.as_deref(),
            Some("PENDING_APPROVAL")
        );
    }

    #[test]
    fn a_decision_after_a_torn_event_line_still_lands_on_its_own_lines() {
        let tree = Tree::fixture_copy();
        let limits = Limits::default();
        let log = fixture_file("events.ndjson");
        let torn_at = fs::metadata(tree.path(&log)).expect("len").len();
        tree.append(
            &log,
            r#"{"ts":"2026-11-24T05:19:39.000Z","type":"agent_comp"#,
        );
        let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));

        apply_decision(
            tree.root(),
            FIXTURE_SESSION,
            &request.request_id,
            "reject",
            Some("too risky"),
            "dave",
            &limits,
        )
        .expect("applied");

        let batch = read_events(tree.root(), FIXTURE_SESSION, torn_at, &limits).expect("events");
        assert_eq!(batch.skipped.len(), 1);
        assert_eq!(batch.skipped[0].0, torn_at);
        let kinds: Vec<&str> = batch.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["decision_made", "phase_changed"]);
        assert_eq!(batch.events[0].raw["data"]["comment"], "too risky");
        let session = read_snapshot(tree.root(), FIXTURE_SESSION, &limits)
            .session
            .expect("session");
        assert!(
            session.raw.get("approval_grants").is_none(),
            "a rejection grants nothing"
        );
        assert_eq!(session.phase.as_deref(), Some("EXECUTING"));
    }
}
