//! What a task may still spend: the `[costs]` limits, less what its earlier runs cost; the
//! monthly budgets' admission of a new task; the command line with `{max_budget_usd}`.

use std::sync::Arc;

use super::Engine;
use super::agent::{self, Budget, Spent};
use crate::budgets;
use crate::config::Config;
use crate::error::Result;
use crate::model::{RunJob, TaskExec};
use crate::projects::Project;
use crate::store::Store;

/// The budget of the next run of task `task_id`.
pub(super) async fn for_task(store: &Store, config: &Config, task_id: i64) -> Result<Budget> {
    let runs = store.runs(task_id).await?;
    let spent_before = Spent {
        cost_usd: runs.iter().map(|run| run.totals.cost_usd).sum(),
        turns: runs
            .iter()
            .map(|run| run.totals.num_turns.unwrap_or(0))
            .sum(),
    };
    let costs = &config.costs;
    Ok(Budget {
        prices: Arc::new(costs.clone()),
        spent_before,
        max_cost_usd: (costs.task_max_cost_usd > 0.0).then_some(costs.task_max_cost_usd),
        max_turns: (costs.task_max_turns > 0).then_some(costs.task_max_turns),
    })
}

impl Engine {
    /// Whether a monthly budget lets `task` run: a task under way always goes on (its own
    /// limit holds it); a new one waits or is refused while its budget is spent.
    pub(super) async fn admitted(&self, task: &TaskExec, job: &RunJob) -> Result<bool> {
        if task.worktree_path.is_some() || job.resume_approval_id.is_some() {
            return Ok(true);
        }
        let project = self.store.project_by_id(task.project_id).await?;
        match budgets::admit(&self.store, &self.config.costs, &project, job).await? {
            budgets::Admission::Start => Ok(true),
            budgets::Admission::Held(notice) => {
                tracing::info!(task = task.id, "held by a spent monthly budget");
                self.announce(task.id, notice.as_slice()).await;
                Ok(false)
            }
        }
    }

    /// The `{max_budget_usd}` of the command line: what the run may spend before a limit
    /// stops it (the task's own, the project's and the global month's, the least of them),
    /// so the pipeline's own budget flag agrees with ours; 1000000 without any limit.
    pub(super) async fn max_budget_usd(
        &self,
        budget: &agent::Budget,
        project: &Project,
    ) -> Result<String> {
        let costs = &self.config.costs;
        let task_left = budget
            .max_cost_usd
            .map(|max| max - budget.spent_before.cost_usd);
        let month_left =
            |status: budgets::BudgetStatus| status.limit_usd.map(|limit| limit - status.spent_usd);
        let project_left = month_left(budgets::project_status(&self.store, costs, project).await?);
        let global_left = month_left(budgets::global_status(&self.store, costs).await?);
        let least = [task_left, project_left, global_left]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        Ok(least.map_or_else(
            || "1000000".to_owned(),
            |usd| format!("{:.2}", usd.max(0.01)),
        ))
    }
}

/// The agent's command line: `template` with the task's placeholders filled.
pub(super) fn command_line(
    template: &str,
    task: &TaskExec,
    project: &Project,
    decision: &str,
    max_budget_usd: &str,
) -> std::result::Result<Vec<String>, agent::TemplateError> {
    let task_id = task.id.to_string();
    let vars = [
        ("prompt", task.prompt.as_str()),
        ("task_id", task_id.as_str()),
        ("team", task.team.as_str()),
        ("project", project.name.as_str()),
        ("decision", decision),
        (
            "claude_session_id",
            task.claude_session_id.as_deref().unwrap_or(""),
        ),
        (
            "party_session_id",
            task.party_session_id.as_deref().unwrap_or(""),
        ),
        ("max_budget_usd", max_budget_usd),
    ];
    agent::render_command(template, &vars)
}
