//! Monthly budgets: what a project, and all projects together, may spend per calendar month
//! (UTC), and what happens as the money runs out.
//!
//! Spent means the cost of the runs started this month. A new task (one that never ran)
//! of a project whose budget, or the global one, is spent waits queued with the reason
//! (`costs.over_budget = "wait"`, without a job, in `budget_waiters`) or ends
//! `budget_exceeded` at once (`"refuse"`); tasks already under way go on, held by their own
//! task limit. Crossing `costs.warn_percent` of a budget and spending all of it each tell
//! the project's channels once per month and budget. Raising a project's budget wakes its
//! waiters at once; the worker's sweep wakes them when the month turns or the global
//! budget has room again.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{CostsConfig, OverBudget};
use crate::error::{Error, Result};
use crate::model::{NewEvent, Notice, NoticeKind, Project, RunJob, TaskStatus};
use crate::store::Store;
use crate::tasks;

/// How a monthly budget stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BudgetStatus {
    /// The project's name, or `global`.
    pub scope: String,
    /// The calendar month (UTC), `YYYY-MM`.
    pub month: String,
    /// Dollars the runs started this month cost.
    pub spent_usd: f64,
    /// The month's budget in dollars; none for no limit.
    pub limit_usd: Option<f64>,
    /// Where the limit comes from: `project` (set by a maintainer), `default`
    /// (`costs.project_monthly_usd`), `global` (`costs.global_monthly_usd`) or `none`.
    pub source: String,
    /// `ok`, `warning` (past `costs.warn_percent`), `spent`, or `unlimited`.
    pub state: String,
}

/// Body of `PUT /projects/{name}/budget`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetChange {
    /// The project's monthly budget in dollars (0 stops new tasks); null to go back to
    /// `costs.project_monthly_usd`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub monthly_usd: Option<f64>,
}

/// The first instant of `now`'s month, and its `YYYY-MM` name.
fn month_of(now: DateTime<Utc>) -> (DateTime<Utc>, String) {
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    (start, format!("{:04}-{:02}", now.year(), now.month()))
}

fn status(
    scope: String,
    month: String,
    spent: f64,
    limit: Option<f64>,
    source: &str,
    warn: f64,
) -> BudgetStatus {
    let state = match limit {
        None => "unlimited",
        Some(limit) if spent >= limit => "spent",
        Some(limit) if warn > 0.0 && spent >= limit * warn / 100.0 => "warning",
        Some(_) => "ok",
    };
    BudgetStatus {
        scope,
        month,
        spent_usd: (spent * 1e6).round() / 1e6,
        limit_usd: limit,
        source: source.into(),
        state: state.into(),
    }
}

/// How project `project`'s budget stands this month.
pub async fn project_status(
    store: &Store,
    costs: &CostsConfig,
    project: &Project,
) -> Result<BudgetStatus> {
    let (since, month) = month_of(Utc::now());
    let spent = store.spent_since(Some(project.id), since).await?;
    let (limit, source) = match store.project_budget(project.id).await? {
        Some(own) => (Some(own), "project"),
        None if costs.project_monthly_usd > 0.0 => (Some(costs.project_monthly_usd), "default"),
        None => (None, "none"),
    };
    let scope = project.name.clone();
    Ok(status(
        scope,
        month,
        spent,
        limit,
        source,
        costs.warn_percent,
    ))
}

/// How the global budget stands this month.
pub async fn global_status(store: &Store, costs: &CostsConfig) -> Result<BudgetStatus> {
    let (since, month) = month_of(Utc::now());
    let limit = (costs.global_monthly_usd > 0.0).then_some(costs.global_monthly_usd);
    let source = if limit.is_some() { "global" } else { "none" };
    let spent = match limit {
        Some(_) => store.spent_since(None, since).await?,
        None => 0.0,
    };
    let scope = "global".to_owned();
    Ok(status(
        scope,
        month,
        spent,
        limit,
        source,
        costs.warn_percent,
    ))
}

/// The budget that stops project `project`'s new tasks now, if one does.
async fn spent_budget(
    store: &Store,
    costs: &CostsConfig,
    project: &Project,
) -> Result<Option<BudgetStatus>> {
    let own = project_status(store, costs, project).await?;
    if own.state == "spent" {
        return Ok(Some(own));
    }
    let global = global_status(store, costs).await?;
    Ok((global.state == "spent").then_some(global))
}

/// Why a new task cannot start while `budget` is spent, naming the fix.
fn reason(budget: &BudgetStatus, project: &str) -> String {
    let limit = budget.limit_usd.unwrap_or(0.0);
    let (whose, fix) = if budget.scope == "global" {
        (
            "all projects together have".to_owned(),
            "an admin can raise costs.global_monthly_usd".to_owned(),
        )
    } else {
        (
            format!("project {project} has"),
            format!("a maintainer can raise it (PUT /api/v1/projects/{project}/budget)"),
        )
    };
    format!(
        "waiting for budget: {whose} spent ${:.2} of the ${limit:.2} monthly budget for {}; {fix}, or the task starts when the month turns",
        budget.spent_usd, budget.month
    )
}

/// Whether a new task may start.
#[derive(Debug)]
pub enum Admission {
    Start,
    /// It waits or was refused; the notice to queue (once per month and budget).
    Held(Option<Notice>),
}

/// Before a new task's first run: `Start` when it may. Otherwise it waits (recorded with
/// its job and the reason) or, by `costs.over_budget`, ends `budget_exceeded`; the
/// channels are to hear that the budget is spent (once).
pub async fn admit(
    store: &Store,
    costs: &CostsConfig,
    project: &Project,
    job: &RunJob,
) -> Result<Admission> {
    let Some(budget) = spent_budget(store, costs, project).await? else {
        return Ok(Admission::Start);
    };
    let why = reason(&budget, &project.name);
    let notice = once(
        store,
        &budget,
        project.id,
        NoticeKind::BudgetSpent,
        job.task_id,
    )
    .await?;
    match costs.over_budget {
        OverBudget::Refuse => {
            let why = why.replacen("waiting for budget", "refused", 1);
            tasks::set_status(
                store,
                job.task_id,
                TaskStatus::BudgetExceeded,
                Some(&why),
                None,
            )
            .await?;
        }
        OverBudget::Wait => {
            store.add_budget_waiter(project.id, job).await?;
            tasks::set_status(store, job.task_id, TaskStatus::Queued, Some(&why), None).await?;
            let data = serde_json::json!({"reason": why, "budget": budget});
            let event = NewEvent::platform(job.task_id, project.id, "budget_wait", data);
            store.insert_events(&[event]).await?;
        }
    }
    Ok(Admission::Held(notice))
}

/// After a run of task `task_id` ended: the notices to queue, once per month and budget:
/// a warning past `costs.warn_percent` of a budget, and that it is spent.
pub async fn after_run(
    store: &Store,
    costs: &CostsConfig,
    project: &Project,
    task_id: i64,
) -> Result<Vec<Notice>> {
    let mut notices = Vec::new();
    for budget in [
        project_status(store, costs, project).await?,
        global_status(store, costs).await?,
    ] {
        let kind = match budget.state.as_str() {
            "spent" => {
                // Spent at one go: the warning is past news, and is not sent later.
                let warning = NoticeKind::BudgetWarning;
                once(store, &budget, project.id, warning, task_id).await?;
                NoticeKind::BudgetSpent
            }
            "warning" => NoticeKind::BudgetWarning,
            _ => continue,
        };
        notices.extend(once(store, &budget, project.id, kind, task_id).await?);
    }
    Ok(notices)
}

/// The notice `kind` about `budget`, unless it was sent this month for this budget.
async fn once(
    store: &Store,
    budget: &BudgetStatus,
    project_id: i64,
    kind: NoticeKind,
    task_id: i64,
) -> Result<Option<Notice>> {
    let scope = if budget.scope == "global" {
        format!("global:{project_id}")
    } else {
        format!("project:{project_id}")
    };
    let limit = budget.limit_usd.unwrap_or(0.0);
    if store
        .record_budget_notice(&scope, &budget.month, kind.as_str(), limit)
        .await?
    {
        tracing::info!(task = task_id, scope, kind = kind.as_str(), "budget notice");
        return Ok(Some(Notice {
            kind,
            task_id,
            approval_id: None,
        }));
    }
    Ok(None)
}

/// Sets project `project`'s monthly budget (`None`: the configured default) and starts
/// its waiting tasks if it has room now.
pub async fn set(
    store: &Store,
    costs: &CostsConfig,
    project: &Project,
    change: BudgetChange,
    by: &str,
) -> Result<BudgetStatus> {
    if let Some(usd) = change.monthly_usd
        && !(usd.is_finite() && (0.0..=1e9).contains(&usd))
    {
        return Err(Error::Invalid {
            field: "monthly_usd".into(),
            message: format!(
                "{usd} is not a budget; give dollars from 0 to 1000000000, or null for the default"
            ),
        });
    }
    store
        .set_project_budget(project.id, change.monthly_usd, by)
        .await?;
    wake_project(store, costs, project).await?;
    project_status(store, costs, project).await
}

/// Starts project `project`'s waiting tasks if no budget stops them now.
async fn wake_project(store: &Store, costs: &CostsConfig, project: &Project) -> Result<usize> {
    if spent_budget(store, costs, project).await?.is_some() {
        return Ok(0);
    }
    store.wake_budget_waiters(project.id).await
}

/// The sweep's part: starts the waiting tasks whose budgets have room (the month turned,
/// the configuration changed); returns how many.
pub async fn wake(store: &Store, costs: &CostsConfig) -> Result<usize> {
    let mut woken = 0;
    for project_id in store.budget_waiting_projects().await? {
        let project = store.project_by_id(project_id).await?;
        woken += wake_project(store, costs, &project).await?;
    }
    Ok(woken)
}
