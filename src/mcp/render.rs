//! The readable side of the tools' answers: markdown for a person reading Claude's chat,
//! next to the structured content carrying the same facts.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::answer::{Answer, TextPage, more_note};
use crate::model::{
    ApprovalRecord, ApprovalSnapshot, Channel, Decision, FindingRecord, Project, Task,
};
use crate::tasks::TaskDetail;

/// A prompt cut to one short line, for lists.
fn gist(text: &str, max_chars: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max_chars {
        return line;
    }
    let cut: String = line.chars().take(max_chars).collect();
    format!("{cut}…")
}

pub fn projects(page: &[&Project], next_cursor: Option<String>) -> Answer {
    let mut text = String::new();
    if page.is_empty() {
        text.push_str("No projects are registered; an operator adds them with `aiops project add` or the API.");
    }
    for p in page {
        let _ = writeln!(
            text,
            "- **{}**{} (default branch {}{})",
            p.name,
            p.github_repo
                .as_deref()
                .map_or_else(String::new, |r| format!(", GitHub {r}")),
            p.default_branch,
            if p.tech_stack.is_empty() {
                String::new()
            } else {
                format!(", {}", p.tech_stack.join(", "))
            }
        );
    }
    text.push_str(&more_note("list_projects", &next_cursor));
    let items: Vec<Value> = page
        .iter()
        .map(|p| {
            json!({
                "name": p.name, "github_repo": p.github_repo, "default_branch": p.default_branch,
                "tech_stack": p.tech_stack, "max_concurrency": p.max_concurrency,
            })
        })
        .collect();
    Answer::new(text, json!({ "items": items, "next_cursor": next_cursor }))
}

/// The answer to a create_task without a project: which project the prompt names, to confirm.
pub fn project_needed(named: &[Project]) -> Answer {
    let names: Vec<&str> = named.iter().map(|p| p.name.as_str()).collect();
    let text = match names.as_slice() {
        [] => "No task was created: say which project it is for (list_projects shows them) \
               and call create_task again with `project`."
            .to_string(),
        [one] => format!(
            "No task was created yet: the prompt names project **{one}**. Confirm with the \
             person, then call create_task again with project \"{one}\"."
        ),
        many => format!(
            "No task was created yet: the prompt names several projects ({}). Ask which one, \
             then call create_task again with `project`.",
            many.join(", ")
        ),
    };
    Answer::new(text, json!({ "created": false, "candidates": names }))
}

pub fn created(task: &Task) -> Answer {
    let text = format!(
        "Created task {} on **{}** (team {}, priority {}); it is {}. Follow it with get_task {}.",
        task.id, task.project, task.team, task.priority, task.status, task.id
    );
    Answer::new(text, json!({ "created": true, "task": task }))
}

/// One line per task.
pub fn task_lines(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "No tasks match.".into();
    }
    let mut text = String::new();
    for t in tasks {
        let _ = writeln!(
            text,
            "- task {} · {} · {} · **{}**{} · {} — {}",
            t.id,
            t.project,
            t.team,
            t.status,
            t.phase
                .as_deref()
                .map_or_else(String::new, |p| format!(" ({p})")),
            t.created_at.format("%Y-%m-%d %H:%M UTC"),
            gist(&t.prompt, 80)
        );
    }
    text
}

/// The agents seen working on a task: the assignees of its tickets, with how many each has.
fn agents(detail: &TaskDetail) -> Vec<(String, usize)> {
    let mut agents: Vec<(String, usize)> = Vec::new();
    for assignee in detail.tickets.iter().filter_map(|t| t.assignee.clone()) {
        match agents.iter_mut().find(|(name, _)| *name == assignee) {
            Some((_, count)) => *count += 1,
            None => agents.push((assignee, 1)),
        }
    }
    agents
}

pub fn task(detail: &TaskDetail) -> Answer {
    let t = &detail.task;
    let cost: f64 = detail.runs.iter().map(|r| r.totals.cost_usd).sum();
    let input: i64 = detail.runs.iter().map(|r| r.totals.input_tokens).sum();
    let output: i64 = detail.runs.iter().map(|r| r.totals.output_tokens).sum();
    let agents = agents(detail);
    let mut text = format!(
        "## Task {} on {} ({} team, {} priority)\n\n**Status:** {}{}{}\n**Prompt:** {}\n",
        t.id,
        t.project,
        t.team,
        t.priority,
        t.status,
        t.phase
            .as_deref()
            .map_or_else(String::new, |p| format!(" · phase {p}")),
        t.status_reason
            .as_deref()
            .map_or_else(String::new, |r| format!(" · {r}")),
        gist(&t.prompt, 300)
    );
    let _ = writeln!(
        text,
        "**Cost so far:** ${cost:.4} over {} run(s), {input} input and {output} output tokens",
        detail.runs.len()
    );
    if !agents.is_empty() {
        let list: Vec<String> = agents
            .iter()
            .map(|(name, n)| format!("{name} ({n} ticket(s))"))
            .collect();
        let _ = writeln!(text, "**Agents:** {}", list.join(", "));
    }
    if let Some(url) = &t.pr_url {
        let _ = writeln!(text, "**Pull request:** {url}");
    } else if let Some(note) = &t.change_note {
        let _ = writeln!(text, "**Change:** {note}");
    }
    text.push_str(&findings_summary(&detail.findings));
    text.push_str(&approvals_summary(&detail.pending_approvals));
    let findings: Vec<Value> = detail
        .findings
        .iter()
        .map(|f| json!({"name": f.name, "characters": f.size, "changed_at": f.changed_at}))
        .collect();
    let structured = json!({
        "task": t,
        "agents": agents.iter().map(|(name, tickets)| json!({"name": name, "tickets": tickets})).collect::<Vec<_>>(),
        "findings": findings,
        "pending_approvals": detail.pending_approvals,
        "cost": {"usd": cost, "input_tokens": input, "output_tokens": output, "runs": detail.runs.len()},
        "pull_request": t.pr_url.as_ref().map(|url| json!({"url": url, "number": t.pr_number})),
    });
    Answer::new(text, structured)
}

fn findings_summary(findings: &[FindingRecord]) -> String {
    if findings.is_empty() {
        return "\nNo findings yet.\n".into();
    }
    let mut text = String::from("\n### Findings (get_findings reads them)\n");
    for f in findings {
        let first = f
            .content
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "- **{}** ({} characters): {}",
            f.name,
            f.size,
            gist(first.trim_start_matches('#').trim(), 100)
        );
    }
    text
}

fn approvals_summary(pending: &[ApprovalRecord]) -> String {
    if pending.is_empty() {
        return "\nNothing waits for a decision.\n".into();
    }
    let mut text = String::from("\n### Waiting for a decision (decide_approval)\n");
    for a in pending {
        text.push_str(&approval_line(a));
    }
    text
}

fn approval_line(a: &ApprovalRecord) -> String {
    let what = match (&a.tool_name, &a.summary) {
        (Some(tool), _) => format!("run tool {tool}"),
        (None, Some(summary)) => gist(summary, 120),
        (None, None) => "the pipeline's result".into(),
    };
    format!(
        "- approval {} (task {}, {}): {}{} — requested {}\n",
        a.id,
        a.task_id,
        a.kind,
        what,
        a.diff_stat
            .as_deref()
            .map_or_else(String::new, |d| format!(" [{d}]")),
        a.requested_at.format("%Y-%m-%d %H:%M UTC")
    )
}

/// Pending approvals, each with whether the caller may decide it (their role in its project).
pub fn pending(items: &[ApprovalRecord], may: &[bool], next_cursor: Option<String>) -> Answer {
    let mut text = if items.is_empty() {
        "Nothing waits for a decision.\n".to_string()
    } else {
        items
            .iter()
            .zip(may)
            .map(|(a, may)| {
                let line = approval_line(a);
                if *may {
                    line
                } else {
                    line.replacen('\n', " (you may read it, not decide it)\n", 1)
                }
            })
            .collect()
    };
    text.push_str(&more_note("list_pending_approvals", &next_cursor));
    let listed: Vec<serde_json::Value> = items
        .iter()
        .zip(may)
        .map(|(a, may)| {
            let mut item = json!(a);
            item["may_decide"] = json!(may);
            item
        })
        .collect();
    Answer::new(
        text,
        json!({ "items": listed, "may_decide": may.iter().any(|m| *m), "next_cursor": next_cursor }),
    )
}

pub fn decided(approval: &ApprovalRecord) -> Answer {
    let text = format!(
        "Approval {} of task {}: {} recorded (by {} via {}). The pipeline resumes with it.",
        approval.id,
        approval.task_id,
        approval.decision.map_or("no decision", Decision::as_str),
        approval.decided_by.as_deref().unwrap_or("unknown"),
        approval.channel.map_or("unknown", Channel::as_str),
    );
    Answer::new(text, json!({ "approval": approval }))
}

/// Every finding of a task (or the one asked for) as one markdown document.
pub fn findings_markdown(task_id: i64, findings: &[FindingRecord]) -> String {
    if findings.is_empty() {
        return format!("Task {task_id} has no findings yet.");
    }
    let mut text = String::new();
    for f in findings {
        let _ = write!(
            text,
            "## {}\n_updated {}_\n\n{}\n\n",
            f.name,
            f.changed_at.format("%Y-%m-%d %H:%M UTC"),
            f.content.trim_end()
        );
    }
    text
}

pub fn diff(
    task_id: i64,
    approval: &ApprovalRecord,
    snapshot: &ApprovalSnapshot,
    page: &TextPage<'_>,
) -> Answer {
    let files = snapshot.diff_files.clone().unwrap_or_default();
    let mut text = format!(
        "Change of task {task_id} as shown with approval {} ({} file(s)):\n",
        approval.id,
        files.len()
    );
    if page.offset == 0 {
        for f in &files {
            let _ = writeln!(
                text,
                "- {} {} (+{} −{})",
                f.status, f.path, f.insertions, f.deletions
            );
        }
    }
    if snapshot.diff_truncated {
        text.push_str(
            "\nThe stored diff was cut at approvals.max_diff_bytes; the full change is on the task's branch.\n",
        );
    }
    let _ = write!(
        text,
        "\n```diff\n{}\n```{}",
        page.text.trim_end_matches('\n'),
        page.note("get_diff")
    );
    let mut structured = page.fields();
    structured["task_id"] = task_id.into();
    structured["approval_id"] = approval.id.into();
    structured["files"] = json!(files);
    structured["truncated"] = snapshot.diff_truncated.into();
    Answer::new(text, structured)
}
