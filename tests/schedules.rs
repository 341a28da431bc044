//! Cron schedules: the API over real HTTP, the scheduler firing on the real clock, the
//! overlap and missed-run policies, several schedulers on one PostgreSQL store, `jobs/`
//! files and `aiops jobs reload`, on SQLite and PostgreSQL.

mod common;

use std::path::Path;
use std::time::Duration;

use aiops::audit::AuditFilter;
use aiops::config::Config;
use aiops::config::SchedulerConfig;
use aiops::projects::NewProject;
use aiops::schedules::scheduler::{Action, Scheduler, run_due};
use aiops::schedules::{self, NewSchedule, Origin};
use aiops::store::{Pool, Store};
use aiops::teams::Teams;
use chrono::{DateTime, Duration as Span, DurationRound, SecondsFormat, Timelike, Utc};
use common::{Db, FreshDb, TestApp, wait_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Longest any wait on the scheduler may take.
const DEADLINE: Duration = Duration::from_secs(20);

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Asserts an error response and returns its body.
async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let body = json_of(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

async fn create_project(app: &TestApp, name: &str) {
    let response = app
        .post("/api/v1/projects")
        .json(&json!({"name": name, "repo_url": "https://github.com/acme/shop.git"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn create_schedule(app: &TestApp, body: Value) -> Value {
    let response = app
        .post("/api/v1/schedules")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
    json_of(response).await
}

async fn get_schedule(app: &TestApp, name: &str) -> Value {
    json_of(
        app.get(&format!("/api/v1/schedules/{name}"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn time_of(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp: {value}"));
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The tasks a schedule created, oldest first.
async fn tasks_of(store: &Store, schedule: &str) -> Vec<aiops::tasks::Task> {
    let mut tasks = store
        .list_tasks(&aiops::tasks::TaskFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    tasks.retain(|t| t.source_ref["schedule"] == schedule);
    tasks.reverse();
    tasks
}

fn register_project(name: &str) -> aiops::projects::ProjectSpec {
    NewProject {
        name: name.into(),
        repo_url: Some("https://github.com/acme/shop.git".into()),
        ..Default::default()
    }
    .into_spec(&common::test_inputs())
    .unwrap()
}

/// A schedule body with the fields every test needs.
fn schedule_body(name: &str, cron: &str) -> Value {
    json!({
        "name": name, "project": "shop", "cron": cron,
        "prompt_template": "Check {schedule} on {date}",
    })
}

/// Puts a schedule's timing where a process that stopped long ago would have left it.
async fn set_timing(store: &Store, name: &str, next: DateTime<Utc>, last: DateTime<Utc>) {
    let sql = "UPDATE schedules SET next_run_at = $1, last_fired_at = $2 WHERE name = $3";
    let updated = match store.pool() {
        Pool::Sqlite(pool) => sqlx::query(sql)
            .bind(next)
            .bind(last)
            .bind(name)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Pool::Postgres(pool) => sqlx::query(sql)
            .bind(next)
            .bind(last)
            .bind(name)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(updated, 1);
}

fn scheduler_settings() -> SchedulerConfig {
    SchedulerConfig {
        max_sleep_ms: 200,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------

async fn crud_with_next_run_at(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    let created = create_schedule(
        &app,
        json!({"name": "morning-review", "project": "shop", "cron": "0 0 9 * * *",
               "timezone": "Asia/Seoul", "prompt_template": "Review {schedule} for {date}"}),
    )
    .await;
    assert_eq!(created["project"], "shop");
    assert_eq!(created["team"], "feature");
    assert_eq!(created["priority"], "normal");
    assert_eq!(created["overlap"], "skip");
    assert_eq!(created["missed"], "run_once");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["origin"], "api");
    assert!(created["last_fired_at"].is_null());
    // 09:00 in Seoul (UTC+9, no daylight saving) is 00:00 UTC: the next UTC midnight.
    let created_at = time_of(&created["created_at"]);
    let next_midnight = created_at.duration_trunc(Span::days(1)).unwrap() + Span::days(1);
    assert_eq!(time_of(&created["next_run_at"]), next_midnight, "{created}");

    let listed = json_of(app.get("/api/v1/schedules").send().await.unwrap()).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["next_run_at"], created["next_run_at"]);
    assert_eq!(get_schedule(&app, "morning-review").await, created);

    let patch = |body: Value| {
        app.req(Method::PATCH, "/api/v1/schedules/morning-review")
            .json(&body)
            .send()
    };
    // A new time zone counts the next run from now: 09:00 UTC.
    let utc = json_of(patch(json!({"timezone": "UTC"})).await.unwrap()).await;
    let now = Utc::now();
    let mut nine = now.duration_trunc(Span::days(1)).unwrap() + Span::hours(9);
    if nine <= now {
        nine += Span::days(1);
    }
    assert_eq!(time_of(&utc["next_run_at"]), nine, "{utc}");
    // A new prompt leaves the timing alone.
    let reworded = json_of(
        patch(json!({"prompt_template": "Review again on {date}", "priority": "high"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reworded["next_run_at"], utc["next_run_at"]);
    assert_eq!(reworded["priority"], "high");
    assert_eq!(reworded["prompt_template"], "Review again on {date}");
    let disabled = json_of(patch(json!({"enabled": false})).await.unwrap()).await;
    assert!(disabled["next_run_at"].is_null(), "{disabled}");
    let enabled = json_of(patch(json!({"enabled": true})).await.unwrap()).await;
    assert_eq!(enabled["next_run_at"], utc["next_run_at"]);

    // Viewers read, operators write.
    let (viewer, _) = aiops::auth::create_token(&app.store, "watcher", aiops::auth::Role::Viewer)
        .await
        .unwrap();
    let read = app
        .client
        .get(app.url("/api/v1/schedules/morning-review"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    for request in [
        app.client
            .post(app.url("/api/v1/schedules"))
            .json(&schedule_body("other", "0 * * * *")),
        app.client
            .patch(app.url("/api/v1/schedules/morning-review"))
            .json(&json!({"enabled": false})),
        app.client
            .delete(app.url("/api/v1/schedules/morning-review")),
    ] {
        let refused = request.bearer_auth(&viewer).send().await.unwrap();
        expect_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
    }

    let deleted = app
        .req(Method::DELETE, "/api/v1/schedules/morning-review")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .get("/api/v1/schedules/morning-review")
        .send()
        .await
        .unwrap();
    expect_error(gone, StatusCode::NOT_FOUND, "not_found").await;
    let again = app
        .req(Method::DELETE, "/api/v1/schedules/morning-review")
        .send()
        .await
        .unwrap();
    expect_error(again, StatusCode::NOT_FOUND, "not_found").await;

    // Every mutation is audited under the schedule's name, refused ones included.
    let audit = json_of(
        app.get("/api/v1/audit?target=schedules/morning-review&limit=50")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "201", "200", "200", "200", "200", "403", "403", "204", "404"
        ],
        "{audit}"
    );

    let doc = json_of(app.get("/api/v1/openapi.json").send().await.unwrap()).await;
    for path in ["/schedules", "/schedules/{name}"] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    for schema in ["Schedule", "NewSchedule", "SchedulePatch"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

async fn invalid_schedules_are_refused_with_the_reason(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    create_schedule(&app, schedule_body("nightly", "0 3 * * *")).await;
    let with = |field: &str, value: Value| {
        let mut body = schedule_body("fresh", "0 3 * * *");
        body[field] = value;
        body
    };
    let cases = [
        (
            with("cron", json!("61 * * * *")),
            "cron",
            "the minute field has 61; it runs 0-59",
        ),
        (with("cron", json!("* * * *")), "cron", "5 or 6 fields"),
        (with("cron", json!("0 0 30 2 *")), "cron", "never matches"),
        (with("cron", json!("every day")), "cron", "cron"),
        (
            with("timezone", json!("Mars/Olympus")),
            "timezone",
            "IANA time zone",
        ),
        (
            with("prompt_template", json!("Audit {project} on {date}")),
            "prompt_template",
            "{project}",
        ),
        (
            with("prompt_template", json!("  ")),
            "prompt_template",
            "empty",
        ),
        (with("name", json!("Bad Name")), "name", "lower-case"),
        (with("team", json!("Bad Team")), "team", "team name"),
        (with("overlap", json!("sometimes")), "overlap", "variant"),
        (with("missed", json!("later")), "missed", "variant"),
        (with("priority", json!("urgent")), "priority", "variant"),
        (with("colour", json!("blue")), "colour", "unknown field"),
        (
            json!({"name": "fresh", "project": "shop", "prompt_template": "x"}),
            "cron",
            "missing",
        ),
    ];
    for (body, field, phrase) in cases {
        let response = app
            .post("/api/v1/schedules")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
        assert_eq!(
            error["error"]["details"]["field"], field,
            "{body} → {error}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(phrase), "{body}: {message}");
    }

    let unknown_project = app
        .post("/api/v1/schedules")
        .json(&with("project", json!("nope")))
        .send()
        .await
        .unwrap();
    expect_error(unknown_project, StatusCode::NOT_FOUND, "not_found").await;
    let duplicate = app
        .post("/api/v1/schedules")
        .json(&schedule_body("nightly", "0 4 * * *"))
        .send()
        .await
        .unwrap();
    expect_error(duplicate, StatusCode::CONFLICT, "conflict").await;

    let patch = |body: Value| {
        app.req(Method::PATCH, "/api/v1/schedules/nightly")
            .json(&body)
            .send()
    };
    let bad_cron = patch(json!({"cron": "0 0 0 * * * *"})).await.unwrap();
    let error = expect_error(bad_cron, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    assert_eq!(error["error"]["details"]["field"], "cron");
    let rename = patch(json!({"name": "renamed"})).await.unwrap();
    expect_error(rename, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    let moved = patch(json!({"project": "nope"})).await.unwrap();
    expect_error(moved, StatusCode::NOT_FOUND, "not_found").await;
    let missing = app
        .req(Method::PATCH, "/api/v1/schedules/nope")
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    expect_error(missing, StatusCode::NOT_FOUND, "not_found").await;

    // None of them changed anything.
    let listed = json_of(app.get("/api/v1/schedules").send().await.unwrap()).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["cron"], "0 3 * * *");
}

// ---------------------------------------------------------------------------------------
// Firing
// ---------------------------------------------------------------------------------------

async fn a_schedule_with_seconds_fires_on_time(db: Db) {
    let app = TestApp::spawn(db).await;
    create_project(&app, "shop").await;
    // A tick one to two seconds from now, written with its seconds field.
    let tick = Utc::now().duration_trunc(Span::seconds(1)).unwrap() + Span::seconds(2);
    let cron = format!("{} {} {} * * *", tick.second(), tick.minute(), tick.hour());
    let created = create_schedule(
        &app,
        json!({"name": "on-time", "project": "shop", "cron": cron, "team": "security",
               "priority": "high", "prompt_template": "Check {schedule} on {date}"}),
    )
    .await;
    assert_eq!(time_of(&created["next_run_at"]), tick, "{created}");

    let task = wait_for("the schedule's task", DEADLINE, || async {
        tasks_of(&app.store, "on-time").await.into_iter().next()
    })
    .await;
    let lateness = task.created_at - tick;
    assert!(
        lateness >= Span::zero() && lateness < Span::milliseconds(1500),
        "created {lateness} after its tick"
    );
    let id = created["id"].as_i64().unwrap();
    assert_eq!(task.source, "cron");
    assert_eq!(task.team, "security");
    assert_eq!(task.priority, "high");
    assert_eq!(task.status, "queued");
    assert_eq!(task.created_by.as_deref(), Some("scheduler"));
    assert_eq!(
        task.prompt,
        format!("Check on-time on {}", tick.format("%Y-%m-%d"))
    );
    assert_eq!(
        task.dedup_key,
        Some(format!("schedule:{id}:{}", rfc3339(tick)))
    );
    assert_eq!(
        task.source_ref,
        json!({"schedule": "on-time", "tick": rfc3339(tick)})
    );

    let after = wait_for("next_run_at to move on", DEADLINE, || async {
        let schedule = get_schedule(&app, "on-time").await;
        (time_of(&schedule["next_run_at"]) > tick).then_some(schedule)
    })
    .await;
    assert_eq!(time_of(&after["last_fired_at"]), tick);
    assert_eq!(time_of(&after["next_run_at"]), tick + Span::days(1));
    assert_eq!(tasks_of(&app.store, "on-time").await.len(), 1);
}

async fn overlap_skip_waits_for_the_open_task(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.scheduler.enabled = false).await;
    create_project(&app, "shop").await;
    let mut skip = schedule_body("one-at-a-time", "* * * * * *");
    skip["overlap"] = json!("skip");
    let mut queue = schedule_body("every-tick", "* * * * * *");
    queue["overlap"] = json!("queue");
    let skip = create_schedule(&app, skip).await;
    let queue = create_schedule(&app, queue).await;
    let start = time_of(&skip["next_run_at"]).max(time_of(&queue["next_run_at"]));
    let settings = scheduler_settings();

    // Passes at three consecutive ticks, with the scheduler's own clock.
    let mut skip_actions = Vec::new();
    for second in 0..3 {
        let pass = run_due(&app.store, &settings, start + Span::seconds(second))
            .await
            .unwrap();
        assert_eq!(pass.failed, 0);
        for handled in pass.handled {
            if handled.schedule == "one-at-a-time" {
                skip_actions.push(handled.action);
            }
        }
    }
    let first = tasks_of(&app.store, "one-at-a-time").await;
    assert_eq!(first.len(), 1, "no second task while the first is queued");
    assert!(matches!(skip_actions[0], Action::Fired(id) if id == first[0].id));
    assert_eq!(
        skip_actions[1..],
        [Action::SkippedOverlap, Action::SkippedOverlap]
    );
    assert_eq!(tasks_of(&app.store, "every-tick").await.len(), 3);

    // Once the open task has ended, the next tick fires again.
    let cancel = app
        .post(&format!("/api/v1/tasks/{}/cancel", first[0].id))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    let tick = start + Span::seconds(3);
    run_due(&app.store, &settings, tick).await.unwrap();
    assert_eq!(tasks_of(&app.store, "one-at-a-time").await.len(), 2);
    let schedule = get_schedule(&app, "one-at-a-time").await;
    assert_eq!(time_of(&schedule["last_fired_at"]), tick);
    assert_eq!(time_of(&schedule["next_run_at"]), tick + Span::seconds(1));
}

async fn missed_runs_after_downtime_follow_the_policy(db: Db) {
    // This process runs no scheduler: it plays the service while it is down.
    let app = TestApp::spawn_with(db, |c| c.scheduler.enabled = false).await;
    create_project(&app, "shop").await;
    // Hourly, half an hour away from now: the latest tick is 30-31 minutes ago.
    let now = Utc::now();
    let minute = (now.minute() + 30) % 60;
    let cron = format!("0 {minute} * * * *");
    let mut latest = now.duration_trunc(Span::hours(1)).unwrap() + Span::minutes(minute.into());
    if latest > now {
        latest -= Span::hours(1);
    }
    for (name, missed) in [("catch-up", "run_once"), ("let-go", "skip")] {
        let mut body = schedule_body(name, &cron);
        body["missed"] = json!(missed);
        create_schedule(&app, body).await;
        // It last fired four hours ago and was due three hours ago: three ticks missed.
        set_timing(
            &app.store,
            name,
            latest - Span::hours(3),
            latest - Span::hours(4),
        )
        .await;
    }

    // The scheduler comes back.
    let scheduler = Scheduler::start(app.store.clone(), scheduler_settings());
    for name in ["catch-up", "let-go"] {
        wait_for("the missed ticks to be handled", DEADLINE, || async {
            let schedule = get_schedule(&app, name).await;
            (schedule["last_fired_at"] == json!(rfc3339(latest))).then_some(())
        })
        .await;
        let schedule = get_schedule(&app, name).await;
        assert_eq!(
            time_of(&schedule["next_run_at"]),
            latest + Span::hours(1),
            "{schedule}"
        );
    }
    scheduler.stop().await;

    let caught_up = tasks_of(&app.store, "catch-up").await;
    assert_eq!(caught_up.len(), 1, "run_once: exactly one task");
    assert_eq!(caught_up[0].source_ref["tick"], rfc3339(latest));
    assert!(
        tasks_of(&app.store, "let-go").await.is_empty(),
        "skip: none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_on_one_postgres_make_one_task_per_tick() {
    let db = FreshDb::new(Db::Postgres).await;
    // Two stores with pools of their own, as two processes have.
    let (first, second) = (db.store().await, db.store().await);
    first
        .insert_project(&register_project("shop"))
        .await
        .unwrap();
    let spec = NewSchedule {
        name: "every-second".into(),
        project: "shop".into(),
        team: None,
        prompt_template: "tick {date}".into(),
        cron: "* * * * * *".into(),
        timezone: None,
        priority: None,
        overlap: Some(schedules::Overlap::Queue),
        missed: None,
        enabled: None,
    }
    .into_spec(&Default::default())
    .unwrap();
    let created = schedules::create(&first, &spec, Origin::Api).await.unwrap();
    let start = created.next_run_at.unwrap();
    let settings = scheduler_settings();

    // Both handle the same ticks at the same moment.
    for second_no in 0..5 {
        let now = start + Span::seconds(second_no);
        let (a, b) = tokio::join!(
            run_due(&first, &settings, now),
            run_due(&second, &settings, now)
        );
        let handled: Vec<_> = a
            .unwrap()
            .handled
            .into_iter()
            .chain(b.unwrap().handled)
            .collect();
        let fired = handled
            .iter()
            .filter(|h| matches!(h.action, Action::Fired(_)))
            .count();
        assert_eq!(fired, 1, "tick {second_no}: {handled:?}");
        assert_eq!(
            handled.iter().filter(|h| h.advanced).count(),
            1,
            "{handled:?}"
        );
    }
    assert_eq!(tasks_of(&first, "every-second").await.len(), 5);

    // Both loops running on the real clock for several more ticks.
    let loops = [
        Scheduler::start(first.clone(), settings.clone()),
        Scheduler::start(second.clone(), settings.clone()),
    ];
    wait_for("five more ticks", Duration::from_secs(30), || async {
        (tasks_of(&first, "every-second").await.len() >= 10).then_some(())
    })
    .await;
    for scheduler in loops {
        scheduler.stop().await;
    }
    let tasks = tasks_of(&first, "every-second").await;
    let mut ticks: Vec<DateTime<Utc>> = tasks
        .iter()
        .map(|t| time_of(&t.source_ref["tick"]))
        .collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), tasks.len(), "one task per tick: {ticks:?}");
    let schedule = first.schedule("every-second").await.unwrap();
    assert_eq!(schedule.last_fired_at, ticks.last().copied());
    assert_eq!(
        schedule.next_run_at,
        schedule.last_fired_at.map(|t| t + Span::seconds(1))
    );
}

// ---------------------------------------------------------------------------------------
// jobs/
// ---------------------------------------------------------------------------------------

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

const NIGHTLY: &str = r#"
[[schedule]]
name = "nightly-audit"
project = "shop"
team = "security"
cron = "0 2 * * *"
timezone = "Europe/Berlin"
prompt_template = "Audit {schedule} for {date}"

[[schedule]]
name = "paused-audit"
project = "shop"
cron = "0 4 * * *"
enabled = false
prompt_template = "Later"
"#;

const WEEKLY: &str = r#"
[[schedule]]
name = "weekly-review"
project = "shop"
cron = "0 9 * * 1"
prompt_template = "Review the dependencies"
"#;

async fn jobs_files_load_at_start_and_reload(db: Db) {
    let jobs = tempfile::tempdir().unwrap();
    write(jobs.path(), "nightly.toml", NIGHTLY);
    write(jobs.path(), "weekly.toml", WEEKLY);
    write(jobs.path(), "README.md", "not a job file");

    // At start the project is not registered yet: the schedules are skipped, not fatal.
    let jobs_dir = jobs.path().to_path_buf();
    let app = TestApp::spawn_with(db, |c| c.scheduler.jobs_dir = jobs_dir).await;
    let listed = json_of(app.get("/api/v1/schedules").send().await.unwrap()).await;
    assert_eq!(listed, json!([]));

    create_project(&app, "shop").await;
    let reload = || async {
        aiops::declarations::reconcile(&app.store, &app.config, &app.teams, jobs.path())
            .await
            .map(|reloaded| reloaded.schedules)
    };
    let done = reload().await.unwrap();
    assert_eq!(
        done.created,
        ["nightly-audit", "paused-audit", "weekly-review"]
    );
    assert!(done.skipped.is_empty() && done.removed.is_empty());
    let nightly = get_schedule(&app, "nightly-audit").await;
    assert_eq!(nightly["origin"], "file");
    assert_eq!(nightly["team"], "security");
    assert_eq!(nightly["timezone"], "Europe/Berlin");
    assert!(nightly["next_run_at"].is_string());
    let paused = get_schedule(&app, "paused-audit").await;
    assert_eq!(paused["enabled"], false);
    assert!(paused["next_run_at"].is_null());

    // The files own them: the API may read them but not change them.
    let patched = app
        .req(Method::PATCH, "/api/v1/schedules/nightly-audit")
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    let error = expect_error(patched, StatusCode::CONFLICT, "conflict").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aiops jobs reload")
    );
    let deleted = app
        .req(Method::DELETE, "/api/v1/schedules/nightly-audit")
        .send()
        .await
        .unwrap();
    expect_error(deleted, StatusCode::CONFLICT, "conflict").await;

    // Change one, remove a file, add one; API schedules are left alone.
    create_schedule(&app, schedule_body("by-hand", "0 5 * * *")).await;
    write(
        jobs.path(),
        "nightly.toml",
        &NIGHTLY.replace("0 2 * * *", "30 1 * * *"),
    );
    std::fs::remove_file(jobs.path().join("weekly.toml")).unwrap();
    write(
        jobs.path(),
        "hourly.toml",
        "[[schedule]]\nname = \"hourly-check\"\nproject = \"shop\"\ncron = \"0 * * * *\"\nprompt_template = \"Check\"\n",
    );
    let done = reload().await.unwrap();
    assert_eq!(done.created, ["hourly-check"]);
    assert_eq!(done.updated, ["nightly-audit"]);
    assert_eq!(done.unchanged, ["paused-audit"]);
    assert_eq!(done.removed, ["weekly-review"]);
    let nightly = get_schedule(&app, "nightly-audit").await;
    assert_eq!(nightly["cron"], "30 1 * * *");
    let next = time_of(&nightly["next_run_at"]).with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!((next.hour(), next.minute()), (1, 30), "{nightly}");
    assert_eq!(get_schedule(&app, "by-hand").await["origin"], "api");
    let again = reload().await.unwrap();
    assert_eq!(again.unchanged.len(), 3, "{again:?}");

    // A bad file changes nothing, not even the good changes beside it.
    write(
        jobs.path(),
        "nightly.toml",
        &NIGHTLY.replace("Audit {schedule}", "Audit again {schedule}"),
    );
    write(
        jobs.path(),
        "broken.toml",
        "[[schedule]]\nname = \"broken\"\nproject = \"shop\"\ncron = \"0 61 * * *\"\nprompt_template = \"x\"\n",
    );
    let error = format!("{:#}", reload().await.unwrap_err());
    for part in [
        "broken.toml",
        "schedule \"broken\"",
        "cron:",
        "the hour field has 61; it runs 0-23",
    ] {
        assert!(error.contains(part), "{part:?} missing in: {error}");
    }
    assert_eq!(
        get_schedule(&app, "nightly-audit").await["prompt_template"],
        "Audit {schedule} for {date}"
    );
    std::fs::remove_file(jobs.path().join("broken.toml")).unwrap();

    // A file may not take over a schedule made through the API.
    write(
        jobs.path(),
        "clash.toml",
        "[[schedule]]\nname = \"by-hand\"\nproject = \"shop\"\ncron = \"0 6 * * *\"\nprompt_template = \"x\"\n",
    );
    let error = format!("{:#}", reload().await.unwrap_err());
    assert!(
        error.contains("clash.toml") && error.contains("created through the API"),
        "{error}"
    );
}

async fn a_bad_jobs_file_stops_the_start_and_a_good_one_loads(db: Db) {
    let jobs = tempfile::tempdir().unwrap();
    write(jobs.path(), "nightly.toml", NIGHTLY);
    let fresh = FreshDb::new(db).await;
    fresh
        .store()
        .await
        .insert_project(&register_project("shop"))
        .await
        .unwrap();
    let mut config = fresh.config();
    config.scheduler.jobs_dir = jobs.path().to_path_buf();
    config.scheduler.enabled = false;
    let started = aiops::server::start(config.clone()).await.unwrap();
    let loaded = started.state.store.list_schedules().await.unwrap();
    let names: Vec<&str> = loaded.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nightly-audit", "paused-audit"]);
    assert!(loaded.iter().all(|s| s.origin == Origin::File));

    write(
        jobs.path(),
        "bad.toml",
        "[[schedule]]\nname = \"bad-zone\"\nproject = \"shop\"\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Nowhere\"\nprompt_template = \"x\"\n",
    );
    let error = match aiops::server::start(config).await {
        Ok(_) => panic!("a bad jobs file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    for part in [
        "bad.toml",
        "schedule \"bad-zone\"",
        "timezone:",
        "Europe/Nowhere",
    ] {
        assert!(error.contains(part), "{part:?} missing in: {error}");
    }
}

/// What the jobs directory declares, or why it cannot be read.
fn read_jobs(dir: &Path) -> anyhow::Result<aiops::declarations::Declarations> {
    aiops::declarations::read_dir(dir, &Config::default(), &Teams::default())
}

#[test]
fn jobs_file_errors_name_the_file_the_schedule_and_the_field() {
    let cases = [
        (
            "[[schedule]]\nname = \"a\"\nproject = \"shop\"\nprompt_template = \"x\"\n",
            &["a.toml", "schedule \"a\"", "missing field `cron`"][..],
        ),
        (
            "[[schedule]]\nname = \"a\"\nproject = \"shop\"\ncron = \"0 2 * * *\"\nprompt_template = \"x\"\ncolour = \"blue\"\n",
            &["a.toml", "schedule \"a\"", "unknown field `colour`"][..],
        ),
        (
            "[[schedule]]\nname = \"a\"\nproject = \"shop\"\ncron = \"0 2 * * *\"\nprompt_template = \"x\"\nenabled = \"yes\"\n",
            &["a.toml", "schedule \"a\"", "enabled:"][..],
        ),
        (
            "[[schedule]]\nname = \"a\"\nproject = \"shop\"\ncron = \"0 2 * * *\"\nprompt_template = \"{team}\"\n",
            &["a.toml", "schedule \"a\"", "prompt_template:", "{team}"][..],
        ),
        (
            "[[schedule]]\nproject = \"shop\"\ncron = \"0 2 * * *\"\nprompt_template = \"x\"\n",
            &["a.toml", "schedule #1", "missing field `name`"][..],
        ),
        (
            "[[schedules]]\nname = \"a\"\n",
            &["a.toml", "unknown key `schedules`"][..],
        ),
        ("[[schedule]\nname = \"a\"\n", &["a.toml", "line 1"][..]),
    ];
    for (text, parts) in cases {
        let jobs = tempfile::tempdir().unwrap();
        write(jobs.path(), "a.toml", text);
        let error = format!("{:#}", read_jobs(jobs.path()).unwrap_err());
        for part in parts {
            assert!(error.contains(part), "{part:?} missing in: {error}");
        }
    }

    let jobs = tempfile::tempdir().unwrap();
    write(jobs.path(), "a.toml", WEEKLY);
    write(jobs.path(), "b.toml", WEEKLY);
    let error = format!("{:#}", read_jobs(jobs.path()).unwrap_err());
    assert!(
        error.contains("b.toml")
            && error.contains("already declared in")
            && error.contains("a.toml"),
        "{error}"
    );
}

#[tokio::test]
async fn the_shipped_jobs_are_valid_and_wait_for_their_project() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("jobs");
    let config = Config::default();
    let teams = Teams::load(&root.join("config/teams")).unwrap();
    let declared = aiops::declarations::read_dir(&shipped, &config, &teams).unwrap();
    let names: Vec<&str> = declared
        .schedules
        .iter()
        .map(|d| d.spec.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["weekly-dependency-review", "nightly-security-audit"]
    );
    assert!(
        declared
            .schedules
            .iter()
            .all(|d| d.spec.project == "your-project")
    );
    let rules: Vec<&str> = declared
        .routing_rules
        .iter()
        .map(|d| d.spec.name())
        .collect();
    assert_eq!(rules, ["your-project-issues", "your-service-critical"]);
    assert!(
        declared
            .routing_rules
            .iter()
            .all(|d| d.spec.project() == Some("your-project"))
    );

    let db = FreshDb::new(Db::Sqlite).await;
    let store = db.store().await;
    let done = aiops::declarations::reconcile(&store, &config, &teams, &shipped)
        .await
        .unwrap();
    assert_eq!(done.schedules.skipped.len(), 2, "{done:?}");
    assert_eq!(done.routing_rules.skipped.len(), 2, "{done:?}");
    assert!(store.list_schedules().await.unwrap().is_empty());
    assert!(store.list_routing_rules().await.unwrap().is_empty());

    store
        .insert_project(&register_project("your-project"))
        .await
        .unwrap();
    let done = aiops::declarations::reconcile(&store, &config, &teams, &shipped)
        .await
        .unwrap();
    assert_eq!(done.schedules.created, names);
    assert_eq!(done.routing_rules.created, rules);
    let audit = store.schedule("nightly-security-audit").await.unwrap();
    assert_eq!(audit.team, "security");
    assert!(audit.enabled && audit.next_run_at.is_some());
}

// ---------------------------------------------------------------------------------------
// aiops jobs reload
// ---------------------------------------------------------------------------------------

/// The real binary in `cwd`, blind to the caller's AIOPS_* settings.
fn aiops(cwd: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"));
    cmd.current_dir(cwd).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AIOPS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.output().expect("run aiops")
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_jobs_reload_reconciles_and_reports() {
    let sandbox = tempfile::tempdir().unwrap();
    let data = sandbox.path().join("data");
    let jobs = sandbox.path().join("my-jobs");
    std::fs::create_dir(&jobs).unwrap();
    write(&jobs, "nightly.toml", NIGHTLY);
    let data_arg = data.to_str().unwrap();
    let jobs_arg = jobs.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", data_arg]);
        aiops(sandbox.path(), &all)
    };

    let help = aiops(sandbox.path(), &["jobs", "reload", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--jobs-dir") && help.contains("--data-dir"),
        "{help}"
    );

    let added = run(&[
        "project",
        "add",
        "shop",
        "--repo-url",
        "https://github.com/acme/shop.git",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let reloaded = run(&["jobs", "reload", "--jobs-dir", jobs_arg]);
    let stderr = String::from_utf8_lossy(&reloaded.stderr);
    assert!(reloaded.status.success(), "{stderr}");
    assert!(stderr.contains("2 created"), "{stderr}");
    let report: Value = serde_json::from_slice(&reloaded.stdout).unwrap();
    assert_eq!(
        report["schedules"]["created"],
        json!(["nightly-audit", "paused-audit"])
    );

    let config = aiops::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    let store = aiops::server::open_store(&config).await.unwrap();
    let schedule = store.schedule("nightly-audit").await.unwrap();
    assert_eq!(schedule.origin, Origin::File);
    assert!(schedule.next_run_at.is_some());

    write(
        &jobs,
        "nightly.toml",
        &NIGHTLY.replace("team = \"security\"", "team = \"Security Team\""),
    );
    let refused = run(&["jobs", "reload", "--jobs-dir", jobs_arg]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    for part in ["nightly.toml", "schedule \"nightly-audit\"", "team:"] {
        assert!(stderr.contains(part), "{part:?} missing in: {stderr}");
    }
    assert_eq!(
        store.schedule("nightly-audit").await.unwrap().team,
        "security"
    );

    let missing = run(&["jobs", "reload", "--jobs-dir", "/does/not/exist"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--jobs-dir"), "{stderr}");

    // Each reload is audited with its outcome.
    let audit = store
        .list_audit(&AuditFilter {
            target: Some("jobs".into()),
            principal: None,
            since: None,
            until: None,
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    let outcomes: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("cli jobs reload", "ok"),
            ("cli jobs reload", "error"),
            ("cli jobs reload", "error")
        ]
    );
}

on_both_databases!(
    crud_with_next_run_at,
    invalid_schedules_are_refused_with_the_reason,
    a_schedule_with_seconds_fires_on_time,
    overlap_skip_waits_for_the_open_task,
    missed_runs_after_downtime_follow_the_policy,
    jobs_files_load_at_start_and_reload,
    a_bad_jobs_file_stops_the_start_and_a_good_one_loads,
);
