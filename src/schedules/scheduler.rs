//! The scheduler: a loop in each process that turns due schedules into tasks.
//!
//! Any number of processes may run it on one store, and each tick still becomes at most
//! one task: the task's dedup key names the schedule and the tick, so another process'
//! insert for the same tick is a conflict, and a compare-and-set on `last_fired_at` lets
//! exactly one process move the schedule on. The loop keeps no state between passes and
//! holds no lock while it sleeps; it wakes at the earliest `next_run_at`, when this process
//! changes a schedule, and at least every `scheduler.max_sleep_ms`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Missed, Overlap, Schedule, dedup_key_prefix};
use crate::config::SchedulerConfig;
use crate::error::{Error, Result};
use crate::store::Store;

/// Pause after a pass in which something failed, so a broken schedule is retried without
/// spinning.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The running scheduler loop of this process.
pub struct Scheduler {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Starts the loop; its first pass handles whatever fell due while no scheduler ran.
    pub fn start(store: Store, settings: SchedulerConfig) -> Scheduler {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(store, settings, shutdown.clone()));
        Scheduler { shutdown, handle }
    }

    /// Stops the loop after the pass in progress, and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

/// What a pass did about one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Created this task.
    Fired(i64),
    /// Another process had created the task for this tick.
    AlreadyFired,
    /// The schedule's previous task is still open and its overlap policy is `skip`.
    SkippedOverlap,
    /// The tick was missed (downtime) and the schedule's missed policy is `skip`.
    SkippedMissed,
}

/// One due schedule handled by a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub schedule: String,
    /// The tick acted on: the latest one due.
    pub tick: DateTime<Utc>,
    pub action: Action,
    /// True when this process moved the schedule on to its next tick.
    pub advanced: bool,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    pub handled: Vec<Handled>,
    /// Due schedules that failed; they stay due and are tried again.
    pub failed: usize,
}

async fn run(store: Store, settings: SchedulerConfig, shutdown: CancellationToken) {
    let mut changes = store.subscribe_schedule_changes();
    let max_sleep = Duration::from_millis(settings.max_sleep_ms);
    loop {
        let pause = match run_due(&store, &settings, Utc::now()).await {
            Ok(pass) if pass.failed == 0 => until_next_tick(&store, max_sleep).await,
            Ok(_) => RETRY_AFTER_FAILURE.min(max_sleep),
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: cannot read the due schedules");
                RETRY_AFTER_FAILURE.min(max_sleep)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
            Ok(()) = changes.changed() => {}
        }
    }
}

/// How long to sleep: until the earliest next tick, at most `max_sleep`.
async fn until_next_tick(store: &Store, max_sleep: Duration) -> Duration {
    match store.next_schedule_tick().await {
        Ok(Some(tick)) => (tick - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(max_sleep),
        Ok(None) => max_sleep,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler: cannot read the next tick");
            max_sleep
        }
    }
}

/// One pass at `now`: handles every enabled schedule whose next tick is due. A schedule
/// that fails is logged and stays due for the next pass.
pub async fn run_due(
    store: &Store,
    settings: &SchedulerConfig,
    now: DateTime<Utc>,
) -> Result<Pass> {
    let mut pass = Pass::default();
    for schedule in store.due_schedules(now).await? {
        match handle_due(store, settings, &schedule, now).await {
            Ok(handled) => {
                match handled.action {
                    Action::Fired(task) => {
                        tracing::info!(schedule = schedule.name, tick = %handled.tick, task, "schedule fired")
                    }
                    Action::AlreadyFired => {}
                    skipped => {
                        tracing::info!(schedule = schedule.name, tick = %handled.tick, ?skipped, "schedule tick skipped")
                    }
                }
                pass.handled.push(handled);
            }
            Err(e) => {
                tracing::warn!(schedule = schedule.name, error = %e, "scheduler: cannot handle a due schedule");
                pass.failed += 1;
            }
        }
    }
    Ok(pass)
}

/// Acts on the latest due tick of `schedule` and moves it on to the first tick after `now`.
///
/// Ticks between `next_run_at` and `now` other than the latest get no task of their own:
/// after downtime the missed policy decides about the latest (one task, or none), and a
/// tick that is not late (within `scheduler.missed_after_secs`) always fires.
async fn handle_due(
    store: &Store,
    settings: &SchedulerConfig,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Handled> {
    let due = schedule.next_run_at.ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "schedule {:?} is due without a next run",
            schedule.name
        ))
    })?;
    let timing = schedule.timing()?;
    let tick = timing
        .latest_at_or_before(now)
        .filter(|latest| *latest >= due)
        .unwrap_or(due);
    let late = (now - tick).num_seconds() > settings.missed_after_secs as i64;
    let action = if late && schedule.missed == Missed::Skip {
        Action::SkippedMissed
    } else if schedule.overlap == Overlap::Skip
        && store
            .has_open_task_with_dedup_prefix(&dedup_key_prefix(schedule.id))
            .await?
    {
        Action::SkippedOverlap
    } else {
        match crate::tasks::enqueue(store, &schedule.task_for_tick(&timing, tick)?).await {
            Ok(task) => Action::Fired(task.id),
            Err(Error::Conflict(_)) => Action::AlreadyFired,
            Err(e) => return Err(e),
        }
    };
    let next = timing.next_after(now);
    if next.is_none() {
        tracing::warn!(
            schedule = schedule.name,
            "schedule has no tick after this one; it will not fire again"
        );
    }
    let advanced = store
        .advance_schedule(schedule.id, schedule.last_fired_at, due, tick, next)
        .await?;
    Ok(Handled {
        schedule: schedule.name.clone(),
        tick,
        action,
        advanced,
    })
}
