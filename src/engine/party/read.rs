//! Reads sessions: which one is active, and a session's `session.json`, findings, tickets and
//! approval requests, each JSON file parsed on its own so one bad file spoils nothing else.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::files::{
    EntryKind, Skipped, list_names, read_capped, read_capped_with_metadata, skip_unless_missing,
};
use super::model::{ApprovalKind, ApprovalRequest, Finding, SessionState, Snapshot, Ticket};
use super::{Limits, PartyError};
use crate::model::{BoardMember, PartyBoard};

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
    let limited = &mut snapshot.limited;
    snapshot.findings = read_findings(worktree, &dir, limits, skipped, limited);
    let (tickets, over) = read_json_dir(
        worktree,
        &dir,
        "tickets",
        limits.max_tickets,
        limits,
        skipped,
    );
    snapshot.tickets = tickets.into_iter().map(ticket_of).collect();
    if over {
        limited.push("max_tickets");
    }
    let max = limits.max_approval_files;
    let (approvals, over) = read_json_dir(worktree, &dir, "approvals", max, limits, skipped);
    snapshot.approvals = approvals
        .into_iter()
        .map(|file| approval_of(file).1)
        .collect();
    if over {
        limited.push("max_approval_files");
    }
    snapshot
}

/// A party session id is a plain name: `^[A-Za-z0-9._-]+$`, and not `.`, `..` or hidden.
pub(super) fn is_valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(super) fn session_dir(session_id: &str) -> PathBuf {
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

pub(super) fn recorded_active_session(worktree: &Path, limits: &Limits) -> Option<String> {
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

pub(super) fn has_extension(name: &str, extension: &str) -> bool {
    name.len() > extension.len() && name.ends_with(extension)
}

/// Reads and parses one JSON object file under the cap.
pub(super) fn load_json_object(
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
        board: board(&object),
        raw: Value::Object(object),
    }
}

/// What `/party-board` shows, read leniently: a member without a name and a grant without
/// `uses_left` and `expires_at` are left out, as the plugin leaves them out.
fn board(object: &Map<String, Value>) -> PartyBoard {
    let strings = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let members = object
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| {
            let member = member.as_object()?;
            Some(BoardMember {
                name: text(member, "name")?,
                agent: text(member, "agent"),
                role: text(member, "role"),
                phases: strings(member.get("phases")),
                spawned: member.get("spawned").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect();
    let object_at = |key: &str| object.get(key).filter(|v| v.is_object()).cloned();
    PartyBoard {
        members,
        execution: object_at("execution"),
        fix_loop: object_at("fix_loop"),
        approval_grants: object
            .get("approval_grants")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|grant| grant.get("uses_left").is_some() && grant.get("expires_at").is_some())
            .cloned()
            .collect(),
    }
}

/// The findings, first by file name, until `max_findings` of them or `max_findings_bytes`
/// in all are read; a limit that left some unread is named in `limited`.
fn read_findings(
    root: &Path,
    dir: &Path,
    limits: &Limits,
    skipped: &mut Skipped,
    limited: &mut Vec<&'static str>,
) -> Vec<Finding> {
    let findings = dir.join("findings");
    let names = list_names(
        root,
        &findings,
        EntryKind::File,
        |name| has_extension(name, ".md"),
        skipped,
    );
    if names.len() > limits.max_findings {
        limited.push("max_findings");
    }
    let mut budget = limits.max_findings_bytes;
    let mut read = Vec::new();
    for name in names.into_iter().take(limits.max_findings) {
        let relative = findings.join(&name);
        let cap = limits.max_finding_bytes.min(budget);
        match read_capped_with_metadata(root, &relative, cap) {
            Ok((bytes, metadata)) => {
                budget -= bytes.len() as u64;
                read.push(Finding {
                    name,
                    content: String::from_utf8_lossy(&bytes).into_owned(),
                    modified: metadata
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_default(),
                });
            }
            Err(PartyError::TooLarge { size, .. }) if size <= limits.max_finding_bytes => {
                limited.push("max_findings_bytes");
                break;
            }
            Err(error) => skip_unless_missing(skipped, &relative, &error),
        }
    }
    read
}

/// A JSON file's name and its object.
type JsonFile = (String, Map<String, Value>);

/// The JSON objects in `dir/<sub>/*.json` with their file names, sorted by file name, the
/// first `max_files` of them; true if there were more.
fn read_json_dir(
    root: &Path,
    dir: &Path,
    sub: &str,
    max_files: usize,
    limits: &Limits,
    skipped: &mut Skipped,
) -> (Vec<JsonFile>, bool) {
    let sub_dir = dir.join(sub);
    let names = list_names(
        root,
        &sub_dir,
        EntryKind::File,
        |name| has_extension(name, ".json"),
        skipped,
    );
    let over = names.len() > max_files;
    let objects = names
        .into_iter()
        .take(max_files)
        .filter_map(|name| {
            let object =
                read_json_object(root, &sub_dir.join(&name), limits.max_json_bytes, skipped)?;
            Some((name, object))
        })
        .collect();
    (objects, over)
}

fn ticket_of((name, object): JsonFile) -> Ticket {
    Ticket {
        id: text(&object, "id").unwrap_or_else(|| file_stem(&name)),
        kind: text(&object, "type"),
        title: text(&object, "title"),
        status: text(&object, "status"),
        phase: text(&object, "phase"),
        assignee: text(&object, "assignee"),
        parent_id: text(&object, "parentId"),
        created_at: timestamp(&object, "createdAt"),
        completed_at: timestamp(&object, "completedAt"),
        raw: Value::Object(object),
    }
}

/// The approval requests of a session with their file names (the first
/// `limits.max_approval_files`).
pub(super) fn read_approvals(
    root: &Path,
    dir: &Path,
    limits: &Limits,
    skipped: &mut Skipped,
) -> Vec<(String, ApprovalRequest)> {
    let max = limits.max_approval_files;
    let (files, _) = read_json_dir(root, dir, "approvals", max, limits, skipped);
    files.into_iter().map(approval_of).collect()
}

/// An approval request file's object as the request it describes.
fn approval_of((name, object): JsonFile) -> (String, ApprovalRequest) {
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
}

fn file_stem(name: &str) -> String {
    name.rsplit_once('.')
        .map_or(name, |(stem, _)| stem)
        .to_owned()
}

pub(super) fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key)?.as_str().map(str::to_owned)
}

fn has_value(object: &Map<String, Value>, key: &str) -> bool {
    object.get(key).is_some_and(|value| !value.is_null())
}

pub(super) fn timestamp(object: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    let text = object.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}
