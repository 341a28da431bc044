//! Git worktrees for tasks: the repository a task branches from, one worktree per task, and
//! the change a task made in it.
//!
//! This is the only module that changes repositories through `git`, always the real binary
//! with a fixed environment (no user or system config, no prompts, no editor, no hooks). It
//! creates and deletes files only under the data directory (`repos/`, `worktrees/`); in a
//! project's own checkout it only adds worktrees and branches. It never commits, pushes or
//! touches a worktree's index.
//!
//! Files: `git` runs git, `error` says what failed, `repo` prepares the base repository,
//! `worktrees` adds and removes task worktrees, `push` publishes a task's branch, `diff` reads
//! its change, `paths` keeps file-system work inside the data directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Mutex as AsyncMutex;

mod diff;
mod error;
mod git;
mod paths;
mod push;
pub use push::Published;
mod repo;
#[cfg(test)]
mod tests;
mod worktrees;

pub use diff::WorktreeDiff;
pub use error::WorktreeError;

/// Pathspec that keeps the pipeline's own `.party/` files out of every diff.
const EXCLUDE_PARTY: &str = ":(top,exclude).party";

/// A project's repository facts the manager needs.
#[derive(Debug, Clone)]
pub struct RepoSpec {
    /// Project slug; names the clone and worktree directories.
    pub project: String,
    /// Remote cloned into the data directory when there is no `local_path`.
    pub repo_url: Option<String>,
    /// Existing checkout used as is; wins over `repo_url`.
    pub local_path: Option<PathBuf>,
    /// Branch tasks start from.
    pub default_branch: String,
}

/// Prepares repositories and creates, removes and diffs task worktrees under one data directory.
#[derive(Debug)]
pub struct Worktrees {
    data_dir: PathBuf,
    /// Whether a `repo_url` may resolve to a loopback, link-local or private address.
    allow_private: bool,
    repo_locks: Mutex<HashMap<PathBuf, Arc<AsyncMutex<()>>>>,
}

impl Worktrees {
    /// This manager, refusing (`allowed` false) to clone or fetch a `repo_url` whose host
    /// resolves only to loopback, link-local or private addresses (`inputs.allow_private_targets`).
    pub fn with_private_targets(mut self, allowed: bool) -> Self {
        self.allow_private = allowed;
        self
    }

    /// A manager keeping clones in `<data_dir>/repos` and worktrees in `<data_dir>/worktrees`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        // git runs with `-C <repo>`, where a relative path would mean something else.
        let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
        Self {
            data_dir,
            allow_private: true,
            repo_locks: Mutex::default(),
        }
    }

    /// Path a task's worktree lives at: `<data>/worktrees/<project>/<task_id>`.
    pub fn path_for(&self, project: &str, task_id: i64) -> PathBuf {
        self.data_dir
            .join("worktrees")
            .join(project)
            .join(task_id.to_string())
    }
}
