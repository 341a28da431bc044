//! The Claude Code SessionStart hook: tells an agent which project it works in.
//!
//! Reads only project and task facts from the store; never touches the vault, so it
//! cannot print a secret. An unknown directory produces no output.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::config::Config;
use crate::projects::Project;
use crate::server;

/// The part of Claude Code's hook input this hook reads.
#[derive(Debug, Deserialize)]
struct HookInput {
    cwd: PathBuf,
}

/// The hook's output for `input`, or None when `cwd` belongs to no registered project.
pub async fn session_start(config: &Config, input: &str) -> anyhow::Result<Option<String>> {
    let input: HookInput = serde_json::from_str(input).map_err(|e| {
        anyhow::anyhow!("the SessionStart hook input is not the JSON Claude Code sends: {e}")
    })?;
    let cwd = input.cwd.canonicalize().unwrap_or(input.cwd);
    let store = server::open_store(config).await?;
    let worktrees = canonical(&config.data_dir.join("worktrees"));
    let repos = canonical(&config.data_dir.join("repos"));
    let projects = store.list_projects().await?;
    let mut found: Option<(&Project, Option<i64>)> = None;
    for project in &projects {
        if let Ok(rest) = cwd.strip_prefix(worktrees.join(&project.name)) {
            let task = rest
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str()?.parse().ok());
            found = Some((project, task));
            break;
        }
        let checkout = project
            .local_path
            .as_deref()
            .map(|p| canonical(Path::new(p)));
        if cwd.starts_with(repos.join(&project.name))
            || checkout.is_some_and(|c| cwd.starts_with(c))
        {
            found = Some((project, None));
        }
    }
    let Some((project, task_id)) = found else {
        return Ok(None);
    };
    let mut facts = vec![
        format!("This repository is the aiops project \"{}\".", project.name),
        format!(
            "Default branch: {}. Task branches: {}.",
            project.default_branch, project.branch_strategy
        ),
    ];
    if !project.tech_stack.is_empty() {
        facts.push(format!("Tech stack: {}.", project.tech_stack.join(", ")));
    }
    if !project.conventions.is_empty() {
        facts.push(format!("Conventions: {}", project.conventions));
    }
    if let Some(repo) = &project.github_repo {
        facts.push(format!("GitHub repository: {repo}."));
    }
    if let Some(task) = match task_id {
        Some(id) => store.task(id).await.ok(),
        None => None,
    } {
        facts.push(format!(
            "This worktree belongs to aiops task {} (team {}, priority {}): {}",
            task.id, task.team, task.priority, task.prompt
        ));
    }
    let output = json!({
        "hookSpecificOutput": {
            "hookEventName": "SessionStart",
            "additionalContext": facts.join("\n"),
        }
    });
    Ok(Some(output.to_string()))
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}
