//! GitHub webhook routing: which deliveries become tasks, for which team, with what prompt.

use serde_json::{Value, json};

use super::{Routing, TaskRequest};
use crate::config::GithubConfig;
use crate::model::{GithubRuleSpec, Priority};
use crate::teams::Teams;

/// Comment authors allowed to start work with `/party`.
const TRUSTED_ASSOCIATIONS: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

/// Which issue and workflow events start tasks, and the team and priority of those tasks:
/// the `[github]` settings, or one routing rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    pub on_issue_opened: bool,
    pub labels: Vec<String>,
    pub bot_logins: Vec<String>,
    pub on_workflow_failure: bool,
    pub workflow_failure_team: String,
    /// Team of issue tasks when neither a label, a command nor the presets' keywords name one.
    pub default_team: String,
    pub priority: Priority,
    /// The routing rule these come from, kept on the task; None for the `[github]` settings.
    pub rule: Option<String>,
}

impl Triggers {
    /// What a routing rule turns on, with `defaults` (the `[github]` settings) for the team and
    /// priority it leaves out.
    pub fn from_rule(rule: &GithubRuleSpec, defaults: &Triggers) -> Triggers {
        Triggers {
            on_issue_opened: rule.on_issue_opened,
            labels: rule.labels.clone(),
            bot_logins: rule.bot_logins.clone(),
            on_workflow_failure: rule.on_workflow_failure,
            workflow_failure_team: rule
                .workflow_failure_team
                .clone()
                .unwrap_or_else(|| defaults.workflow_failure_team.clone()),
            default_team: rule
                .default_team
                .clone()
                .unwrap_or_else(|| defaults.default_team.clone()),
            priority: rule.priority.unwrap_or(defaults.priority),
            rule: Some(rule.name.clone()),
        }
    }

    /// The `[github]` settings, with `default_team` (`tasks.default_team`) for issue tasks.
    pub fn from_config(config: &GithubConfig, default_team: &str) -> Self {
        Self {
            on_issue_opened: config.on_issue_opened,
            labels: config.labels.clone(),
            bot_logins: config.bot_logins.clone(),
            on_workflow_failure: config.on_workflow_failure,
            workflow_failure_team: config.workflow_failure_team.clone(),
            default_team: default_team.to_string(),
            priority: config.priority,
            rule: None,
        }
    }
}

/// Decides what a delivery of `event` asks for. An issue or workflow event starts a task
/// when one of `rules` (the repository's routing rules, in order) or `defaults` (the
/// `[github]` settings) turns it on; the first that does gives the task its team and
/// priority. `/party` comments and `party:<team>` labels always start one, with `defaults`.
pub fn route(
    event: &str,
    payload: &Value,
    rules: &[Triggers],
    defaults: &Triggers,
    teams: &Teams,
) -> Routing {
    let action = payload["action"].as_str().unwrap_or_default();
    let mut in_order = rules.iter().chain([defaults]);
    match (event, action) {
        ("issues", "opened") => match in_order.find(|t| t.on_issue_opened) {
            Some(triggers) => issue_task(payload, None, teams, triggers),
            None => Routing::Ignore(
                "opened issues are not routed (github.on_issue_opened is off and no routing rule turns them on)".into(),
            ),
        },
        ("issues", "labeled") => {
            let label = payload["label"]["name"].as_str().unwrap_or_default();
            if let Some(team) = label.strip_prefix("party:") {
                if !teams.contains(team) {
                    return Routing::Ignore(format!("label {label:?} names no known team"));
                }
                issue_task(payload, Some(team), teams, defaults)
            } else if let Some(triggers) = in_order.find(|t| t.labels.iter().any(|l| l == label)) {
                issue_task(payload, None, teams, triggers)
            } else {
                Routing::Ignore(format!("label {label:?} is not a trigger label"))
            }
        }
        ("issues", "assigned") => {
            let login = payload["assignee"]["login"].as_str().unwrap_or_default();
            match in_order.find(|t| t.bot_logins.iter().any(|b| b.eq_ignore_ascii_case(login))) {
                Some(triggers) => issue_task(payload, None, teams, triggers),
                None => Routing::Ignore(format!(
                    "assigned to {login:?}, not to a configured bot login"
                )),
            }
        }
        ("issue_comment", "created") => party_command(payload, teams, defaults),
        ("workflow_run", "completed") => {
            workflow_failure(payload, in_order.find(|t| t.on_workflow_failure))
        }
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

fn issue_task(payload: &Value, team: Option<&str>, teams: &Teams, triggers: &Triggers) -> Routing {
    if payload["issue"]["pull_request"].is_object() {
        return Routing::Ignore("the issue is a pull request".into());
    }
    let prompt = issue_prompt(payload, None);
    let team = team.map_or_else(
        || teams.pick(&prompt, &triggers.default_team).to_string(),
        str::to_string,
    );
    Routing::Task(TaskRequest {
        team,
        prompt,
        priority: triggers.priority,
        dedup_key: format!(
            "github:{}#{}",
            payload["repository"]["full_name"].as_str().unwrap_or("?"),
            payload["issue"]["number"]
        ),
        source_ref: with_rule(issue_ref(payload), triggers),
    })
}

/// `source_ref` naming the routing rule that started the task, if one did.
fn with_rule(mut source_ref: Value, triggers: &Triggers) -> Value {
    if let Some(rule) = &triggers.rule {
        source_ref["rule"] = json!(rule);
    }
    source_ref
}

/// `/party [team] <text>` in a new comment by someone trusted.
fn party_command(payload: &Value, teams: &Teams, defaults: &Triggers) -> Routing {
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
        || teams.pick(&prompt, &defaults.default_team).to_string(),
        str::to_string,
    );
    let mut source_ref = issue_ref(payload);
    source_ref["comment"] = payload["comment"]["id"].clone();
    Routing::Task(TaskRequest {
        team,
        prompt,
        priority: defaults.priority,
        dedup_key: format!("github-comment:{}", payload["comment"]["id"]),
        source_ref,
    })
}

/// A failed workflow run on the default branch, when `triggers` turn workflow failures on.
fn workflow_failure(payload: &Value, triggers: Option<&Triggers>) -> Routing {
    let run = &payload["workflow_run"];
    let conclusion = run["conclusion"].as_str().unwrap_or("none");
    let branch = run["head_branch"].as_str().unwrap_or_default();
    let default_branch = payload["repository"]["default_branch"]
        .as_str()
        .unwrap_or_default();
    let Some(triggers) = triggers else {
        return Routing::Ignore(
            "workflow failures are not routed (github.on_workflow_failure is off and no routing rule turns them on)".into(),
        );
    };
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
        team: triggers.workflow_failure_team.clone(),
        prompt,
        priority: triggers.priority,
        dedup_key: format!("github-run:{}", run["id"]),
        source_ref: with_rule(
            json!({
                "kind": "github_workflow_run",
                "repo": payload["repository"]["full_name"],
                "run": run["id"],
                "url": run["html_url"],
            }),
            triggers,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Triggers {
        Triggers::from_config(&GithubConfig::default(), "feature")
    }

    fn labeled(label: &str) -> Value {
        json!({
            "action": "labeled",
            "label": {"name": label},
            "issue": {"number": 7, "title": "Hello", "body": "", "html_url": "https://github.com/o/r/issues/7"},
            "repository": {"full_name": "o/r", "default_branch": "main"},
        })
    }

    fn task(routing: Routing) -> TaskRequest {
        match routing {
            Routing::Task(request) => request,
            Routing::Ignore(reason) => panic!("ignored: {reason}"),
        }
    }

    #[test]
    fn the_first_rule_that_turns_an_event_on_gives_team_and_priority() {
        let teams = Teams::default();
        let rule = |labels: &[&str], default_team: &str, priority| Triggers {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            default_team: default_team.into(),
            priority,
            on_workflow_failure: false,
            ..defaults()
        };
        let rules = [
            Triggers {
                rule: Some("triage-low".into()),
                ..rule(&["triage"], "research", Priority::Low)
            },
            rule(&["triage", "ai-party"], "review", Priority::High),
        ];
        let first = task(route(
            "issues",
            &labeled("triage"),
            &rules,
            &defaults(),
            &teams,
        ));
        assert_eq!(
            (first.team.as_str(), first.priority),
            ("research", Priority::Low)
        );
        assert_eq!(
            first.source_ref["rule"], "triage-low",
            "the task names its rule"
        );
        let second = task(route(
            "issues",
            &labeled("ai-party"),
            &rules,
            &defaults(),
            &teams,
        ));
        assert_eq!(
            (second.team.as_str(), second.priority),
            ("review", Priority::High),
            "a rule wins over the [github] settings that turn the same label on"
        );
        let config = task(route(
            "issues",
            &labeled("ai-party"),
            &[],
            &defaults(),
            &teams,
        ));
        assert_eq!(
            (config.team.as_str(), config.priority),
            ("feature", Priority::Normal)
        );
        assert_eq!(
            route("issues", &labeled("wontfix"), &rules, &defaults(), &teams),
            Routing::Ignore("label \"wontfix\" is not a trigger label".into())
        );
    }

    #[test]
    fn opened_issues_and_workflow_failures_need_something_to_turn_them_on() {
        let teams = Teams::default();
        let mut opened = labeled("");
        opened["action"] = json!("opened");
        let off = Triggers {
            on_workflow_failure: false,
            ..defaults()
        };
        assert!(matches!(
            route("issues", &opened, &[], &off, &teams),
            Routing::Ignore(reason) if reason.contains("on_issue_opened")
        ));
        let on = Triggers {
            on_issue_opened: true,
            on_workflow_failure: true,
            workflow_failure_team: "devops".into(),
            ..off.clone()
        };
        assert!(matches!(
            route("issues", &opened, std::slice::from_ref(&on), &off, &teams),
            Routing::Task(_)
        ));
        let failed = json!({
            "action": "completed",
            "workflow_run": {"id": 1, "conclusion": "failure", "head_branch": "main"},
            "repository": {"full_name": "o/r", "default_branch": "main"},
        });
        assert!(matches!(
            route("workflow_run", &failed, &[], &off, &teams),
            Routing::Ignore(reason) if reason.contains("on_workflow_failure")
        ));
        let routed = task(route("workflow_run", &failed, &[on], &off, &teams));
        assert_eq!(routed.team, "devops");
    }

    #[test]
    fn a_github_rule_falls_back_to_the_defaults() {
        let defaults = Triggers::from_config(&crate::config::GithubConfig::default(), "feature");
        let rule: GithubRuleSpec =
            serde_json::from_value(json!({"name": "a", "labels": ["x"], "priority": "high"}))
                .unwrap();
        let triggers = Triggers::from_rule(&rule, &defaults);
        assert_eq!(triggers.labels, ["x"]);
        assert!(!triggers.on_workflow_failure, "only what the rule turns on");
        assert_eq!(triggers.priority, Priority::High);
        assert_eq!(triggers.default_team, "feature");
        assert_eq!(triggers.workflow_failure_team, "bugfix");
    }
}
