//! What a task may still spend: the `[costs]` limits, less what its earlier runs cost.

use std::sync::Arc;

use super::agent::{Budget, Spent};
use crate::config::Config;
use crate::error::Result;
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
