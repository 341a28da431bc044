//! The repository tasks branch from: a project's local checkout as is, or a clone in the data
//! directory kept fetched; and the per-repository lock that serializes git writers.

use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use tokio::sync::OwnedMutexGuard;

use super::error::{WorktreeError, io_error};
use super::git::{first_line, git, redact_credentials, resolve_commit, trimmed};
use super::paths::{absolute, canonical, check_project, create_dir_all, path_exists, remove_path};
use super::{RepoSpec, Worktrees};

impl Worktrees {
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
            let base = spec.default_branch.clone();
            // One git run when all is well; a failure is first checked for not being a
            // repository at all, the clearer error.
            if let Err(e) = resolve_commit(&repo, &format!("refs/heads/{base}"), &base).await {
                ensure_repository(&repo).await?;
                return Err(e);
            }
            return Ok((repo, base));
        }
        let Some(url) = &spec.repo_url else {
            return Err(WorktreeError::NoRepository(spec.project.clone()));
        };
        if !self.allow_private {
            refuse_internal_host(url).await?;
        }
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

    /// Waits for exclusive use of one repository; git's own locks make parallel writers fail.
    pub(super) async fn lock_repo(&self, repo: &Path) -> OwnedMutexGuard<()> {
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

/// Errs when `url`'s host resolves only to loopback, link-local or private addresses: the
/// API checked the URL as written when it was saved; this checks what its name means now,
/// right before git dials it. A name that does not resolve is left to git to report.
async fn refuse_internal_host(url: &str) -> Result<(), WorktreeError> {
    let Some(host) = host_of(url) else {
        return Ok(());
    };
    let Ok(found) = tokio::net::lookup_host((host.as_str(), 0)).await else {
        return Ok(());
    };
    let found: Vec<std::net::IpAddr> = found.map(|a| a.ip()).collect();
    if found.is_empty() || found.iter().any(|ip| crate::model::target::is_public(*ip)) {
        return Ok(());
    }
    let addresses: Vec<String> = found.iter().map(ToString::to_string).collect();
    Err(WorktreeError::InternalHost {
        host,
        addresses: addresses.join(", "),
    })
}

/// The host of a remote URL git accepts: `https://…`, `ssh://…` or scp-like `user@host:path`;
/// None for a `file://` URL (a local repository, checked against `inputs.local_roots`).
pub(super) fn host_of(url: &str) -> Option<String> {
    if url.starts_with("file://") {
        return None;
    }
    let parsed = crate::model::target::parse_git_remote(url).ok()?;
    let host = parsed
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some(host.to_owned())
}
