//! What can go wrong with a repository or worktree operation, and whether retrying helps.
//! Only the error type; classifying git's own failures is `git`'s job.

use std::io;
use std::path::PathBuf;

/// Why a repository or worktree operation failed, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    /// The project name could reach outside the data directory.
    #[error(
        "project name {0:?} cannot be used as a directory name; rename the project to a slug of [a-z0-9-]"
    )]
    InvalidProject(String),
    /// The project names no repository at all.
    #[error("project {0} has neither a local_path nor a repo_url; set one of them")]
    NoRepository(String),
    /// A local path that git does not recognise as a repository.
    #[error("{} is not a git repository ({stderr}); point the project's local_path at a git checkout", .path.display())]
    NotARepository { path: PathBuf, stderr: String },
    /// The base a task should start from does not resolve to a commit.
    #[error("{base:?} is not a commit in {} ({stderr}); the project's default_branch must name an existing branch", .repo.display())]
    BaseNotFound {
        repo: PathBuf,
        base: String,
        stderr: String,
    },
    /// A task's worktree path is already a worktree of another branch.
    #[error("{} is already a worktree of {found}, not of branch {wanted}; remove that worktree or use another task id", .path.display())]
    PathTaken {
        path: PathBuf,
        wanted: String,
        found: String,
    },
    /// A directory to remove is neither a worktree of the repository nor a task directory.
    #[error("refusing to delete {}: it is neither a worktree of {} nor a task directory under {}; delete it by hand if it is stale", .path.display(), .repo.display(), .root.display())]
    ForeignPath {
        path: PathBuf,
        repo: PathBuf,
        root: PathBuf,
    },
    /// Cloning or fetching failed; usually the network or the remote, worth retrying.
    #[error(
        "`{command}` failed ({stderr}); check the URL, network access and credentials; the task can be retried"
    )]
    Network { command: String, stderr: String },
    /// Another git process holds a lock in the repository.
    #[error("`{command}` in {} found the repository locked ({stderr}); retry later, or delete the named .lock file if no git process is running", .dir.display())]
    Locked {
        command: String,
        dir: PathBuf,
        stderr: String,
    },
    /// Git ran out of disk space, memory or file handles.
    #[error("`{command}` in {} ran out of a system resource ({stderr}); free disk space, memory or file handles, then retry", .dir.display())]
    Exhausted {
        command: String,
        dir: PathBuf,
        stderr: String,
    },
    /// The repository's host resolves only to addresses inside this host's networks.
    #[error(
        "the repository's host {host} resolves to {addresses}, a loopback, link-local or private address; set inputs.allow_private_targets to allow it"
    )]
    InternalHost { host: String, addresses: String },
    /// Git refused for a reason that retrying will not fix.
    #[error("`{command}` in {} failed: {stderr}; fix what git names, then run the task again", .dir.display())]
    Git {
        command: String,
        dir: PathBuf,
        stderr: String,
    },
    /// The `git` binary could not be started.
    #[error("cannot run git ({0}); install git 2.36 or newer and put it on aiops's PATH")]
    GitMissing(io::Error),
    /// A file-system operation of the manager itself failed.
    #[error("cannot {action}: {error}; check the data directory's permissions and free space")]
    Io { action: String, error: io::Error },
}

impl WorktreeError {
    /// True for infrastructure failures worth retrying later; false for misconfiguration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Locked { .. } | Self::Exhausted { .. } => true,
            Self::Io { error, .. } => !matches!(
                error.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ),
            Self::InvalidProject(_)
            | Self::NoRepository(_)
            | Self::NotARepository { .. }
            | Self::BaseNotFound { .. }
            | Self::PathTaken { .. }
            | Self::ForeignPath { .. }
            | Self::Git { .. }
            | Self::InternalHost { .. }
            | Self::GitMissing(_) => false,
        }
    }
}

/// The error for a failed file-system `action` of the manager itself.
pub(super) fn io_error(action: impl Into<String>, error: io::Error) -> WorktreeError {
    WorktreeError::Io {
        action: action.into(),
        error,
    }
}
