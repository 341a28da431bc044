//! The project registry: what a project is and which values are acceptable.
//!
//! Validation lives here so the API and the CLI accept exactly the same things. This
//! module runs `git` only to check that a local path is a repository; it never changes one.

use std::path::Path;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{Error, Result};
pub use crate::model::{Project, ProjectSpec, is_slug};
use crate::store::Store;

/// Branch template used when a project names none.
pub const DEFAULT_BRANCH_STRATEGY: &str = "aiops/{team}/{task_id}";

/// Body of a project creation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    pub repo_url: Option<String>,
    pub local_path: Option<String>,
    pub default_branch: Option<String>,
    pub branch_strategy: Option<String>,
    pub tech_stack: Option<Vec<String>>,
    pub conventions: Option<String>,
    pub github_repo: Option<String>,
    pub max_concurrency: Option<i64>,
    pub timeout_secs: Option<i64>,
}

/// Body of a project update: only the fields present change. An empty string clears
/// `repo_url`, `local_path` or `github_repo`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub repo_url: Option<String>,
    pub local_path: Option<String>,
    pub default_branch: Option<String>,
    pub branch_strategy: Option<String>,
    pub tech_stack: Option<Vec<String>>,
    pub conventions: Option<String>,
    pub github_repo: Option<String>,
    pub max_concurrency: Option<i64>,
    pub timeout_secs: Option<i64>,
}

impl NewProject {
    /// Fills defaults and validates.
    pub fn into_spec(self) -> Result<ProjectSpec> {
        ProjectSpec {
            name: self.name,
            repo_url: non_empty(self.repo_url),
            local_path: non_empty(self.local_path),
            default_branch: self.default_branch.unwrap_or_else(|| "main".into()),
            branch_strategy: self
                .branch_strategy
                .unwrap_or_else(|| DEFAULT_BRANCH_STRATEGY.into()),
            tech_stack: self.tech_stack.unwrap_or_default(),
            conventions: self.conventions.unwrap_or_default(),
            github_repo: non_empty(self.github_repo),
            max_concurrency: self.max_concurrency.unwrap_or(1),
            timeout_secs: self.timeout_secs,
        }
        .validated()
    }
}

impl Project {
    /// The values of this project with `patch` applied, validated.
    pub fn patched(&self, patch: ProjectPatch) -> Result<ProjectSpec> {
        let keep_or_clear = |new: Option<String>, old: &Option<String>| match new {
            Some(value) => non_empty(Some(value)),
            None => old.clone(),
        };
        ProjectSpec {
            name: self.name.clone(),
            repo_url: keep_or_clear(patch.repo_url, &self.repo_url),
            local_path: keep_or_clear(patch.local_path, &self.local_path),
            default_branch: patch
                .default_branch
                .unwrap_or_else(|| self.default_branch.clone()),
            branch_strategy: patch
                .branch_strategy
                .unwrap_or_else(|| self.branch_strategy.clone()),
            tech_stack: patch.tech_stack.unwrap_or_else(|| self.tech_stack.clone()),
            conventions: patch
                .conventions
                .unwrap_or_else(|| self.conventions.clone()),
            github_repo: keep_or_clear(patch.github_repo, &self.github_repo),
            max_concurrency: patch.max_concurrency.unwrap_or(self.max_concurrency),
            timeout_secs: patch.timeout_secs.or(self.timeout_secs),
        }
        .validated()
    }
}

impl ProjectSpec {
    fn validated(mut self) -> Result<Self> {
        if !is_slug(&self.name) {
            return Err(Error::invalid(
                "name",
                "must be a slug: 1-63 lower-case letters, digits or '-', starting with a letter or digit",
            ));
        }
        if self.repo_url.is_none() && self.local_path.is_none() {
            return Err(Error::invalid(
                "repo_url",
                "give a repo_url, a local_path, or both",
            ));
        }
        if let Some(url) = &self.repo_url {
            validate_repo_url(url)?;
        }
        if let Some(path) = &self.local_path {
            self.local_path = Some(validate_local_repo(path)?);
        }
        if !is_branch_name(&self.default_branch) {
            return Err(Error::invalid(
                "default_branch",
                "is not a valid branch name",
            ));
        }
        validate_branch_strategy(&self.branch_strategy)?;
        if let Some(repo) = &self.github_repo
            && !is_github_repo(repo)
        {
            return Err(Error::invalid("github_repo", "must look like owner/repo"));
        }
        if !(1..=64).contains(&self.max_concurrency) {
            return Err(Error::invalid(
                "max_concurrency",
                "must be between 1 and 64",
            ));
        }
        if let Some(secs) = self.timeout_secs
            && !(1..=7 * 24 * 3600).contains(&secs)
        {
            return Err(Error::invalid(
                "timeout_secs",
                "must be between 1 and 604800 (a week)",
            ));
        }
        if self
            .tech_stack
            .iter()
            .any(|t| t.trim().is_empty() || t.len() > 100)
        {
            return Err(Error::invalid(
                "tech_stack",
                "entries must be 1-100 characters",
            ));
        }
        Ok(self)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn is_github_repo(value: &str) -> bool {
    let ok = |part: &str, extra: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    matches!(value.split_once('/'), Some((owner, repo)) if ok(owner, "-") && ok(repo, "-_."))
}

fn is_branch_name(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with(['-', '/'])
        && !value.ends_with(['/', '.'])
        && !value.contains("..")
        && !value.contains("//")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn validate_branch_strategy(template: &str) -> Result<()> {
    if !template.contains("{task_id}") {
        return Err(Error::invalid(
            "branch_strategy",
            "must contain {task_id} so every task gets its own branch",
        ));
    }
    let rendered = render_branch(template, "project", "team", 1);
    if rendered.contains(['{', '}']) || !is_branch_name(&rendered) {
        return Err(Error::invalid(
            "branch_strategy",
            "may use only {project}, {team} and {task_id} and must make a valid branch name",
        ));
    }
    Ok(())
}

/// The branch name a task gets from a project's template.
pub fn render_branch(template: &str, project: &str, team: &str, task_id: i64) -> String {
    template
        .replace("{project}", project)
        .replace("{team}", team)
        .replace("{task_id}", &task_id.to_string())
}

fn validate_repo_url(value: &str) -> Result<()> {
    // scp-like syntax git accepts: user@host:path
    let scp_like = value
        .split_once(':')
        .is_some_and(|(host, path)| host.contains('@') && !host.contains('/') && !path.is_empty());
    if scp_like {
        return Ok(());
    }
    match url::Url::parse(value) {
        Ok(url) if ["https", "http", "ssh", "git", "file"].contains(&url.scheme()) => Ok(()),
        Ok(url) => Err(Error::invalid(
            "repo_url",
            format!(
                "scheme {:?} is not supported; use https, ssh, git or file",
                url.scheme()
            ),
        )),
        Err(e) => Err(Error::invalid("repo_url", format!("is not a URL: {e}"))),
    }
}

/// Checks that `path` is a git repository and returns it absolute.
fn validate_local_repo(path: &str) -> Result<String> {
    let absolute = Path::new(path)
        .canonicalize()
        .map_err(|e| Error::invalid("local_path", format!("{path}: {e}")))?;
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(&absolute)
        .args(["rev-parse", "--git-dir"])
        .output()
        .map_err(|e| Error::Internal(anyhow::anyhow!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(Error::invalid(
            "local_path",
            format!("{} is not a git repository", absolute.display()),
        ));
    }
    Ok(absolute.to_string_lossy().into_owned())
}

/// Changes project `name`; only the fields in `patch` change.
pub async fn update(store: &Store, name: &str, patch: ProjectPatch) -> Result<Project> {
    let project = store.project(name).await?;
    store
        .update_project(project.id, &project.patched(patch)?)
        .await
}

/// Removes project `name` and its credentials; a conflict while tasks refer to it.
pub async fn remove(store: &Store, name: &str) -> Result<()> {
    let project = store.project(name).await?;
    store.delete_project(project.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_slug("shop-api"));
        assert!(is_slug("a1"));
        assert!(!is_slug("-shop"));
        assert!(!is_slug("Shop"));
        assert!(!is_slug(""));
        assert!(!is_slug(&"a".repeat(64)));
    }

    #[test]
    fn repo_urls() {
        assert!(validate_repo_url("https://github.com/o/r.git").is_ok());
        assert!(validate_repo_url("git@github.com:o/r.git").is_ok());
        assert!(validate_repo_url("ftp://x/y").is_err());
        assert!(validate_repo_url("not a url").is_err());
    }

    #[test]
    fn branch_strategies() {
        assert!(validate_branch_strategy(DEFAULT_BRANCH_STRATEGY).is_ok());
        assert!(validate_branch_strategy("aiops/{team}").is_err());
        assert!(validate_branch_strategy("x/{nope}/{task_id}").is_err());
        assert_eq!(
            render_branch(DEFAULT_BRANCH_STRATEGY, "p", "bugfix", 7),
            "aiops/bugfix/7"
        );
    }

    #[test]
    fn github_repos() {
        assert!(is_github_repo("Codertocat/Hello-World"));
        assert!(!is_github_repo("nope"));
        assert!(!is_github_repo("a/b/c"));
    }
}
