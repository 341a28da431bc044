//! Retention on SQLite and PostgreSQL: old events, run logs and deliveries go in small
//! batches; recent ones, tasks and runs' figures stay.

mod common;

use aiops::config::RetentionConfig;
use aiops::store::Pool;
use chrono::{DateTime, Duration, Utc};
use common::{Db, TestApp};
use serde_json::json;
use sqlx::types::Json;

/// Runs `$body` with `$pool` bound to the app's concrete pool.
macro_rules! on_pool {
    ($app:expr, $pool:ident => $body:expr) => {
        match $app.store.pool() {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

async fn seed(app: &TestApp, now: DateTime<Utc>) -> i64 {
    let response = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "repo_url": "https://example.com/shop.git"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let project = app.store.project("shop").await.unwrap().id;
    let old = now - Duration::days(40);
    let recent = now - Duration::days(2);
    let task: i64 = on_pool!(app, pool => sqlx::query_scalar(
        "INSERT INTO tasks (project_id, team, prompt, source, priority, status, created_at)
         VALUES ($1, 'bugfix', 'p', 'api', 'normal', 'done', $2) RETURNING id")
        .bind(project)
        .bind(old)
        .fetch_one(pool)
        .await
        .unwrap());
    for (n, at) in [old, old, old, old, old, recent, recent]
        .into_iter()
        .enumerate()
    {
        on_pool!(app, pool => sqlx::query(
            "INSERT INTO events (task_id, project_id, kind, origin, ts, data, created_at)
             VALUES ($1, $2, 'status_changed', 'platform', $3, $4, $3)")
            .bind(task)
            .bind(project)
            .bind(at)
            .bind(Json(json!({"n": n})))
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
        on_pool!(app, pool => sqlx::query(
            "INSERT INTO deliveries (source, delivery_id, event, received_at, outcome, payload)
             VALUES ('github', $1, 'issues', $2, 'ignored', $3)")
            .bind(format!("d-{n}"))
            .bind(at)
            .bind(Json(json!({})))
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
        on_pool!(app, pool => sqlx::query(
            "INSERT INTO runs (task_id, kind, status, cost_usd, log, started_at, finished_at)
             VALUES ($1, 'start', 'succeeded', 0.5, 'output', $2, $2)")
            .bind(task)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }
    task
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    on_pool!(app, pool => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap())
}

async fn old_rows_go_in_batches_and_recent_ones_stay(db: Db) {
    let app = TestApp::spawn(db).await;
    let now = Utc::now();
    let task = seed(&app, now).await;
    let keep_all = RetentionConfig::default();
    let nothing = aiops::retention::prune_once(&app.store, &keep_all, now)
        .await
        .unwrap();
    assert_eq!(
        nothing,
        aiops::retention::Pruned::default(),
        "0 days keeps everything"
    );
    // Batches of 2: five old rows of each take three statements each.
    let config = RetentionConfig {
        events_days: 30,
        run_logs_days: 30,
        deliveries_days: 30,
        batch_size: 2,
        ..RetentionConfig::default()
    };
    let pruned = aiops::retention::prune_once(&app.store, &config, now)
        .await
        .unwrap();
    assert_eq!(
        (pruned.events, pruned.run_logs, pruned.deliveries),
        (5, 5, 5)
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM events").await, 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM deliveries").await, 2);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM runs WHERE log <> ''").await,
        2
    );
    // The runs and their figures stay; so does the task.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM runs").await, 7);
    assert_eq!(app.store.task(task).await.unwrap().id, task);
    let again = aiops::retention::prune_once(&app.store, &config, now)
        .await
        .unwrap();
    assert_eq!(again, aiops::retention::Pruned::default());
}

on_both_databases!(old_rows_go_in_batches_and_recent_ones_stay);
