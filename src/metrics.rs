//! The process's metrics for Prometheus: the one recorder, every metric's name and labels
//! (one function per metric, so names are spelled only here), and the text format.
//!
//! Counters and histograms count what this process did: HTTP requests, task outcomes and
//! durations, tokens and cost of runs, approval waits, webhook deliveries, notification
//! attempts, the size of group commits. Gauges of shared state (queue depth, running tasks) are read from the store
//! when `/metrics` is scraped, so every process reports the same figure for them.
//! Labels hold only bounded values (route templates, project names, enum names), never an
//! id, a path with ids in it, or a secret.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{Error, Result};
use crate::model::{Channel, ChannelKind, Decision, Priority, RunTotals, TaskStatus};
use crate::store::{Backend, Store};

/// `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const HTTP_REQUESTS: &str = "aiops_http_requests_total";
const HTTP_DURATION: &str = "aiops_http_request_duration_seconds";
const TASK_OUTCOMES: &str = "aiops_task_outcomes_total";
const TASK_DURATION: &str = "aiops_task_duration_seconds";
const RUNS: &str = "aiops_runs_total";
const TOKENS: &str = "aiops_tokens_total";
const RUN_COST: &str = "aiops_run_cost_usd";
const APPROVAL_WAIT: &str = "aiops_approval_wait_seconds";
const WEBHOOK_DELIVERIES: &str = "aiops_webhook_deliveries_total";
const NOTIFICATIONS: &str = "aiops_notification_attempts_total";
const INTAKE_BATCH: &str = "aiops_intake_batch_size";
const INTAKE_BULK: &str = "aiops_intake_bulk_writes_total";
const QUEUE_DEPTH: &str = "aiops_queue_depth";
const TASKS_RUNNING: &str = "aiops_tasks_running";
const SQLITE_LOCK_WAITS: &str = "aiops_sqlite_lock_waits_total";

/// The recorder of this process, installed by the first call to [`install`].
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). A process
/// that never calls it records nothing.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let minutes = [
            1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
        ];
        let hours = [3600.0, 7200.0, 14_400.0, 28_800.0, 86_400.0, 259_200.0];
        let long: Vec<f64> = minutes.iter().chain(hours.iter()).copied().collect();
        let http = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let cost = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0];
        let writes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
        let builder = [
            (TASK_DURATION, &long[..]),
            (APPROVAL_WAIT, &long[..]),
            (HTTP_DURATION, &http[..]),
            (RUN_COST, &cost[..]),
            (INTAKE_BATCH, &writes[..]),
        ]
        .into_iter()
        .try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
        });
        let recorder = builder
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness's) may be installed already: then this process
        // renders an empty page rather than failing to start.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The text page: this process's counters and histograms, with the gauges of shared state
/// read from the store now.
pub async fn render(store: &Store) -> Result<String> {
    let handle = HANDLE
        .get()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("metrics::install was not called")))?;
    let queued = store.queued_tasks_by_priority().await?;
    for priority in Priority::ALL {
        let depth = queued
            .iter()
            .find(|(p, _)| p == priority)
            .map_or(0, |(_, n)| *n);
        gauge!(QUEUE_DEPTH, "priority" => priority.as_str()).set(depth as f64);
    }
    for (project, running) in store.running_tasks_by_project().await? {
        gauge!(TASKS_RUNNING, "project" => project).set(running as f64);
    }
    if store.backend() == Backend::Sqlite {
        counter!(SQLITE_LOCK_WAITS).absolute(crate::store::sqlite_lock_waits());
    }
    Ok(handle.render())
}

/// One HTTP request answered: its method, route template (`unmatched` for none), status.
/// A template's `{id}` is written `:id`, since some text-format parsers stop a label set at
/// the first `}`.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let route = route.replace('{', ":").replace('}', "");
    let route = route.as_str();
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, "route" => route.to_string()).record(elapsed.as_secs_f64());
}

/// A task of `project` ended as `outcome`, `took` after it was created.
pub fn task_ended(project: &str, outcome: TaskStatus, took: Option<Duration>) {
    let labels = [
        ("project", project.to_string()),
        ("outcome", outcome.as_str().to_string()),
    ];
    counter!(TASK_OUTCOMES, &labels).increment(1);
    if let Some(took) = took {
        histogram!(TASK_DURATION, &labels).record(took.as_secs_f64());
    }
}

/// A run of a task of `project` finished: its tokens by kind and its cost (the cost
/// histogram's `_sum` is the project's spend).
pub fn run_finished(project: &str, totals: &RunTotals) {
    counter!(RUNS, "project" => project.to_string()).increment(1);
    for (kind, tokens) in [
        ("input", totals.input_tokens),
        ("output", totals.output_tokens),
        ("cache_read", totals.cache_read_tokens),
        ("cache_write", totals.cache_creation_tokens),
    ] {
        let labels = [("project", project.to_string()), ("kind", kind.to_string())];
        counter!(TOKENS, &labels).increment(u64::try_from(tokens).unwrap_or(0));
    }
    histogram!(RUN_COST, "project" => project.to_string()).record(totals.cost_usd);
}

/// An approval request was decided `waited` after it was filed.
pub fn approval_decided(decision: Decision, channel: Channel, waited: Duration) {
    let labels = [
        ("decision", decision.as_str().to_string()),
        ("channel", channel.as_str().to_string()),
    ];
    histogram!(APPROVAL_WAIT, &labels).record(waited.as_secs_f64());
}

/// A webhook delivery (or one alert of it) from `source` was recorded as `outcome`.
pub fn webhook_delivery(source: &str, outcome: &str) {
    let labels = [
        ("source", source.to_string()),
        ("outcome", outcome.to_string()),
    ];
    counter!(WEBHOOK_DELIVERIES, &labels).increment(1);
}

/// One group commit (`store::group_commit`): how many writes (deliveries, task creations)
/// shared its transaction, by database.
pub fn intake_batch(backend: Backend, writes: usize) {
    let store = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    histogram!(INTAKE_BATCH, "store" => store).record(writes as f64);
}

/// Writes of one kind (deliveries, task creations) in a group commit: written `together` in
/// multi-row statements, or each `alone` after those failed, by database.
pub fn intake_bulk(backend: Backend, writes: usize, together: bool) {
    let store = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let written = if together { "together" } else { "alone" };
    counter!(INTAKE_BULK, "store" => store, "written" => written).increment(writes as u64);
}

/// One attempt to send a notification through a channel of `kind`: `sent`, `retry` or `dead`.
pub fn notification_attempt(kind: ChannelKind, outcome: &str) {
    let labels = [
        ("channel", kind.as_str().to_string()),
        ("outcome", outcome.to_string()),
    ];
    counter!(NOTIFICATIONS, &labels).increment(1);
}
