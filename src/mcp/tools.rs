//! The MCP tools. Each parses its arguments, calls the use case every other channel calls
//! (`tasks::enqueue`, `tasks::detail`, `tasks::request_cancel`, `approvals::decide`, …) and
//! renders the outcome; the permission check and the audit entry happen around every call in
//! `Aiops::call_tool`, before and after these run.

use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::answer::{
    Answer, PAGE_ITEMS, id_cursor, more_note, next_id_cursor, text_page, tool_result,
};
use super::{Aiops, Caller, permissions, render};
use crate::approvals::{self, Channel, Decider, Decision, DecisionRequest};
use crate::error::{Error, Result};
use crate::model::{ApprovalFilter, ApprovalStatus, Priority, ProjectScope};
use crate::tasks::{self, NewTask, Source, TaskFilter, TaskStatus};

/// How urgent a task is.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PriorityArg {
    Critical,
    High,
    Normal,
    Low,
}

impl From<PriorityArg> for Priority {
    fn from(priority: PriorityArg) -> Self {
        match priority {
            PriorityArg::Critical => Priority::Critical,
            PriorityArg::High => Priority::High,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::Low => Priority::Low,
        }
    }
}

/// What a human decides.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionArg {
    /// Accept: the pipeline goes on; approved work becomes a pull request.
    Approve,
    /// Refuse: the pipeline rolls back and its branch is deleted.
    Reject,
    /// Send the work back with instructions (needs a comment).
    Revise,
}

impl From<DecisionArg> for Decision {
    fn from(decision: DecisionArg) -> Self {
        match decision {
            DecisionArg::Approve => Decision::Approve,
            DecisionArg::Reject => Decision::Reject,
            DecisionArg::Revise => Decision::Revise,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskArgs {
    /// Project name (list_projects shows them). Leave it out to have aiops suggest the
    /// project the prompt names; nothing is created until you call again with the project.
    pub project: Option<String>,
    /// Team preset (bugfix, feature, review, research, security, …); picked from the
    /// prompt when left out.
    pub team: Option<String>,
    /// The configured default when left out.
    pub priority: Option<PriorityArg>,
    /// What the team should do, in plain words.
    pub prompt: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskArgs {
    /// Task id (create_task and list_tasks give it).
    pub task: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksArgs {
    /// Only this project's tasks.
    pub project: Option<String>,
    /// Only tasks in this status: queued, running, awaiting_approval, done, failed,
    /// rolled_back or cancelled.
    pub status: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingsArgs {
    /// Task id.
    pub task: i64,
    /// One finding by name (get_task lists them); all of them when left out.
    pub name: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagedTaskArgs {
    /// Task id.
    pub task: i64,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingArgs {
    /// Only this project's approvals.
    pub project: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideArgs {
    /// Approval id (list_pending_approvals and get_task give it).
    pub approval: i64,
    pub decision: DecisionArg,
    /// Why (reject), what to change (revise: required), or a note (approve).
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorArgs {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[tool_router(router = tool_router, vis = "pub(super)")]
impl Aiops {
    #[tool(
        name = "list_projects",
        description = "List the projects (repositories) aiops runs teams on: name, GitHub repository, default branch, tech stack.",
        annotations(read_only_hint = true)
    )]
    async fn tool_list_projects(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<CursorArgs>,
    ) -> CallToolResult {
        tool_result(self.list_projects(&caller, args).await)
    }

    #[tool(
        name = "create_task",
        description = "Queue a task: a team of agents works on a project from the prompt, and the result waits for a human's approval before it becomes a pull request. Without `project`, aiops suggests the project the prompt names and creates nothing until you confirm it.",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn tool_create_task(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<CreateTaskArgs>,
    ) -> CallToolResult {
        tool_result(self.create_task(&caller, args).await)
    }

    #[tool(
        name = "get_task",
        description = "One task: status, pipeline phase, agents, findings (names and sizes), pending approvals, runs with tokens and cost so far, and its pull request.",
        annotations(read_only_hint = true)
    )]
    async fn tool_get_task(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<TaskArgs>,
    ) -> CallToolResult {
        let detail = async {
            self.on_task(&caller, "get_task", args.task).await?;
            tasks::detail(&self.state.store, args.task).await
        };
        tool_result(detail.await.map(|d| render::task(&d)))
    }

    #[tool(
        name = "list_tasks",
        description = "Tasks, newest first, optionally of one project or in one status; paged with `cursor`.",
        annotations(read_only_hint = true)
    )]
    async fn tool_list_tasks(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<ListTasksArgs>,
    ) -> CallToolResult {
        tool_result(self.list_tasks(&caller, args).await)
    }

    #[tool(
        name = "get_findings",
        description = "The findings (hand-off documents) a task's pipeline wrote, as markdown: one by name or all of them; long text is paged with `cursor`.",
        annotations(read_only_hint = true)
    )]
    async fn tool_get_findings(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<FindingsArgs>,
    ) -> CallToolResult {
        tool_result(self.findings(&caller, args).await)
    }

    #[tool(
        name = "list_pending_approvals",
        description = "Approval requests waiting for a human in your projects, newest first, each with whether you may decide it (`may_decide`); paged with `cursor`.",
        annotations(read_only_hint = true)
    )]
    async fn tool_list_pending_approvals(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<PendingArgs>,
    ) -> CallToolResult {
        tool_result(self.pending_approvals(&caller, args).await)
    }

    #[tool(
        name = "decide_approval",
        description = "Decide a pending approval once: approve (the pipeline goes on; approved work becomes a pull request), reject (rolled back) or revise (the team works again; needs a comment). A second decision on any channel is refused and names the first.",
        annotations(read_only_hint = false, destructive_hint = true)
    )]
    async fn tool_decide_approval(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<DecideArgs>,
    ) -> CallToolResult {
        tool_result(self.decide(&caller, args).await)
    }

    #[tool(
        name = "cancel_task",
        description = "Cancel a task: a queued or waiting task ends at once; a running pipeline is stopped.",
        annotations(read_only_hint = false, destructive_hint = true)
    )]
    async fn tool_cancel_task(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<TaskArgs>,
    ) -> CallToolResult {
        tool_result(self.cancel(&caller, args.task).await)
    }

    #[tool(
        name = "get_diff",
        description = "The change a task's pipeline made, as shown with its latest approval request: changed files and the unified diff; long diffs are paged with `cursor`.",
        annotations(read_only_hint = true)
    )]
    async fn tool_get_diff(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<PagedTaskArgs>,
    ) -> CallToolResult {
        tool_result(self.diff(&caller, args).await)
    }
}

impl Aiops {
    /// The operation's declared permission on the project of task `task`.
    async fn on_task(&self, caller: &Caller, operation: &str, task: i64) -> Result<()> {
        let project_id = self.state.store.task_exec(task).await?.project_id;
        permissions::on_project(&caller.principal, operation, project_id)
    }

    /// The id of project `name` (None: no project named), once the operation's declared
    /// permission on it is checked.
    async fn on_project_named(
        &self,
        caller: &Caller,
        operation: &str,
        name: Option<&str>,
    ) -> Result<Option<i64>> {
        let Some(name) = name else { return Ok(None) };
        let id = self.state.store.project(name).await?.id;
        permissions::on_project(&caller.principal, operation, id)?;
        Ok(Some(id))
    }

    /// The projects the caller may read.
    fn visible(caller: &Caller) -> ProjectScope {
        crate::permissions::visible_projects(&caller.principal)
    }

    async fn list_projects(&self, caller: &Caller, args: CursorArgs) -> Result<Answer> {
        let offset = id_cursor(args.cursor.as_deref())?.unwrap_or(0) as usize;
        let scope = Self::visible(caller);
        let mut all = self.state.store.list_projects().await?;
        all.retain(|p| crate::permissions::sees(&scope, p.id));
        let page: Vec<_> = all.iter().skip(offset).take(PAGE_ITEMS as usize).collect();
        let end = offset + page.len();
        let next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(render::projects(&page, next_cursor))
    }

    async fn create_task(&self, caller: &Caller, args: CreateTaskArgs) -> Result<Answer> {
        let state = &self.state;
        let Some(project) = args.project else {
            let scope = Self::visible(caller);
            let mut named = crate::projects::mentioned_in(&state.store, &args.prompt).await?;
            named.retain(|p| crate::permissions::sees(&scope, p.id));
            return Ok(render::project_needed(&named));
        };
        self.on_project_named(caller, "create_task", Some(&project))
            .await?;
        let new = NewTask {
            project,
            team: args.team,
            prompt: args.prompt,
            priority: args.priority.map(Priority::from),
            dedup_key: None,
        };
        let mut spec = tasks::task_spec(
            &state.store,
            &state.config.tasks,
            &state.teams,
            new,
            Source::Chat,
            &caller.principal.name,
            caller.principal.id,
        )
        .await?;
        spec.source_ref = json!({ "channel": Channel::Mcp });
        let task = tasks::enqueue(&state.store, &spec).await?;
        Ok(render::created(&task))
    }

    async fn list_tasks(&self, caller: &Caller, args: ListTasksArgs) -> Result<Answer> {
        let store = &self.state.store;
        let status = args
            .status
            .as_deref()
            .map(str::parse::<TaskStatus>)
            .transpose()?;
        let filter = TaskFilter {
            project_id: self
                .on_project_named(caller, "list_tasks", args.project.as_deref())
                .await?,
            status,
            before_id: id_cursor(args.cursor.as_deref())?,
            limit: PAGE_ITEMS,
        };
        let items = store.list_tasks_in(&filter, &Self::visible(caller)).await?;
        let next_cursor = next_id_cursor(&items, |t| t.id);
        let mut text = render::task_lines(&items);
        text.push_str(&more_note("list_tasks", &next_cursor));
        Ok(Answer::new(
            text,
            json!({ "items": items, "next_cursor": next_cursor }),
        ))
    }

    async fn findings(&self, caller: &Caller, args: FindingsArgs) -> Result<Answer> {
        let store = &self.state.store;
        self.on_task(caller, "get_findings", args.task).await?;
        let mut findings = store.findings(args.task).await?;
        if let Some(name) = &args.name {
            let names: Vec<_> = findings.iter().map(|f| f.name.clone()).collect();
            findings.retain(|f| &f.name == name);
            if findings.is_empty() {
                return Err(Error::NotFound(format!(
                    "finding {name:?} of task {} (it has: {})",
                    args.task,
                    if names.is_empty() {
                        "none yet".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        let markdown = render::findings_markdown(args.task, &findings);
        let page = text_page(&markdown, args.cursor.as_deref())?;
        let mut structured = page.fields();
        structured["task_id"] = args.task.into();
        structured["names"] = json!(findings.iter().map(|f| &f.name).collect::<Vec<_>>());
        Ok(Answer::new(page.readable("get_findings"), structured))
    }

    async fn pending_approvals(&self, caller: &Caller, args: PendingArgs) -> Result<Answer> {
        let store = &self.state.store;
        let filter = ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            project_id: self
                .on_project_named(caller, "list_pending_approvals", args.project.as_deref())
                .await?,
            task_id: None,
            before_id: id_cursor(args.cursor.as_deref())?,
            limit: PAGE_ITEMS,
        };
        let items = store
            .list_approvals_in(&filter, &Self::visible(caller))
            .await?;
        let next_cursor = next_id_cursor(&items, |a| a.id);
        let mut may = Vec::with_capacity(items.len());
        for approval in &items {
            may.push(
                self.on_task(caller, "decide_approval", approval.task_id)
                    .await
                    .is_ok(),
            );
        }
        Ok(render::pending(&items, &may, next_cursor))
    }

    async fn decide(&self, caller: &Caller, args: DecideArgs) -> Result<Answer> {
        let task = self.state.store.approval(args.approval).await?.task_id;
        self.on_task(caller, "decide_approval", task).await?;
        let decider = Decider {
            name: caller.principal.name.clone(),
            principal_id: caller.principal.id,
            channel: Channel::Mcp,
            source: caller.source.clone(),
        };
        let request = DecisionRequest {
            decision: args.decision.into(),
            comment: args.comment,
        };
        let decided =
            approvals::decide(&self.state.store, args.approval, &request, &decider).await?;
        Ok(render::decided(&decided))
    }

    async fn cancel(&self, caller: &Caller, task: i64) -> Result<Answer> {
        self.on_task(caller, "cancel_task", task).await?;
        let status = tasks::request_cancel(&self.state.store, task).await?;
        self.state.engine.cancel_local(task);
        let text = if status == TaskStatus::Cancelled {
            format!("Task {task} is cancelled.")
        } else {
            format!("Task {task} is {status}; its pipeline is being stopped.")
        };
        Ok(Answer::new(text, json!({ "id": task, "status": status })))
    }

    async fn diff(&self, caller: &Caller, args: PagedTaskArgs) -> Result<Answer> {
        let store = &self.state.store;
        self.on_task(caller, "get_diff", args.task).await?;
        let Some(approval) = super::resources::latest_shown(store, args.task).await? else {
            return Ok(Answer::new(
                format!(
                    "Task {} has no recorded change yet: the change is recorded when its \
                     pipeline asks for approval.",
                    args.task
                ),
                json!({ "task_id": args.task, "approval_id": null }),
            ));
        };
        let snapshot = store.approval_snapshot(approval.id).await?;
        let patch = snapshot.diff_patch.clone().unwrap_or_default();
        let page = text_page(&patch, args.cursor.as_deref())?;
        Ok(render::diff(args.task, &approval, &snapshot, &page))
    }
}
