//! What a run leaves to do once its agent has ended and the run is recorded: its
//! `run_finished` event, the monthly budgets, the approval requests it raised, its change
//! delivered or kept, the worktree of an ended task removed, the task's status and its
//! channels told.
//!
//! This runs after the run's slot is released, so that the next task's start does not wait
//! for a worktree's removal or the notices (`Engine::step`). The job stays claimed until it
//! has run: a crash in between hands the job out again, as a crash during the run would.

use std::path::PathBuf;

use serde_json::Value;

use super::ingest::PipelineState;
use super::{Engine, JobOutcome};
use crate::budgets;
use crate::config::WorktreeRetention;
use crate::error::Result;
use crate::model::{NewEvent, TaskExec, TaskStatus};
use crate::projects::Project;
use crate::tasks;
use crate::vault::Redactor;

/// A run that has ended, with what is left to do for it.
pub(crate) struct Conclusion {
    pub(super) task: TaskExec,
    pub(super) project: Project,
    pub(super) worktree: PathBuf,
    pub(super) redactor: Redactor,
    pub(super) status: TaskStatus,
    pub(super) reason: Option<String>,
    pub(super) final_state: PipelineState,
    /// The data of the run's `run_finished` event.
    pub(super) finished: Value,
}

/// How a job's turn in its slot went: over, or with a run's conclusion still to do once the
/// slot is released.
pub(crate) enum Executed {
    Over(JobOutcome),
    Concluding(Box<Conclusion>),
}

impl From<JobOutcome> for Executed {
    fn from(outcome: JobOutcome) -> Self {
        Executed::Over(outcome)
    }
}

impl Engine {
    /// How the job ended, once what its run left to do is done.
    pub(crate) async fn finish(&self, executed: Executed) -> Result<JobOutcome> {
        match executed {
            Executed::Over(outcome) => Ok(outcome),
            Executed::Concluding(conclusion) => self.conclude(*conclusion).await,
        }
    }

    /// Tells the run's end, checks the budgets, shows new approval requests, delivers or
    /// keeps approved work, cleans up an ended task, records its status and tells its
    /// channels.
    async fn conclude(&self, conclusion: Conclusion) -> Result<JobOutcome> {
        let Conclusion {
            task,
            project,
            worktree,
            redactor,
            status,
            reason,
            final_state,
            finished,
        } = conclusion;
        let event = NewEvent::platform(task.id, project.id, "run_finished", finished);
        self.store.insert_events(&[event]).await?;
        let costs = &self.config.costs;
        match budgets::after_run(&self.store, costs, &project, task.id).await {
            Ok(notices) => self.announce(task.id, &notices).await,
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "could not check the monthly budgets")
            }
        }
        if status == TaskStatus::AwaitingApproval
            && let Err(e) = self.show_new_approvals(&task, &worktree, &redactor).await
        {
            tracing::warn!(task = task.id, error = %e, "could not prepare the approval request");
        }
        let undelivered = self.conclude_change(&task, &project, status).await;
        if status.has_ended() && !undelivered {
            self.clean_up(&task, status).await;
        }
        let phase = final_state.phase.as_deref();
        // A task cancelled while this run went on keeps `cancelled`, and nobody hears of an end
        // it did not have.
        if tasks::set_status(&self.store, task.id, status, reason.as_deref(), phase).await? {
            self.announce_end(task.id, status).await;
        }
        Ok(JobOutcome::Ran(status))
    }

    /// Removes an ended task's worktree per the retention setting (always after a rollback);
    /// the branch stays only when the task is done (its change may be a pull request).
    pub(super) async fn clean_up(&self, task: &TaskExec, status: TaskStatus) {
        // Rejected work leaves nothing behind, whatever the retention.
        if self.config.engine.worktree_retention == WorktreeRetention::Keep
            && status != TaskStatus::RolledBack
        {
            return;
        }
        self.sandbox.forget(task.id);
        let Ok(exec) = self.store.task_exec(task.id).await else {
            return;
        };
        let (Some(repo), Some(path)) = (exec.repo_path, exec.worktree_path) else {
            return;
        };
        let branch = if status == TaskStatus::Done {
            None
        } else {
            exec.branch.as_deref()
        };
        if let Err(e) = self
            .worktrees
            .remove(
                PathBuf::from(repo).as_path(),
                PathBuf::from(path).as_path(),
                branch,
            )
            .await
        {
            tracing::warn!(task = task.id, error = %e, "could not remove the worktree");
        }
    }
}
