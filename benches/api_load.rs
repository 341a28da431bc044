//! Load benchmark against the real application on loopback, on SQLite and PostgreSQL:
//! `POST /api/v1/tasks` and `GET /api/v1/tasks/{id}` at `BENCH_CONCURRENCY`, signed GitHub
//! deliveries (verified, deduped, stored, enqueued) at `BENCH_WEBHOOK_CONCURRENCY`, and the
//! wall time of an alert storm (10,000 alerts over 50 fingerprints).
//!
//! Run: `cargo bench --bench api_load` (release profile). Environment:
//! `BENCH_CONCURRENCY` (32), `BENCH_WEBHOOK_CONCURRENCY` (64), `BENCH_REQUESTS` (4000 per phase),
//! `AIOPS_TEST_DATABASE_URL` (postgres://postgres@127.0.0.1:5432/test; a scratch database
//! is created and dropped), `BENCH_BACKENDS` (sqlite,postgres).

mod common;
use common::env_or;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiops::config::Config;

struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    wall: Duration,
    errors: usize,
}

impl Phase {
    fn report(&mut self, backend: &str, concurrency: usize) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.latencies[i.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
        };
        println!(
            "| {backend} | {} | {concurrency} | {} | {:.0} | {:.2} | {:.2} | {} |",
            self.name,
            self.latencies.len(),
            self.latencies.len() as f64 / self.wall.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            self.errors
        );
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

async fn bench_backend(
    backend: &str,
    database_url: String,
    data_dir: &std::path::Path,
    concurrency: usize,
    requests: usize,
) {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        database_url,
        ..Default::default()
    };
    config.store.max_connections = 16;
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
        .pool_max_idle_per_host(concurrency)
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

    let (c, b, t) = (client.clone(), base.clone(), token.clone());
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
    post.report(backend, concurrency);
    let (c, b, t) = (client.clone(), base.clone(), token.clone());
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
    get.report(backend, concurrency);

    let webhook_concurrency: usize = env_or("BENCH_WEBHOOK_CONCURRENCY", 64);
    let template: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/github/issues.opened.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (c, b) = (client.clone(), base.clone());
    let mut deliveries = run_phase(
        "POST /webhooks/github",
        requests,
        webhook_concurrency,
        move |i| {
            let (c, b) = (c.clone(), b.clone());
            let mut payload = template.clone();
            payload["repository"]["full_name"] = serde_json::json!("acme/bench");
            payload["issue"]["number"] = serde_json::json!(i + 1);
            let body = serde_json::to_vec(&payload).unwrap();
            async move {
                c.post(format!("{b}/webhooks/github"))
                    .header("X-GitHub-Event", "issues")
                    .header("X-GitHub-Delivery", format!("bench-{i}"))
                    .header(
                        "X-Hub-Signature-256",
                        aiops::signing::sign_sha256(WEBHOOK_SECRET.as_bytes(), &body),
                    )
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 202)
            }
        },
    )
    .await;
    deliveries.report(backend, webhook_concurrency);

    // Alert storm: 10,000 alerts over 50 fingerprints, 200 notifications of 50, 16 at a time.
    let alert_template: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/alertmanager/firing.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (c, b) = (client.clone(), base.clone());
    let storm = run_phase("alert storm (200 x 50 alerts)", 200, 16, move |batch| {
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
    .await;
    println!(
        "| {backend} | alert storm: 10,000 alerts / 50 fingerprints | 16 | 200 requests | wall {:.2} s | | | {} |",
        storm.wall.as_secs_f64(),
        storm.errors
    );
}

#[tokio::main]
async fn main() {
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let requests: usize = env_or("BENCH_REQUESTS", 4000);
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_string());
    println!("| store | request | concurrency | requests | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for backend in backends.split(',') {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            "sqlite" => {
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("aiops.db").display()
                );
                bench_backend("SQLite", url, dir.path(), concurrency, requests).await;
            }
            "postgres" => {
                let admin_url = std::env::var("AIOPS_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let name = format!("aiops_bench_{}", std::process::id());
                let admin = sqlx::PgPool::connect(&admin_url)
                    .await
                    .expect("PostgreSQL reachable");
                let drop_sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(drop_sql.clone()))
                    .execute(&admin)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin_url).unwrap();
                url.set_path(&format!("/{name}"));
                bench_backend(
                    "PostgreSQL",
                    url.to_string(),
                    dir.path(),
                    concurrency,
                    requests,
                )
                .await;
                sqlx::query(sqlx::AssertSqlSafe(drop_sql))
                    .execute(&admin)
                    .await
                    .unwrap();
            }
            other => panic!("unknown backend {other}; use sqlite or postgres"),
        }
    }
}
