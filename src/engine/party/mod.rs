//! Reads what the ai-party plugin writes under `.party/` in a task's worktree, and writes a
//! human's decision back the way the plugin's own prompt hook would. The only reader of a
//! pipeline's `.party/` directory.
//!
//! Boundary: plain files under one worktree; touches neither the store nor the network, and
//! nothing here is async (the watcher calls back on its own thread). Nothing under `.party/` can make this module read or write outside
//! the worktree: every path is relative and checked component by component, links are refused
//! and never followed, only regular files are opened, and every read is capped. A missing,
//! empty or corrupt file is skipped and reported, never fatal to a whole read. See
//! `PARTY-CONTRACT.md` for the file contract.
//! Linux only: `O_NOFOLLOW` differs between architectures and std does not export it.
//!
//! Files: `model` (what is read), `files` (the one safe way to open and list under `.party/`),
//! `read` (sessions, snapshots and their JSON files), `events` (`events.ndjson`), `status`
//! (the task status a pipeline shows), `decide` (writing a human's decision back), `watch`
//! (kernel notifications of changes, and a fingerprint that tells whether to read again).

use std::io;
use std::path::PathBuf;

mod decide;
mod events;
mod files;
mod model;
mod read;
mod status;
#[cfg(test)]
mod tests;
mod watch;

pub use decide::{apply_decision, make_current, request_result_approval};
pub use events::{EventCursor, read_events, read_events_after, read_events_at};
pub use files::read_capped;
pub use model::{
    ApprovalKind, ApprovalRequest, EventBatch, ExitSummary, Finding, PartyEvent, SessionState,
    Snapshot, Ticket,
};
pub use read::{active_session_id, read_snapshot};
pub use status::{HOOK_IGNORES_AFTER_HOURS, derive_status, hook_ignores, is_terminal_phase};
pub use watch::{Change, PartyWatch, PartyWatcher, fingerprint};

/// Caps on what one call may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `session.json`, `active-session.json`, tickets and approvals.
    pub max_json_bytes: u64,
    /// One finding document.
    pub max_finding_bytes: u64,
    /// One `read_events` call; also the longest event line that can be read.
    pub max_events_read_bytes: u64,
    /// Findings read per session, and their total size: the first by file name.
    pub max_findings: usize,
    pub max_findings_bytes: u64,
    /// Ticket and approval request files read per session: the first by file name.
    pub max_tickets: usize,
    pub max_approval_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_bytes: 1 << 20,
            max_finding_bytes: 1 << 20,
            max_events_read_bytes: 4 << 20,
            max_findings: 200,
            max_findings_bytes: 16 << 20,
            max_tickets: 1000,
            max_approval_files: 100,
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
