//! `/api/v1/analytics/…` over real HTTP on SQLite and PostgreSQL, against a seeded history
//! whose right answers are worked out by hand below.

mod common;

use std::collections::BTreeMap;

use aiops::analytics::bucket_start;
use aiops::model::BucketSize;
use aiops::store::Pool;
use chrono::{DateTime, Duration, Utc};
use common::scale::{create_project, p50_p95, seed_at_scale};
use common::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs `$body` with `$pool` bound to the app's concrete pool.
macro_rules! on_pool {
    ($app:expr, $pool:ident => $body:expr) => {
        match $app.store.pool() {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// One seeded task: where and when it was made, how it ended, how long it took, its runs.
struct Seed {
    project: &'static str,
    team: &'static str,
    source: &'static str,
    status: &'static str,
    created: &'static str,
    /// Seconds from creation to completion; None while it is open.
    took_secs: Option<i64>,
    /// Never picked up by a worker.
    never_started: bool,
    /// Each run's (input, output, cache read, cache write tokens, cost in USD).
    runs: &'static [(i64, i64, i64, i64, f64)],
}

const fn seed(
    project: &'static str,
    team: &'static str,
    source: &'static str,
    status: &'static str,
    created: &'static str,
    took_secs: Option<i64>,
    runs: &'static [(i64, i64, i64, i64, f64)],
) -> Seed {
    Seed {
        project,
        team,
        source,
        status,
        created,
        took_secs,
        never_started: false,
        runs,
    }
}

/// The history. 2026-03-02 is a Monday; 2026-03-10 is in the next ISO week.
const TASKS: &[Seed] = &[
    // 0: shop, Monday
    seed(
        "shop",
        "bugfix",
        "api",
        "done",
        "2026-03-02T10:00:00Z",
        Some(60),
        &[(100, 10, 1000, 50, 0.10), (50, 5, 0, 0, 0.05)],
    ),
    seed(
        "shop",
        "bugfix",
        "api",
        "done",
        "2026-03-02T11:00:00Z",
        Some(120),
        &[(200, 20, 2000, 100, 0.20)],
    ),
    seed(
        "shop",
        "feature",
        "github",
        "done",
        "2026-03-02T12:00:00Z",
        Some(300),
        &[(400, 40, 0, 0, 0.40)],
    ),
    seed(
        "shop",
        "bugfix",
        "api",
        "failed",
        "2026-03-02T13:00:00Z",
        Some(30),
        &[(50, 5, 0, 0, 0.05)],
    ),
    Seed {
        never_started: true,
        ..seed(
            "shop",
            "feature",
            "api",
            "cancelled",
            "2026-03-02T14:00:00Z",
            Some(10),
            &[],
        )
    },
    Seed {
        never_started: true,
        ..seed(
            "shop",
            "bugfix",
            "api",
            "queued",
            "2026-03-02T23:59:59Z",
            None,
            &[],
        )
    },
    seed(
        "shop",
        "bugfix",
        "api",
        "done",
        "2026-03-02T16:00:00Z",
        Some(45),
        &[(20, 2, 0, 0, 0.02)],
    ),
    seed(
        "shop",
        "feature",
        "api",
        "done",
        "2026-03-02T17:00:00Z",
        Some(90),
        &[(30, 3, 0, 0, 0.03)],
    ),
    // 8: blog, Monday
    seed(
        "blog",
        "bugfix",
        "github",
        "done",
        "2026-03-02T09:00:00Z",
        Some(200),
        &[(1000, 100, 0, 0, 1.00)],
    ),
    seed(
        "blog",
        "bugfix",
        "api",
        "rolled_back",
        "2026-03-02T15:00:00Z",
        Some(100),
        &[(300, 30, 0, 0, 0.30)],
    ),
    // 10: shop, Tuesday, exactly at midnight (Tuesday's bucket, not Monday's)
    seed(
        "shop",
        "bugfix",
        "api",
        "done",
        "2026-03-03T00:00:00Z",
        Some(40),
        &[(80, 8, 0, 0, 0.08)],
    ),
    // 11: blog, the week after
    seed(
        "blog",
        "feature",
        "cron",
        "failed",
        "2026-03-10T08:00:00Z",
        Some(50),
        &[(500, 50, 0, 0, 0.50)],
    ),
    // 12: before the range
    seed(
        "shop",
        "bugfix",
        "api",
        "done",
        "2026-02-28T10:00:00Z",
        Some(10),
        &[(1, 1, 0, 0, 9.99)],
    ),
];

/// One seeded approval request: the task (index into TASKS), when it was filed, and how it
/// was decided (decision, channel, seconds later) or None while pending.
type ApprovalSeed = (
    usize,
    &'static str,
    Option<(&'static str, &'static str, i64)>,
);

const APPROVALS: &[ApprovalSeed] = &[
    (0, "2026-03-02T10:01:00Z", Some(("approve", "api", 60))),
    (1, "2026-03-02T11:01:00Z", Some(("reject", "web", 600))),
    (2, "2026-03-02T12:01:00Z", Some(("revise", "slack", 120))),
    (6, "2026-03-02T16:01:00Z", Some(("approve", "cli", 30))),
    // Rejected by the platform when the deadline passed: expired, not a person's decision.
    (
        3,
        "2026-03-02T13:01:00Z",
        Some(("reject", "system", 3 * 86_400)),
    ),
    (7, "2026-03-02T17:01:00Z", None),
    // Decided by the pipeline itself: not a person's decision either.
    (7, "2026-03-02T17:30:00Z", Some(("approve", "pipeline", 5))),
    (8, "2026-03-02T09:01:00Z", Some(("approve", "api", 300))),
];

async fn insert_task(app: &TestApp, project_id: i64, task: &Seed) -> i64 {
    let created = at(task.created);
    let started = (!task.never_started).then_some(created + Duration::seconds(1));
    let completed = task.took_secs.map(|s| created + Duration::seconds(s));
    let sql = "INSERT INTO tasks (project_id, team, prompt, source, priority, status, created_at,
                   started_at, completed_at)
               VALUES ($1, $2, 'seeded', $3, 'normal', $4, $5, $6, $7) RETURNING id";
    on_pool!(app, pool => sqlx::query_scalar(sql)
        .bind(project_id)
        .bind(task.team)
        .bind(task.source)
        .bind(task.status)
        .bind(created)
        .bind(started)
        .bind(completed)
        .fetch_one(pool)
        .await
        .unwrap())
}

async fn insert_run(
    app: &TestApp,
    task_id: i64,
    started: DateTime<Utc>,
    run: (i64, i64, i64, i64, f64),
) {
    let sql = "INSERT INTO runs (task_id, kind, status, input_tokens, output_tokens,
                   cache_read_tokens, cache_creation_tokens, cost_usd, started_at, finished_at)
               VALUES ($1, 'start', 'succeeded', $2, $3, $4, $5, $6, $7, $7)";
    on_pool!(app, pool => sqlx::query(sql)
        .bind(task_id)
        .bind(run.0)
        .bind(run.1)
        .bind(run.2)
        .bind(run.3)
        .bind(run.4)
        .bind(started)
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
}

async fn insert_approval(app: &TestApp, task_id: i64, n: usize, approval: &ApprovalSeed) {
    let requested = at(approval.1);
    let (status, decision, channel, decided_at) = match approval.2 {
        Some((decision, channel, secs)) => (
            "decided",
            Some(decision),
            Some(channel),
            Some(requested + Duration::seconds(secs)),
        ),
        None => ("pending", None, None, None),
    };
    let sql = "INSERT INTO approvals (task_id, request_id, kind, status, decision, channel,
                   decided_at, requested_at)
               VALUES ($1, $2, 'result', $3, $4, $5, $6, $7)";
    on_pool!(app, pool => sqlx::query(sql)
        .bind(task_id)
        .bind(format!("req-{n}"))
        .bind(status)
        .bind(decision)
        .bind(channel)
        .bind(decided_at)
        .bind(requested)
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
}

/// The app with projects `shop` and `blog` and the seeded history.
async fn seeded(db: Db) -> TestApp {
    let app = TestApp::spawn(db).await;
    let shop = create_project(&app, "shop").await;
    let blog = create_project(&app, "blog").await;
    let mut ids = Vec::new();
    for task in TASKS {
        let project = if task.project == "shop" { shop } else { blog };
        let id = insert_task(&app, project, task).await;
        for run in task.runs {
            insert_run(&app, id, at(task.created), *run).await;
        }
        ids.push(id);
    }
    for (n, approval) in APPROVALS.iter().enumerate() {
        insert_approval(&app, ids[approval.0], n, approval).await;
    }
    app
}

const MARCH: &str = "from=2026-03-01&to=2026-03-11";

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 1e-9)
}

/// The row of `answer` for this bucket start and group.
fn row<'a>(answer: &'a Value, bucket: &str, group: &str) -> &'a Value {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == group && at(r["bucket_start"].as_str().unwrap()) == at(bucket))
        .unwrap_or_else(|| panic!("no row for {bucket} / {group} in {answer}"))
}

async fn tasks_per_day_and_project(db: Db) {
    let app = seeded(db).await;
    let answer = app
        .get_json(&format!(
            "/api/v1/analytics/tasks?{MARCH}&bucket=day&group_by=project"
        ))
        .await;
    // Only (bucket, group) pairs that had tasks, by bucket then group; February's task is out.
    let keys: Vec<(DateTime<Utc>, &str)> = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                at(r["bucket_start"].as_str().unwrap()),
                r["group"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (at("2026-03-02T00:00:00Z"), "blog"),
            (at("2026-03-02T00:00:00Z"), "shop"),
            (at("2026-03-03T00:00:00Z"), "shop"),
            (at("2026-03-10T00:00:00Z"), "blog"),
        ]
    );
    assert_eq!(
        at(answer["from"].as_str().unwrap()),
        at("2026-03-01T00:00:00Z")
    );
    assert_eq!(
        at(answer["to"].as_str().unwrap()),
        at("2026-03-11T00:00:00Z")
    );

    // shop on Monday: 8 tasks, 6 started (the cancelled and the queued one never ran); done 5,
    // failed 1, cancelled 1: success 5 / (5 + 1). Done durations 60, 120, 300, 45, 90 s sorted
    // 45, 60, 90, 120, 300: p50 is rank ceil(2.5) = 3 → 90 s, p90 rank ceil(4.5) = 5 → 300 s.
    let shop = row(&answer, "2026-03-02T00:00:00Z", "shop");
    assert_eq!(
        (
            shop["tasks"].as_i64(),
            shop["started"].as_i64(),
            shop["done"].as_i64()
        ),
        (Some(8), Some(6), Some(5))
    );
    assert_eq!(
        (
            shop["failed"].as_i64(),
            shop["cancelled"].as_i64(),
            shop["rolled_back"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert!(close(&shop["success_rate"], 5.0 / 6.0), "{shop}");
    assert_eq!(shop["duration_p50_ms"], 90_000);
    assert_eq!(shop["duration_p90_ms"], 300_000);
    // Costs 0.10 + 0.05 + 0.20 + 0.40 + 0.05 + 0.02 + 0.03 = 0.85 over 8 tasks and 5 successes.
    assert!(close(&shop["cost_usd"], 0.85), "{shop}");
    assert!(close(&shop["cost_per_task_usd"], 0.85 / 8.0), "{shop}");
    assert!(close(&shop["cost_per_success_usd"], 0.85 / 5.0), "{shop}");
    assert_eq!(
        shop["tokens"],
        json!({"input": 850, "output": 85, "cache_read": 3000, "cache_write": 150})
    );

    // blog on Monday: one done (200 s), one rolled back: success 1 / 2; cost 1.00 + 0.30.
    let blog = row(&answer, "2026-03-02T00:00:00Z", "blog");
    assert!(close(&blog["success_rate"], 0.5), "{blog}");
    assert_eq!(
        (
            blog["duration_p50_ms"].as_i64(),
            blog["duration_p90_ms"].as_i64()
        ),
        (Some(200_000), Some(200_000))
    );
    assert!(close(&blog["cost_usd"], 1.30), "{blog}");
    assert!(close(&blog["cost_per_success_usd"], 1.30), "{blog}");

    // The task made at Tuesday midnight counts on Tuesday.
    let tuesday = row(&answer, "2026-03-03T00:00:00Z", "shop");
    assert_eq!(
        (
            tuesday["tasks"].as_i64(),
            tuesday["duration_p50_ms"].as_i64()
        ),
        (Some(1), Some(40_000))
    );
    assert!(close(&tuesday["cost_usd"], 0.08), "{tuesday}");

    // A bucket with only a failure: success 0, no duration, no cost per success.
    let later = row(&answer, "2026-03-10T00:00:00Z", "blog");
    assert!(close(&later["success_rate"], 0.0), "{later}");
    assert!(
        later["duration_p50_ms"].is_null() && later["cost_per_success_usd"].is_null(),
        "{later}"
    );
}

async fn tasks_per_week_and_team_and_per_month_and_source(db: Db) {
    let app = seeded(db).await;
    // 1 March is a Sunday: its week starts on 23 February and holds February's task too.
    let weeks = app
        .get_json(&format!(
            "/api/v1/analytics/tasks?{MARCH}&bucket=week&group_by=team"
        ))
        .await;
    assert_eq!(
        at(weeks["from"].as_str().unwrap()),
        at("2026-02-23T00:00:00Z")
    );
    assert!(
        close(
            &row(&weeks, "2026-02-23T00:00:00Z", "bugfix")["cost_usd"],
            9.99
        ),
        "{weeks}"
    );
    let weeks = app
        .get_json("/api/v1/analytics/tasks?from=2026-03-02&to=2026-03-11&bucket=week&group_by=team")
        .await;
    assert_eq!(weeks["rows"].as_array().unwrap().len(), 3, "{weeks}");
    // Week of Monday 2 March, bugfix: tasks 0, 1, 3, 5, 6, 8, 9, 10. Done 0, 1, 6, 8, 10 with
    // durations 60, 120, 45, 200, 40 s → sorted 40, 45, 60, 120, 200: p50 60 s, p90 200 s.
    // Failed 3, rolled back 9: success 5 / 7. Cost 0.15 + 0.20 + 0.05 + 0.02 + 1.00 + 0.30 + 0.08.
    let bugfix = row(&weeks, "2026-03-02T00:00:00Z", "bugfix");
    assert_eq!(bugfix["tasks"], 8);
    assert!(close(&bugfix["success_rate"], 5.0 / 7.0), "{bugfix}");
    assert_eq!(
        (
            bugfix["duration_p50_ms"].as_i64(),
            bugfix["duration_p90_ms"].as_i64()
        ),
        (Some(60_000), Some(200_000))
    );
    assert!(close(&bugfix["cost_usd"], 1.80), "{bugfix}");
    // feature: done 2 and 7 (300 s, 90 s): p50 rank ceil(1) = 1 → 90 s, p90 rank ceil(1.8) = 2
    // → 300 s; the cancelled task 4 does not count against success.
    let feature = row(&weeks, "2026-03-02T00:00:00Z", "feature");
    assert_eq!(
        (feature["tasks"].as_i64(), feature["cancelled"].as_i64()),
        (Some(3), Some(1))
    );
    assert!(close(&feature["success_rate"], 1.0), "{feature}");
    assert_eq!(
        (
            feature["duration_p50_ms"].as_i64(),
            feature["duration_p90_ms"].as_i64()
        ),
        (Some(90_000), Some(300_000))
    );
    assert!(close(&feature["cost_usd"], 0.43), "{feature}");
    let next = row(&weeks, "2026-03-09T00:00:00Z", "feature");
    assert!(close(&next["cost_usd"], 0.50), "{next}");

    // One month by source: api 0.15 + 0.20 + 0.05 + 0.02 + 0.03 + 0.30 + 0.08, github 0.40 +
    // 1.00, cron 0.50; February's 9.99 is outside the range.
    let month = app
        .get_json(&format!(
            "/api/v1/analytics/tasks?{MARCH}&bucket=month&group_by=source"
        ))
        .await;
    let costs: Vec<(&str, f64)> = month["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap(),
                r["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(costs.len(), 3, "{month}");
    for (source, expected, tasks) in [("api", 0.83, 9), ("cron", 0.50, 1), ("github", 1.40, 2)] {
        let r = row(&month, "2026-03-01T00:00:00Z", source);
        assert!(close(&r["cost_usd"], expected), "{source}: {r}");
        assert_eq!(r["tasks"], tasks, "{source}");
    }
}

async fn approval_figures(db: Db) {
    let app = seeded(db).await;
    let answer = app
        .get_json(&format!("/api/v1/analytics/approvals?{MARCH}&bucket=day"))
        .await;
    // shop on Monday: 7 requests. People decided 4 (approve 60 s, reject 600 s, revise 120 s,
    // approve 30 s); the deadline rejected one (expired), the pipeline decided one, one waits.
    // Waits sorted 30, 60, 120, 600 s: p50 rank 2 → 60 s, p90 rank ceil(3.6) = 4 → 600 s.
    let shop = row(&answer, "2026-03-02T00:00:00Z", "shop");
    assert_eq!(
        (
            shop["requested"].as_i64(),
            shop["decided"].as_i64(),
            shop["expired"].as_i64(),
            shop["pending"].as_i64()
        ),
        (Some(7), Some(4), Some(1), Some(1))
    );
    assert_eq!(
        (
            shop["approved"].as_i64(),
            shop["rejected"].as_i64(),
            shop["revised"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert!(
        close(&shop["approve_share"], 0.5)
            && close(&shop["reject_share"], 0.25)
            && close(&shop["revise_share"], 0.25),
        "{shop}"
    );
    assert_eq!(
        (
            shop["decision_p50_ms"].as_i64(),
            shop["decision_p90_ms"].as_i64()
        ),
        (Some(60_000), Some(600_000))
    );
    let blog = row(&answer, "2026-03-02T00:00:00Z", "blog");
    assert_eq!(
        (blog["requested"].as_i64(), blog["decision_p90_ms"].as_i64()),
        (Some(1), Some(300_000))
    );
    assert!(close(&blog["approve_share"], 1.0), "{blog}");
}

async fn most_expensive_tasks(db: Db) {
    let app = seeded(db).await;
    let top = app
        .get_json(&format!(
            "/api/v1/analytics/expensive-tasks?{MARCH}&limit=3"
        ))
        .await;
    let items: Vec<(&str, f64)> = top["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["project"].as_str().unwrap(),
                t["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(items, vec![("blog", 1.00), ("blog", 0.50), ("shop", 0.40)]);
    let shop = app
        .get_json(&format!(
            "/api/v1/analytics/expensive-tasks?{MARCH}&project=shop&limit=2"
        ))
        .await;
    let first = &shop["items"][0];
    assert_eq!(
        (first["team"].as_str(), first["runs"].as_i64()),
        (Some("feature"), Some(1))
    );
    assert!(close(&shop["items"][1]["cost_usd"], 0.20), "{shop}");
    assert_eq!(shop["items"][1]["tokens"], Value::Null);
    assert_eq!(shop["items"][1]["cache_read_tokens"], 2000);
}

/// A reader sees the figures of the projects in its scope: a viewer may read, and a project
/// filter narrows every answer to that project.
async fn a_viewer_reads_only_the_projects_asked_for(db: Db) {
    let app = seeded(db).await;
    let (viewer, _) = aiops::auth::create_token(&app.store, "watcher", aiops::auth::Role::Viewer)
        .await
        .unwrap();
    for path in ["tasks", "approvals"] {
        let response = app
            .client
            .get(app.url(&format!("/api/v1/analytics/{path}?{MARCH}&project=blog")))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let answer: Value = response.json().await.unwrap();
        let groups: Vec<&str> = answer["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["group"].as_str().unwrap())
            .collect();
        assert!(
            !groups.is_empty() && groups.iter().all(|g| *g == "blog"),
            "{path}: {answer}"
        );
    }
    let teams = app
        .get_json(&format!(
            "/api/v1/analytics/tasks?{MARCH}&project=blog&group_by=team&bucket=month"
        ))
        .await;
    // blog's tasks only: bugfix 8, 9 (1.00 + 0.30) and feature 11 (0.50).
    assert!(
        close(
            &row(&teams, "2026-03-01T00:00:00Z", "bugfix")["cost_usd"],
            1.30
        ),
        "{teams}"
    );
    assert!(
        close(
            &row(&teams, "2026-03-01T00:00:00Z", "feature")["cost_usd"],
            0.50
        ),
        "{teams}"
    );
}

async fn bad_requests_name_the_field(db: Db) {
    let app = TestApp::spawn(db).await;
    for (query, field) in [
        ("bucket=hour", "bucket"),
        ("group_by=agent", "group_by"),
        ("from=yesterday", "from"),
        ("from=2026-03-02&to=2026-03-01", "to"),
        ("from=2020-01-01&to=2026-01-01&bucket=day", "bucket"),
        // Every analytics query checks `limit`, not only the one that lists tasks.
        ("limit=0", "limit"),
    ] {
        let response = app
            .get(&format!("/api/v1/analytics/tasks?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
    let unknown = app
        .get("/api/v1/analytics/tasks?project=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let too_many = app
        .get("/api/v1/analytics/expensive-tasks?limit=1000")
        .send()
        .await
        .unwrap();
    assert_eq!(too_many.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Without a range: the last 30 days, and nothing happened in them.
    let empty = app.get_json("/api/v1/analytics/tasks").await;
    assert_eq!(empty["rows"], json!([]));
}

/// A task as its rows hold it: its group, its outcome and its runs' sums.
#[derive(sqlx::FromRow)]
struct RawTask {
    project: String,
    team: String,
    source: String,
    status: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    cost_usd: f64,
}

/// An approval request as its row holds it, with its task's group.
#[derive(sqlx::FromRow)]
struct RawApproval {
    project: String,
    team: String,
    source: String,
    status: String,
    decision: Option<String>,
    channel: Option<String>,
    requested_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
}

/// The nearest-rank `percent`th percentile of `values`: the one at rank ⌈p·n/100⌉.
fn nearest_rank(values: &[i64], percent: usize) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Value::Null,
        n => json!(sorted[(n * percent).div_ceil(100) - 1]),
    }
}

/// The group a row counts in.
fn group_of<'a>(group_by: &str, project: &'a str, team: &'a str, source: &'a str) -> &'a str {
    match group_by {
        "project" => project,
        "team" => team,
        _ => source,
    }
}

/// What `/analytics/tasks` must answer for `bucket` and `group_by`, worked out from the raw
/// rows one by one: (bucket start, group) → the figures compared.
async fn tasks_from_rows(
    app: &TestApp,
    bucket: BucketSize,
    group_by: &str,
) -> BTreeMap<(DateTime<Utc>, String), Value> {
    let sql = "SELECT p.name AS project, t.team, t.source, t.status, t.created_at, t.started_at,
            t.completed_at,
            CAST(COALESCE(SUM(r.input_tokens), 0) AS BIGINT) AS input_tokens,
            CAST(COALESCE(SUM(r.output_tokens), 0) AS BIGINT) AS output_tokens,
            CAST(COALESCE(SUM(r.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens,
            CAST(COALESCE(SUM(r.cache_creation_tokens), 0) AS BIGINT) AS cache_write_tokens,
            CAST(COALESCE(SUM(r.cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd
        FROM tasks t JOIN projects p ON p.id = t.project_id LEFT JOIN runs r ON r.task_id = t.id
        GROUP BY t.id, p.name, t.team, t.source, t.status, t.created_at, t.started_at,
            t.completed_at";
    let tasks: Vec<RawTask> =
        on_pool!(app, pool => sqlx::query_as(sql).fetch_all(pool).await.unwrap());
    let mut groups: BTreeMap<(DateTime<Utc>, String), Vec<&RawTask>> = BTreeMap::new();
    for task in &tasks {
        let group = group_of(group_by, &task.project, &task.team, &task.source);
        groups
            .entry((bucket_start(task.created_at, bucket), group.to_owned()))
            .or_default()
            .push(task);
    }
    let figures = |tasks: &[&RawTask]| {
        let count = |status: &str| tasks.iter().filter(|t| t.status == status).count();
        let sum = |field: fn(&RawTask) -> i64| tasks.iter().map(|t| field(t)).sum::<i64>();
        let durations: Vec<i64> = tasks
            .iter()
            .filter(|t| t.status == "done")
            .filter_map(|t| {
                t.completed_at
                    .map(|c| (c - t.created_at).num_milliseconds())
            })
            .collect();
        json!({
            "tasks": tasks.len(),
            "started": tasks.iter().filter(|t| t.started_at.is_some()).count(),
            "done": count("done"), "failed": count("failed"), "cancelled": count("cancelled"),
            "rolled_back": count("rolled_back"),
            "duration_p50_ms": nearest_rank(&durations, 50),
            "duration_p90_ms": nearest_rank(&durations, 90),
            "tokens": {"input": sum(|t| t.input_tokens), "output": sum(|t| t.output_tokens),
                "cache_read": sum(|t| t.cache_read_tokens),
                "cache_write": sum(|t| t.cache_write_tokens)},
            "cost_usd": tasks.iter().map(|t| t.cost_usd).sum::<f64>(),
        })
    };
    groups
        .into_iter()
        .map(|(key, tasks)| (key, figures(&tasks)))
        .collect()
}

/// What `/analytics/approvals` must answer, worked out from the raw rows like
/// [`tasks_from_rows`].
async fn approvals_from_rows(
    app: &TestApp,
    bucket: BucketSize,
    group_by: &str,
) -> BTreeMap<(DateTime<Utc>, String), Value> {
    let sql = "SELECT p.name AS project, t.team, t.source, a.status, a.decision, a.channel,
            a.requested_at, a.decided_at
        FROM approvals a JOIN tasks t ON t.id = a.task_id JOIN projects p ON p.id = t.project_id";
    let approvals: Vec<RawApproval> =
        on_pool!(app, pool => sqlx::query_as(sql).fetch_all(pool).await.unwrap());
    let mut groups: BTreeMap<(DateTime<Utc>, String), Vec<&RawApproval>> = BTreeMap::new();
    for approval in &approvals {
        let group = group_of(
            group_by,
            &approval.project,
            &approval.team,
            &approval.source,
        );
        groups
            .entry((
                bucket_start(approval.requested_at, bucket),
                group.to_owned(),
            ))
            .or_default()
            .push(approval);
    }
    let person = |a: &RawApproval| {
        a.status == "decided"
            && a.channel
                .as_deref()
                .is_some_and(|c| c != "system" && c != "pipeline")
    };
    let figures = |approvals: &[&RawApproval]| {
        let decided = |decision: Option<&str>| {
            approvals
                .iter()
                .filter(|a| person(a) && a.decision.is_some())
                .filter(|a| decision.is_none() || a.decision.as_deref() == decision)
                .count()
        };
        let waits: Vec<i64> = approvals
            .iter()
            .filter(|a| person(a))
            .filter_map(|a| {
                a.decided_at
                    .map(|d| (d - a.requested_at).num_milliseconds())
            })
            .collect();
        json!({
            "requested": approvals.len(),
            "decided": decided(None), "approved": decided(Some("approve")),
            "rejected": decided(Some("reject")), "revised": decided(Some("revise")),
            "expired": approvals.iter()
                .filter(|a| a.status == "expired" || a.channel.as_deref() == Some("system"))
                .count(),
            "pending": approvals.iter().filter(|a| a.status == "pending").count(),
            "decision_p50_ms": nearest_rank(&waits, 50),
            "decision_p90_ms": nearest_rank(&waits, 90),
        })
    };
    groups
        .into_iter()
        .map(|(key, approvals)| (key, figures(&approvals)))
        .collect()
}

/// `answer`'s rows keyed like [`tasks_from_rows`], each cut to the fields of `expected`'s rows.
fn answered(answer: &Value, fields: &[&str]) -> BTreeMap<(DateTime<Utc>, String), Value> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = (
                at(r["bucket_start"].as_str().unwrap()),
                r["group"].as_str().unwrap().to_owned(),
            );
            let cut: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| ((*f).to_owned(), r[*f].clone()))
                .collect();
            (key, Value::Object(cut))
        })
        .collect()
}

/// Every answer of the rollups equals the one worked out from the raw rows: counts, tokens,
/// percentiles exactly (every duration below is a bound of the histogram, 30 s, 45 s, 2 min,
/// …, which it keeps exactly), cost to a millionth of a dollar.
async fn assert_rollups_match_rows(app: &TestApp) {
    const RANGE: &str = "from=2026-03-01&to=2026-04-01";
    for (bucket, size, group_by) in [
        ("day", BucketSize::Day, "project"),
        ("week", BucketSize::Week, "team"),
        ("month", BucketSize::Month, "source"),
    ] {
        let mut expected = tasks_from_rows(app, size, group_by).await;
        let answer = app
            .get_json(&format!(
                "/api/v1/analytics/tasks?{RANGE}&bucket={bucket}&group_by={group_by}"
            ))
            .await;
        let mut got = answered(
            &answer,
            &[
                "tasks",
                "started",
                "done",
                "failed",
                "cancelled",
                "rolled_back",
                "duration_p50_ms",
                "duration_p90_ms",
                "tokens",
                "cost_usd",
            ],
        );
        for (key, row) in expected.iter_mut().chain(got.iter_mut()) {
            let cost = row["cost_usd"]
                .as_f64()
                .unwrap_or_else(|| panic!("{key:?}"));
            row["cost_usd"] = json!((cost * 1e6).round() / 1e6);
        }
        assert_eq!(got, expected, "tasks by {bucket} and {group_by}");
        let expected = approvals_from_rows(app, size, group_by).await;
        let answer = app
            .get_json(&format!(
                "/api/v1/analytics/approvals?{RANGE}&bucket={bucket}&group_by={group_by}"
            ))
            .await;
        let got = answered(
            &answer,
            &[
                "requested",
                "decided",
                "approved",
                "rejected",
                "revised",
                "expired",
                "pending",
                "decision_p50_ms",
                "decision_p90_ms",
            ],
        );
        assert_eq!(got, expected, "approvals by {bucket} and {group_by}");
    }
}

/// Sets task `id`'s status (and start or completion) as the engine's status writes do.
async fn set_status(
    app: &TestApp,
    id: i64,
    status: &str,
    started: Option<DateTime<Utc>>,
    completed: Option<DateTime<Utc>>,
) {
    let sql = "UPDATE tasks SET status = $2, started_at = COALESCE($3, started_at),
        completed_at = $4, updated_at = $5 WHERE id = $1";
    on_pool!(app, pool => sqlx::query(sql)
        .bind(id)
        .bind(status)
        .bind(started)
        .bind(completed)
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
}

/// Writes `sql` with `id`, expecting it to work.
async fn write(app: &TestApp, sql: &'static str, id: i64) {
    on_pool!(app, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()).unwrap());
}

/// The rollups the triggers keep agree with the raw rows after a mixed history of writes:
/// tasks created, started, finished, reopened and finished again, runs opened, spending,
/// finished, approvals filed, decided by people, by the deadline and by the pipeline, and
/// decided again. Writes the rollups cannot follow are refused.
async fn rollups_agree_with_the_rows_after_mixed_writes(db: Db) {
    use aiops::model::{RunEnd, RunKind, RunStatus, RunTotals};
    let app = TestApp::spawn(db).await;
    let projects = [
        create_project(&app, "shop").await,
        create_project(&app, "blog").await,
    ];
    let teams = ["bugfix", "feature", "security"];
    let sources = ["api", "github", "cron"];
    let minute = Duration::minutes(1);
    let mut ids = Vec::new();
    for i in 0..30_usize {
        // Every 7 hours from Monday 2 March 2026: across days, an ISO week and a month.
        let created = at("2026-03-02T03:00:00Z") + Duration::hours(7 * i as i64);
        let sql = "INSERT INTO tasks (project_id, team, prompt, source, priority, status,
                created_at) VALUES ($1, $2, 'mixed', $3, 'normal', 'queued', $4) RETURNING id";
        let id: i64 = on_pool!(app, pool => sqlx::query_scalar(sql)
            .bind(projects[i % 2])
            .bind(teams[i % 3])
            .bind(sources[i / 3 % 3])
            .bind(created)
            .fetch_one(pool)
            .await
            .unwrap());
        ids.push((id, created));
    }
    assert_rollups_match_rows(&app).await;
    for (i, &(id, created)) in ids.iter().enumerate() {
        if i % 6 == 0 {
            continue; // stays queued
        }
        set_status(
            &app,
            id,
            "running",
            Some(created + Duration::seconds(1)),
            None,
        )
        .await;
        let run = app
            .store
            .insert_run(id, RunKind::Start, "test")
            .await
            .unwrap();
        app.store
            .set_run_spent(run, 0.01 * i as f64, 2)
            .await
            .unwrap();
        let totals = RunTotals {
            input_tokens: 100 * i as i64,
            output_tokens: 10 * i as i64,
            cache_read_tokens: 1000 * (i as i64 % 4),
            cache_creation_tokens: 50 * (i as i64 % 3),
            cost_usd: 0.02 * i as f64,
            ..RunTotals::default()
        };
        let end = RunEnd {
            status: RunStatus::Succeeded,
            exit_code: Some(0),
            totals,
            error: None,
            log: "output".into(),
        };
        app.store.finish_run(run, &end).await.unwrap();
        let took = Duration::seconds([30, 45, 60, 90, 120, 180, 300, 600, 900, 1200][i % 10]);
        let status = ["done", "done", "failed", "cancelled", "rolled_back", "done"][i % 6];
        set_status(&app, id, status, None, Some(created + took)).await;
    }
    // Reopened and resumed: the old outcome and duration leave, the new ones count.
    for &(id, created) in ids.iter().skip(1).step_by(6) {
        set_status(&app, id, "running", None, None).await;
        let run = app
            .store
            .insert_run(id, RunKind::Resume, "test")
            .await
            .unwrap();
        app.store.set_run_spent(run, 0.5, 1).await.unwrap();
        set_status(&app, id, "done", None, Some(created + minute * 40)).await;
    }
    assert_rollups_match_rows(&app).await;
    for (n, &(id, created)) in ids.iter().enumerate().filter(|(i, _)| i % 6 != 0) {
        let requested = created + minute * 2;
        let sql = "INSERT INTO approvals (task_id, request_id, kind, status, requested_at)
                   VALUES ($1, $2, 'result', 'pending', $3)";
        on_pool!(app, pool => sqlx::query(sql)
            .bind(id)
            .bind(format!("mixed-{n}"))
            .bind(requested)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
        let (status, decision, channel) = [
            ("decided", "approve", "api"),
            ("decided", "reject", "web"),
            ("decided", "revise", "slack"),
            ("decided", "reject", "system"),
            ("decided", "approve", "pipeline"),
            ("expired", "reject", "system"),
            ("pending", "", ""),
        ][n % 7];
        if status == "pending" {
            continue;
        }
        let sql = "UPDATE approvals SET status = $2, decision = $3, channel = $4, decided_at = $5
                   WHERE task_id = $1";
        on_pool!(app, pool => sqlx::query(sql)
            .bind(id)
            .bind(status)
            .bind(decision)
            .bind(channel)
            .bind(requested + Duration::seconds(30 * (1 + n as i64 % 5)))
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }
    // A decision changed by hand: its old share and wait leave.
    write(
        &app,
        "UPDATE approvals SET decision = 'revise', decided_at = requested_at
        WHERE task_id = $1",
        ids[1].0,
    )
    .await;
    assert_rollups_match_rows(&app).await;
    for refused in [
        "DELETE FROM tasks WHERE id = $1",
        "UPDATE tasks SET team = 'other' WHERE id = $1",
        "DELETE FROM runs WHERE task_id = $1",
        "DELETE FROM approvals WHERE task_id = $1",
    ] {
        let result = on_pool!(app, pool => sqlx::query(refused).bind(ids[1].0).execute(pool).await.map(|_| ()));
        assert!(result.is_err(), "{refused} was not refused");
    }
    assert_rollups_match_rows(&app).await;
}

on_both_databases!(
    tasks_per_day_and_project,
    tasks_per_week_and_team_and_per_month_and_source,
    approval_figures,
    most_expensive_tasks,
    a_viewer_reads_only_the_projects_asked_for,
    bad_requests_name_the_field,
    rollups_agree_with_the_rows_after_mixed_writes,
);

/// The calls that stand for the API at work: an analytics answer, a task list, and a write
/// (a project registered); `n` makes the project's name unique.
async fn api_call(app: &TestApp, n: usize) -> std::time::Duration {
    let started = std::time::Instant::now();
    match n % 3 {
        0 => {
            app.get_json("/api/v1/analytics/tasks?from=2026-02-01&to=2026-05-01&group_by=team")
                .await;
        }
        1 => {
            app.get_json("/api/v1/tasks?limit=20").await;
        }
        _ => {
            let name = format!("probe-{n}");
            let response = app
                .post("/api/v1/projects")
                .json(&json!({"name": name, "repo_url": format!("https://example.com/{name}.git")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
        }
    }
    started.elapsed()
}

/// Measures each analytics query on the scale history over February–April (~65k tasks,
/// 130k runs, 16k approvals): p50/p95 of 40 calls over HTTP. Then prunes its 1M old events
/// (retention's defaults: batches of 500, 10 ms apart) while the API is called without a
/// pause, and compares the API's latency during the pruning with the same calls just before
/// it. Run with `cargo test --test analytics scale -- --ignored --nocapture --test-threads 1`.
async fn analytics_at_scale(db: Db) {
    let app = TestApp::spawn(db).await;
    let seeding = std::time::Instant::now();
    seed_at_scale(&app, db, 1).await;
    println!("{db:?} seeded in {:?}", seeding.elapsed());
    let range = "from=2026-02-01&to=2026-05-01";
    for path in [
        format!("/api/v1/analytics/tasks?{range}&bucket=day&group_by=team"),
        format!("/api/v1/analytics/tasks?{range}&bucket=week&group_by=project"),
        format!("/api/v1/analytics/tasks?{range}&bucket=month&group_by=source"),
        format!("/api/v1/analytics/approvals?{range}&bucket=day"),
        format!("/api/v1/analytics/expensive-tasks?{range}&limit=10"),
    ] {
        let mut took = Vec::new();
        for _ in 0..40 {
            let started = std::time::Instant::now();
            app.get_json(&path).await;
            took.push(started.elapsed());
        }
        let (p50, p95) = p50_p95(&mut took);
        println!("{db:?} {path}: p50 {p50:?} p95 {p95:?}");
    }
    let mut before = Vec::new();
    for n in 0..60 {
        before.push(api_call(&app, n).await);
    }
    let config = aiops::config::RetentionConfig {
        events_days: 30,
        ..aiops::config::RetentionConfig::default()
    };
    let store = app.store.clone();
    let pruning = std::time::Instant::now();
    let prune = tokio::spawn(async move {
        aiops::retention::prune_once(&store, &config, at("2026-06-01T00:00:00Z")).await
    });
    let mut during = Vec::new();
    while !prune.is_finished() {
        during.push(api_call(&app, 1000 + during.len()).await);
    }
    let pruned = prune.await.unwrap().unwrap();
    let took = pruning.elapsed();
    assert_eq!(pruned.events, 1_000_000);
    let (before50, before95) = p50_p95(&mut before);
    let (during50, during95) = p50_p95(&mut during);
    println!(
        "{db:?} pruned {} events in {took:?}; API before p50 {before50:?} p95 {before95:?}, \
         during ({} calls) p50 {during50:?} p95 {during95:?}: ratio p50 {:.2} p95 {:.2}",
        pruned.events,
        during.len(),
        during50.as_secs_f64() / before50.as_secs_f64(),
        during95.as_secs_f64() / before95.as_secs_f64(),
    );
}

mod scale {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    async fn sqlite() {
        super::analytics_at_scale(super::Db::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    async fn postgres() {
        super::analytics_at_scale(super::Db::Postgres).await
    }
}
