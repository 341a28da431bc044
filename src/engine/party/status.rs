//! The task status a pipeline shows, derived from its phase, pending approvals and how the
//! engine ended; and whether the plugin's own hook would still act on a session.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::Limits;
use super::model::ExitSummary;
use super::read::{read_snapshot, recorded_active_session};
use crate::model::TaskStatus;

/// Phases after which nothing more happens.
pub fn is_terminal_phase(phase: &str) -> bool {
    matches!(phase, "DONE" | "ROLLED_BACK" | "FAILED")
}

/// The task status the platform shows, and why when it failed, from the pipeline's phase,
/// whether an approval request is pending, and how the engine process ended (`None` while it
/// runs). A terminal phase wins; then a pending approval; an engine that ended well in APPROVED
/// is done and in REJECTED rolled back; an engine that ended anywhere else failed.
pub fn derive_status(
    phase: Option<&str>,
    has_pending_request: bool,
    exited: Option<&ExitSummary>,
) -> (TaskStatus, Option<String>) {
    match phase {
        Some("DONE") => (TaskStatus::Done, None),
        Some("ROLLED_BACK") => (TaskStatus::RolledBack, None),
        Some("FAILED") => (
            TaskStatus::Failed,
            Some("the pipeline ended in phase FAILED".to_owned()),
        ),
        _ => {
            let waiting = match phase {
                Some("PENDING_APPROVAL") => true,
                Some("AWAITING_APPROVAL") => has_pending_request,
                _ => false,
            };
            match exited {
                None if waiting => (TaskStatus::AwaitingApproval, None),
                None => (TaskStatus::Running, None),
                Some(_) if has_pending_request => (TaskStatus::AwaitingApproval, None),
                // The agent stopped after the decision but before the last move: the decision
                // is the end (the platform delivers or removes the work).
                Some(exit) if exit.code == Some(0) && phase == Some("APPROVED") => {
                    (TaskStatus::Done, None)
                }
                Some(exit) if exit.code == Some(0) && phase == Some("REJECTED") => {
                    (TaskStatus::RolledBack, None)
                }
                Some(exit) => (TaskStatus::Failed, Some(describe_exit(exit, phase))),
            }
        }
    }
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
