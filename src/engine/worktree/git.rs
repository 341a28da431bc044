//! Running the `git` binary with a fixed environment (no user or system config, no prompts,
//! no editor, no hooks), reading its output, and classifying its failures. Knows no worktrees.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::error::{WorktreeError, io_error};

/// Starts a git command run in `dir`.
pub(super) fn git(dir: &Path) -> GitCommand {
    GitCommand {
        dir: dir.to_path_buf(),
        args: Vec::new(),
        index_file: None,
        network: false,
        env: Vec::new(),
    }
}

/// One `git` invocation with the fixed environment.
pub(super) struct GitCommand {
    dir: PathBuf,
    args: Vec<OsString>,
    index_file: Option<PathBuf>,
    network: bool,
    /// Extra variables, set after the inherited GIT_* ones are cleared.
    env: Vec<(String, String)>,
}

impl GitCommand {
    pub(super) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(super) fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    pub(super) fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Uses `path` instead of the worktree's index.
    pub(super) fn index_file(mut self, path: &Path) -> Self {
        self.index_file = Some(path.to_path_buf());
        self
    }

    /// Marks the command as talking to a remote: failures become retryable network errors,
    /// and a stalled transfer gives up instead of holding the repository lock forever.
    pub(super) fn network(mut self) -> Self {
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
    pub(super) async fn output(&self) -> Result<Output, WorktreeError> {
        tracing::debug!(dir = %self.dir.display(), command = %self.display(), "running git");
        self.command().output().await.map_err(spawn_error)
    }

    /// Runs and returns stdout, or the failure classified.
    pub(super) async fn run(self) -> Result<Vec<u8>, WorktreeError> {
        let output = self.output().await?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(self.failure(&output.stderr))
        }
    }

    /// Runs and returns at most `max_bytes` of stdout and whether there was more; reading
    /// stops early so an enormous output is never held in memory.
    pub(super) async fn run_capped(
        self,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, bool), WorktreeError> {
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
    pub(super) fn failure(&self, stderr: &[u8]) -> WorktreeError {
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

/// The error for git not starting at all.
fn spawn_error(error: io::Error) -> WorktreeError {
    if error.kind() == io::ErrorKind::NotFound {
        WorktreeError::GitMissing(error)
    } else {
        io_error("start git", error)
    }
}

/// Git's stderr for an error message, without credentials.
pub(super) fn trimmed(bytes: &[u8]) -> String {
    redact_credentials(String::from_utf8_lossy(bytes).trim())
}

/// `text` with the user and password of every URL in it replaced by `***`, so a token in a
/// project's repo_url never reaches an error message or a log.
pub(super) fn redact_credentials(text: &str) -> String {
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

/// The first line of git's output, as text.
pub(super) fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The commit `rev` names in `repo`; `base` is how the caller called it, for the error.
pub(super) async fn resolve_commit(
    repo: &Path,
    rev: &str,
    base: &str,
) -> Result<String, WorktreeError> {
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
pub(super) async fn resolves(repo: &Path, rev: &str) -> Result<bool, WorktreeError> {
    let output = git(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options", rev])
        .output()
        .await?;
    Ok(output.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
