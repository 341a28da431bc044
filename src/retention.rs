//! Retention: events, run logs and webhook deliveries older than their configured ages are
//! pruned in small batches, each its own short statement, so the service never waits on it.
//!
//! Owns the rule of what is old; the deletes themselves are `store::retention`'s. Tasks,
//! runs (their tokens and cost) and approvals are kept, so analytics keep their history.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::RetentionConfig;
use crate::error::Result;
use crate::store::Store;

/// How much one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub events: u64,
    pub run_logs: u64,
    pub deliveries: u64,
}

/// The moment before which rows `days` old are pruned; None when `days` is 0 (kept forever).
fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(i64::from(days)))
}

/// Removes, batch by batch, whatever is older than its age at `now`; waits
/// `retention.pause_ms` (or at least yields) between batches so other work goes first.
pub async fn prune_once(
    store: &Store,
    config: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Pruned> {
    let batch = i64::from(config.batch_size);
    let pause = Duration::from_millis(config.pause_ms);
    let mut pruned = Pruned::default();
    if let Some(before) = cutoff(now, config.events_days) {
        pruned.events = in_batches(batch, pause, || store.prune_events(before, batch)).await?;
    }
    if let Some(before) = cutoff(now, config.run_logs_days) {
        pruned.run_logs = in_batches(batch, pause, || store.prune_run_logs(before, batch)).await?;
    }
    if let Some(before) = cutoff(now, config.deliveries_days) {
        pruned.deliveries =
            in_batches(batch, pause, || store.prune_deliveries(before, batch)).await?;
    }
    Ok(pruned)
}

/// Runs `step` until a batch comes back short, `pause` apart; returns the rows it removed.
async fn in_batches<F, Fut>(batch: i64, pause: Duration, mut step: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let removed = step().await?;
        total += removed;
        if removed < batch as u64 {
            return Ok(total);
        }
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Prunes every `retention.interval_secs` until `shutdown`.
pub async fn run_retention(
    store: Store,
    config: RetentionConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let every = Duration::from_secs(config.interval_secs);
    loop {
        match prune_once(&store, &config, Utc::now()).await {
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(
                    events = pruned.events,
                    run_logs = pruned.run_logs,
                    deliveries = pruned.deliveries,
                    "pruned old rows"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune old rows"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
