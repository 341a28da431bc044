//! Bounded intake: what clients without a token can make the service store, connections
//! that never finish their headers, too many event streams, webhook floods. Real HTTP on
//! loopback, on SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Db, TestApp, wait_for};
use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes the database takes now: PostgreSQL's size of the database, SQLite's file and WAL.
async fn database_bytes(app: &TestApp) -> u64 {
    match app.store.pool() {
        aiops::store::Pool::Postgres(pool) => {
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await
                .unwrap();
            size as u64
        }
        aiops::store::Pool::Sqlite(_) => ["aiops.db", "aiops.db-wal"]
            .iter()
            .map(|name| std::fs::metadata(app.db.data_dir().join(name)).map_or(0, |m| m.len()))
            .sum(),
    }
}

async fn audit_rows(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM audit_log";
    match app.store.pool() {
        aiops::store::Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        aiops::store::Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

async fn unauthenticated_floods_store_little(db: Db) {
    let app = TestApp::spawn(db).await;
    let before = database_bytes(&app).await;
    let rows_before = audit_rows(&app).await;
    let long_path = format!("/api/v1/projects/{}", "a".repeat(60 * 1024));
    let url = app.url(&long_path);
    let client = reqwest::Client::new();
    let requests = futures::stream::iter(0..1000).map(|_| {
        let request = client.patch(&url).body("{}");
        async move { request.send().await.unwrap().status() }
    });
    let statuses: Vec<StatusCode> = requests.buffer_unordered(8).collect().await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{:?}",
        statuses.first()
    );
    let after = database_bytes(&app).await;
    let grown = after.saturating_sub(before);
    println!("1,000 unauthenticated 60 KB requests: database +{grown} bytes");
    assert!(grown < 1024 * 1024, "the database grew by {grown} bytes");
    let written = audit_rows(&app).await - rows_before;
    assert!(
        (1..=20).contains(&written),
        "{written} audit rows for 1,000 refusals from one client"
    );
}

async fn slow_headers_are_cut(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.intake.header_read_timeout_secs = 1).await;
    let address = app.base.trim_start_matches("http://").to_string();
    for opening in [&b"GET /healthz HTTP/1.1\r\nHost: x\r\n"[..], &b""[..]] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(opening).await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let waited = started.elapsed();
        assert!(
            read.is_ok(),
            "a client that sent {opening:?} was not cut in 10 s"
        );
        println!(
            "slow header client ({} bytes sent) cut after {waited:?}",
            opening.len()
        );
        assert!(waited < Duration::from_secs(4), "cut after {waited:?}");
    }
    let healthy = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
}

async fn event_streams_are_capped(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.intake.max_sse_streams = 3;
        c.intake.max_sse_streams_per_token = 2;
    })
    .await;
    let open = |token: String| {
        let request = app
            .client
            .get(app.url("/api/v1/events/stream"))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let first = open(app.token.clone()).await;
    let second = open(app.token.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open(app.token.clone()).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    let (other, _) = aiops::auth::create_token(&app.store, "watcher", aiops::auth::Role::Viewer)
        .await
        .unwrap();
    let fourth = open(other.clone()).await;
    assert_eq!(
        fourth.status(),
        StatusCode::OK,
        "another token has its own share"
    );
    let fifth = open(other).await;
    assert_eq!(
        fifth.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the total cap"
    );
    assert!(fifth.headers().contains_key("retry-after"));
    drop((first, second, fourth));
}

async fn webhook_floods_are_rate_limited(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.intake.webhook_per_second = 1;
        c.intake.webhook_burst = 3;
    })
    .await;
    let send = || {
        let request = app
            .client
            .post(app.url("/webhooks/github"))
            .header("x-github-event", "ping")
            .body("{}");
        async move { request.send().await.unwrap() }
    };
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(send().await);
    }
    assert!(
        answers[..3]
            .iter()
            .all(|a| a.status() != StatusCode::TOO_MANY_REQUESTS)
    );
    let limited = &answers[3];
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    wait_for(
        "the rate to allow a request again",
        Duration::from_secs(5),
        || async { (send().await.status() != StatusCode::TOO_MANY_REQUESTS).then_some(()) },
    )
    .await;
}

on_both_databases!(
    unauthenticated_floods_store_little,
    slow_headers_are_cut,
    event_streams_are_capped,
    webhook_floods_are_rate_limited,
);
