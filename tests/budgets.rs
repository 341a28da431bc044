//! Monthly budgets end to end, on SQLite and PostgreSQL: simulator runs spend a project's
//! budget, its channel hears the warning and the exhaustion once each, the next new task
//! waits queued with the reason and starts when a maintainer raises the budget; with
//! `over_budget = "refuse"` it ends `budget_exceeded` without running.

mod common;

use common::chat::{ChatStandIn, Service};
use common::pipeline::{WAIT, add_project, create_task, engine_app, task_detail, wait_status};
use common::{Db, TestApp, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The dollars task `id`'s runs cost.
async fn cost_of(app: &TestApp, id: i64) -> f64 {
    let detail = task_detail(app, id).await;
    detail["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["cost_usd"].as_f64().unwrap())
        .sum()
}

async fn set_budget(app: &TestApp, project: &str, monthly_usd: Value) -> (StatusCode, Value) {
    let response = app
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/projects/{project}/budget"),
        )
        .json(&json!({ "monthly_usd": monthly_usd }))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The budget notices the webhook stand-in received, by event name.
fn budget_events(hooks: &ChatStandIn) -> Vec<Value> {
    hooks
        .received("/aiops")
        .iter()
        .map(|r| r.json())
        .filter(|body| body["event"].as_str().unwrap_or("").starts_with("budget_"))
        .collect()
}

/// A project with a webhook channel that asked only for `task_done`: budget notices reach
/// it anyway.
async fn project_with_channel(app: &TestApp, repo: &std::path::Path, hooks: &ChatStandIn) {
    add_project(app, "shop", repo, json!({})).await;
    let created = app
        .post("/api/v1/credentials")
        .json(&json!({"name": "hook-hmac", "kind": "webhook_secret", "value": "budget-hook-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let channel = json!({"kind": "webhook", "target": hooks.url_of("/aiops"),
        "credential": "hook-hmac", "events": ["task_done"]});
    let created = app
        .post("/api/v1/projects/shop/channels")
        .json(&channel)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{}",
        created.text().await.unwrap()
    );
}

async fn a_spent_budget_holds_new_tasks_until_it_is_raised(db: Db) {
    let hooks = ChatStandIn::start(Service::Webhook).await;
    let repo = common::git_repo();
    let app = engine_app(db, "", |_| {}).await;
    project_with_channel(&app, repo.path(), &hooks).await;

    // With no budget the first task runs; every run of the simulator costs the same.
    let first = create_task(&app, "shop", "first", "normal").await;
    wait_status(&app, first, &["awaiting_approval"]).await;
    let run_cost = cost_of(&app, first).await;
    assert!(run_cost > 0.0);

    // 2.2 runs' worth: the second run crosses 80 %, the third spends it all.
    let (status, budget) = set_budget(&app, "shop", json!(run_cost * 2.2)).await;
    assert_eq!(status, StatusCode::OK, "{budget}");
    assert_eq!(budget["state"], "ok", "{budget}");
    assert_eq!(budget["source"], "project");
    let second = create_task(&app, "shop", "second", "normal").await;
    wait_status(&app, second, &["awaiting_approval"]).await;
    wait_for("the budget warning", WAIT, || async {
        (budget_events(&hooks).len() == 1).then_some(())
    })
    .await;
    let third = create_task(&app, "shop", "third", "normal").await;
    wait_status(&app, third, &["awaiting_approval"]).await;
    let events = wait_for("the budget-spent notice", WAIT, || async {
        let events = budget_events(&hooks);
        (events.len() == 2).then_some(events)
    })
    .await;
    assert_eq!(events[0]["event"], "budget_warning", "{events:#?}");
    assert_eq!(events[1]["event"], "budget_spent", "{events:#?}");
    let summary = events[1]["summary"].as_str().unwrap();
    assert!(summary.contains("Project shop has spent $"), "{summary}");
    assert_eq!(events[1]["budgets"][0]["state"], "spent");

    // The fourth waits, queued, with a reason that names the fix; it never ran.
    let fourth = create_task(&app, "shop", "fourth", "normal").await;
    let detail = wait_for("the fourth task to wait for budget", WAIT, || async {
        let detail = task_detail(&app, fourth).await;
        let waiting = detail["status_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("waiting for budget"));
        waiting.then_some(detail)
    })
    .await;
    assert_eq!(detail["status"], "queued");
    let reason = detail["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("PUT /api/v1/projects/shop/budget"),
        "{reason}"
    );
    assert!(detail["runs"].as_array().unwrap().is_empty());
    let budget = app.get_json("/api/v1/projects/shop/budget").await;
    assert_eq!(budget["state"], "spent", "{budget}");

    // A budget that is no number of dollars is refused at its field.
    let (status, body) = set_budget(&app, "shop", json!(-1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Raised: the waiting task starts at once and runs.
    let (status, budget) = set_budget(&app, "shop", json!(run_cost * 10.0)).await;
    assert_eq!(status, StatusCode::OK, "{budget}");
    assert_eq!(budget["state"], "ok", "{budget}");
    wait_status(&app, fourth, &["awaiting_approval"]).await;
    // Each notice was sent once.
    assert_eq!(
        budget_events(&hooks).len(),
        2,
        "{:#?}",
        budget_events(&hooks)
    );
}

async fn a_spent_budget_refuses_new_tasks_when_so_configured(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |c| {
        c.costs.project_monthly_usd = 0.000_001;
        c.costs.over_budget = aiops::config::OverBudget::Refuse;
    })
    .await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let budget = app.get_json("/api/v1/projects/shop/budget").await;
    assert_eq!(budget["source"], "default", "{budget}");
    assert_eq!(budget["state"], "ok", "{budget}");
    // The first task may start (nothing is spent yet); it spends the budget.
    let first = create_task(&app, "shop", "first", "normal").await;
    wait_status(&app, first, &["awaiting_approval"]).await;
    let second = create_task(&app, "shop", "second", "normal").await;
    let detail = wait_status(&app, second, &["budget_exceeded"]).await;
    let reason = detail["status_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("refused: project shop has spent $"),
        "{reason}"
    );
    assert!(detail["runs"].as_array().unwrap().is_empty());
    // The task the budget did not stop goes on: its approval resumes it.
    assert_eq!(
        task_detail(&app, first).await["status"],
        "awaiting_approval"
    );
}

on_both_databases!(
    a_spent_budget_holds_new_tasks_until_it_is_raised,
    a_spent_budget_refuses_new_tasks_when_so_configured,
);
