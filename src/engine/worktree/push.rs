//! Publishing a task's work: committing what it changed on its branch and pushing the branch
//! to `origin`. The only place that commits or pushes.

use std::path::Path;

use super::error::WorktreeError;
use super::git::{first_line, git, resolve_commit};
use super::paths::absolute;
use super::{EXCLUDE_PARTY, Worktrees};

impl Worktrees {
    /// Commits everything the task changed (`.party/` left out) on its branch and pushes the
    /// branch to the repository's `origin`, when it has one. Returns the commit and whether
    /// it was pushed, or None when the task changed nothing relative to `base`. `push_token`
    /// authenticates an HTTPS remote; it is passed to git through its environment, never on
    /// a command line.
    pub async fn commit_and_push(
        &self,
        worktree: &Path,
        base: &str,
        branch: &str,
        message: &str,
        author: (&str, &str),
        push_token: Option<&str>,
    ) -> Result<Option<Published>, WorktreeError> {
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
        let has_origin = git(&worktree)
            .args(["remote", "get-url", "origin"])
            .output()
            .await?
            .status
            .success();
        if !has_origin {
            let head = git(&worktree).args(["rev-parse", "HEAD"]).run().await?;
            return Ok(Some(Published {
                commit: first_line(&head),
                pushed: false,
            }));
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
        Ok(Some(Published {
            commit: first_line(&head),
            pushed: true,
        }))
    }
}

/// A task's committed work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub commit: String,
    /// False when the repository has no `origin`: the work is on the task branch only.
    pub pushed: bool,
}
