//! `GET /metrics`: the Prometheus text format, read with a text-format parser as Prometheus
//! would, behind its own token; its counters move when a task runs through the simulator.
//!
//! Both databases' tests run in one process and share its recorder, so each names its
//! project after its database and reads only that project's series exactly.

mod common;

use common::pipeline::{add_project, create_task, engine_app, wait_status};
use common::{Db, TestApp};
use prometheus_parse::{Scrape, Value as Metric};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCRAPE_TOKEN: &str = "scrape-token-for-tests";

/// Stores the scrape token as the global `metrics-token` credential.
async fn store_scrape_token(app: &TestApp) {
    let response = app
        .post("/api/v1/credentials")
        .json(&json!({"name": "metrics-token", "kind": "webhook_secret", "value": SCRAPE_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// `/metrics` with the scrape token, parsed.
async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}

fn parse(page: &str) -> Scrape {
    Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format")
}

/// The sum of the series of `metric` whose labels include `labels` (0 when there is none);
/// a histogram counts its observations.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            Metric::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Metric::Summary(_) => panic!("{metric} is a summary; histograms are expected"),
        })
        .sum()
}

fn project_name(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "metered-sqlite",
        Db::Postgres => "metered-postgres",
    }
}

async fn the_scrape_needs_its_own_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("metrics-token"),
        "the answer says what to configure: {body}"
    );
    store_scrape_token(&app).await;
    // An API token is not a scrape token.
    let with_api_token = app.get("/metrics").send().await.unwrap();
    assert_eq!(with_api_token.status(), StatusCode::UNAUTHORIZED);
    let page = scrape(&app).await;
    // The gauges of shared state are there from the start, one per priority.
    for priority in ["critical", "high", "normal", "low"] {
        assert!(
            page.samples
                .iter()
                .any(|s| s.metric == "aiops_queue_depth"
                    && s.labels.get("priority") == Some(priority)),
            "queue depth for {priority}"
        );
    }
}

/// A task runs to an approval, is rejected and rolls back: its run's tokens and cost, the
/// approval's wait, the task's outcome and duration, and the API requests are counted.
async fn counters_move_when_a_task_runs(db: Db) {
    let project = project_name(db);
    let repo = common::git_repo();
    let app = engine_app(db, "", |_| {}).await;
    store_scrape_token(&app).await;
    add_project(&app, project, repo.path(), json!({})).await;
    let before = scrape(&app).await;
    let of_project = [("project", project)];
    assert_eq!(value(&before, "aiops_runs_total", &of_project), 0.0);
    let created_before = value(
        &before,
        "aiops_http_requests_total",
        &[
            ("route", "/api/v1/tasks"),
            ("method", "POST"),
            ("status", "201"),
        ],
    );

    let id = create_task(&app, project, "Fix the checkout crash", "high").await;
    let detail = wait_status(&app, id, &["awaiting_approval", "failed"]).await;
    assert_eq!(detail["status"], "awaiting_approval", "{detail:#}");
    let run = &detail["runs"][0];
    let during = scrape(&app).await;
    assert_eq!(value(&during, "aiops_runs_total", &of_project), 1.0);
    for (kind, field) in [("input", "input_tokens"), ("output", "output_tokens")] {
        let counted = value(
            &during,
            "aiops_tokens_total",
            &[("project", project), ("kind", kind)],
        );
        assert_eq!(counted, run[field].as_f64().unwrap(), "{kind} tokens");
        assert!(counted > 0.0);
    }
    let cost = value(&during, "aiops_run_cost_usd_sum", &of_project);
    assert!(
        (cost - run["cost_usd"].as_f64().unwrap()).abs() < 1e-9,
        "cost {cost}"
    );
    assert_eq!(
        value(
            &during,
            "aiops_http_requests_total",
            &[
                ("route", "/api/v1/tasks"),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        created_before + 1.0,
        "POST /api/v1/tasks counted by its route template"
    );
    assert!(
        value(
            &during,
            "aiops_http_requests_total",
            &[("route", "/api/v1/tasks/:id")]
        ) >= 1.0,
        "a route with an id is counted by its template"
    );
    assert_eq!(
        value(&during, "aiops_task_outcomes_total", &of_project),
        0.0,
        "nothing has ended yet"
    );

    let approval = detail["pending_approvals"][0]["id"].as_i64().unwrap();
    let decided = app
        .post(&format!("/api/v1/approvals/{approval}/decision"))
        .json(&json!({"decision": "reject", "comment": "not like this"}))
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), StatusCode::OK);
    let detail = wait_status(&app, id, &["rolled_back", "failed"]).await;
    assert_eq!(detail["status"], "rolled_back", "{detail:#}");
    let after = scrape(&app).await;
    let rolled_back = [("project", project), ("outcome", "rolled_back")];
    assert_eq!(
        value(&after, "aiops_task_outcomes_total", &rolled_back),
        1.0
    );
    assert_eq!(
        value(&after, "aiops_task_duration_seconds_count", &rolled_back),
        1.0
    );
    assert_eq!(
        value(&after, "aiops_runs_total", &of_project),
        2.0,
        "the resume is a run too"
    );
    let rejected = [("decision", "reject"), ("channel", "api")];
    assert!(
        value(&after, "aiops_approval_wait_seconds_count", &rejected)
            > value(&during, "aiops_approval_wait_seconds_count", &rejected)
    );
    assert_eq!(value(&after, "aiops_tasks_running", &of_project), 0.0);
}

/// With `metrics.listen` set, `/metrics` is served on that listener without a token and the
/// service's listener has none.
async fn a_listener_of_its_own(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.metrics.listen = "127.0.0.1:0".into()).await;
    let on_service = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(on_service.status(), StatusCode::NOT_FOUND);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(aiops::http::metrics::serve_separately(
        listener,
        app.store.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let response = app
        .client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = parse(&response.text().await.unwrap());
    assert!(page.samples.iter().any(|s| s.metric == "aiops_queue_depth"));
    if matches!(db, Db::Sqlite) {
        // Read at each scrape from the store's busy handler (store::busy_wait).
        assert!(
            page.samples
                .iter()
                .any(|s| s.metric == "aiops_sqlite_lock_waits_total")
        );
    }
    let _ = stop.send(());
}

on_both_databases!(
    the_scrape_needs_its_own_token,
    counters_move_when_a_task_runs,
    a_listener_of_its_own,
);
