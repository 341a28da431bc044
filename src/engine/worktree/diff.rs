//! What a task changed in its worktree against its base: changed files, stat and a capped
//! patch, read through a scratch copy of the index so the agent's staging is never touched.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::error::{WorktreeError, io_error};
use super::git::{first_line, git, resolve_commit, trimmed};
use super::paths::absolute;
use super::{EXCLUDE_PARTY, Worktrees};
use crate::model::ChangedFile;

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

impl Worktrees {
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
