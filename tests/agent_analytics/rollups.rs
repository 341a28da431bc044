//! The agent rollups (migration 0028) kept by triggers: after each change a ticket can go
//! through (reopened, done again, given to another agent, opened on another day, moved to
//! another task, deleted) and each change of its task's outcome, the rollup rows and their
//! time histograms equal a recount from the raw tickets, tasks and reopens, worked out here in
//! Rust from the rows themselves.

use std::collections::BTreeMap;

use aiops::store::Pool;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Read, read, seeded, store_read, ticket_updated};
use crate::common::{Db, TestApp};
use crate::on_both_databases;

/// (day, project id, agent) → tickets, done, blocked, failed, reopened, failed or reopened.
type Rollups = BTreeMap<(i64, i64, String), [i64; 6]>;
/// (day, project id, agent, bucket's lower bound in ms) → done tickets.
type Histogram = BTreeMap<(i64, i64, String, i64), i64>;

/// A ticket with its task's project and status and its reopens, as stored.
type RawTicket = (
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i64,
    String,
    i64,
);

const RAW_TICKETS: &str = "SELECT k.assignee, k.status, k.opened_at, k.done_at, t.project_id,
        t.status, CAST(COALESCE(r.reopened, 0) AS BIGINT)
    FROM tickets k JOIN tasks t ON t.id = k.task_id
    LEFT JOIN ticket_reopens r ON r.task_id = k.task_id AND r.ticket_id = k.ticket_id
    WHERE k.assignee IS NOT NULL";
const ROLLUPS: &str = "SELECT day, project_id, agent, CAST(tickets AS BIGINT),
        CAST(done AS BIGINT), CAST(blocked AS BIGINT), CAST(failed AS BIGINT),
        CAST(reopened AS BIGINT), CAST(failed_or_reopened AS BIGINT)
    FROM agent_rollups";
const HISTOGRAM: &str =
    "SELECT day, project_id, agent, lower_ms, CAST(tickets AS BIGINT) FROM agent_time_counts";
const BOUNDS: &str = "SELECT lower_ms FROM duration_buckets ORDER BY lower_ms";

type RollupRow = (i64, i64, String, i64, i64, i64, i64, i64, i64);
type HistogramRow = (i64, i64, String, i64, i64);

/// The rollups and histogram as stored, without the rows whose counts are all zero.
async fn stored(app: &TestApp) -> (Rollups, Histogram) {
    macro_rules! fetch {
        ($pool:ident) => {{
            let rollups: Vec<RollupRow> = sqlx::query_as(ROLLUPS).fetch_all($pool).await.unwrap();
            let cells: Vec<HistogramRow> =
                sqlx::query_as(HISTOGRAM).fetch_all($pool).await.unwrap();
            (rollups, cells)
        }};
    }
    let (rollups, cells) = match app.store.pool() {
        Pool::Sqlite(pool) => fetch!(pool),
        Pool::Postgres(pool) => fetch!(pool),
    };
    let rollups = rollups
        .into_iter()
        .map(|(day, project, agent, a, b, c, d, e, f)| ((day, project, agent), [a, b, c, d, e, f]))
        .filter(|(_, counts)| counts.iter().any(|n| *n != 0))
        .collect();
    let cells = cells
        .into_iter()
        .filter(|cell| cell.4 != 0)
        .map(|(day, project, agent, lower, n)| ((day, project, agent, lower), n))
        .collect();
    (rollups, cells)
}

/// The rollups and histogram counted again from the raw rows.
async fn recounted(app: &TestApp) -> (Rollups, Histogram) {
    macro_rules! fetch {
        ($pool:ident) => {{
            let tickets: Vec<RawTicket> =
                sqlx::query_as(RAW_TICKETS).fetch_all($pool).await.unwrap();
            let bounds: Vec<i64> = sqlx::query_scalar(BOUNDS).fetch_all($pool).await.unwrap();
            (tickets, bounds)
        }};
    }
    let (tickets, bounds) = match app.store.pool() {
        Pool::Sqlite(pool) => fetch!(pool),
        Pool::Postgres(pool) => fetch!(pool),
    };
    let (mut rollups, mut cells) = (Rollups::new(), Histogram::new());
    for (agent, status, opened, done_at, project, task_status, reopens) in tickets {
        let Some(opened) = opened else { continue };
        let day = opened.timestamp().div_euclid(86_400);
        let done = status.as_deref() == Some("DONE");
        let failed = !done && ["failed", "rolled_back", "budget_exceeded"].contains(&&*task_status);
        let reopened = reopens > 0;
        let flags = [
            true,
            done,
            status.as_deref() == Some("BLOCKED"),
            failed,
            reopened,
            failed || reopened,
        ];
        let sums = rollups.entry((day, project, agent.clone())).or_default();
        for (sum, flag) in sums.iter_mut().zip(flags) {
            *sum += i64::from(flag);
        }
        if let (true, Some(done_at)) = (done, done_at) {
            let took = (done_at - opened).num_milliseconds().max(0);
            let lower = *bounds.iter().rev().find(|b| **b <= took).unwrap();
            *cells.entry((day, project, agent, lower)).or_default() += 1;
        }
    }
    (rollups, cells)
}

async fn assert_recount(app: &TestApp, after: &str) {
    let (rollups, cells) = stored(app).await;
    let (expected_rollups, expected_cells) = recounted(app).await;
    assert!(
        !expected_rollups.is_empty(),
        "after {after}: nothing counted"
    );
    assert_eq!(rollups, expected_rollups, "rollups after {after}");
    assert_eq!(cells, expected_cells, "time histogram after {after}");
}

async fn execute(app: &TestApp, sql: &str, task_id: i64) {
    let query = sqlx::AssertSqlSafe(sql);
    match app.store.pool() {
        Pool::Sqlite(pool) => {
            sqlx::query(query)
                .bind(task_id)
                .execute(pool)
                .await
                .unwrap();
        }
        Pool::Postgres(pool) => {
            sqlx::query(query)
                .bind(task_id)
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn task_of(app: &TestApp, ticket: &str) -> i64 {
    let sql = "SELECT task_id FROM tickets WHERE ticket_id = $1";
    match app.store.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).bind(ticket).fetch_one(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(sql).bind(ticket).fetch_one(pool).await,
    }
    .unwrap()
}

async fn the_rollups_follow_every_change(db: Db) {
    let app = seeded(db).await;
    assert_recount(&app, "the seeded history").await;
    let shop = app.store.project("shop").await.unwrap().id;
    let (done_task, blog_task) = (task_of(&app, "T1").await, task_of(&app, "U1").await);

    // builder's T1 reopened: stored IN_PROGRESS, and the plugin's line saying so.
    let reopened = read(
        "T1",
        "builder",
        "IN_PROGRESS",
        "2026-03-02T12:00:00Z",
        Some("2026-03-02T10:00:00Z"),
        None,
    );
    store_read(&app, done_task, &reopened).await;
    let change = json!({"ticketId": "T1", "prevStatus": "DONE", "status": "IN_PROGRESS"});
    ticket_updated(&app, done_task, shop, 500, change).await;
    assert_recount(&app, "T1 reopened").await;

    // Done again, 2 h 30 min after it opened.
    let done_again = Read {
        status: "DONE",
        completed: Some("2026-03-02T12:30:00Z"),
        ..reopened
    };
    store_read(&app, done_task, &done_again).await;
    assert_recount(&app, "T1 done again").await;

    // analyst's T3 given to builder, and its file now says it opened two days later.
    let moved = read(
        "T3",
        "builder",
        "DONE",
        "2026-03-04T09:00:00Z",
        Some("2026-03-04T08:59:00Z"),
        Some("2026-03-02T09:00:30Z"),
    );
    store_read(&app, done_task, &moved).await;
    assert_recount(&app, "T3 moved to builder and another day").await;

    // blog's running task fails (writer's U2 in progress becomes failed), then is retried
    // and done (U2 is no failure any more).
    let set_status = "UPDATE tasks SET status = 'failed' WHERE id = $1";
    execute(&app, set_status, blog_task).await;
    assert_recount(&app, "blog's task failed").await;
    execute(&app, &set_status.replace("failed", "done"), blog_task).await;
    assert_recount(&app, "blog's task done").await;

    // reviewer's T7 moved to blog's task (another project), then builder's T4 deleted.
    let sql = "UPDATE tickets SET task_id = $1 WHERE ticket_id = 'T7'";
    execute(&app, sql, blog_task).await;
    assert_recount(&app, "T7 moved to blog").await;
    execute(
        &app,
        "DELETE FROM tickets WHERE task_id = $1 AND ticket_id = 'T4'",
        done_task,
    )
    .await;
    assert_recount(&app, "T4 deleted").await;

    // T2's reopens forgotten: no longer reopened.
    let sql = "DELETE FROM ticket_reopens WHERE task_id = $1 AND ticket_id = 'T2'";
    execute(&app, sql, done_task).await;
    assert_recount(&app, "T2's reopens deleted").await;
}

on_both_databases!(the_rollups_follow_every_change);
