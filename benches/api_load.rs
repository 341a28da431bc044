//! Load benchmark against the real application on loopback, on SQLite and PostgreSQL:
//! `POST /api/v1/tasks` and `GET /api/v1/tasks/{id}` at `BENCH_CONCURRENCY`, signed GitHub
//! deliveries (verified, deduped, stored, enqueued) at `BENCH_WEBHOOK_CONCURRENCY`, and the
//! wall time of an alert storm (10,000 alerts over 50 fingerprints) — each with group commit
//! on (the defaults) and off (`intake.group_commit_max = 1`), on a fresh store each time. In
//! the same run, per database, the one-row commit floor: `BENCH_FLOOR_COMMITS` transactions
//! of one INSERT each, one after the other (SQLite: a file in the same directory, WAL,
//! `synchronous = FULL`, so one fsync each), measured before the phases and again after
//! them, and deliveries/s as a multiple of each and of their mean (a disk's commit rate
//! drifts within minutes on a shared machine; the two readings bracket the phases).
//!
//! Run: `cargo bench --bench api_load` (release profile). Environment:
//! `BENCH_CONCURRENCY` (32), `BENCH_WEBHOOK_CONCURRENCY` (64), `BENCH_REQUESTS` (4000 per phase),
//! `BENCH_FLOOR_COMMITS` (2000), `AIOPS_TEST_DATABASE_URL`
//! (postgres://postgres@127.0.0.1:5432/test; scratch databases are created and dropped),
//! `BENCH_BACKENDS` (sqlite,postgres), `BENCH_GROUP_COMMIT` (on,off), `BENCH_SQLITE_CHECKPOINT_MS`
//! (250, the default; 0: SQLite's own checkpoint in the committing connection), `BENCH_PHASES`
//! (tasks,deliveries,storm), `BENCH_CEILING` (0; 1
//! first measures the same signed deliveries against a route that only verifies the HMAC and
//! answers 202, without a store: what this machine and its client can do at most),
//! `BENCH_BODIES_IN_LOOP` (0: the deliveries' bodies are made before the clock starts; 1:
//! each as it is sent).

mod common;
use common::env_or;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiops::config::Config;
use axum::http::StatusCode;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    wall: Duration,
    errors: usize,
}

impl Phase {
    /// Prints the phase's row; its requests per second.
    fn report(&mut self, backend: &str, grouped: &str, concurrency: usize) -> f64 {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.latencies[i.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
        };
        let rate = self.latencies.len() as f64 / self.wall.as_secs_f64();
        println!(
            "| {backend} | {grouped} | {} | {concurrency} | {} | {rate:.0} | {:.2} | {:.2} | {} |",
            self.name,
            self.latencies.len(),
            pct(0.50),
            pct(0.99),
            self.errors
        );
        rate
    }
}

async fn run_phase<F, Fut>(
    name: &'static str,
    requests: usize,
    concurrency: usize,
    make: F,
) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let make = make.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let t = Instant::now();
                if make(i).await {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut phase = Phase {
        name,
        latencies: Vec::new(),
        wall: Duration::ZERO,
        errors: 0,
    };
    for worker in workers {
        let (latencies, errors) = worker.await.unwrap();
        phase.latencies.extend(latencies);
        phase.errors += errors;
    }
    phase.wall = started.elapsed();
    phase
}

const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const ALERT_TOKEN: &str = "bench-alert-token";

/// One-row commits per second on `url`: `commits` transactions of one INSERT each, one
/// after the other on one connection; a SQLite file is opened as aiops opens its store (WAL,
/// `synchronous = FULL`), so each commit is one fsync.
async fn commit_floor(url: &str, commits: usize) -> f64 {
    const CREATE: &str = "CREATE TABLE floor (id BIGINT PRIMARY KEY, note TEXT NOT NULL)";
    const INSERT: &str = "INSERT INTO floor (id, note) VALUES ($1, 'one row')";
    let started;
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query(CREATE).execute(&pool).await.unwrap();
        started = Instant::now();
        for i in 0..commits {
            let mut tx = pool.begin().await.unwrap();
            let insert = sqlx::query(INSERT).bind(i as i64);
            insert.execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(CREATE).execute(&pool).await.unwrap();
        started = Instant::now();
        for i in 0..commits {
            let mut tx = pool.begin().await.unwrap();
            let insert = sqlx::query(INSERT).bind(i as i64);
            insert.execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
    commits as f64 / started.elapsed().as_secs_f64()
}

/// Signed `issues.opened` deliveries to `{base}/webhooks/github`, each a new delivery id and
/// issue number, at `concurrency`; a request counts when it is answered 202. The bodies and
/// their signatures are made before the clock starts, as a load generator's own work is not
/// the service's (on two shared cores it would take CPU from it); `BENCH_BODIES_IN_LOOP=1`
/// makes each one as its request is sent instead, as before stop 27.
async fn delivery_phase(
    client: reqwest::Client,
    base: String,
    requests: usize,
    concurrency: usize,
) -> Phase {
    let template: serde_json::Value = common::fixture_json("github/issues.opened.json");
    let signed = move |i: usize| {
        let mut payload = template.clone();
        payload["repository"]["full_name"] = serde_json::json!("acme/bench");
        payload["issue"]["number"] = serde_json::json!(i + 1);
        let body = axum::body::Bytes::from(serde_json::to_vec(&payload).unwrap());
        let signature = aiops::signing::sign_sha256(WEBHOOK_SECRET.as_bytes(), &body);
        (body, signature)
    };
    let in_loop = env_or("BENCH_BODIES_IN_LOOP", 0) == 1;
    let made: Arc<Vec<(axum::body::Bytes, String)>> = Arc::new(if in_loop {
        Vec::new()
    } else {
        (0..requests).map(&signed).collect()
    });
    let url = format!("{base}/webhooks/github");
    run_phase("POST /webhooks/github", requests, concurrency, move |i| {
        let (body, signature) = match made.get(i) {
            Some(made) => made.clone(),
            None => signed(i),
        };
        let request = client
            .post(&url)
            .header("X-GitHub-Event", "issues")
            .header("X-GitHub-Delivery", format!("bench-{i}"))
            .header("X-Hub-Signature-256", signature)
            .body(body);
        async move { request.send().await.is_ok_and(|r| r.status() == 202) }
    })
    .await
}

/// The most this machine and its client can do: the same signed deliveries against a
/// minimal route that only reads the body, verifies the signature and answers 202 — no
/// store, no routing. Prints its row; its requests per second.
async fn hmac_ceiling(requests: usize, concurrency: usize) -> f64 {
    async fn verify_only(headers: axum::http::HeaderMap, body: axum::body::Bytes) -> StatusCode {
        let signature = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if aiops::signing::verify_sha256_signature(WEBHOOK_SECRET.as_bytes(), &body, signature) {
            StatusCode::ACCEPTED
        } else {
            StatusCode::UNAUTHORIZED
        }
    }
    let router = axum::Router::new().route("/webhooks/github", axum::routing::post(verify_only));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let mut phase = delivery_phase(client, base, requests, concurrency).await;
    phase.name = "POST /webhooks/github (HMAC only, no store)";
    phase.report("none", "-", concurrency)
}

/// What the phases are run with, from the environment.
struct Load {
    concurrency: usize,
    webhook_concurrency: usize,
    requests: usize,
    /// The phases to run, of `tasks` (POST and GET), `deliveries` and `storm`.
    phases: String,
}

impl Load {
    fn runs(&self, phase: &str) -> bool {
        self.phases.split(',').any(|p| p == phase)
    }
}

/// A fresh application on `database_url` with the bench's project and credentials, serving on
/// loopback: a client, its base URL and the admin token.
async fn start_app(
    database_url: String,
    data_dir: &std::path::Path,
    load: &Load,
    group_commit: bool,
) -> (reqwest::Client, String, String) {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        database_url,
        ..Default::default()
    };
    if !group_commit {
        config.intake.group_commit_max = 1;
    }
    // One client address sends everything here.
    config.intake.webhook_per_second = 1_000_000;
    config.intake.webhook_burst = 1_000_000;
    config.store.max_connections = 16;
    config.store.sqlite_checkpoint_ms = env_or("BENCH_SQLITE_CHECKPOINT_MS", 250);
    config.engine.workers = 0;
    config.github.on_issue_opened = true;
    config.github.reply = false;
    config.alerts.rules = vec![aiops::config::AlertRule {
        source: String::new(),
        matchers: [("service".to_string(), "shopping-md".to_string())].into(),
        project: "bench".into(),
        team: None,
        priority: None,
    }];
    let started = aiops::server::start(config).await.expect("start");
    let token = started.admin_token.clone().expect("token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(aiops::http::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.concurrency.max(load.webhook_concurrency))
        .build()
        .unwrap();
    let created = client
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "bench", "repo_url": "https://github.com/acme/bench.git", "github_repo": "acme/bench"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    for (project, name, kind, value) in [
        (
            Some("bench"),
            "github-webhook",
            "webhook_secret",
            WEBHOOK_SECRET,
        ),
        (None, "alertmanager-webhook", "token", ALERT_TOKEN),
    ] {
        let created = client
            .post(format!("{base}/api/v1/credentials"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"project": project, "name": name, "kind": kind, "value": value}))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success());
    }
    (client, base, token)
}

/// The phases against a fresh application on `database_url`, with group commit on or off;
/// the signed deliveries' requests per second, when they ran.
async fn bench_backend(
    backend: &str,
    database_url: String,
    data_dir: &std::path::Path,
    load: &Load,
    group_commit: bool,
) -> Option<f64> {
    let grouped = if group_commit { "on" } else { "off" };
    let (client, base, token) = start_app(database_url, data_dir, load, group_commit).await;
    if load.runs("tasks") {
        task_phases(&client, &base, &token, load, (backend, grouped)).await;
    }
    let delivered = if load.runs("deliveries") {
        let concurrency = load.webhook_concurrency;
        let mut deliveries =
            delivery_phase(client.clone(), base.clone(), load.requests, concurrency).await;
        Some(deliveries.report(backend, grouped, concurrency))
    } else {
        None
    };
    if load.runs("storm") {
        let storm = storm_phase(&client, &base).await;
        println!(
            "| {backend} | {grouped} | alert storm: 10,000 alerts / 50 fingerprints | 16 | 200 requests | wall {:.2} s | | | {} |",
            storm.wall.as_secs_f64(),
            storm.errors
        );
    }
    delivered
}

/// `POST /api/v1/tasks`, then `GET /api/v1/tasks/{id}`, each printed as a row of `row`
/// (store, group commit).
async fn task_phases(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    load: &Load,
    row: (&str, &str),
) {
    let (requests, concurrency) = (load.requests, load.concurrency);
    let (c, b, t) = (client.clone(), base.to_string(), token.to_string());
    let mut post = run_phase("POST /api/v1/tasks", requests, concurrency, move |i| {
        let (c, b, t) = (c.clone(), b.clone(), t.clone());
        async move {
            c.post(format!("{b}/api/v1/tasks"))
                .bearer_auth(&t)
                .json(&serde_json::json!({"project": "bench", "prompt": format!("task {i}"), "priority": "normal"}))
                .send()
                .await
                .is_ok_and(|r| r.status() == 201)
        }
    })
    .await;
    post.report(row.0, row.1, concurrency);
    let (c, b, t) = (client.clone(), base.to_string(), token.to_string());
    let mut get = run_phase("GET /api/v1/tasks/{id}", requests, concurrency, move |i| {
        let (c, b, t) = (c.clone(), b.clone(), t.clone());
        async move {
            c.get(format!("{b}/api/v1/tasks/{}", i % requests + 1))
                .bearer_auth(&t)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    get.report(row.0, row.1, concurrency);
}

/// Alert storm: 10,000 alerts over 50 fingerprints, 200 notifications of 50, 16 at a time.
async fn storm_phase(client: &reqwest::Client, base: &str) -> Phase {
    let alert_template: serde_json::Value = common::fixture_json("alertmanager/firing.json");
    let (c, b) = (client.clone(), base.to_string());
    run_phase("alert storm (200 x 50 alerts)", 200, 16, move |batch| {
        let (c, b) = (c.clone(), b.clone());
        let mut body = alert_template.clone();
        let one = alert_template["alerts"][0].clone();
        body["alerts"] = serde_json::json!(
            (0..50)
                .map(|i| {
                    let mut alert = one.clone();
                    alert["fingerprint"] =
                        serde_json::json!(format!("fp-{}", (batch * 50 + i) % 50));
                    alert
                })
                .collect::<Vec<_>>()
        );
        async move {
            c.post(format!("{b}/webhooks/alertmanager"))
                .bearer_auth(ALERT_TOKEN)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status() == 202)
        }
    })
    .await
}

/// One-row commits per second of `backend` (sqlite or postgres) and its display name.
async fn floor_of(backend: &str, admin_url: &str, commits: usize) -> (&'static str, f64) {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("floor.db").display()
            );
            ("SQLite", commit_floor(&url, commits).await)
        }
        "postgres" => {
            let scratch = format!("aiops_bench_floor_{}", std::process::id());
            let url = common::scratch_pg(admin_url, &scratch).await;
            let floor = commit_floor(&url, commits).await;
            drop_pg(admin_url, &scratch).await;
            ("PostgreSQL", floor)
        }
        other => panic!("unknown backend {other}; use sqlite or postgres"),
    }
}

#[tokio::main]
async fn main() {
    let load = Load {
        concurrency: env_or("BENCH_CONCURRENCY", 32),
        webhook_concurrency: env_or("BENCH_WEBHOOK_CONCURRENCY", 64),
        requests: env_or("BENCH_REQUESTS", 4000),
        phases: env_or("BENCH_PHASES", "tasks,deliveries,storm".to_string()),
    };
    let floor_commits: usize = env_or("BENCH_FLOOR_COMMITS", 2000);
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_string());
    let modes: String = env_or("BENCH_GROUP_COMMIT", "on,off".to_string());
    let admin_url = std::env::var("AIOPS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    println!(
        "| store | group commit | request | concurrency | requests | req/s | p50 ms | p99 ms | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let ceiling = if env_or("BENCH_CEILING", 0) == 1 {
        Some(hmac_ceiling(load.requests, load.webhook_concurrency).await)
    } else {
        None
    };
    let mut summary = Vec::new();
    for backend in backends.split(',').filter(|b| !b.is_empty()) {
        let (name, before) = floor_of(backend, &admin_url, floor_commits).await;
        let mut rates = Vec::new();
        for mode in modes.split(',') {
            let dir = tempfile::tempdir().unwrap();
            let scratch = format!("aiops_bench_{}", std::process::id());
            let url = match backend {
                "sqlite" => format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("aiops.db").display()
                ),
                _ => common::scratch_pg(&admin_url, &scratch).await,
            };
            let delivered = bench_backend(name, url, dir.path(), &load, mode == "on").await;
            if backend == "postgres" {
                drop_pg(&admin_url, &scratch).await;
            }
            if let Some(delivered) = delivered {
                rates.push((mode, delivered));
            }
        }
        let (_, after) = floor_of(backend, &admin_url, floor_commits).await;
        let floor = (before + after) / 2.0;
        summary.push(format!(
            "{name}: one-row commits {before:.0}/s before, {after:.0}/s after, mean {floor:.0}/s"
        ));
        if let Some(ceiling) = ceiling {
            summary.push(format!(
                "{name}: HMAC-only ceiling {ceiling:.0}/s = {:.2} x the mean floor",
                ceiling / floor
            ));
        }
        for (mode, delivered) in rates {
            summary.push(format!(
                "{name}: signed deliveries with group commit {mode}: {delivered:.0}/s = {:.2} x the mean floor ({:.2} x before, {:.2} x after)",
                delivered / floor,
                delivered / before,
                delivered / after
            ));
        }
    }
    println!();
    for line in summary {
        println!("{line}");
    }
}

/// Drops the scratch database `name`.
async fn drop_pg(admin_url: &str, name: &str) {
    let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await
        .unwrap();
}
