//! How a SQLite connection waits for a lock another connection holds (the write lock,
//! mostly): it tries again after a short step, for at most the configured busy timeout.
//!
//! SQLite's own busy handler, which `busy_timeout` installs, sleeps 1, 2, 5, 10, 15, 20,
//! 25, 25, 25, 50, 50, then 100 ms between tries. A writer that meets the lock held for
//! 3 ms has then slept 8 ms, and one that meets a long commit sleeps 25–100 ms at a time:
//! it waits long after the lock is free. Measured on the slot release bench (stop 28),
//! those sleeps were the release → start tail (p99 97–126 ms against a p50 of 17 ms). Here a
//! waiter tries again every 100 µs for its first 2 ms, then every millisecond: it has the
//! lock within a millisecond of its release, and a wait costs at most a thousand wake-ups
//! a second of the connection's own thread.
//!
//! Many waiters polling would take the CPU from the one holding the lock (an alert storm of
//! 16 concurrent writers spent twice the CPU so), so a store's own write transactions take
//! turns before they reach the lock (`Store::begin`), and only the writes that take no turn
//! (single statements, the queue's, other processes') wait here.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

/// A waiter's step while it has waited less than [`SHORT_FOR`].
const SHORT_STEP: Duration = Duration::from_micros(100);
/// How long a waiter takes short steps.
const SHORT_FOR: Duration = Duration::from_millis(2);
/// A waiter's step after that.
const LONG_STEP: Duration = Duration::from_millis(1);

/// Lock waits of this process' SQLite connections so far (for its metrics).
static WAITS: AtomicU64 = AtomicU64::new(0);

/// How many times a SQLite connection of this process found a lock taken and waited.
pub fn waits() -> u64 {
    WAITS.load(Ordering::Relaxed)
}

thread_local! {
    /// When the current wait of the connection on this thread began. sqlx runs each SQLite
    /// connection on a thread of its own, so this is that connection's.
    static WAIT_BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Installs the busy handler on `db`, giving up after `timeout` of waiting for one lock
/// (the statement then fails with SQLITE_BUSY, as with `busy_timeout`).
///
/// # Safety
/// `db` must be an open connection the caller has exclusive use of for this call (a
/// `LockedSqliteHandle`'s raw handle).
pub(super) unsafe fn install(db: *mut ffi::sqlite3, timeout: Duration) -> c_int {
    let millis = usize::try_from(timeout.as_millis()).unwrap_or(usize::MAX);
    // The timeout travels as the handler's argument, so nothing is allocated or freed.
    let arg = std::ptr::without_provenance_mut::<c_void>(millis);
    // SAFETY: `db` is open and ours for this call (the caller's promise); `busy` is a
    // function of the signature SQLite asks for and reads its argument only as a number.
    unsafe { ffi::sqlite3_busy_handler(db, Some(busy), arg) }
}

/// SQLite's busy callback: `tries` is how often it was called before for this lock; 1 asks
/// SQLite to try again, 0 to give up.
extern "C" fn busy(timeout_millis: *mut c_void, tries: c_int) -> c_int {
    let timeout = Duration::from_millis(timeout_millis.addr() as u64);
    let now = Instant::now();
    let began = WAIT_BEGAN.with(|began| match began.get() {
        Some(at) if tries > 0 => at,
        _ => {
            WAITS.fetch_add(1, Ordering::Relaxed);
            began.set(Some(now));
            now
        }
    });
    match step(now - began, timeout) {
        Some(step) => {
            std::thread::sleep(step);
            1
        }
        None => 0,
    }
}

/// How long to sleep before the next try after waiting `waited`; None once the wait has
/// reached `timeout`.
fn step(waited: Duration, timeout: Duration) -> Option<Duration> {
    let left = timeout.checked_sub(waited).filter(|left| !left.is_zero())?;
    let step = if waited < SHORT_FOR {
        SHORT_STEP
    } else {
        LONG_STEP
    };
    Some(step.min(left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::store::Store;

    /// Waits (with a deadline) until some connection of this process has begun a lock wait
    /// after `before` of them.
    async fn a_wait_began_after(before: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while waits() <= before {
            assert!(
                Instant::now() < deadline,
                "no connection waited for the lock"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_writer_behind_the_lock_waits_through_this_handler_until_it_frees_or_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("busy.db").display());
        let timing_out = |busy_timeout_ms| StoreConfig {
            busy_timeout_ms,
            ..StoreConfig::default()
        };
        let store = Store::connect(&url, &timing_out(10_000)).await.unwrap();
        let impatient = Store::connect(&url, &timing_out(300)).await.unwrap();
        let holder = store.begin().await.unwrap();

        // While the lock is held, a second writer waits, then gives up at its timeout.
        let before = waits();
        let waiter = tokio::spawn(async move { impatient.begin().await.map(drop) });
        a_wait_began_after(before).await;
        let error = waiter.await.unwrap().unwrap_err();
        let code = error.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("5"), "SQLITE_BUSY, not {error}");

        // Once it frees, the writer waiting for it has it. (Another store: this one's own
        // transactions take turns before they reach the lock.)
        let patient = Store::connect(&url, &timing_out(10_000)).await.unwrap();
        let before = waits();
        let waiter = tokio::spawn(async move { patient.begin().await.map(drop) });
        a_wait_began_after(before).await;
        holder.commit().await.unwrap();
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_stores_write_transactions_take_turns_before_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("turns.db").display()
        );
        let settings = StoreConfig {
            busy_timeout_ms: 300,
            ..StoreConfig::default()
        };
        let store = Store::connect(&url, &settings).await.unwrap();
        let holder = store.begin().await.unwrap();
        let error = store.begin().await.map(drop).unwrap_err();
        assert!(error.to_string().contains("no turn to write"), "{error}");

        // A turn given back by a transaction dropped unfinished goes to the next in line.
        let next = tokio::spawn({
            let store = store.clone();
            async move { store.begin().await.map(drop) }
        });
        drop(holder);
        next.await.unwrap().unwrap();
    }

    #[test]
    fn a_waiter_steps_short_then_long_and_stops_at_its_timeout() {
        let timeout = Duration::from_millis(50);
        assert_eq!(step(Duration::ZERO, timeout), Some(SHORT_STEP));
        assert_eq!(step(Duration::from_micros(1900), timeout), Some(SHORT_STEP));
        assert_eq!(step(Duration::from_millis(2), timeout), Some(LONG_STEP));
        assert_eq!(
            step(Duration::from_micros(49_600), timeout),
            Some(Duration::from_micros(400))
        );
        assert_eq!(step(timeout, timeout), None);
        assert_eq!(step(Duration::from_secs(1), timeout), None);
        assert_eq!(step(Duration::ZERO, Duration::ZERO), None);
    }
}
