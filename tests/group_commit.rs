//! Group commit of intake writes over real HTTP, on SQLite and PostgreSQL: concurrent
//! deliveries and task creations share transactions (seen on `/metrics`), each is answered
//! only with its rows stored, dedup stays exact inside a batch, and a write that fails
//! inside a batch fails alone. And the real `aiops serve`, killed with SIGKILL in the middle
//! of a flood of signed deliveries, loses none it acknowledged.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiops::model::{NewDelivery, Priority, Source, TaskSpec};
use aiops::signing::sign_sha256;
use common::{Db, TestApp, fixture_json, wait_for};
use prometheus_parse::{Scrape, Value as Metric};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "group-commit-webhook-secret";
const SCRAPE_TOKEN: &str = "group-commit-scrape-token";

/// The application with project `shop` (GitHub repository `acme/shop`), its webhook secret
/// and the scrape token; issues opened make tasks; a batch's first write waits 20 ms.
async fn intake_app(db: Db) -> TestApp {
    intake_app_with(db, |_| {}).await
}

/// [`intake_app`] with `adjust` applied to its configuration.
async fn intake_app_with(db: Db, adjust: impl FnOnce(&mut aiops::config::Config)) -> TestApp {
    let app = TestApp::spawn_with(db, |c| {
        c.github.on_issue_opened = true;
        c.intake.group_commit_window_ms = 20;
        adjust(c);
    })
    .await;
    let created = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git", "github_repo": "acme/shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    for (project, name, value) in [
        (Some("shop"), "github-webhook", SECRET),
        (None, "metrics-token", SCRAPE_TOKEN),
    ] {
        let created = app
            .post("/api/v1/credentials")
            .json(&json!({"project": project, "name": name, "kind": "webhook_secret", "value": value}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    app
}

/// An `issues.opened` delivery of issue `number` of `acme/shop`.
fn issue_opened(number: usize) -> Vec<u8> {
    let mut payload = fixture_json("github/issues.opened.json");
    payload["repository"]["full_name"] = json!("acme/shop");
    payload["issue"]["number"] = json!(number);
    serde_json::to_vec(&payload).unwrap()
}

/// Sends a signed GitHub delivery; its status and JSON answer.
async fn deliver(
    client: &reqwest::Client,
    base: &str,
    delivery: &str,
    body: Vec<u8>,
) -> reqwest::Result<(StatusCode, Value)> {
    let response = client
        .post(format!("{base}/webhooks/github"))
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", sign_sha256(SECRET.as_bytes(), &body))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

/// `/metrics` now, parsed.
async fn scrape(app: &TestApp) -> Scrape {
    let page = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The `store` label of `db`'s metrics.
fn store_label(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    }
}

/// Deliveries of group commits on `db`'s store so far written (together, alone).
async fn bulk_writes(app: &TestApp, db: Db) -> (f64, f64) {
    let scrape = scrape(app).await;
    let count = |written: &str| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "aiops_intake_bulk_writes_total")
            .filter(|s| s.labels.get("store") == Some(store_label(db)))
            .filter(|s| s.labels.get("written") == Some(written))
            .map(|s| match s.value {
                Metric::Counter(v) | Metric::Untyped(v) => v,
                ref other => panic!("aiops_intake_bulk_writes_total is a counter, not {other:?}"),
            })
            .sum::<f64>()
    };
    (count("together"), count("alone"))
}

/// Batches of more than one write so far, on `db`'s store, from `/metrics`.
async fn shared_batches(app: &TestApp, db: Db) -> f64 {
    let scrape = scrape(app).await;
    let store = store_label(db);
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "aiops_intake_batch_size")
        .filter(|s| s.labels.get("store") == Some(store))
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => {
                let all = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
                let alone = buckets
                    .iter()
                    .find(|b| b.less_than == 1.0)
                    .map_or(0.0, |b| b.count);
                all - alone
            }
            other => panic!("aiops_intake_batch_size is a histogram, not {other:?}"),
        })
        .sum()
}

/// A delivery `id` recorded through the library with a task of project `project_id`; a
/// project that does not exist makes the task's insert fail on its foreign key after the
/// delivery row was written, inside the batch.
fn library_delivery(id: &str, project_id: i64) -> (NewDelivery, TaskSpec) {
    let delivery = NewDelivery {
        source: "github".into(),
        delivery_id: id.into(),
        event: "issues".into(),
        action: Some("opened".into()),
        repository: Some("acme/shop".into()),
        payload: serde_json::value::to_raw_value(&json!({"id": id})).unwrap(),
    };
    let spec = TaskSpec {
        project_id,
        team: "bugfix".into(),
        prompt: "a task of no project".into(),
        source: Source::Github,
        priority: Priority::Normal,
        dedup_key: Some(id.into()),
        source_ref: json!({}),
        created_by: "github:test".into(),
        requested_by: None,
    };
    (delivery, spec)
}

/// What one of the concurrent writes was answered.
enum Answer {
    Delivery(String, StatusCode, Value),
    Task(String, StatusCode, Value),
    Library(String, aiops::Result<aiops::model::DeliveryOutcome>),
}

/// 72 writes at once: 40 new deliveries, 8 redeliveries of them, 12 task creations of
/// which two share a dedup key over HTTP; through the library (so they reach the committer
/// together) 8 deliveries and, among them, 4 that fail inside the batch.
async fn concurrent_writes(app: &TestApp, shop: i64) -> Vec<Answer> {
    let mut writes = tokio::task::JoinSet::new();
    let deliveries = (0..40).chain(0..8);
    for i in deliveries {
        let (client, base) = (app.client.clone(), app.base.clone());
        writes.spawn(async move {
            let id = format!("d-{i}");
            let (status, body) = deliver(&client, &base, &id, issue_opened(i + 1))
                .await
                .unwrap();
            Answer::Delivery(id, status, body)
        });
    }
    for i in 0..12 {
        let request = app.post("/api/v1/tasks").json(&match i {
            10 | 11 => json!({"project": "shop", "prompt": format!("t{i}"), "dedup_key": "same"}),
            _ => json!({"project": "shop", "prompt": format!("t{i}")}),
        });
        writes.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            Answer::Task(format!("t{i}"), status, response.json().await.unwrap())
        });
    }
    for i in 0..12 {
        let store = app.store.clone();
        let (id, project) = match i % 3 {
            1 => (format!("broken-{i}"), 999_999),
            _ => (format!("library-{i}"), shop),
        };
        writes.spawn(async move {
            let (delivery, spec) = library_delivery(&id, project);
            let answer =
                aiops::triggers::intake::record_delivery(&store, delivery, Some(spec), None).await;
            Answer::Library(id, answer)
        });
    }
    writes.join_all().await
}

async fn concurrent_writes_share_commits_and_fail_alone(db: Db) {
    let app = intake_app(db).await;
    let shop = app.get_json("/api/v1/projects/shop").await["id"]
        .as_i64()
        .expect("the project's id");
    let shared_before = shared_batches(&app, db).await;
    let answers = concurrent_writes(&app, shop).await;

    let mut outcomes: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let (mut created, mut refused) = (Vec::new(), 0);
    for answer in &answers {
        match answer {
            Answer::Delivery(id, status, body) => {
                assert_eq!(*status, StatusCode::ACCEPTED, "{id}: {body}");
                let task = body["task_id"].as_i64().expect("a task id");
                let outcome = body["outcome"].as_str().unwrap().to_string();
                outcomes
                    .entry(id.clone())
                    .or_default()
                    .push((outcome, task));
            }
            Answer::Task(name, status, body) if *status == StatusCode::CREATED => {
                created.push(body["id"].as_i64().expect("the task's id"));
                assert_eq!(body["prompt"], name.as_str());
            }
            Answer::Task(name, status, body) => {
                assert_eq!(*status, StatusCode::CONFLICT, "{name}: {body}");
                assert!(matches!(name.as_str(), "t10" | "t11"), "{name}: {body}");
                refused += 1;
            }
            Answer::Library(id, answer) if id.starts_with("broken-") => {
                assert!(answer.is_err(), "{id}: {answer:?}");
            }
            Answer::Library(id, answer) => {
                let outcome = answer.as_ref().expect("recorded");
                assert_eq!(outcome.outcome.as_str(), "task_created", "{id}");
                created.push(outcome.task_id.expect("its task"));
            }
        }
    }
    assert_eq!((created.len(), refused), (11 + 8, 1));
    // Dedup is exact inside a batch: of two deliveries with one id, one made the task and
    // the other is its duplicate, pointing at the same task.
    assert_eq!(outcomes.len(), 40);
    for (id, mut seen) in outcomes {
        seen.sort();
        let redelivered = id.strip_prefix("d-").unwrap().parse::<usize>().unwrap() < 8;
        let names: Vec<&str> = seen.iter().map(|(o, _)| o.as_str()).collect();
        if redelivered {
            assert_eq!(names, ["duplicate", "task_created"], "{id}");
            assert_eq!(seen[0].1, seen[1].1, "{id}: the duplicate names the task");
        } else {
            assert_eq!(names, ["task_created"], "{id}");
        }
        created.push(seen.iter().find(|(o, _)| o == "task_created").unwrap().1);
    }

    // Every acknowledged write is stored: each task with its job's event, each delivery
    // once per answer; the failed ones left nothing, not even their delivery row.
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 59);
    let stored = app
        .store
        .list_deliveries(Some("github"), None, 1000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 56, "{stored:#?}");
    assert!(stored.iter().all(|d| !d.delivery_id.starts_with("broken-")));
    let announced = *app.store.subscribe_events().borrow();
    for id in &created {
        let task = app.store.task(*id).await.unwrap();
        assert_eq!(task.status, aiops::tasks::TaskStatus::Queued);
        let events = app
            .store
            .events_after(0, Some(*id), None, 10)
            .await
            .unwrap();
        let queued = events
            .iter()
            .find(|e| e.kind == "task_queued")
            .expect("task_queued");
        // Live streams were told before the answer went out.
        assert!(
            queued.id <= announced,
            "event {} after {announced}",
            queued.id
        );
    }

    let shared = shared_batches(&app, db).await - shared_before;
    assert!(shared >= 1.0, "no batch had more than one write");
}

/// Records `writes` through the library all at once (a batch's window is 20 ms, so they
/// reach the committer together); each one's delivery id and answer.
async fn record_at_once(
    app: &TestApp,
    writes: Vec<(NewDelivery, TaskSpec)>,
) -> Vec<(String, aiops::Result<aiops::model::DeliveryOutcome>)> {
    let mut set = tokio::task::JoinSet::new();
    for (delivery, spec) in writes {
        let store = app.store.clone();
        set.spawn(async move {
            let id = delivery.delivery_id.clone();
            let answer =
                aiops::triggers::intake::record_delivery(&store, delivery, Some(spec), None).await;
            (id, answer)
        });
    }
    set.join_all().await
}

/// The deliveries of a batch are written together, in a few statements for all of them, with
/// the answers each would get alone: a repeated delivery id names the first one's task, a
/// taken dedup key names its task. When one of them cannot be written, the others are
/// written each alone and only that one fails.
async fn a_batchs_deliveries_are_written_together_and_alone_when_one_fails(db: Db) {
    let app = intake_app(db).await;
    let shop = app.get_json("/api/v1/projects/shop").await["id"]
        .as_i64()
        .expect("the project's id");
    let (together, _) = bulk_writes(&app, db).await;
    let mut writes: Vec<_> = (0..12)
        .map(|i| library_delivery(&format!("n-{i}"), shop))
        .collect();
    writes.push(library_delivery("n-0", shop));
    writes.push(library_delivery("n-1", shop));
    let (delivery, mut spec) = library_delivery("k-0", shop);
    spec.dedup_key = Some("n-2".into());
    writes.push((delivery, spec));
    let answers = record_at_once(&app, writes).await;

    let mut tasks: BTreeMap<String, Vec<(String, Option<i64>)>> = BTreeMap::new();
    for (id, answer) in answers {
        let outcome = answer.unwrap_or_else(|e| panic!("{id}: {e}"));
        let entry = tasks.entry(id).or_default();
        entry.push((outcome.outcome.as_str().to_string(), outcome.task_id));
        entry.sort();
    }
    // Of n-2 and k-0, which share a dedup key, whichever came first made the task.
    let mut shared: Vec<&(String, Option<i64>)> =
        tasks["n-2"].iter().chain(&tasks["k-0"]).collect();
    shared.sort();
    assert_eq!(shared[0].0, "duplicate_task", "{shared:?}");
    assert_eq!(shared[1].0, "task_created", "{shared:?}");
    assert_eq!(shared[0].1, shared[1].1, "a taken dedup key names its task");
    let task_of = |id: &str| {
        let made = tasks[id].iter().chain(&tasks["k-0"]);
        made.filter(|(o, _)| o == "task_created")
            .find_map(|(_, task)| *task)
    };
    for i in 0..12 {
        let id = format!("n-{i}");
        let outcomes: Vec<&str> = tasks[&id].iter().map(|(o, _)| o.as_str()).collect();
        match i {
            0 | 1 => {
                assert_eq!(outcomes, ["duplicate", "task_created"], "{id}");
                assert_eq!(
                    tasks[&id][0].1,
                    task_of(&id),
                    "{id}: the repeat names the task"
                );
            }
            2 => assert_eq!(outcomes.len(), 1, "{id}: {outcomes:?}"),
            _ => assert_eq!(outcomes, ["task_created"], "{id}"),
        }
        let task = app.store.task(task_of(&id).unwrap()).await.unwrap();
        assert_eq!(
            task.dedup_key.as_deref(),
            Some(id.as_str()),
            "{id}: its own task"
        );
    }
    // The counters are the process's: other tests running beside this one add to them too.
    let (together_now, alone_now) = bulk_writes(&app, db).await;
    assert!(
        together_now - together >= 2.0,
        "no deliveries were written together: {together} -> {together_now}"
    );

    // One that cannot be written (its project does not exist) among good ones.
    let mut writes: Vec<_> = (0..8)
        .map(|i| library_delivery(&format!("m-{i}"), shop))
        .collect();
    writes.push(library_delivery("broken-0", 999_999));
    for (id, answer) in record_at_once(&app, writes).await {
        match answer {
            Ok(outcome) if id != "broken-0" => {
                assert_eq!(outcome.outcome.as_str(), "task_created", "{id}");
            }
            answer => assert!(id == "broken-0" && answer.is_err(), "{id}: {answer:?}"),
        }
    }
    let (_, alone_after) = bulk_writes(&app, db).await;
    assert!(
        alone_after - alone_now >= 2.0,
        "the batch with a broken delivery was not written each alone: {alone_now} -> {alone_after}"
    );
    let stored = app
        .store
        .list_deliveries(Some("github"), None, 1000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 15 + 8, "{stored:#?}");
    assert!(stored.iter().all(|d| d.delivery_id != "broken-0"));
}

/// The queue jobs written together with a batch's tasks are real jobs: the workers claim and
/// run every one of them to its end.
async fn the_jobs_of_tasks_written_together_are_run(db: Db) {
    let repo = common::git_repo();
    let app = intake_app_with(db, |c| {
        c.engine.workers = 2;
        c.engine.command = "true".into();
        c.engine.queue_poll_ms = 100;
    })
    .await;
    common::pipeline::add_project(&app, "local", repo.path(), json!({})).await;
    let local = app.get_json("/api/v1/projects/local").await["id"]
        .as_i64()
        .expect("the project's id");
    let (together, _) = bulk_writes(&app, db).await;
    let writes = (0..6)
        .map(|i| library_delivery(&format!("run-{i}"), local))
        .collect();
    let mut tasks = Vec::new();
    for (id, answer) in record_at_once(&app, writes).await {
        let outcome = answer.unwrap_or_else(|e| panic!("{id}: {e}"));
        tasks.push(outcome.task_id.expect("a task"));
    }
    let (together_now, _) = bulk_writes(&app, db).await;
    assert!(
        together_now - together >= 2.0,
        "no deliveries were written together: {together} -> {together_now}"
    );
    for id in tasks {
        let ended = ["done", "failed", "rolled_back", "awaiting_approval"];
        common::pipeline::wait_status(&app, id, &ended).await;
    }
}

on_both_databases!(
    concurrent_writes_share_commits_and_fail_alone,
    a_batchs_deliveries_are_written_together_and_alone_when_one_fails,
    the_jobs_of_tasks_written_together_are_run,
);

/// Deliveries acknowledged (202) so far: delivery id → task id.
type Acknowledged = Arc<Mutex<Vec<(String, i64)>>>;

/// `loops` loops sending new signed deliveries to `base` until `stop`; what got a 202 goes
/// into `acknowledged`, requests that got no answer are counted in `unanswered`.
fn flood(
    base: &str,
    loops: usize,
    stop: &Arc<AtomicBool>,
    acknowledged: &Acknowledged,
    unanswered: &Arc<AtomicUsize>,
) -> tokio::task::JoinSet<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(1));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let (client, base, stop, next) =
            (client.clone(), base.to_string(), stop.clone(), next.clone());
        let (acknowledged, unanswered) = (acknowledged.clone(), unanswered.clone());
        set.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let id = format!("flood-{n}");
                match deliver(&client, &base, &id, issue_opened(n)).await {
                    Ok((StatusCode::ACCEPTED, body)) => {
                        let task = body["task_id"].as_i64().expect("a task id");
                        acknowledged.lock().unwrap().push((id, task));
                    }
                    Ok((status, body)) => panic!("{id}: {status} {body}"),
                    Err(_) => {
                        unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_during_a_flood_loses_no_acknowledged_delivery() {
    const WAIT: Duration = Duration::from_secs(90);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("aiops.toml");
    std::fs::write(
        &config,
        "[github]\non_issue_opened = true\nreply = false\n[engine]\nworkers = 0\n\
         [intake]\nwebhook_per_second = 100000\nwebhook_burst = 100000\n",
    )
    .unwrap();
    let mut first = common::child::serve(&config, data.path());
    let token = first.token.clone().expect("admin token on first start");
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/projects", first.base))
        .bearer_auth(&token)
        .json(&json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git", "github_repo": "acme/shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = client
        .post(format!("{}/api/v1/credentials", first.base))
        .bearer_auth(&token)
        .json(&json!({"project": "shop", "name": "github-webhook", "kind": "webhook_secret", "value": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let (stop, acknowledged, unanswered) = (
        Arc::new(AtomicBool::new(false)),
        Acknowledged::default(),
        Arc::new(AtomicUsize::new(0)),
    );
    let loops = flood(&first.base, 32, &stop, &acknowledged, &unanswered);
    wait_for("300 acknowledged deliveries", WAIT, || async {
        (acknowledged.lock().unwrap().len() >= 300).then_some(())
    })
    .await;
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(WAIT).await;
    stop.store(true, Ordering::Relaxed);
    loops.join_all().await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    // Requests were in flight when it died.
    assert!(unanswered.load(Ordering::Relaxed) > 0);

    let mut second = common::child::serve(&config, data.path());
    let settings = aiops::config::Config {
        data_dir: data.path().to_path_buf(),
        ..Default::default()
    };
    let store = aiops::server::open_store(&settings).await.unwrap();
    let stored: BTreeMap<String, Option<i64>> = store
        .list_deliveries(Some("github"), None, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.delivery_id, d.task_id))
        .collect();
    for (id, task) in &acknowledged {
        assert_eq!(stored.get(id), Some(&Some(*task)), "{id} was acknowledged");
        let response = client
            .get(format!("{}/api/v1/tasks/{task}", second.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "task {task} of {id}");
    }
    // It stops cleanly, the committer with it.
    second.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(second.wait_exit(WAIT).await.success());
}
