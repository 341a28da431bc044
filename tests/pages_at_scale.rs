//! Every dashboard page's server time with 100k tasks, 200k runs, 1M events and 50 projects
//! seeded: p50/p95 of 30 requests each, signed in as the admin (who sees every project), over
//! HTTP on loopback. A measurement for BENCHMARKS.md, not a timed test: run with
//! `cargo test --test pages_at_scale -- --ignored --nocapture --test-threads 1`.

mod common;

use common::people::session_of;
use common::scale::{p50_p95, seed_at_scale};
use common::{Db, TestApp};
use reqwest::StatusCode;

/// Requests per page.
const SAMPLES: usize = 30;

async fn pages_at_scale(db: Db) {
    let app = TestApp::spawn(db).await;
    let seeding = std::time::Instant::now();
    let first = seed_at_scale(&app, db, 50).await;
    println!("{db:?} seeded in {:?}", seeding.elapsed());
    let session = session_of(&app, aiops::users::BOOTSTRAP_ADMIN).await;
    let task = app.get_json("/api/v1/tasks?limit=1").await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let project = app.store.project("p07").await.unwrap();
    assert_eq!(project.id, first + 7);
    let pages = [
        "/".to_string(),
        "/tasks".into(),
        "/tasks?status=failed&project=p07".into(),
        format!("/tasks/{task}"),
        "/inbox".into(),
        "/projects".into(),
        "/projects/p07".into(),
        "/analytics".into(),
        "/analytics?group_by=team&bucket=week".into(),
        "/schedules".into(),
        "/deliveries".into(),
        "/notifications".into(),
        "/audit".into(),
        "/users".into(),
        "/teams".into(),
        "/account".into(),
    ];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    println!("| store | page | p50 ms | p95 ms |\n|---|---|---|---|");
    for path in pages {
        let mut took = Vec::new();
        for _ in 0..SAMPLES {
            let started = std::time::Instant::now();
            let response = client
                .get(app.url(&path))
                .header("cookie", format!("{}={session}", aiops::sessions::COOKIE))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            took.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (p50, p95) = p50_p95(&mut took);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        println!("| {db:?} | `{path}` | {:.1} | {:.1} |", ms(p50), ms(p95));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn sqlite() {
    pages_at_scale(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn postgres() {
    pages_at_scale(Db::Postgres).await
}
