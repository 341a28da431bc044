//! Task worktrees: adding one on its branch (or recovering what a crash left), removing it and
//! its branch. Deletes only registered worktrees and task directories under the data directory.

use std::path::{Path, PathBuf};

use super::Worktrees;
use super::error::WorktreeError;
use super::git::{git, resolve_commit, resolves};
use super::paths::{absolute, canonical, check_project, create_dir_all, path_exists, remove_path};

impl Worktrees {
    /// Creates the task's worktree on a new `branch` from `base`, or finds the one a crashed
    /// attempt left behind.
    ///
    /// An existing worktree on `branch` is returned unchanged; an existing `branch` without a
    /// worktree is checked out again; a stray directory at the path is deleted first. A
    /// worktree of `branch` at another task path (left by a node that died, with another data
    /// directory on this host) is taken over: moved here with its files, or removed when it
    /// cannot be moved. A task runs in one process at a time, so nobody else uses it.
    /// Serialized per repository: git fails when two adds run in one repository at once.
    pub async fn add(
        &self,
        repo: &Path,
        project: &str,
        task_id: i64,
        branch: &str,
        base: &str,
    ) -> Result<PathBuf, WorktreeError> {
        check_project(project)?;
        let repo = absolute(repo)?;
        let path = self.path_for(project, task_id);
        let _guard = self.lock_repo(&repo).await;
        let listed = listed_worktrees(&repo).await?;
        if let Some(found) = find_registered(&listed, &path).await {
            if found.branch.as_deref() == Some(branch) {
                return Ok(path);
            }
            return Err(WorktreeError::PathTaken {
                path,
                wanted: branch.to_owned(),
                found: found.branch.clone().map_or_else(
                    || "a detached HEAD".to_owned(),
                    |name| format!("branch {name}"),
                ),
            });
        }
        if path_exists(&path).await? {
            tracing::warn!(path = %path.display(), "deleting a directory that is not a registered worktree");
            remove_path(&path).await?;
        }
        if let Some(parent) = path.parent() {
            create_dir_all(parent).await?;
        }
        if take_over(&repo, &listed, branch, project, task_id, &path).await? {
            return Ok(path);
        }
        add_on_branch(&repo, &path, branch, base).await?;
        Ok(path)
    }

    /// Deletes a task's worktree and, with `branch`, its branch; anything already gone is fine.
    /// Serialized per repository.
    pub async fn remove(
        &self,
        repo: &Path,
        worktree: &Path,
        branch: Option<&str>,
    ) -> Result<(), WorktreeError> {
        let repo = absolute(repo)?;
        let worktree = absolute(worktree)?;
        let _guard = self.lock_repo(&repo).await;
        // The common case costs one git run: the worktree is registered and git removes it.
        let remove = git(&repo)
            .args(["worktree", "remove", "--force", "--"])
            .arg(&worktree);
        let removed = remove.output().await?;
        if !removed.status.success() {
            let listed = listed_worktrees(&repo).await?;
            if find_registered(&listed, &worktree).await.is_some() {
                // Registered, yet git could not remove it: say what git said.
                return Err(remove.failure(&removed.stderr));
            } else if path_exists(&worktree).await? {
                self.remove_task_dir(&repo, &worktree).await?;
            }
        }
        if let Some(branch) = branch {
            delete_branch(&repo, branch).await?;
        }
        Ok(())
    }

    /// Deletes a directory git does not know as a worktree, when it is a task directory
    /// (`<root>/<project>/<task_id>`) under this data directory; anything else is refused.
    async fn remove_task_dir(&self, repo: &Path, worktree: &Path) -> Result<(), WorktreeError> {
        let root = self.data_dir.join("worktrees");
        let (found, root_found) = (canonical(worktree).await, canonical(&root).await);
        let is_task_dir = found
            .strip_prefix(&root_found)
            .is_ok_and(|rest| rest.components().count() == 2);
        if !is_task_dir {
            return Err(WorktreeError::ForeignPath {
                path: worktree.to_path_buf(),
                repo: repo.to_path_buf(),
                root,
            });
        }
        remove_path(worktree).await
    }
}

/// Adds the worktree at `path` on a new `branch` from `base`, or on `branch` as it is when
/// an earlier attempt left it. The new branch is the common case and costs one git run;
/// `--no-track` keeps git from making it track `base`, a `.git/config` write that parallel
/// adds fight over.
async fn add_on_branch(
    repo: &Path,
    path: &Path,
    branch: &str,
    base: &str,
) -> Result<(), WorktreeError> {
    tracing::info!(branch, base, path = %path.display(), "adding worktree");
    let add = git(repo)
        .args([
            "worktree",
            "add",
            "--quiet",
            "--no-track",
            "-b",
            branch,
            "--",
        ])
        .arg(path)
        .arg(format!("{base}^{{commit}}"));
    let added = add.output().await?;
    if added.status.success() {
        return Ok(());
    }
    if resolves(repo, &format!("refs/heads/{branch}")).await? {
        tracing::info!(branch, path = %path.display(), "checking out a branch left by an earlier attempt");
        git(repo)
            .args(["worktree", "add", "--quiet", "--"])
            .arg(path)
            .arg(branch)
            .run()
            .await?;
        return Ok(());
    }
    // Names a missing base as such; otherwise git's own words.
    resolve_commit(repo, base, base).await?;
    Err(add.failure(&added.stderr))
}

/// Deletes a branch; a branch that does not exist is already deleted.
async fn delete_branch(repo: &Path, branch: &str) -> Result<(), WorktreeError> {
    let delete = git(repo).args(["branch", "-D", "--", branch]);
    let deleted = delete.output().await?;
    if deleted.status.success() || !resolves(repo, &format!("refs/heads/{branch}")).await? {
        return Ok(());
    }
    Err(delete.failure(&deleted.stderr))
}

/// A worktree as `git worktree list` reports it.
struct RegisteredWorktree {
    location: PathBuf,
    /// Short branch name, none when detached.
    branch: Option<String>,
    /// Git would prune it: its directory is gone (a crash can leave such a registration).
    prunable: bool,
}

/// Every worktree registered for `repo`, the main one first, after pruning registrations
/// whose directory is gone (only then is `git worktree prune` run).
async fn listed_worktrees(repo: &Path) -> Result<Vec<RegisteredWorktree>, WorktreeError> {
    let listed = registered_worktrees(repo).await?;
    if !listed.iter().any(|worktree| worktree.prunable) {
        return Ok(listed);
    }
    git(repo).args(["worktree", "prune"]).run().await?;
    registered_worktrees(repo).await
}

/// The registration in `listed` of the worktree at `path`, if any.
async fn find_registered<'a>(
    listed: &'a [RegisteredWorktree],
    path: &Path,
) -> Option<&'a RegisteredWorktree> {
    let wanted = canonical(path).await;
    for worktree in listed {
        if canonical(&worktree.location).await == wanted {
            return Some(worktree);
        }
    }
    None
}

/// Every worktree git has registered for `repo`, the main one first.
async fn registered_worktrees(repo: &Path) -> Result<Vec<RegisteredWorktree>, WorktreeError> {
    let listing = git(repo)
        .args(["worktree", "list", "--porcelain", "-z"])
        .run()
        .await?;
    let text = String::from_utf8_lossy(&listing);
    let mut found = Vec::new();
    // Records are NUL-separated fields ending in an empty field.
    for record in text.split("\0\0").filter(|record| !record.is_empty()) {
        let mut location = None;
        let mut branch = None;
        let mut prunable = false;
        for field in record.split('\0') {
            if let Some(value) = field.strip_prefix("worktree ") {
                location = Some(PathBuf::from(value));
            } else if let Some(value) = field.strip_prefix("branch ") {
                branch = Some(
                    value
                        .strip_prefix("refs/heads/")
                        .unwrap_or(value)
                        .to_owned(),
                );
            } else if field.starts_with("prunable") {
                prunable = true;
            }
        }
        if let Some(location) = location {
            found.push(RegisteredWorktree {
                location,
                branch,
                prunable,
            });
        }
    }
    Ok(found)
}

/// Takes over a worktree of `branch` that is registered at another task path of the same
/// task (`…/<project>/<task_id>`, another node's data directory): moves it to `path`, files
/// and `.party/` included, so a recovered pipeline goes on where it stopped; when git cannot
/// move it, removes it so the branch can be checked out here. The main checkout and any other
/// directory are never touched. True when the worktree is now at `path`.
async fn take_over(
    repo: &Path,
    listed: &[RegisteredWorktree],
    branch: &str,
    project: &str,
    task_id: i64,
    path: &Path,
) -> Result<bool, WorktreeError> {
    let task_dir = Path::new(project).join(task_id.to_string());
    let Some(other) = listed
        .iter()
        .skip(1)
        .find(|w| w.branch.as_deref() == Some(branch) && w.location.ends_with(&task_dir))
    else {
        return Ok(false);
    };
    tracing::warn!(branch, from = %other.location.display(), to = %path.display(), "taking over a worktree another node left");
    let moved = git(repo)
        .args(["worktree", "move"])
        .arg(&other.location)
        .arg(path)
        .run()
        .await;
    match moved {
        Ok(_) => Ok(true),
        Err(e) => {
            tracing::warn!(error = %e, from = %other.location.display(), "cannot move the worktree; removing it");
            git(repo)
                .args(["worktree", "remove", "--force"])
                .arg(&other.location)
                .run()
                .await?;
            Ok(false)
        }
    }
}
