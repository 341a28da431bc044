//! The project registry: what a project is and which values are acceptable.
//!
//! Validation lives here so the API and the CLI accept exactly the same things. This
//! module runs `git` only to check that a local path is a repository; it never changes one.

use std::path::Path;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::InputsConfig;
use crate::error::{Error, Result};
use crate::model::ProjectRole;
use crate::model::target::refused_host;
pub use crate::model::{ApprovalPolicy, Project, ProjectSpec, is_slug};
use crate::store::Store;

/// Branch template used when a project names none.
pub const DEFAULT_BRANCH_STRATEGY: &str = "aiops/{team}/{task_id}";

/// Body of a project creation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
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
    /// Who may decide approvals; fields left out keep their value (or default).
    pub approval_policy: Option<ApprovalPolicyPatch>,
}

/// A change to a project's approval policy: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicyPatch {
    /// `approver` or `maintainer`: the least project role that decides.
    pub decide_role: Option<ProjectRole>,
    /// Whether the user whose request started a task may approve it.
    pub self_approval: Option<bool>,
    /// Distinct approvers (1-10) a tool request of risk HIGH or a result needs.
    pub required_approvals: Option<i64>,
}

impl ApprovalPolicyPatch {
    /// `policy` with this change applied.
    pub fn applied_to(self, policy: &ApprovalPolicy) -> ApprovalPolicy {
        ApprovalPolicy {
            decide_role: self.decide_role.unwrap_or(policy.decide_role),
            self_approval: self.self_approval.unwrap_or(policy.self_approval),
            required_approvals: self.required_approvals.unwrap_or(policy.required_approvals),
        }
    }
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
    /// Who may decide approvals; fields left out keep their value (or default).
    pub approval_policy: Option<ApprovalPolicyPatch>,
}

impl NewProject {
    /// Fills defaults and validates against what `inputs` allows.
    pub fn into_spec(self, inputs: &InputsConfig) -> Result<ProjectSpec> {
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
            approval_policy: self
                .approval_policy
                .unwrap_or_default()
                .applied_to(&ApprovalPolicy::default()),
        }
        .validated(inputs)
    }
}

impl Project {
    /// The values of this project with `patch` applied, validated against `inputs`.
    pub fn patched(&self, patch: ProjectPatch, inputs: &InputsConfig) -> Result<ProjectSpec> {
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
            approval_policy: patch
                .approval_policy
                .unwrap_or_default()
                .applied_to(&self.approval_policy),
        }
        .validated(inputs)
    }
}

impl ProjectSpec {
    fn validated(mut self, inputs: &InputsConfig) -> Result<Self> {
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
            validate_repo_url(url, inputs)?;
        }
        if let Some(path) = &self.local_path {
            self.local_path = Some(validate_local_repo(path, &inputs.local_roots)?);
        }
        if !is_branch_name(&self.default_branch) {
            return Err(Error::invalid(
                "default_branch",
                "is not a valid branch name: letters, digits, '-', '_', '.' and '/', no '..', no part starting with '.' or ending in '.lock'",
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
        validate_approval_policy(&self.approval_policy)?;
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

fn validate_approval_policy(policy: &ApprovalPolicy) -> Result<()> {
    if policy.decide_role < ProjectRole::Approver {
        return Err(Error::invalid(
            "approval_policy.decide_role",
            "must be approver or maintainer: deciding needs at least the approver role",
        ));
    }
    if !(1..=10).contains(&policy.required_approvals) {
        return Err(Error::invalid(
            "approval_policy.required_approvals",
            "must be between 1 and 10",
        ));
    }
    Ok(())
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

/// A branch name git accepts (`git check-ref-format --branch`), in a narrower alphabet: no
/// control characters or specials, no `..`, no part that starts with `.` or ends in `.lock`.
fn is_branch_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 200
        && !value.starts_with(['-', '/'])
        && !value.ends_with(['/', '.'])
        && !value.contains("..")
        && value
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
        && value != "HEAD"
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

/// Accepts https and ssh URLs (and git's scp-like `user@host:path`) without a password or
/// token in them, to hosts outside the service's own networks unless allowed, and `file://`
/// URLs of repositories inside `inputs.local_roots` (a local path by another name).
fn validate_repo_url(value: &str, inputs: &InputsConfig) -> Result<()> {
    if let Some(path) = value.strip_prefix("file://") {
        return validate_local_repo(path, &inputs.local_roots)
            .map(drop)
            .map_err(|e| Error::invalid("repo_url", e.to_string()));
    }
    let allow_private = inputs.allow_private_targets;
    let invalid = |why: String| Err(Error::invalid("repo_url", why));
    if value.starts_with('-') || value.chars().any(char::is_control) {
        return invalid("must not start with '-' or contain control characters".into());
    }
    let url = match crate::model::target::parse_git_remote(value) {
        Ok(url) => url,
        Err(e) => return invalid(format!("is not a URL: {e}")),
    };
    if !["https", "ssh"].contains(&url.scheme()) {
        return invalid(format!(
            "scheme {:?} is not accepted; use https or ssh",
            url.scheme()
        ));
    }
    let token_as_user = url.scheme() == "https" && !url.username().is_empty();
    if url.password().is_some() || token_as_user {
        return invalid(
            "must not carry credentials; store the token as a credential (the vault) instead"
                .into(),
        );
    }
    match refused_host(&url, allow_private) {
        Some(why) => invalid(why),
        None => Ok(()),
    }
}

/// Checks that `path` is a git repository inside one of `roots` and returns it absolute.
fn validate_local_repo(path: &str, roots: &[std::path::PathBuf]) -> Result<String> {
    let absolute = Path::new(path)
        .canonicalize()
        .map_err(|e| Error::invalid("local_path", format!("{path}: {e}")))?;
    let inside = roots.iter().any(|root| {
        root.canonicalize()
            .is_ok_and(|root| absolute.starts_with(root))
    });
    if !inside {
        return Err(Error::invalid(
            "local_path",
            format!(
                "{} is not inside a directory listed in inputs.local_roots; add its parent there or register the project by repo_url",
                absolute.display()
            ),
        ));
    }
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

/// The id of the project a listing is filtered to (`project` given by name); NotFound for
/// an unknown one, None for no filter.
pub async fn filter_id(store: &Store, name: Option<&str>) -> Result<Option<i64>> {
    match name {
        Some(name) => Ok(Some(store.project(name).await?.id)),
        None => Ok(None),
    }
}

/// The projects a request's text names, by name or GitHub repository (`shopping_md` names
/// `shopping-md`), for a client that asks which project a request is for; the person
/// confirms before a task is made.
pub async fn mentioned_in(store: &Store, text: &str) -> Result<Vec<Project>> {
    let words: std::collections::HashSet<String> = text
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '.')))
        .map(|w| w.trim_matches('.').to_lowercase().replace('_', "-"))
        .filter(|w| !w.is_empty())
        .collect();
    let named = |project: &Project| {
        let repo = project
            .github_repo
            .as_deref()
            .map(|r| r.to_lowercase().replace('_', "-"));
        words.contains(&project.name)
            || repo.as_ref().is_some_and(|r| {
                words.contains(r) || r.rsplit('/').next().is_some_and(|n| words.contains(n))
            })
    };
    Ok(store
        .list_projects()
        .await?
        .into_iter()
        .filter(named)
        .collect())
}

/// Changes project `name`; only the fields in `patch` change.
pub async fn update(
    store: &Store,
    inputs: &InputsConfig,
    name: &str,
    patch: ProjectPatch,
) -> Result<Project> {
    let project = store.project(name).await?;
    store
        .update_project(project.id, &project.patched(patch, inputs)?)
        .await
}

/// A project as API clients see it: a repository URL without any credentials an older
/// version let in.
pub fn shown(mut project: Project) -> Project {
    if let Some(url) = &project.repo_url
        && let Ok(mut parsed) = url::Url::parse(url)
        && (!parsed.username().is_empty() || parsed.password().is_some())
    {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        project.repo_url = Some(parsed.to_string());
    }
    project
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
        let strict = InputsConfig::default();
        let ok = |url: &str| validate_repo_url(url, &strict).is_ok();
        assert!(ok("https://github.com/o/r.git"));
        assert!(ok("git@github.com:o/r.git"));
        assert!(ok("ssh://git@github.com/o/r.git"));
        for refused in [
            "ftp://x/y",
            "not a url",
            "file:///srv/repo.git",
            "http://github.com/o/r.git",
            "git://github.com/o/r.git",
            "https://user:token@github.com/o/r.git",
            "https://ghp_token@github.com/o/r.git",
            "ssh://git:pw@github.com/o/r.git",
            "https://169.254.169.254/latest",
            "https://127.0.0.1/r.git",
            "git@127.0.0.1:r.git",
            "https://localhost/r.git",
            "-oProxyCommand=x@h:p",
        ] {
            assert!(!ok(refused), "{refused}");
        }
        let lan = InputsConfig {
            allow_private_targets: true,
            ..InputsConfig::default()
        };
        assert!(validate_repo_url("https://127.0.0.1/r.git", &lan).is_ok());
    }

    #[test]
    fn branch_names() {
        for good in ["main", "release/1.2", "aiops/bugfix/7"] {
            assert!(is_branch_name(good), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "x.lock",
            "a/b.lock/c",
            ".hidden",
            "a/.b",
            "a b",
            "a\u{7}b",
            "-x",
            "a//b",
            "HEAD",
            "a@{1}",
            "a~1",
            "a^",
            "a:b",
        ] {
            assert!(!is_branch_name(bad), "{bad}");
        }
    }

    #[test]
    fn local_paths_must_be_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("r");
        std::fs::create_dir(&repo).unwrap();
        let git = std::process::Command::new("git")
            .args(["init", "-q"])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(git.success());
        let path = repo.to_str().unwrap();
        let roots = vec![root.path().to_path_buf()];
        assert!(validate_local_repo(path, &roots).is_ok());
        let other = tempfile::tempdir().unwrap();
        let other_root = vec![other.path().to_path_buf()];
        assert!(validate_local_repo(path, &other_root).is_err());
        assert!(validate_local_repo(path, &[]).is_err());
        // A symlink inside a root does not lead out of it.
        let link = other.path().join("link");
        std::os::unix::fs::symlink(&repo, &link).unwrap();
        assert!(validate_local_repo(link.to_str().unwrap(), &other_root).is_err());
    }

    fn test_project() -> Project {
        Project {
            id: 1,
            name: "p".into(),
            repo_url: None,
            local_path: None,
            default_branch: "main".into(),
            branch_strategy: DEFAULT_BRANCH_STRATEGY.into(),
            tech_stack: Vec::new(),
            conventions: String::new(),
            github_repo: None,
            max_concurrency: 1,
            timeout_secs: None,
            approval_policy: ApprovalPolicy::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        let project = Project {
            repo_url: Some("https://x:tok@github.com/o/r.git".into()),
            ..test_project()
        };
        assert_eq!(
            shown(project).repo_url.as_deref(),
            Some("https://github.com/o/r.git")
        );
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
    fn approval_policies_are_checked() {
        let patch = |json: serde_json::Value| {
            let patch: ProjectPatch =
                serde_json::from_value(serde_json::json!({ "approval_policy": json })).unwrap();
            validate_approval_policy(
                &patch
                    .approval_policy
                    .unwrap()
                    .applied_to(&ApprovalPolicy::default()),
            )
        };
        assert!(patch(serde_json::json!({"required_approvals": 2, "self_approval": true})).is_ok());
        assert!(patch(serde_json::json!({"decide_role": "maintainer"})).is_ok());
        assert!(patch(serde_json::json!({"decide_role": "viewer"})).is_err());
        assert!(patch(serde_json::json!({"required_approvals": 0})).is_err());
        assert!(patch(serde_json::json!({"required_approvals": 11})).is_err());
        let unknown = serde_json::json!({"approval_policy": {"quorum": 2}});
        assert!(serde_json::from_value::<ProjectPatch>(unknown).is_err());
    }

    #[test]
    fn github_repos() {
        assert!(is_github_repo("Codertocat/Hello-World"));
        assert!(!is_github_repo("nope"));
        assert!(!is_github_repo("a/b/c"));
    }
}
