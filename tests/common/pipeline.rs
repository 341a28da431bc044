//! Tasks run through the pipeline simulator (`examples/party_sim.rs`) over the real API:
//! the app with workers, a project, a task, and waiting for the task's status.

use std::path::Path;
use std::time::Duration;

use aiops::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Db, TestApp, wait_for};

/// How long a pipeline step may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(60);

/// A simulator command line: `claude_args` as `claude` takes them, then `flags`.
pub fn sim_command(claude_args: &str, flags: &str) -> String {
    format!(
        "{} {claude_args} --output-format stream-json --verbose --sim-phase-delay-ms 10 {flags}",
        super::simulator().display()
    )
}

/// The app with four workers running the simulator with `flags`, for a task and for the
/// resume after a decision, then `adjust`ed.
pub async fn engine_app(db: Db, flags: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let command = sim_command(r#"-p "/ai-party:party --team {team} {prompt}""#, flags);
    let resume_command = sim_command("-p {decision} --resume {claude_session_id}", flags);
    TestApp::spawn_with(db, |c| {
        c.engine.workers = 4;
        c.engine.command = command;
        c.engine.resume_command = resume_command;
        c.engine.queue_poll_ms = 100;
        c.engine.ingest_interval_ms = 100;
        c.engine.heartbeat_secs = 1;
        c.engine.slot_ttl_secs = 5;
        c.engine.env_passthrough = vec!["PATH".into()];
        adjust(c);
    })
    .await
}

/// Registers project `name` at the local checkout `repo`, with `extra` fields.
pub async fn add_project(app: &TestApp, name: &str, repo: &Path, extra: Value) {
    let mut body = json!({"name": name, "local_path": repo});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let response = app
        .post("/api/v1/projects")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
}

/// Creates a bugfix task; returns its id.
pub async fn create_task(app: &TestApp, project: &str, prompt: &str, priority: &str) -> i64 {
    let response = app
        .post("/api/v1/tasks")
        .json(
            &json!({"project": project, "prompt": prompt, "priority": priority, "team": "bugfix"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// The task as `GET /api/v1/tasks/{id}` shows it.
pub async fn task_detail(app: &TestApp, id: i64) -> Value {
    app.get_json(&format!("/api/v1/tasks/{id}")).await
}

/// Waits until the task has one of `statuses` and no run of it is still going (the
/// pipeline's files can say "awaiting approval" a moment before its process exits).
pub async fn wait_status(app: &TestApp, id: i64, statuses: &[&str]) -> Value {
    wait_for(
        &format!("task {id} to reach {statuses:?}"),
        WAIT,
        || async {
            let detail = task_detail(app, id).await;
            let settled = detail["runs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| !r["finished_at"].is_null());
            (settled && statuses.contains(&detail["status"].as_str().unwrap_or_default()))
                .then_some(detail)
        },
    )
    .await
}
