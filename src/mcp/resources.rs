//! Findings and diffs as MCP resources, for clients that attach them to a conversation:
//! `aiops://tasks/{task}/findings`, `aiops://tasks/{task}/findings/{name}` and
//! `aiops://tasks/{task}/diff`. A resource is read whole (the stored diff is already capped
//! at `approvals.max_diff_bytes`, and says so); the tools page the same texts.

use rmcp::model::{
    ListResourcesResult, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
};

use super::answer::{PAGE_ITEMS, id_cursor, next_id_cursor};
use super::{permissions, render};
use crate::error::{Error, Result};
use crate::model::{ApprovalRecord, Principal, ProjectScope, TaskFilter};
use crate::store::Store;
use crate::tasks::TaskStatus;

const SCHEME: &str = "aiops://tasks/";

fn template(uri: &str, name: &str, description: &str, mime: &str) -> ResourceTemplate {
    let mut template = ResourceTemplate::new(uri, name);
    template.description = Some(description.into());
    template.mime_type = Some(mime.into());
    template
}

/// The resource templates: a task's findings (all or one) and its diff.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        template(
            "aiops://tasks/{task}/findings",
            "task findings",
            "Every finding of a task, as one markdown document.",
            "text/markdown",
        ),
        template(
            "aiops://tasks/{task}/findings/{name}",
            "one finding",
            "One finding of a task, by name.",
            "text/markdown",
        ),
        template(
            "aiops://tasks/{task}/diff",
            "task diff",
            "The change of a task as shown with its latest approval request (unified diff).",
            "text/x-diff",
        ),
    ]
}

/// The findings and diff of the tasks waiting for a decision in the projects of `scope`,
/// newest first, paged.
pub async fn list(
    store: &Store,
    scope: &ProjectScope,
    cursor: Option<&str>,
) -> Result<ListResourcesResult> {
    let filter = TaskFilter {
        project_id: None,
        status: Some(TaskStatus::AwaitingApproval),
        before_id: id_cursor(cursor)?,
        limit: PAGE_ITEMS,
    };
    let tasks = store.list_tasks_in(&filter, scope).await?;
    let mut resources = Vec::new();
    for t in &tasks {
        resources.push(
            Resource::new(
                format!("{SCHEME}{}/findings", t.id),
                format!("task {} findings", t.id),
            )
            .with_mime_type("text/markdown")
            .with_description(format!("Findings of task {} on {}", t.id, t.project)),
        );
        resources.push(
            Resource::new(
                format!("{SCHEME}{}/diff", t.id),
                format!("task {} diff", t.id),
            )
            .with_mime_type("text/x-diff")
            .with_description(format!(
                "The change task {} on {} asks approval for",
                t.id, t.project
            )),
        );
    }
    let mut result = ListResourcesResult::with_all_items(resources);
    result.next_cursor = next_id_cursor(&tasks, |t| t.id);
    Ok(result)
}

/// What a resource URI names.
#[derive(Debug, PartialEq, Eq)]
enum Named<'a> {
    Findings(i64, Option<&'a str>),
    Diff(i64),
}

fn parse(uri: &str) -> Result<Named<'_>> {
    let bad = || {
        Error::invalid(
            "uri",
            format!("{uri:?} is not an aiops resource; resources/templates/list shows their form"),
        )
    };
    let rest = uri.strip_prefix(SCHEME).ok_or_else(bad)?;
    let (task, what) = rest.split_once('/').ok_or_else(bad)?;
    let task = task.parse::<i64>().map_err(|_| bad())?;
    match what.split_once('/') {
        None if what == "findings" => Ok(Named::Findings(task, None)),
        None if what == "diff" => Ok(Named::Diff(task)),
        Some(("findings", name)) if !name.is_empty() => Ok(Named::Findings(task, Some(name))),
        _ => Err(bad()),
    }
}

/// The latest approval of a task that was shown with its change, if any.
pub async fn latest_shown(store: &Store, task: i64) -> Result<Option<ApprovalRecord>> {
    store.task(task).await?;
    Ok(store
        .approvals(task)
        .await?
        .into_iter()
        .filter(|a| a.snapshot_at.is_some())
        .max_by_key(|a| a.id))
}

/// The text of one resource, when `principal` may read the task's project.
pub async fn read(store: &Store, principal: &Principal, uri: &str) -> Result<ReadResourceResult> {
    let named = parse(uri)?;
    let (Named::Findings(task, _) | Named::Diff(task)) = named;
    let project_id = store.task_exec(task).await?.project_id;
    permissions::on_project(principal, "resources/read", project_id)?;
    let (text, mime) = match named {
        Named::Findings(task, name) => {
            let mut findings = store.findings(task).await?;
            if let Some(name) = name {
                findings.retain(|f| f.name == name);
                if findings.is_empty() {
                    return Err(Error::NotFound(format!("finding {name:?} of task {task}")));
                }
            }
            (render::findings_markdown(task, &findings), "text/markdown")
        }
        Named::Diff(task) => {
            let shown = latest_shown(store, task)
                .await?
                .ok_or_else(|| Error::NotFound(format!("a recorded change of task {task}")))?;
            let patch = store.approval_snapshot(shown.id).await?.diff_patch;
            (patch.unwrap_or_default(), "text/x-diff")
        }
    };
    let contents = ResourceContents::TextResourceContents {
        uri: uri.to_string(),
        mime_type: Some(mime.into()),
        text,
        meta: None,
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_findings_and_diffs_and_nothing_else() {
        assert_eq!(
            parse("aiops://tasks/7/findings").unwrap(),
            Named::Findings(7, None)
        );
        assert_eq!(
            parse("aiops://tasks/7/findings/analysis").unwrap(),
            Named::Findings(7, Some("analysis"))
        );
        assert_eq!(parse("aiops://tasks/7/diff").unwrap(), Named::Diff(7));
        for bad in [
            "aiops://tasks/x/diff",
            "aiops://tasks/7",
            "file:///etc/passwd",
            "aiops://tasks/7/log",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
