//! Git worktrees for tasks: the repository a task branches from, one worktree per task, and
//! the change a task made in it.
//!
//! This is the only module that changes repositories through `git`, always the real binary
//! with a fixed environment (no user or system config, no prompts, no editor, no hooks). It
//! creates and deletes files only under the data directory (`repos/`, `worktrees/`); in a
//! project's own checkout it only adds worktrees and branches. It never commits, pushes or
//! touches a worktree's index.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::model::ChangedFile;

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
            | Self::GitMissing(_) => false,
        }
    }
}

/// What a task changed in its worktree, relative to its base.
#[derive(Debug, Clone, Serialize)]
pub struct WorktreeDiff {
    /// One entry per changed file.
    pub files: Vec<ChangedFile>,
    /// `git diff --stat` text.
    pub stat: String,
    /// Unified diff, at most the requested number of bytes, ending on a whole line when cut.
    pub patch: String,
    /// True when `patch` was cut short.
    pub truncated: bool,
}

/// Prepares repositories and creates, removes and diffs task worktrees under one data directory.
#[derive(Debug)]
pub struct Worktrees {
    data_dir: PathBuf,
    repo_locks: Mutex<HashMap<PathBuf, Arc<AsyncMutex<()>>>>,
}

impl Worktrees {
    /// A manager keeping clones in `<data_dir>/repos` and worktrees in `<data_dir>/worktrees`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        // git runs with `-C <repo>`, where a relative path would mean something else.
        let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
        Self {
            data_dir,
            repo_locks: Mutex::default(),
        }
    }

    /// The repository tasks branch from, ready, and the base ref to branch from.
    ///
    /// A `local_path` is used as is with base `default_branch`. A `repo_url` alone is cloned
    /// once into `<data>/repos/<project>` and fetched on every later call, with base
    /// `origin/<default_branch>`. Serialized per repository.
    pub async fn prepare(&self, spec: &RepoSpec) -> Result<(PathBuf, String), WorktreeError> {
        check_project(&spec.project)?;
        if let Some(local_path) = &spec.local_path {
            let repo = absolute(local_path)?;
            let _guard = self.lock_repo(&repo).await;
            ensure_repository(&repo).await?;
            let base = spec.default_branch.clone();
            resolve_commit(&repo, &format!("refs/heads/{base}"), &base).await?;
            return Ok((repo, base));
        }
        let Some(url) = &spec.repo_url else {
            return Err(WorktreeError::NoRepository(spec.project.clone()));
        };
        let repos = self.data_dir.join("repos");
        create_dir_all(&repos).await?;
        let repo = repos.join(&spec.project);
        let _guard = self.lock_repo(&repo).await;
        if is_complete_clone(&repo).await? {
            use_remote_url(&repo, url).await?;
            git(&repo)
                .args(["fetch", "--prune", "--quiet", "origin"])
                .network()
                .run()
                .await?;
        } else {
            clone_into(&repos, &spec.project, url).await?;
        }
        let base = format!("origin/{}", spec.default_branch);
        resolve_commit(&repo, &format!("refs/remotes/{base}"), &base).await?;
        Ok((repo, base))
    }

    /// Path a task's worktree lives at: `<data>/worktrees/<project>/<task_id>`.
    pub fn path_for(&self, project: &str, task_id: i64) -> PathBuf {
        self.data_dir
            .join("worktrees")
            .join(project)
            .join(task_id.to_string())
    }

    /// Creates the task's worktree on a new `branch` from `base`, or finds the one a crashed
    /// attempt left behind.
    ///
    /// An existing worktree on `branch` is returned unchanged; an existing `branch` without a
    /// worktree is checked out again; a stray directory at the path is deleted first.
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
        // A crash can leave a registration whose directory is gone; prune forgets it.
        git(&repo).args(["worktree", "prune"]).run().await?;
        if let Some(found) = registered_worktree(&repo, &path).await? {
            if found.branch.as_deref() == Some(branch) {
                return Ok(path);
            }
            return Err(WorktreeError::PathTaken {
                path,
                wanted: branch.to_owned(),
                found: found.branch.map_or_else(
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
        if resolves(&repo, &format!("refs/heads/{branch}")).await? {
            tracing::info!(branch, path = %path.display(), "checking out a branch left by an earlier attempt");
            git(&repo)
                .args(["worktree", "add", "--quiet", "--"])
                .arg(&path)
                .arg(branch)
                .run()
                .await?;
        } else {
            // Branching from the commit rather than `origin/<branch>` keeps git from making the
            // task branch track the default branch, a .git/config write parallel adds fight over.
            let commit = resolve_commit(&repo, base, base).await?;
            tracing::info!(branch, base, path = %path.display(), "adding worktree");
            git(&repo)
                .args(["worktree", "add", "--quiet", "-b", branch, "--"])
                .arg(&path)
                .arg(commit)
                .run()
                .await?;
        }
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
        git(&repo).args(["worktree", "prune"]).run().await?;
        if registered_worktree(&repo, &worktree).await?.is_some() {
            git(&repo)
                .args(["worktree", "remove", "--force", "--"])
                .arg(&worktree)
                .run()
                .await?;
        } else if path_exists(&worktree).await? {
            let root = self.data_dir.join("worktrees");
            let (found, root_found) = (canonical(&worktree).await, canonical(&root).await);
            // Only a `<root>/<project>/<task_id>` directory is ours to delete.
            let is_task_dir = found
                .strip_prefix(&root_found)
                .is_ok_and(|rest| rest.components().count() == 2);
            if !is_task_dir {
                return Err(WorktreeError::ForeignPath {
                    path: worktree,
                    repo,
                    root,
                });
            }
            remove_path(&worktree).await?;
        }
        if let Some(branch) = branch {
            delete_branch(&repo, branch).await?;
        }
        Ok(())
    }

    /// Commits everything the task changed (`.party/` left out) on its branch and pushes the
    /// branch to the repository's `origin`. Returns the pushed commit, or None when the task
    /// changed nothing relative to `base`. `push_token` authenticates an HTTPS remote; it is
    /// passed to git through its environment, never on a command line.
    pub async fn commit_and_push(
        &self,
        worktree: &Path,
        base: &str,
        branch: &str,
        message: &str,
        author: (&str, &str),
        push_token: Option<&str>,
    ) -> Result<Option<String>, WorktreeError> {
        let worktree = absolute(worktree)?;
        git(&worktree)
            .args(["add", "--all", "--", ".", EXCLUDE_PARTY])
            .run()
            .await?;
        let staged = git(&worktree)
            .args(["diff", "--cached", "--quiet"])
            .output()
            .await?;
        if !staged.status.success() {
            let (name, email) = author;
            git(&worktree)
                .arg("-c")
                .arg(format!("user.name={name}"))
                .arg("-c")
                .arg(format!("user.email={email}"))
                .args(["commit", "--no-verify", "--quiet", "-m", message])
                .run()
                .await?;
        }
        let base_commit = resolve_commit(&worktree, base, base).await?;
        let ahead = git(&worktree)
            .args(["rev-list", "--count", &format!("{base_commit}..HEAD")])
            .run()
            .await?;
        if first_line(&ahead) == "0" {
            return Ok(None);
        }
        let mut push = git(&worktree)
            .args(["push", "--quiet", "origin"])
            .arg(format!("HEAD:refs/heads/{branch}"))
            .network();
        if let Some(token) = push_token {
            use base64::Engine as _;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            push = push
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        push.run().await?;
        let head = git(&worktree).args(["rev-parse", "HEAD"]).run().await?;
        Ok(Some(first_line(&head)))
    }

    /// The change in `worktree` against `base`, untracked files included and `.party/` left out,
    /// with the patch cut at `max_patch_bytes`.
    pub async fn diff(
        &self,
        worktree: &Path,
        base: &str,
        max_patch_bytes: usize,
    ) -> Result<WorktreeDiff, WorktreeError> {
        let worktree = absolute(worktree)?;
        let index = git(&worktree)
            .args(["rev-parse", "--path-format=absolute", "--git-path", "index"])
            .output()
            .await?;
        if !index.status.success() {
            return Err(WorktreeError::NotARepository {
                path: worktree,
                stderr: trimmed(&index.stderr),
            });
        }
        let base_commit = resolve_commit(&worktree, base, base).await?;
        // Against the fork point, so commits that reached `base` after the task started do not
        // show up as reverted; unrelated histories have none and compare with `base` itself.
        let fork_point = git(&worktree)
            .args(["merge-base", &base_commit, "HEAD"])
            .output()
            .await?;
        let commit = if fork_point.status.success() {
            first_line(&fork_point.stdout)
        } else {
            base_commit
        };
        // Untracked files only show in a diff once added; adding them to a copy of the index
        // leaves the agent's own staging exactly as it was.
        let scratch = ScratchIndex::copy_of(Path::new(&first_line(&index.stdout))).await?;
        git(&worktree)
            .index_file(&scratch.path)
            .args(["add", "--all", "--", ".", EXCLUDE_PARTY])
            .run()
            .await?;
        let diff = |format: &[&str]| {
            git(&worktree)
                .index_file(&scratch.path)
                .args([
                    "diff",
                    "--cached",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                ])
                .args(["--no-relative", "--find-renames"])
                .args(format)
                .args([commit.as_str(), "--", ".", EXCLUDE_PARTY])
        };
        let name_status = diff(&["--name-status", "-z"]).run().await?;
        let numstat = diff(&["--numstat", "-z"]).run().await?;
        let stat = diff(&["--stat=200"]).run().await?;
        let (patch, truncated) = diff(&["--src-prefix=a/", "--dst-prefix=b/"])
            .run_capped(max_patch_bytes)
            .await?;
        Ok(WorktreeDiff {
            files: file_changes(&name_status, &numstat),
            stat: String::from_utf8_lossy(&stat).into_owned(),
            patch: patch_text(&patch, truncated, max_patch_bytes),
            truncated,
        })
    }

    /// Waits for exclusive use of one repository; git's own locks make parallel writers fail.
    async fn lock_repo(&self, repo: &Path) -> OwnedMutexGuard<()> {
        let key = lock_key(repo).await;
        let lock = self
            .repo_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        lock.lock_owned().await
    }
}

/// Refuses project names that are not one plain directory name.
fn check_project(project: &str) -> Result<(), WorktreeError> {
    let mut components = Path::new(project).components();
    let one_plain_component =
        matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none();
    if one_plain_component && !project.starts_with('.') && !project.contains(['/', '\\']) {
        Ok(())
    } else {
        Err(WorktreeError::InvalidProject(project.to_owned()))
    }
}

/// The same key for every spelling of a repository path, existing or about to be cloned.
async fn lock_key(repo: &Path) -> PathBuf {
    if let Ok(path) = tokio::fs::canonicalize(repo).await {
        return path;
    }
    match (repo.parent(), repo.file_name()) {
        (Some(parent), Some(name)) => canonical(parent).await.join(name),
        _ => repo.to_path_buf(),
    }
}

/// Fails unless git recognises `path` as (inside) a repository.
async fn ensure_repository(path: &Path) -> Result<(), WorktreeError> {
    let output = git(path).args(["rev-parse", "--git-dir"]).output().await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(WorktreeError::NotARepository {
            path: path.to_path_buf(),
            stderr: trimmed(&output.stderr),
        })
    }
}

/// The commit `rev` names in `repo`; `base` is how the caller called it, for the error.
async fn resolve_commit(repo: &Path, rev: &str, base: &str) -> Result<String, WorktreeError> {
    let output = git(repo)
        .args(["rev-parse", "--verify", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .await?;
    if output.status.success() {
        Ok(first_line(&output.stdout))
    } else {
        Err(WorktreeError::BaseNotFound {
            repo: repo.to_path_buf(),
            base: base.to_owned(),
            stderr: trimmed(&output.stderr),
        })
    }
}

/// Whether `rev` names anything in `repo`.
async fn resolves(repo: &Path, rev: &str) -> Result<bool, WorktreeError> {
    let output = git(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options", rev])
        .output()
        .await?;
    Ok(output.status.success())
}

/// True when `repo` is a clone of its own (not an empty or half-written directory, nor a
/// directory inside some other checkout) with an `origin` remote.
async fn is_complete_clone(repo: &Path) -> Result<bool, WorktreeError> {
    if !path_exists(repo).await? {
        return Ok(false);
    }
    let toplevel = git(repo)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .await?;
    let own_checkout = toplevel.status.success()
        && canonical(Path::new(&first_line(&toplevel.stdout))).await == canonical(repo).await;
    let complete = own_checkout
        && git(repo)
            .args(["remote", "get-url", "origin"])
            .output()
            .await?
            .status
            .success();
    if !complete {
        tracing::warn!(repo = %repo.display(), "found an incomplete clone; cloning again");
    }
    Ok(complete)
}

/// Points `origin` at `url` when the project's URL changed since the clone.
async fn use_remote_url(repo: &Path, url: &str) -> Result<(), WorktreeError> {
    let current = git(repo)
        .args(["remote", "get-url", "origin"])
        .run()
        .await?;
    if first_line(&current) != url {
        tracing::info!(repo = %repo.display(), url = redact_credentials(url), "repository URL changed; updating origin");
        git(repo)
            .args(["remote", "set-url", "origin", url])
            .run()
            .await?;
    }
    Ok(())
}

/// Clones `url` into `<repos>/<project>` through a staging directory, so a crash mid-clone
/// never leaves a half clone at the final path.
async fn clone_into(repos: &Path, project: &str, url: &str) -> Result<(), WorktreeError> {
    let staging_root = repos.join(".cloning");
    let staging = staging_root.join(project);
    let target = repos.join(project);
    if path_exists(&staging).await? {
        remove_path(&staging).await?;
    }
    create_dir_all(&staging_root).await?;
    tracing::info!(url = redact_credentials(url), repo = %target.display(), "cloning");
    git(&staging_root)
        .args(["clone", "--quiet", "--", url])
        .arg(&staging)
        .network()
        .run()
        .await?;
    if path_exists(&target).await? {
        remove_path(&target).await?;
    }
    tokio::fs::rename(&staging, &target)
        .await
        .map_err(|error| io_error(format!("move the new clone to {}", target.display()), error))
}

/// Deletes a branch; a branch that does not exist is already deleted.
async fn delete_branch(repo: &Path, branch: &str) -> Result<(), WorktreeError> {
    if resolves(repo, &format!("refs/heads/{branch}")).await? {
        git(repo).args(["branch", "-D", "--", branch]).run().await?;
    }
    Ok(())
}

/// A worktree as `git worktree list` reports it.
struct RegisteredWorktree {
    /// Short branch name, none when detached.
    branch: Option<String>,
}

/// The registration of the worktree at `path`, if git has one.
async fn registered_worktree(
    repo: &Path,
    path: &Path,
) -> Result<Option<RegisteredWorktree>, WorktreeError> {
    let listing = git(repo)
        .args(["worktree", "list", "--porcelain", "-z"])
        .run()
        .await?;
    let wanted = canonical(path).await;
    let text = String::from_utf8_lossy(&listing);
    // Records are NUL-separated fields ending in an empty field.
    for record in text.split("\0\0").filter(|record| !record.is_empty()) {
        let mut location = None;
        let mut branch = None;
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
            }
        }
        if let Some(location) = location
            && canonical(&location).await == wanted
        {
            return Ok(Some(RegisteredWorktree { branch }));
        }
    }
    Ok(None)
}

/// Joins `--name-status -z` and `--numstat -z` output into one entry per file.
fn file_changes(name_status: &[u8], numstat: &[u8]) -> Vec<ChangedFile> {
    let counts = line_counts(numstat);
    let text = String::from_utf8_lossy(name_status);
    let mut fields = text.split('\0').filter(|field| !field.is_empty());
    let mut files = Vec::new();
    while let Some(code) = fields.next() {
        let status = match code.chars().next() {
            Some('A' | 'C') => "added",
            Some('D') => "deleted",
            Some('R') => "renamed",
            _ => "modified",
        };
        // Renames and copies list the old path, then the new one.
        if matches!(code.chars().next(), Some('R' | 'C')) {
            fields.next();
        }
        let Some(path) = fields.next() else { break };
        let (insertions, deletions) = counts.get(path).copied().unwrap_or((0, 0));
        files.push(ChangedFile {
            path: path.to_owned(),
            insertions,
            deletions,
            status: status.to_owned(),
        });
    }
    files
}

/// Insertions and deletions by (new) path from `--numstat -z`; binary files count 0.
fn line_counts(numstat: &[u8]) -> HashMap<String, (u64, u64)> {
    let text = String::from_utf8_lossy(numstat);
    let mut fields = text.split('\0');
    let mut counts = HashMap::new();
    while let Some(field) = fields.next() {
        let mut parts = field.splitn(3, '\t');
        let (Some(added), Some(removed), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // A rename has an empty path here, followed by the old and the new path.
        let path = if path.is_empty() {
            fields.next();
            fields.next().unwrap_or_default()
        } else {
            path
        };
        counts.insert(
            path.to_owned(),
            (added.parse().unwrap_or(0), removed.parse().unwrap_or(0)),
        );
    }
    counts
}

/// The patch as text, at most `max_bytes` long and, when cut, ending on a whole line.
fn patch_text(patch: &[u8], truncated: bool, max_bytes: usize) -> String {
    let mut text = String::from_utf8_lossy(patch).into_owned();
    if text.len() > max_bytes || truncated {
        let mut end = max_bytes.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if let Some(newline) = text[..end].rfind('\n') {
            end = newline + 1;
        }
        text.truncate(end);
    }
    text
}

/// A scratch copy of a worktree's index, deleted when dropped.
struct ScratchIndex {
    path: PathBuf,
}

impl ScratchIndex {
    /// Copies `index` next to itself, inside the git directory where no diff can see it.
    async fn copy_of(index: &Path) -> Result<Self, WorktreeError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "aiops-diff-index-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let scratch = Self {
            path: index.with_file_name(name),
        };
        match tokio::fs::copy(index, &scratch.path).await {
            Ok(_) => Ok(scratch),
            // A worktree without an index yet starts from an empty one.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(scratch),
            Err(error) => Err(io_error(
                format!("copy the index {}", index.display()),
                error,
            )),
        }
    }
}

impl Drop for ScratchIndex {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot delete a scratch index");
        }
    }
}

/// Starts a git command run in `dir`.
fn git(dir: &Path) -> GitCommand {
    GitCommand {
        dir: dir.to_path_buf(),
        args: Vec::new(),
        index_file: None,
        network: false,
        env: Vec::new(),
    }
}

/// One `git` invocation with the fixed environment.
struct GitCommand {
    dir: PathBuf,
    args: Vec<OsString>,
    index_file: Option<PathBuf>,
    network: bool,
    /// Extra variables, set after the inherited GIT_* ones are cleared.
    env: Vec<(String, String)>,
}

impl GitCommand {
    fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Uses `path` instead of the worktree's index.
    fn index_file(mut self, path: &Path) -> Self {
        self.index_file = Some(path.to_path_buf());
        self
    }

    /// Marks the command as talking to a remote: failures become retryable network errors,
    /// and a stalled transfer gives up instead of holding the repository lock forever.
    fn network(mut self) -> Self {
        self.network = true;
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command.arg("-C").arg(&self.dir).args([
            "-c",
            "user.name=aiops",
            "-c",
            "user.email=aiops@localhost",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.quotePath=false",
        ]);
        if self.network {
            command.args([
                "-c",
                "http.lowSpeedLimit=1000",
                "-c",
                "http.lowSpeedTime=60",
            ]);
        }
        command.args(&self.args);
        // Inherited GIT_* variables (GIT_DIR, GIT_INDEX_FILE, ...) would redirect git; only
        // the operator's choice of ssh transport is kept.
        for (name, _) in std::env::vars_os() {
            let keep = name == "GIT_SSH" || name == "GIT_SSH_COMMAND";
            if name.to_string_lossy().starts_with("GIT_") && !keep {
                command.env_remove(&name);
            }
        }
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            command.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        command
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env_remove("SSH_ASKPASS")
            .env("GIT_EDITOR", "true")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(index_file) = &self.index_file {
            command.env("GIT_INDEX_FILE", index_file);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// `git <args>` as shown in errors and logs.
    fn display(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|arg| arg.to_string_lossy()).collect();
        redact_credentials(&format!("git {}", args.join(" ")))
    }

    /// Runs to completion, whatever the exit status.
    async fn output(&self) -> Result<Output, WorktreeError> {
        tracing::debug!(dir = %self.dir.display(), command = %self.display(), "running git");
        self.command().output().await.map_err(spawn_error)
    }

    /// Runs and returns stdout, or the failure classified.
    async fn run(self) -> Result<Vec<u8>, WorktreeError> {
        let output = self.output().await?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(self.failure(&output.stderr))
        }
    }

    /// Runs and returns at most `max_bytes` of stdout and whether there was more; reading
    /// stops early so an enormous output is never held in memory.
    async fn run_capped(self, max_bytes: usize) -> Result<(Vec<u8>, bool), WorktreeError> {
        tracing::debug!(dir = %self.dir.display(), command = %self.display(), "running git");
        let mut child = self.command().spawn().map_err(spawn_error)?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            unreachable!("command() pipes stdout and stderr");
        };
        let limit = u64::try_from(max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        // Dropping stdout after the limit makes git stop on a broken pipe.
        let read_stdout = async move {
            let mut bytes = Vec::new();
            stdout
                .take(limit)
                .read_to_end(&mut bytes)
                .await
                .map(|_| bytes)
        };
        let read_stderr = async move {
            let mut bytes = Vec::new();
            stderr.read_to_end(&mut bytes).await.map(|_| bytes)
        };
        let (stdout, stderr) = tokio::join!(read_stdout, read_stderr);
        let read_error =
            |error| io_error(format!("read the output of `{}`", self.display()), error);
        let (mut stdout, stderr) = (stdout.map_err(read_error)?, stderr.map_err(read_error)?);
        let status = child.wait().await.map_err(read_error)?;
        let truncated = stdout.len() > max_bytes;
        if truncated {
            stdout.truncate(max_bytes);
        } else if !status.success() {
            return Err(self.failure(&stderr));
        }
        Ok((stdout, truncated))
    }

    /// The error for a non-zero exit with this `stderr`.
    fn failure(&self, stderr: &[u8]) -> WorktreeError {
        let stderr = trimmed(stderr);
        let command = self.display();
        let dir = self.dir.clone();
        if stderr.contains(".lock") && stderr.contains("File exists") {
            WorktreeError::Locked {
                command,
                dir,
                stderr,
            }
        } else if [
            "No space left on device",
            "Disk quota exceeded",
            "Too many open files",
            "Cannot allocate memory",
            "Out of memory",
            "Input/output error",
        ]
        .iter()
        .any(|symptom| stderr.contains(symptom))
        {
            WorktreeError::Exhausted {
                command,
                dir,
                stderr,
            }
        } else if self.network {
            WorktreeError::Network { command, stderr }
        } else {
            WorktreeError::Git {
                command,
                dir,
                stderr,
            }
        }
    }
}

fn spawn_error(error: io::Error) -> WorktreeError {
    if error.kind() == io::ErrorKind::NotFound {
        WorktreeError::GitMissing(error)
    } else {
        io_error("start git", error)
    }
}

fn io_error(action: impl Into<String>, error: io::Error) -> WorktreeError {
    WorktreeError::Io {
        action: action.into(),
        error,
    }
}

/// Git's stderr for an error message, without credentials.
fn trimmed(bytes: &[u8]) -> String {
    redact_credentials(String::from_utf8_lossy(bytes).trim())
}

/// `text` with the user and password of every URL in it replaced by `***`, so a token in a
/// project's repo_url never reaches an error message or a log.
fn redact_credentials(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        redacted.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                redacted.push_str("***");
                &tail[userinfo_end..]
            }
            None => tail,
        };
    }
    redacted.push_str(rest);
    redacted
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn absolute(path: &Path) -> Result<PathBuf, WorktreeError> {
    std::path::absolute(path)
        .map_err(|error| io_error(format!("make {} absolute", path.display()), error))
}

/// `path` with symlinks resolved, or as given when it does not exist.
async fn canonical(path: &Path) -> PathBuf {
    tokio::fs::canonicalize(path)
        .await
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether anything, even a dangling symlink, is at `path`.
async fn path_exists(path: &Path) -> Result<bool, WorktreeError> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_error(format!("look at {}", path.display()), error)),
    }
}

async fn create_dir_all(path: &Path) -> Result<(), WorktreeError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|error| io_error(format!("create {}", path.display()), error))
}

/// Deletes a file, a symlink or a whole directory tree.
async fn remove_path(path: &Path) -> Result<(), WorktreeError> {
    let is_dir = tokio::fs::symlink_metadata(path)
        .await
        .is_ok_and(|metadata| metadata.is_dir());
    let removed = if is_dir {
        tokio::fs::remove_dir_all(path).await
    } else {
        tokio::fs::remove_file(path).await
    };
    removed.map_err(|error| io_error(format!("delete {}", path.display()), error))
}

#[cfg(test)]
mod tests {
    use std::process::Command as StdCommand;
    use std::sync::Arc;

    use tempfile::TempDir;

    use super::*;

    /// A temporary directory whose path contains spaces.
    fn scratch_dir() -> TempDir {
        tempfile::Builder::new()
            .prefix("aiops worktree ")
            .tempdir()
            .unwrap()
    }

    /// Runs git for test setup and inspection, isolated from the user's config.
    fn sh_git(dir: &Path, args: &[&str]) -> String {
        let output = StdCommand::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=test", "-c", "user.email=test@localhost"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A repository on `main` with README.md (3 lines), gone.txt (2 lines) and docs.txt.
    fn init_repo(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        sh_git(dir, &["init", "--quiet", "--initial-branch=main"]);
        write(&dir.join("README.md"), "line1\nline2\nline3\n");
        write(&dir.join("gone.txt"), "a\nb\n");
        let docs: String = (1..=10)
            .map(|n| format!("documentation line {n}\n"))
            .collect();
        write(&dir.join("docs.txt"), &docs);
        sh_git(dir, &["add", "--all"]);
        sh_git(dir, &["commit", "--quiet", "-m", "initial"]);
        dir.to_path_buf()
    }

    /// A bare repository holding `init_repo`'s content, and its file:// URL.
    fn init_remote(root: &Path) -> (PathBuf, String) {
        let seed = init_repo(&root.join("seed repo"));
        let bare = root.join("remote repo.git");
        sh_git(
            root,
            &[
                "clone",
                "--quiet",
                "--bare",
                seed.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        let url = format!("file://{}", bare.display());
        (bare, url)
    }

    fn local_spec(repo: &Path) -> RepoSpec {
        RepoSpec {
            project: "shop".to_owned(),
            repo_url: None,
            local_path: Some(repo.to_path_buf()),
            default_branch: "main".to_owned(),
        }
    }

    fn url_spec(url: &str) -> RepoSpec {
        RepoSpec {
            project: "shop".to_owned(),
            repo_url: Some(url.to_owned()),
            local_path: None,
            default_branch: "main".to_owned(),
        }
    }

    fn current_branch(worktree: &Path) -> String {
        sh_git(worktree, &["rev-parse", "--abbrev-ref", "HEAD"])
    }

    fn branch_exists(repo: &Path, branch: &str) -> bool {
        StdCommand::new("git")
            .arg("-C")
            .arg(repo)
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
            .status
            .success()
    }

    #[tokio::test]
    async fn add_creates_a_worktree_on_a_new_branch_of_a_local_project() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));

        let (prepared, base) = worktrees.prepare(&local_spec(&repo)).await.unwrap();
        assert_eq!(
            (prepared.as_path(), base.as_str()),
            (repo.as_path(), "main")
        );
        let path = worktrees
            .add(&prepared, "shop", 7, "aiops/dev/7", &base)
            .await
            .unwrap();

        assert_eq!(path, worktrees.path_for("shop", 7));
        assert!(path.ends_with("data dir/worktrees/shop/7"));
        assert_eq!(current_branch(&path), "aiops/dev/7");
        assert_eq!(
            std::fs::read_to_string(path.join("README.md")).unwrap(),
            "line1\nline2\nline3\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn eight_concurrent_adds_on_one_repository_all_succeed() {
        let root = scratch_dir();
        let (_bare, url) = init_remote(root.path());
        let worktrees = Arc::new(Worktrees::new(root.path().join("data dir")));
        // A cloned project: its base is a remote-tracking branch, the case where an
        // unserialized `worktree add -b` fights over .git/config.
        let (repo, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();

        let adds: Vec<_> = (1..=8)
            .map(|task_id| {
                let (worktrees, repo, base) = (worktrees.clone(), repo.clone(), base.clone());
                tokio::spawn(async move {
                    let branch = format!("aiops/dev/{task_id}");
                    worktrees.add(&repo, "shop", task_id, &branch, &base).await
                })
            })
            .collect();
        for (task_id, add) in (1..=8).zip(adds) {
            let path = add.await.unwrap().unwrap();
            assert_eq!(current_branch(&path), format!("aiops/dev/{task_id}"));
        }
        let listing = sh_git(&repo, &["worktree", "list", "--porcelain"]);
        assert_eq!(listing.matches("branch refs/heads/aiops/dev/").count(), 8);
    }

    #[tokio::test]
    async fn add_twice_returns_the_same_worktree_unchanged() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));

        let first = worktrees
            .add(&repo, "shop", 1, "task-1", "main")
            .await
            .unwrap();
        write(&first.join("work in progress.txt"), "keep me\n");
        let second = worktrees
            .add(&repo, "shop", 1, "task-1", "main")
            .await
            .unwrap();

        assert_eq!(first, second);
        assert_eq!(
            std::fs::read_to_string(second.join("work in progress.txt")).unwrap(),
            "keep me\n"
        );
    }

    #[tokio::test]
    async fn add_recovers_the_branch_a_crash_left_behind() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));
        let path = worktrees
            .add(&repo, "shop", 3, "task-3", "main")
            .await
            .unwrap();
        write(&path.join("progress.txt"), "done so far\n");
        sh_git(&path, &["add", "progress.txt"]);
        sh_git(&path, &["commit", "--quiet", "-m", "progress"]);

        // Crash: the worktree directory is gone and git has forgotten it; the branch stays.
        std::fs::remove_dir_all(&path).unwrap();
        sh_git(&repo, &["worktree", "prune"]);
        assert!(branch_exists(&repo, "task-3"));
        let recovered = worktrees
            .add(&repo, "shop", 3, "task-3", "main")
            .await
            .unwrap();
        assert_eq!(recovered, path);
        assert_eq!(current_branch(&path), "task-3");
        assert_eq!(
            std::fs::read_to_string(path.join("progress.txt")).unwrap(),
            "done so far\n"
        );

        // Crash before git forgot it: the directory is gone but still registered.
        std::fs::remove_dir_all(&path).unwrap();
        worktrees
            .add(&repo, "shop", 3, "task-3", "main")
            .await
            .unwrap();
        assert!(path.join("progress.txt").exists());

        // A stray directory where the worktree should go is replaced.
        let stray = worktrees.path_for("shop", 4);
        write(&stray.join("junk.txt"), "junk\n");
        worktrees
            .add(&repo, "shop", 4, "task-4", "main")
            .await
            .unwrap();
        assert_eq!(current_branch(&stray), "task-4");
        assert!(!stray.join("junk.txt").exists());
    }

    #[tokio::test]
    async fn prepare_clones_once_then_fetches_new_commits() {
        let root = scratch_dir();
        let (bare, url) = init_remote(root.path());
        let worktrees = Worktrees::new(root.path().join("data dir"));

        let (repo, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();
        assert_eq!(repo, root.path().join("data dir/repos/shop"));
        assert_eq!(base, "origin/main");
        let marker = repo.join(".git/aiops-test-marker");
        write(&marker, "cloned once\n");

        let pusher = root.path().join("pusher");
        sh_git(
            root.path(),
            &[
                "clone",
                "--quiet",
                bare.to_str().unwrap(),
                pusher.to_str().unwrap(),
            ],
        );
        write(&pusher.join("fresh.txt"), "from upstream\n");
        sh_git(&pusher, &["add", "fresh.txt"]);
        sh_git(&pusher, &["commit", "--quiet", "-m", "upstream change"]);
        sh_git(&pusher, &["push", "--quiet", "origin", "main"]);
        let pushed = sh_git(&pusher, &["rev-parse", "HEAD"]);

        let (again, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();
        assert_eq!(again, repo);
        assert!(marker.exists(), "prepare cloned a second time");
        assert_eq!(sh_git(&repo, &["rev-parse", &base]), pushed);
        let path = worktrees
            .add(&repo, "shop", 1, "task-1", &base)
            .await
            .unwrap();
        assert!(path.join("fresh.txt").exists());
    }

    #[tokio::test]
    async fn prepare_redoes_a_half_finished_clone() {
        let root = scratch_dir();
        // The data directory sits inside another checkout, as `./data` in a source tree does.
        init_repo(root.path());
        let (_bare, url) = init_remote(root.path());
        let worktrees = Worktrees::new(root.path().join("data dir"));
        let clone = root.path().join("data dir/repos/shop");

        std::fs::create_dir_all(&clone).unwrap();
        let (repo, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();
        assert_eq!(
            sh_git(&repo, &["rev-parse", "--show-toplevel"]),
            repo.to_str().unwrap()
        );
        assert!(repo.join("README.md").exists());

        std::fs::remove_dir_all(clone.join(".git")).unwrap();
        let (repo, _) = worktrees.prepare(&url_spec(&url)).await.unwrap();
        assert_eq!(
            sh_git(&repo, &["rev-parse", "--show-toplevel"]),
            repo.to_str().unwrap()
        );
        assert!(!sh_git(&repo, &["rev-parse", &base]).is_empty());
    }

    #[tokio::test]
    async fn remove_deletes_the_worktree_and_its_branch() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));
        let path = worktrees
            .add(&repo, "shop", 5, "task-5", "main")
            .await
            .unwrap();
        write(&path.join("uncommitted.txt"), "dirty\n");

        worktrees
            .remove(&repo, &path, Some("task-5"))
            .await
            .unwrap();
        assert!(!path.exists());
        assert!(!sh_git(&repo, &["worktree", "list"]).contains(path.to_str().unwrap()));
        assert!(!branch_exists(&repo, "task-5"));

        worktrees
            .remove(&repo, &path, Some("task-5"))
            .await
            .unwrap();

        let kept = worktrees
            .add(&repo, "shop", 6, "task-6", "main")
            .await
            .unwrap();
        worktrees.remove(&repo, &kept, None).await.unwrap();
        assert!(!kept.exists());
        assert!(branch_exists(&repo, "task-6"));
    }

    #[tokio::test]
    async fn remove_refuses_a_directory_that_is_not_a_task_worktree() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));
        let precious = root.path().join("precious");
        write(&precious.join("file.txt"), "keep\n");

        let error = worktrees.remove(&repo, &precious, None).await.unwrap_err();
        assert!(
            matches!(error, WorktreeError::ForeignPath { .. }),
            "{error}"
        );
        assert!(precious.join("file.txt").exists());

        // Nor a whole project's directory under the data directory.
        let task = worktrees
            .add(&repo, "shop", 1, "task-1", "main")
            .await
            .unwrap();
        let project_dir = task.parent().unwrap();
        let error = worktrees
            .remove(&repo, project_dir, None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, WorktreeError::ForeignPath { .. }),
            "{error}"
        );
        assert!(task.join("README.md").exists());
    }

    #[tokio::test]
    async fn diff_reports_every_change_outside_party_without_touching_the_index() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));
        let path = worktrees
            .add(&repo, "shop", 1, "task-1", "main")
            .await
            .unwrap();
        write(&path.join("README.md"), "line1\nchanged\nline3\nline4\n");
        write(&path.join("new file.txt"), "x\ny\nz\n");
        std::fs::remove_file(path.join("gone.txt")).unwrap();
        std::fs::rename(path.join("docs.txt"), path.join("manual.txt")).unwrap();
        write(
            &path.join(".party/events.jsonl"),
            "{\"event\":\"secret-ish\"}\n",
        );
        let status_before = sh_git(&path, &["status", "--porcelain"]);
        // The default branch moves on after the task started; that is not the task's change.
        write(&repo.join("upstream.txt"), "later\n");
        sh_git(&repo, &["add", "upstream.txt"]);
        sh_git(&repo, &["commit", "--quiet", "-m", "upstream"]);

        let diff = worktrees.diff(&path, "main", 1 << 20).await.unwrap();

        assert_eq!(sh_git(&path, &["status", "--porcelain"]), status_before);
        let mut files: Vec<_> = diff
            .files
            .iter()
            .map(|file| {
                (
                    file.path.as_str(),
                    file.status.as_str(),
                    file.insertions,
                    file.deletions,
                )
            })
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                ("README.md", "modified", 2, 1),
                ("gone.txt", "deleted", 0, 2),
                ("manual.txt", "renamed", 0, 0),
                ("new file.txt", "added", 3, 0),
            ]
        );
        assert!(diff.stat.contains("README.md"), "{}", diff.stat);
        assert!(diff.stat.contains("4 files changed"), "{}", diff.stat);
        assert!(diff.patch.contains("+changed\n"), "{}", diff.patch);
        assert!(diff.patch.contains("+++ b/new file.txt"), "{}", diff.patch);
        assert!(!diff.patch.contains(".party") && !diff.stat.contains(".party"));
        assert!(!diff.truncated);
    }

    #[tokio::test]
    async fn diff_truncates_a_large_patch_on_a_line_boundary() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));
        let path = worktrees
            .add(&repo, "shop", 1, "task-1", "main")
            .await
            .unwrap();
        let big: String = (0..200_000)
            .map(|n| format!("generated line {n}\n"))
            .collect();
        write(&path.join("big.txt"), &big);

        let diff = worktrees.diff(&path, "main", 4096).await.unwrap();

        assert!(diff.truncated);
        assert!(diff.patch.len() <= 4096 && diff.patch.ends_with('\n'));
        assert!(diff.patch.starts_with("diff --git a/big.txt b/big.txt\n"));
        assert_eq!(diff.files.len(), 1);
        assert_eq!(diff.files[0].insertions, 200_000);
    }

    #[tokio::test]
    async fn a_base_that_does_not_exist_is_a_permanent_error_with_gits_message() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));

        let error = worktrees
            .add(&repo, "shop", 1, "task-1", "no-such-branch")
            .await
            .unwrap_err();
        assert!(
            matches!(error, WorktreeError::BaseNotFound { .. }),
            "{error}"
        );
        assert!(!error.is_retryable());
        let message = error.to_string();
        assert!(message.contains("no-such-branch"), "{message}");
        assert!(
            message.contains("fatal: Needed a single revision"),
            "{message}"
        );
        assert!(!branch_exists(&repo, "task-1"));

        let mut spec = local_spec(&repo);
        spec.default_branch = "trunk".to_owned();
        let error = worktrees.prepare(&spec).await.unwrap_err();
        assert!(
            matches!(error, WorktreeError::BaseNotFound { .. }),
            "{error}"
        );
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn a_local_path_that_is_not_a_repository_is_a_permanent_error() {
        let root = scratch_dir();
        let worktrees = Worktrees::new(root.path().join("data dir"));

        let error = worktrees
            .prepare(&local_spec(&root.path().join("nothing here")))
            .await
            .unwrap_err();
        assert!(
            matches!(error, WorktreeError::NotARepository { .. }),
            "{error}"
        );
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn an_unreachable_remote_is_a_retryable_error() {
        let root = scratch_dir();
        let worktrees = Worktrees::new(root.path().join("data dir"));

        let error = worktrees
            .prepare(&url_spec("file:///does/not/exist"))
            .await
            .unwrap_err();
        assert!(matches!(error, WorktreeError::Network { .. }), "{error}");
        assert!(error.is_retryable());
        assert!(
            error
                .to_string()
                .contains("does not appear to be a git repository")
        );
        assert!(!root.path().join("data dir/repos/shop").exists());
    }

    #[tokio::test]
    async fn a_held_git_lock_is_a_retryable_error() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));
        write(&repo.join(".git/refs/heads/task-1.lock"), "");

        let error = worktrees
            .add(&repo, "shop", 1, "task-1", "main")
            .await
            .unwrap_err();
        assert!(matches!(error, WorktreeError::Locked { .. }), "{error}");
        assert!(error.is_retryable());
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_credentials("git clone -- https://x-access-token:s3cret@github.com/o/r.git /d"),
            "git clone -- https://***@github.com/o/r.git /d"
        );
        assert_eq!(
            redact_credentials("fatal: unable to access 'https://me@host/r/': 403"),
            "fatal: unable to access 'https://***@host/r/': 403"
        );
        let harmless = "git clone -- file:///srv/a@b/repo.git ssh://host/r";
        assert_eq!(redact_credentials(harmless), harmless);
    }

    #[tokio::test]
    async fn project_names_that_leave_the_data_directory_are_refused() {
        let root = scratch_dir();
        let repo = init_repo(&root.path().join("my repo"));
        let worktrees = Worktrees::new(root.path().join("data dir"));

        for project in ["..", "../escape", "a/b", "/abs", ".hidden", ""] {
            let error = worktrees
                .add(&repo, project, 1, "task-1", "main")
                .await
                .unwrap_err();
            assert!(
                matches!(error, WorktreeError::InvalidProject(_)),
                "{project}: {error}"
            );
            let mut spec = url_spec("file:///unused");
            spec.project = project.to_owned();
            let error = worktrees.prepare(&spec).await.unwrap_err();
            assert!(
                matches!(error, WorktreeError::InvalidProject(_)),
                "{project}: {error}"
            );
        }
    }
}
