//! GitHub webhook routing: which deliveries become tasks, for which team, with what prompt.

use serde_json::{Value, json};

use super::{Routing, TaskRequest};
use crate::config::GithubConfig;
use crate::teams::Teams;

/// Comment authors allowed to start work with `/party`.
const TRUSTED_ASSOCIATIONS: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

/// Decides what a delivery of `event` asks for. `default_team` is used when neither a
/// label, a command nor the presets' keywords name one.
pub fn route(
    event: &str,
    payload: &Value,
    config: &GithubConfig,
    teams: &Teams,
    default_team: &str,
) -> Routing {
    let action = payload["action"].as_str().unwrap_or_default();
    match (event, action) {
        ("issues", "opened") if config.on_issue_opened => {
            issue_task(payload, None, teams, default_team, config)
        }
        ("issues", "labeled") => {
            let label = payload["label"]["name"].as_str().unwrap_or_default();
            if let Some(team) = label.strip_prefix("party:") {
                if !teams.contains(team) {
                    return Routing::Ignore(format!("label {label:?} names no known team"));
                }
                issue_task(payload, Some(team), teams, default_team, config)
            } else if config.labels.iter().any(|l| l == label) {
                issue_task(payload, None, teams, default_team, config)
            } else {
                Routing::Ignore(format!("label {label:?} is not a trigger label"))
            }
        }
        ("issues", "assigned") => {
            let login = payload["assignee"]["login"].as_str().unwrap_or_default();
            if config
                .bot_logins
                .iter()
                .any(|b| b.eq_ignore_ascii_case(login))
            {
                issue_task(payload, None, teams, default_team, config)
            } else {
                Routing::Ignore(format!(
                    "assigned to {login:?}, not to a configured bot login"
                ))
            }
        }
        ("issue_comment", "created") => party_command(payload, teams, default_team, config),
        ("workflow_run", "completed") => workflow_failure(payload, config),
        _ if action.is_empty() => Routing::Ignore(format!("event {event:?} is not routed")),
        _ => Routing::Ignore(format!(
            "event {event:?} with action {action:?} is not routed"
        )),
    }
}

/// The issue's title, body and link, as a prompt.
fn issue_prompt(payload: &Value, request: Option<&str>) -> String {
    let issue = &payload["issue"];
    let mut prompt = String::new();
    if let Some(request) = request {
        prompt.push_str(request.trim());
        prompt.push_str("\n\n");
    }
    prompt.push_str(&format!(
        "GitHub issue #{} in {}: {}\n{}",
        issue["number"],
        payload["repository"]["full_name"].as_str().unwrap_or("?"),
        issue["title"].as_str().unwrap_or("(no title)"),
        issue["html_url"].as_str().unwrap_or_default()
    ));
    if let Some(body) = issue["body"].as_str().filter(|b| !b.trim().is_empty()) {
        prompt.push_str("\n\n");
        prompt.push_str(body.trim());
    }
    prompt
}

fn issue_ref(payload: &Value) -> Value {
    json!({
        "kind": "github_issue",
        "repo": payload["repository"]["full_name"],
        "issue": payload["issue"]["number"],
        "url": payload["issue"]["html_url"],
        "installation": payload["installation"]["id"],
    })
}

fn issue_task(
    payload: &Value,
    team: Option<&str>,
    teams: &Teams,
    default_team: &str,
    config: &GithubConfig,
) -> Routing {
    if payload["issue"]["pull_request"].is_object() {
        return Routing::Ignore("the issue is a pull request".into());
    }
    let prompt = issue_prompt(payload, None);
    let team = team.map_or_else(
        || teams.pick(&prompt, default_team).to_string(),
        str::to_string,
    );
    Routing::Task(TaskRequest {
        team,
        prompt,
        priority: config.priority,
        dedup_key: format!(
            "github:{}#{}",
            payload["repository"]["full_name"].as_str().unwrap_or("?"),
            payload["issue"]["number"]
        ),
        source_ref: issue_ref(payload),
    })
}

/// `/party [team] <text>` in a new comment by someone trusted.
fn party_command(
    payload: &Value,
    teams: &Teams,
    default_team: &str,
    config: &GithubConfig,
) -> Routing {
    let body = payload["comment"]["body"]
        .as_str()
        .unwrap_or_default()
        .trim_start();
    let Some(rest) = body.strip_prefix("/party") else {
        return Routing::Ignore("the comment is not a /party command".into());
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Routing::Ignore("the comment is not a /party command".into());
    }
    let association = payload["comment"]["author_association"]
        .as_str()
        .unwrap_or("NONE");
    if !TRUSTED_ASSOCIATIONS.contains(&association) {
        let login = payload["comment"]["user"]["login"].as_str().unwrap_or("?");
        return Routing::Ignore(format!(
            "/party from {login} ignored: author association {association} is not OWNER, MEMBER or COLLABORATOR"
        ));
    }
    let rest = rest.trim();
    let (named, text) = match rest.split_once(char::is_whitespace) {
        Some((first, text)) if teams.contains(first) => (Some(first), text.trim()),
        None if teams.contains(rest) => (Some(rest), ""),
        _ => (None, rest),
    };
    let prompt = issue_prompt(payload, Some(text).filter(|t| !t.is_empty()));
    let team = named.map_or_else(
        || teams.pick(&prompt, default_team).to_string(),
        str::to_string,
    );
    let mut source_ref = issue_ref(payload);
    source_ref["comment"] = payload["comment"]["id"].clone();
    Routing::Task(TaskRequest {
        team,
        prompt,
        priority: config.priority,
        dedup_key: format!("github-comment:{}", payload["comment"]["id"]),
        source_ref,
    })
}

/// A failed workflow run on the default branch.
fn workflow_failure(payload: &Value, config: &GithubConfig) -> Routing {
    let run = &payload["workflow_run"];
    let conclusion = run["conclusion"].as_str().unwrap_or("none");
    let branch = run["head_branch"].as_str().unwrap_or_default();
    let default_branch = payload["repository"]["default_branch"]
        .as_str()
        .unwrap_or_default();
    if !config.on_workflow_failure {
        return Routing::Ignore(
            "workflow failures are not routed (github.on_workflow_failure)".into(),
        );
    }
    if conclusion != "failure" {
        return Routing::Ignore(format!("workflow run concluded {conclusion}, not failure"));
    }
    if branch != default_branch {
        return Routing::Ignore(format!(
            "workflow run on {branch:?}, not the default branch {default_branch:?}"
        ));
    }
    let prompt = format!(
        "The workflow \"{}\" failed on {} of {} (commit {}: {}).\n{}\nFind the cause and fix it.",
        run["name"].as_str().unwrap_or("?"),
        branch,
        payload["repository"]["full_name"].as_str().unwrap_or("?"),
        run["head_sha"].as_str().unwrap_or("?"),
        run["head_commit"]["message"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or(""),
        run["html_url"].as_str().unwrap_or_default(),
    );
    Routing::Task(TaskRequest {
        team: config.workflow_failure_team.clone(),
        prompt,
        priority: config.priority,
        dedup_key: format!("github-run:{}", run["id"]),
        source_ref: json!({
            "kind": "github_workflow_run",
            "repo": payload["repository"]["full_name"],
            "run": run["id"],
            "url": run["html_url"],
        }),
    })
}
