//! Applies a human's decision to `.party/` the way the plugin's prompt hook would: the request
//! and the session rewritten atomically, the events appended whole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::files::{check_directories, io_error, open_checked};
use super::model::ApprovalKind;
use super::read::{
    is_valid_session_id, load_json_object, read_approvals, session_dir, text, timestamp,
};
use super::status::HOOK_IGNORES_AFTER_HOURS;
use super::{Limits, PartyError};
use crate::model::{ApprovalStatus, Decision};

/// How long a tool approval granted by `apply_decision` stays usable, as in the plugin's hook.
pub(super) const GRANT_LIFETIME_MINUTES: i64 = 10;

/// Revisions of a result the plugin allows when `fix_loop.max_attempts` does not say.
const MAX_REVISIONS: u64 = 3;

/// Applies a human decision to the files as the plugin's UserPromptSubmit hook would: for
/// tool requests in sessions the hook ignores (created more than 4 hours ago), and for every
/// result approval (no plugin code decides those; the platform owns them). The request is re-read from disk
/// and must still be pending. Tool approval: the request is marked decided, the session goes
/// back to `approval_context.previous_phase`, `approval_context` is removed and an approve adds
/// a one-use `approval_grants` entry valid for 10 minutes (so resume right after). Result
/// approval: the request is marked decided and the session moves from AWAITING_APPROVAL to
/// APPROVED, REJECTED or REVISION (a revise counts in `fix_loop.attempt`; one past
/// `fix_loop.max_attempts` goes to FAILED, as the plugin's state machine does). Then `decision_made` and `phase_changed` events are
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
    let decision: Decision = decision.parse().map_err(|_| PartyError::InvalidDecision {
        decision: decision.to_owned(),
    })?;
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

    let decided = AppliedDecision {
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
    if current.status != ApprovalStatus::Pending.as_str() {
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
struct AppliedDecision<'a> {
    request_id: &'a str,
    decision: Decision,
    comment: &'a str,
    decided_by: &'a str,
    at: DateTime<Utc>,
}

/// The phase move a decision made.
struct PhaseChange {
    from: &'static str,
    to: String,
}

impl AppliedDecision<'_> {
    /// JavaScript's `toISOString()` format, as in the plugin's files.
    fn at_text(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn reason(&self) -> String {
        format!("approval decision: {} ({})", self.decision, self.request_id)
    }

    /// Marks the request decided, as the plugin's `decideApprovalRequest` does.
    fn record_on(&self, approval: &mut Map<String, Value>) {
        approval.insert("status".into(), json!(ApprovalStatus::Decided));
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
                if self.decision == Decision::Approve {
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
                    Decision::Approve => "APPROVED",
                    Decision::Reject => "REJECTED",
                    Decision::Revise if count_revision(session) => "REVISION",
                    // As the plugin's state machine: past `fix_loop.max_attempts`, no REVISION.
                    Decision::Revise => "FAILED",
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

/// Counts one more revision in `fix_loop.attempt`; false when that is over `max_attempts`.
fn count_revision(session: &mut Map<String, Value>) -> bool {
    let fix_loop = session
        .entry("fix_loop")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(fix_loop) = fix_loop else {
        return true;
    };
    let attempt = fix_loop.get("attempt").and_then(Value::as_u64).unwrap_or(0) + 1;
    let max = fix_loop
        .get("max_attempts")
        .and_then(Value::as_u64)
        .unwrap_or(MAX_REVISIONS);
    fix_loop.insert("attempt".into(), json!(attempt));
    fix_loop.entry("max_attempts").or_insert(json!(max));
    attempt <= max
}

/// Makes a session the one the plugin's hooks act on again: `active-session.json` names it,
/// and a `created_at` more than [`HOOK_IGNORES_AFTER_HOURS`] old becomes `now` (the old value
/// kept as `aiops_created_at`), since every hook that moves phases ignores older sessions.
/// Returns true when `created_at` was renewed. Call it only while no engine process runs.
pub fn make_current(
    worktree: &Path,
    session_id: &str,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<bool, PartyError> {
    if !is_valid_session_id(session_id) {
        return Err(PartyError::InvalidSessionId {
            id: session_id.to_owned(),
        });
    }
    let session_path = session_dir(session_id).join("session.json");
    let mut session = load_json_object(worktree, &session_path, limits.max_json_bytes)?;
    let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let stale = timestamp(&session, "created_at")
        .is_none_or(|created| now - created > TimeDelta::hours(HOOK_IGNORES_AFTER_HOURS));
    if stale {
        if let Some(created) = session.get("created_at").cloned() {
            session.insert("aiops_created_at".into(), created);
        }
        session.insert("created_at".into(), json!(at));
        write_json_atomically(worktree, &session_path, &session)?;
    }
    let mut active = Map::new();
    active.insert("session_id".into(), json!(session_id));
    active.insert("updated_at".into(), json!(at));
    write_json_atomically(
        worktree,
        &Path::new(".party").join("active-session.json"),
        &active,
    )?;
    Ok(stale)
}

/// Files a result approval request for a session that reached AWAITING_APPROVAL without one,
/// in the shape the plugin's approval-gate instructions give the agent (no `request_id`):
/// `approvals/<YYYYMMDDThhmmssmmmZ>.json`, status pending. Returns the file's stem.
pub fn request_result_approval(
    worktree: &Path,
    session_id: &str,
    summary: &str,
    diff_stat: &str,
    now: DateTime<Utc>,
) -> Result<String, PartyError> {
    if !is_valid_session_id(session_id) {
        return Err(PartyError::InvalidSessionId {
            id: session_id.to_owned(),
        });
    }
    let dir = session_dir(session_id);
    let parts: Vec<&std::ffi::OsStr> = dir.iter().collect();
    check_directories(worktree, &dir, &parts)?;
    let approvals = dir.join("approvals");
    match fs::create_dir(worktree.join(&approvals)) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io_error(&approvals, e));
        }
        _ => {}
    }
    let stem = now.format("%Y%m%dT%H%M%S%3fZ").to_string();
    let mut request = Map::new();
    request.insert("session_id".into(), json!(session_id));
    request.insert("summary".into(), json!(summary));
    request.insert("git_diff_stat".into(), json!(diff_stat));
    request.insert(
        "requested_at".into(),
        json!(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    request.insert("status".into(), json!(ApprovalStatus::Pending));
    request.insert("requested_by".into(), json!("aiops"));
    write_json_atomically(worktree, &approvals.join(format!("{stem}.json")), &request)?;
    Ok(stem)
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
