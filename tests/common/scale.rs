//! The history benchmarks measure against: 100k tasks (one every 77 s from 2026-01-01, ~89
//! days) spread over `projects` projects, two runs each (200k), an approval for one task in
//! four, and 1M events in the same months (one every 7 s), all of them old enough for
//! retention to prune. Written straight into the store with SQL, so seeding takes seconds.

use aiops::store::Pool;
use reqwest::StatusCode;
use serde_json::json;

use super::{Db, TestApp};

/// Registers project `name` (a remote repository, never cloned) through the API; its id.
pub async fn create_project(app: &TestApp, name: &str) -> i64 {
    let body = json!({"name": name, "repo_url": format!("https://example.com/{name}.git")});
    let response = app
        .post("/api/v1/projects")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    app.store.project(name).await.unwrap().id
}

/// Registers `count` projects named `p00`, `p01`, … (consecutive ids on a fresh store); the
/// first one's id.
async fn create_projects(app: &TestApp, count: usize) -> i64 {
    let mut first = None;
    for n in 0..count {
        let id = create_project(app, &format!("p{n:02}")).await;
        assert_eq!(
            id,
            first.unwrap_or(id) + n as i64,
            "consecutive project ids"
        );
        first.get_or_insert(id);
    }
    first.expect("at least one project")
}

/// Seeds the scale history over `projects` new projects (task `n` and event `n` belong to
/// project `n % projects`); the first project's id.
pub async fn seed_at_scale(app: &TestApp, db: Db, projects: usize) -> i64 {
    let first = create_projects(app, projects).await;
    let sqlite = [
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 100000)
         INSERT INTO tasks (project_id, team, prompt, source, priority, status, created_at, started_at, completed_at)
         SELECT $1 + n % $2, CASE n % 3 WHEN 0 THEN 'bugfix' WHEN 1 THEN 'feature' ELSE 'security' END, 'p',
            CASE n % 2 WHEN 0 THEN 'api' ELSE 'github' END, 'normal',
            CASE n % 5 WHEN 0 THEN 'failed' ELSE 'done' END,
            strftime('%Y-%m-%dT%H:%M:%S+00:00', '2026-01-01', '+' || (n * 77) || ' seconds'),
            strftime('%Y-%m-%dT%H:%M:%S+00:00', '2026-01-01', '+' || (n * 77 + 5) || ' seconds'),
            strftime('%Y-%m-%dT%H:%M:%S+00:00', '2026-01-01', '+' || (n * 77 + 60 + n % 600) || ' seconds')
         FROM seq",
        "INSERT INTO runs (task_id, kind, status, input_tokens, output_tokens, cost_usd, started_at, finished_at)
         SELECT id, 'start', 'succeeded', 1000, 100, 0.01 * (id % 50), created_at, completed_at FROM tasks
         WHERE project_id >= $1 AND project_id < $1 + $2
         UNION ALL
         SELECT id, 'resume', 'succeeded', 500, 50, 0.02, created_at, completed_at FROM tasks
         WHERE project_id >= $1 AND project_id < $1 + $2",
        "INSERT INTO approvals (task_id, request_id, kind, status, decision, channel, decided_at, requested_at)
         SELECT id, 'r', 'result', 'decided', 'approve', 'api', completed_at, started_at FROM tasks
         WHERE id % 4 = 0 AND project_id >= $1 AND project_id < $1 + $2",
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 1000000)
         INSERT INTO events (project_id, kind, origin, ts, data, created_at)
         SELECT $1 + n % $2, 'status_changed', 'platform', stored, '{\"status\":\"running\"}', stored
         FROM (SELECT n, strftime('%Y-%m-%dT%H:%M:%S+00:00', '2026-01-01', '+' || (n * 7) || ' seconds')
               AS stored FROM seq)",
    ];
    let postgres = [
        "INSERT INTO tasks (project_id, team, prompt, source, priority, status, created_at, started_at, completed_at)
         SELECT $1 + n % $2, CASE n % 3 WHEN 0 THEN 'bugfix' WHEN 1 THEN 'feature' ELSE 'security' END, 'p',
            CASE n % 2 WHEN 0 THEN 'api' ELSE 'github' END, 'normal',
            CASE n % 5 WHEN 0 THEN 'failed' ELSE 'done' END,
            TIMESTAMPTZ '2026-01-01 00:00:00+00' + n * 77 * INTERVAL '1 second',
            TIMESTAMPTZ '2026-01-01 00:00:00+00' + (n * 77 + 5) * INTERVAL '1 second',
            TIMESTAMPTZ '2026-01-01 00:00:00+00' + (n * 77 + 60 + n % 600) * INTERVAL '1 second'
         FROM generate_series(1, 100000) AS n",
        sqlite[1],
        sqlite[2],
        "INSERT INTO events (project_id, kind, origin, ts, data, created_at)
         SELECT $1 + n % $2, 'status_changed', 'platform', stored, '{\"status\":\"running\"}', stored
         FROM (SELECT n, TIMESTAMPTZ '2026-01-01 00:00:00+00' + n * 7 * INTERVAL '1 second' AS stored
               FROM generate_series(1, 1000000) AS n) AS s",
    ];
    let statements = if db == Db::Sqlite { sqlite } else { postgres };
    let count = projects as i64;
    for sql in statements {
        match app.store.pool() {
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(first)
                .bind(count)
                .execute(pool)
                .await
                .map(|_| ()),
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(first)
                .bind(count)
                .execute(pool)
                .await
                .map(|_| ()),
        }
        .unwrap();
    }
    // What autovacuum and autoanalyze do after a bulk load on PostgreSQL (the triggers
    // updated each rollup row many times in one statement).
    let analyze = if db == Db::Sqlite {
        "ANALYZE"
    } else {
        "VACUUM ANALYZE"
    };
    match app.store.pool() {
        Pool::Sqlite(pool) => sqlx::query(analyze).execute(pool).await.map(|_| ()),
        Pool::Postgres(pool) => sqlx::query(analyze).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    first
}

/// The 50th and 95th percentiles of `took`, sorted in place.
pub fn p50_p95(took: &mut [std::time::Duration]) -> (std::time::Duration, std::time::Duration) {
    took.sort();
    let at = |p: usize| took[(took.len() * p).div_ceil(100).max(1) - 1];
    (at(50), at(95))
}
