//! Shared reads: callers that ask the same read at the same time share one statement, and
//! each is answered by a read that began after it asked.
//!
//! While a read of a key runs, callers asking for that key wait for the next one, which
//! starts as soon as the running one ends and answers all of them. So at most one read of a
//! key is in flight, and no caller is answered with rows read before it asked: whatever was
//! committed before a request arrived is in its answer, as with a read of its own. Reads of
//! different keys run side by side.
//!
//! Under a flood of webhook deliveries from one repository this is one statement, and one
//! hand-off to a database connection, per turn instead of per delivery.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// What a caller is answered: the value, or the read's error as text (an error is not
/// `Clone`, and every waiter of a read gets it).
type Answer<V> = std::result::Result<V, String>;

/// A read by key, run with a context `C` (such as the store).
pub type ReadFn<C, K, V> = fn(C, K) -> BoxFuture<'static, Result<V>>;

/// A read shared by the callers that ask it at the same time.
pub struct SharedRead<C, K, V> {
    context: C,
    read: ReadFn<C, K, V>,
    /// Per key with a read running: the callers waiting for the next read of it.
    waiting: Mutex<HashMap<K, Vec<oneshot::Sender<Answer<V>>>>>,
}

impl<C, K, V> std::fmt::Debug for SharedRead<C, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRead").finish_non_exhaustive()
    }
}

impl<C, K, V> SharedRead<C, K, V>
where
    C: Clone + Send + Sync + 'static,
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// A shared read of `read`, run with `context`.
    pub fn new(context: C, read: ReadFn<C, K, V>) -> Arc<Self> {
        Arc::new(Self {
            context,
            read,
            waiting: Mutex::default(),
        })
    }

    /// The value of `key`, read after this call began.
    pub async fn get(self: &Arc<Self>, key: K) -> Result<V> {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            match waiting.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(answer);
                    false
                }
                None => {
                    waiting.insert(key.clone(), vec![answer]);
                    true
                }
            }
        };
        if first {
            // A task of its own, so that a caller that stops waiting leaves nobody stranded.
            tokio::spawn(Arc::clone(self).read_while_asked(key));
        }
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Internal(anyhow::anyhow!(e))),
            Err(_) => Err(Error::Internal(anyhow::anyhow!(
                "the shared read ended without an answer"
            ))),
        }
    }

    /// Reads `key` for everyone waiting for it, again and again until nobody is.
    async fn read_while_asked(self: Arc<Self>, key: K) {
        // A read that panics takes its key's waiters with it: they are told, and the next
        // caller starts afresh.
        let _forget = ForgetOnPanic {
            shared: &self,
            key: &key,
        };
        loop {
            let waiters = {
                let mut waiting = self.waiting.lock().expect("not poisoned");
                let waiters = waiting
                    .get_mut(&key)
                    .map(std::mem::take)
                    .unwrap_or_default();
                if waiters.is_empty() {
                    waiting.remove(&key);
                    return;
                }
                waiters
            };
            let value = (self.read)(self.context.clone(), key.clone())
                .await
                .map_err(|e| e.to_string());
            for waiter in waiters {
                let _ = waiter.send(value.clone());
            }
        }
    }
}

#[cfg(test)]
impl<C, K: Eq + Hash, V> SharedRead<C, K, V> {
    /// How many callers wait for the next read of `key`.
    fn waiting_for(&self, key: &K) -> usize {
        let waiting = self.waiting.lock().expect("not poisoned");
        waiting.get(key).map_or(0, Vec::len)
    }
}

/// Drops the waiters of a key whose read panicked.
struct ForgetOnPanic<'a, C, K: Eq + Hash, V> {
    shared: &'a SharedRead<C, K, V>,
    key: &'a K,
}

impl<C, K: Eq + Hash, V> Drop for ForgetOnPanic<'_, C, K, V> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(mut waiting) = self.shared.waiting.lock()
        {
            waiting.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A read that counts its runs and, while `hold` is set, waits for `release` before
    /// answering its key with the number of the run.
    struct Probe {
        runs: AtomicUsize,
        started: tokio::sync::Notify,
        release: tokio::sync::Semaphore,
    }

    impl Default for Probe {
        fn default() -> Self {
            Self {
                runs: AtomicUsize::new(0),
                started: tokio::sync::Notify::new(),
                release: tokio::sync::Semaphore::new(0),
            }
        }
    }

    fn probe_read(probe: Arc<Probe>, key: &'static str) -> BoxFuture<'static, Result<String>> {
        Box::pin(async move {
            let run = probe.runs.fetch_add(1, Ordering::SeqCst) + 1;
            probe.started.notify_one();
            probe.release.acquire().await.expect("open").forget();
            if key == "broken" {
                return Err(Error::NotFound("key broken".into()));
            }
            Ok(format!("{key}#{run}"))
        })
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn callers_during_a_read_share_the_next_one_and_none_gets_an_older_answer() {
        let probe = Arc::new(Probe::default());
        let shared = SharedRead::new(Arc::clone(&probe), probe_read);
        let first = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move { shared.get("repo").await }
        });
        tokio::time::timeout(WAIT, probe.started.notified())
            .await
            .expect("the first read starts");
        // Asked while read 1 runs: answered by read 2, all of them by that one read.
        let later: Vec<_> = (0..5)
            .map(|_| {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { shared.get("repo").await })
            })
            .collect();
        tokio::time::timeout(WAIT, async {
            while shared.waiting_for(&"repo") < 5 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the five callers wait for the next read");
        probe.release.add_permits(2);
        let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
        assert_eq!(first.unwrap(), "repo#1");
        for answer in later {
            let answer = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
            assert_eq!(answer.unwrap(), "repo#2");
        }
        assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
        // Nobody waits now: the next caller reads afresh.
        probe.release.add_permits(1);
        let again = tokio::time::timeout(WAIT, shared.get("repo"))
            .await
            .unwrap();
        assert_eq!(again.unwrap(), "repo#3");
    }

    #[tokio::test]
    async fn keys_are_read_apart_and_an_error_reaches_each_waiter() {
        let probe = Arc::new(Probe::default());
        let shared = SharedRead::new(Arc::clone(&probe), probe_read);
        probe.release.add_permits(2);
        // The three ask before either read begins (one thread runs this test): one read
        // per key.
        let asked =
            async { tokio::join!(shared.get("a"), shared.get("broken"), shared.get("broken")) };
        let (a, b, c) = tokio::time::timeout(WAIT, asked).await.expect("answered");
        // Side by side: either may have been the first to run.
        let a = a.unwrap();
        assert!(a == "a#1" || a == "a#2", "{a}");
        for answer in [b, c] {
            let error = answer.unwrap_err().to_string();
            assert!(error.contains("key broken"), "{error}");
        }
        assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
    }
}
