//! Tasks: requests to run a team on a project, and the values they may take.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::TasksConfig;
use crate::error::{Error, Result};
use crate::model::{
    ApprovalRecord, ApprovalStatus, FindingRecord, NewEvent, NewJob, Run, TicketRecord,
};
pub use crate::model::{Priority, Source, Task, TaskFilter, TaskSpec, TaskStatus};
use crate::store::group_commit::BulkWrite;
use crate::store::{self, Store, Tx};
use crate::teams::Teams;

/// Largest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// Body of a task creation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// Project name.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub project: String,
    /// Team preset; the configured default when omitted.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub team: Option<String>,
    #[schema(pattern = "\\S")]
    pub prompt: String,
    pub priority: Option<Priority>,
    /// A second task with the same key on the same project is refused with 409.
    pub dedup_key: Option<String>,
}

/// Validates a task request against the registry and the defaults.
pub async fn task_spec(
    store: &Store,
    defaults: &TasksConfig,
    teams: &Teams,
    new: NewTask,
    source: Source,
    created_by: &str,
    requested_by: Option<i64>,
) -> Result<TaskSpec> {
    let team = match new.team {
        Some(team) => team,
        None => teams.pick(&new.prompt, &defaults.default_team).to_string(),
    };
    teams.check("team", &team)?;
    if new.prompt.trim().is_empty() {
        return Err(Error::invalid("prompt", "must not be empty"));
    }
    if new.prompt.contains('\0') {
        return Err(Error::invalid(
            "prompt",
            "must not contain a NUL byte (it cannot be passed to the agent)",
        ));
    }
    if new.prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::invalid(
            "prompt",
            format!("must be at most {MAX_PROMPT_BYTES} bytes"),
        ));
    }
    if let Some(key) = &new.dedup_key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(Error::invalid("dedup_key", "must be 1-200 characters"));
    }
    // An unknown project is a bad field of this request (422 naming `project`), like every
    // other bad field here, not a missing resource.
    let project = store.find_project(&new.project).await?.ok_or_else(|| {
        Error::invalid(
            "project",
            format!(
                "unknown project {:?}; register it first (aiops project add, or POST /api/v1/projects)",
                new.project
            ),
        )
    })?;
    Ok(TaskSpec {
        project_id: project.id,
        team,
        prompt: new.prompt,
        source,
        priority: new.priority.unwrap_or(defaults.default_priority),
        dedup_key: new.dedup_key,
        source_ref: serde_json::json!({}),
        created_by: created_by.to_string(),
        requested_by,
    })
}

/// Inserts a queued task, its queue job and its `task_queued` event inside `tx`; None when
/// the project already has a task with this dedup key (the transaction stays usable).
pub async fn enqueue_in(tx: &mut Tx, spec: &TaskSpec) -> Result<Option<i64>> {
    let Some(id) = store::tasks::insert(tx, spec).await? else {
        return Ok(None);
    };
    store::queue::push(tx, &NewJob::now(id, spec.priority)).await?;
    store::events::append(tx, &queued_event(id, spec)).await?;
    Ok(Some(id))
}

/// [`enqueue_in`] for many tasks at once, in a few statements for all of them: each one's
/// id in order, None for a task whose dedup key its project already has (or one earlier in
/// `specs`).
pub async fn enqueue_all_in(tx: &mut Tx, specs: &[&TaskSpec]) -> Result<Vec<Option<i64>>> {
    let ids = store::tasks::insert_all(tx, specs).await?;
    let created: Vec<(i64, &TaskSpec)> = ids
        .iter()
        .zip(specs)
        .filter_map(|(id, spec)| id.map(|id| (id, *spec)))
        .collect();
    let jobs: Vec<NewJob> = created
        .iter()
        .map(|(id, spec)| NewJob::now(*id, spec.priority))
        .collect();
    store::queue::push_all(tx, &jobs).await?;
    let queued: Vec<NewEvent> = created
        .iter()
        .map(|(id, spec)| queued_event(*id, spec))
        .collect();
    store::events::append_all(tx, &queued).await?;
    Ok(ids)
}

/// The `task_queued` event of a new task.
fn queued_event(id: i64, spec: &TaskSpec) -> NewEvent {
    NewEvent::platform(
        id,
        spec.project_id,
        "task_queued",
        serde_json::json!({
            "priority": spec.priority, "team": spec.team, "source": spec.source,
        }),
    )
}

/// Inserts a queued task, its queue job and its `task_queued` event in one transaction
/// (shared with concurrent writes by the group committer, which writes the task creations
/// of a batch together; answered once it committed): there is never a task without a job
/// or a job without a task. A dedup key already used on the project is a conflict.
pub async fn enqueue(store: &Store, spec: &TaskSpec) -> Result<Task> {
    let id = store.write_grouped_bulk(TaskWrite(spec.clone())).await?;
    store.task(id).await
}

/// A task creation handed to the group committer.
struct TaskWrite(TaskSpec);

impl BulkWrite for TaskWrite {
    type Output = i64;

    fn write_all<'t>(
        tx: &'t mut Tx,
        writes: &'t [&'t Self],
    ) -> BoxFuture<'t, Result<Vec<Result<i64>>>> {
        Box::pin(async move {
            let specs: Vec<&TaskSpec> = writes.iter().map(|write| &write.0).collect();
            let ids = enqueue_all_in(tx, &specs).await?;
            Ok(ids
                .into_iter()
                .zip(specs)
                .map(|(id, spec)| id.ok_or_else(|| dedup_taken(spec)))
                .collect())
        })
    }

    fn write_one<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<i64>> {
        Box::pin(async move {
            enqueue_in(tx, &self.0)
                .await?
                .ok_or_else(|| dedup_taken(&self.0))
        })
    }
}

/// The conflict of a task whose dedup key its project has already.
fn dedup_taken(spec: &TaskSpec) -> Error {
    Error::Conflict(format!(
        "a task with dedup key {:?} already exists for this project",
        spec.dedup_key.as_deref().unwrap_or_default()
    ))
}

/// Pushes a job for an existing task (a retry, a wait for a slot, a resume).
pub async fn push_job(store: &Store, job: &NewJob) -> Result<()> {
    let mut tx = store.begin().await?;
    store::queue::push(&mut tx, job).await?;
    Ok(tx.commit().await?)
}

/// Moves a task to `status` (and `phase` when given). A real change records a
/// `status_changed` event in the same transaction. Returns whether the status changed: false
/// too for a task that already ended in another status, which it keeps.
pub async fn set_status(
    store: &Store,
    task_id: i64,
    status: TaskStatus,
    reason: Option<&str>,
    phase: Option<&str>,
) -> Result<bool> {
    let mut tx = store.begin().await?;
    let Some((old, project_id, old_phase)) = store::tasks::status_of(&mut tx, task_id).await?
    else {
        return Err(Error::NotFound(format!("task {task_id}")));
    };
    let phase = phase.map(str::to_string).or(old_phase);
    // An ended task stays ended: a cancel is not undone by the run it stopped when that run
    // reports its own end (only `retry` starts an ended task again).
    if !store::tasks::update_status(&mut tx, task_id, status, reason, phase.as_deref()).await? {
        tracing::debug!(task = task_id, from = %old, to = %status, "an ended task keeps its status");
        return Ok(false);
    }
    let changed = old != status;
    if changed {
        let data = serde_json::json!({
            "from": old, "to": status, "reason": reason, "phase": phase,
        });
        let event = NewEvent::platform(task_id, project_id, "status_changed", data);
        store::events::append(&mut tx, &event).await?;
    }
    tx.commit().await?;
    if changed && status.has_ended() {
        count_ended(store, task_id).await;
    }
    Ok(changed)
}

/// Counts an ended task in the process's metrics (its outcome and how long it took).
async fn count_ended(store: &Store, task_id: i64) {
    match store.task(task_id).await {
        Ok(task) => {
            let took = task
                .completed_at
                .and_then(|end| (end - task.created_at).to_std().ok());
            crate::metrics::task_ended(&task.project, task.status, took);
        }
        Err(e) => tracing::warn!(task_id, error = %e, "could not count the ended task"),
    }
}

/// Marks a task for cancellation. A queued task (or one waiting for a decision) is
/// cancelled at once; a running one is stopped by the worker that holds it. Returns the
/// task's status afterwards.
pub async fn request_cancel(store: &Store, task_id: i64) -> Result<TaskStatus> {
    let exec = store.task_exec(task_id).await?;
    if exec.status.has_ended() {
        return Err(Error::Conflict(format!(
            "task {task_id} already ended ({})",
            exec.status
        )));
    }
    store.mark_cancel_requested(task_id).await?;
    if matches!(
        exec.status,
        TaskStatus::Queued | TaskStatus::AwaitingApproval
    ) {
        let cancelled = TaskStatus::Cancelled;
        set_status(
            store,
            task_id,
            cancelled,
            Some("cancelled by request"),
            None,
        )
        .await?;
        return Ok(cancelled);
    }
    Ok(exec.status)
}

/// A task with what its pipeline produced.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub findings: Vec<FindingRecord>,
    pub tickets: Vec<TicketRecord>,
    /// Requests still waiting for a human.
    pub pending_approvals: Vec<ApprovalRecord>,
    pub approvals: Vec<ApprovalRecord>,
    pub runs: Vec<Run>,
}

/// How much of each finding a task's detail carries, in characters: a pipeline may write
/// findings up to `ingest.max_findings_bytes` in all, which no page should load whole.
pub const FINDING_PREVIEW_CHARS: i32 = 16 * 1024;

/// A task with its findings (each one's beginning), tickets, approval requests and runs.
pub async fn detail(store: &Store, id: i64) -> Result<TaskDetail> {
    let task = store.task(id).await?;
    let approvals = store.approvals(id).await?;
    Ok(TaskDetail {
        task,
        findings: store.finding_previews(id, FINDING_PREVIEW_CHARS).await?,
        tickets: store.tickets(id).await?,
        pending_approvals: approvals
            .iter()
            .filter(|a| a.status == ApprovalStatus::Pending)
            .cloned()
            .collect(),
        approvals,
        runs: store.runs(id).await?,
    })
}

/// Statuses a task can be retried from.
pub const RETRYABLE: &[TaskStatus] = &[
    TaskStatus::Failed,
    TaskStatus::Cancelled,
    TaskStatus::BudgetExceeded,
];

/// Runs a failed or cancelled task again: queued with a new job (in the same worktree when
/// it still exists), a `status_changed` event saying who asked, all in one transaction.
pub async fn retry(store: &Store, task_id: i64, requested_by: &str) -> Result<Task> {
    let task = store.task_exec(task_id).await?;
    let reason = format!("retry requested by {requested_by}");
    let mut tx = store.begin().await?;
    if !store::tasks::requeue(&mut tx, task_id, RETRYABLE, &reason).await? {
        return Err(Error::Conflict(format!(
            "task {task_id} is {}; only a failed, cancelled or budget_exceeded task can be retried",
            task.status
        )));
    }
    store::queue::push(&mut tx, &NewJob::now(task_id, task.priority)).await?;
    let data = serde_json::json!({
        "from": task.status, "to": TaskStatus::Queued, "reason": reason, "phase": task.phase,
    });
    let event = NewEvent::platform(task_id, task.project_id, "status_changed", data);
    store::events::append(&mut tx, &event).await?;
    tx.commit().await?;
    store.task(task_id).await
}
