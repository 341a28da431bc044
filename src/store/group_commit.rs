//! Group commit: concurrent writes share one transaction, so a burst of webhook deliveries
//! and task creations costs one commit (one fsync) instead of one each.
//!
//! A caller hands its write to [`Store::write_grouped`] and waits. One background task
//! ([`Store::start_group_commit`], started with the service) takes the first waiting write,
//! gathers more for at most `window` (at most `max` in all), opens one transaction, runs each
//! write in its own savepoint — a write that fails is rolled back alone and gets its own
//! error, the others go on — commits once, and only then answers every caller. Nothing is
//! answered before the commit returns. When the commit fails, every write of the batch gets
//! that error (none of them was acknowledged); when the transaction itself breaks (the
//! connection is lost), the writes that ran in it get the error and the rest go on in the
//! next transaction. Without a running committer a write runs in a transaction of its own.
//!
//! On PostgreSQL a batch first takes an advisory lock, so the batches of several nodes take
//! turns, and writes its events last, just before the commit: the event order lock is then
//! the last lock the batch takes, as in every other transaction, so a batch that holds many
//! rows never waits for a row while holding that lock. This module runs the callers' writes
//! and decides nothing about them.

use std::any::Any;
use std::collections::VecDeque;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Backend, Store, Tx};
use crate::error::{Error, Result};

/// Key of the PostgreSQL advisory lock a batch holds, so batches of several nodes take turns.
const BATCH_LOCK: i64 = 0x6169_6f70_7362_6174;

/// Writes waiting for the committer at most; a caller past it waits to hand in its own.
const QUEUE: usize = 4096;

/// How the committer gathers a batch.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// How long a batch's first write waits for others.
    pub window: Duration,
    /// Writes in one transaction at most; below 2 there is no committer.
    pub max: usize,
}

/// What a write answers, its type erased on the way through the committer.
type Erased = Box<dyn Any + Send>;

/// A write, erased: runs inside the transaction it is given.
type Work = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<Erased>> + Send>;

/// A write handed to the committer and where its answer goes.
pub(crate) struct Item {
    work: Work,
    reply: oneshot::Sender<Result<Erased>>,
}

/// The running committer of a store; stopping it commits and answers what was handed in
/// before, and later writes run in transactions of their own.
pub struct GroupCommitter {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl GroupCommitter {
    /// Stops gathering and waits until every write handed in has been answered.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl Store {
    /// Starts this store's group committer: from now on [`Store::write_grouped`] on this value
    /// and on its clones made afterwards shares transactions. `observe` is told the size of
    /// each batch. None (and nothing started) when `settings.max` is below 2.
    pub fn start_group_commit(
        &mut self,
        settings: GroupCommitSettings,
        observe: fn(Backend, usize),
    ) -> Option<GroupCommitter> {
        if settings.max < 2 {
            return None;
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let committer = Committer {
            store: self.clone(),
            settings,
            observe,
        };
        let task = tokio::spawn(committer.run(receiver, stop.clone()));
        self.group_commit = Some(sender);
        Some(GroupCommitter { stop, task })
    }

    /// Runs `write` in a transaction shared with other concurrent writes (see the module
    /// comment), or in one of its own when no committer runs, and answers what it returned
    /// once that transaction has committed. A write that fails changes nothing.
    pub async fn write_grouped<T, W>(&self, write: W) -> Result<T>
    where
        T: Send + 'static,
        W: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let work = erase(move |tx| {
            Box::pin(async move { write(tx).await.map(|value| Box::new(value) as Erased) })
        });
        let (reply, answer) = oneshot::channel();
        let item = Item { work, reply };
        // A stopped committer hands the write back; it then runs alone.
        let alone = match &self.group_commit {
            Some(committer) => committer.send(item).await.err().map(|returned| returned.0),
            None => Some(item),
        };
        if let Some(item) = alone {
            commit_batch(self, VecDeque::from([item])).await;
        }
        let answer = answer.await.map_err(|_| {
            Error::Internal(anyhow::anyhow!(
                "the group committer stopped before this write was committed"
            ))
        })??;
        Ok(*answer
            .downcast::<T>()
            .expect("a write is answered with the type it was handed in with"))
    }
}

/// Boxes a write whose answer is already erased (a function, so the closure's signature is
/// inferred from this bound).
fn erase<W>(write: W) -> Work
where
    W: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<Erased>> + Send + 'static,
{
    Box::new(write)
}

/// The background task: gathers batches and commits them, one at a time.
struct Committer {
    store: Store,
    settings: GroupCommitSettings,
    observe: fn(Backend, usize),
}

impl Committer {
    async fn run(self, mut receiver: mpsc::Receiver<Item>, stop: CancellationToken) {
        while let Some(first) = next(&mut receiver, &stop).await {
            let batch = self.gather(first, &mut receiver).await;
            (self.observe)(self.store.backend(), batch.len());
            commit_batch(&self.store, batch).await;
        }
    }

    /// The batch that starts with `first`: every write already waiting, then those that
    /// arrive within the window, up to `max`.
    async fn gather(&self, first: Item, receiver: &mut mpsc::Receiver<Item>) -> VecDeque<Item> {
        let mut batch = VecDeque::from([first]);
        let deadline = tokio::time::Instant::now() + self.settings.window;
        while batch.len() < self.settings.max {
            let item = match receiver.try_recv() {
                Ok(item) => Some(item),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, receiver.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
            match item {
                Some(item) => batch.push_back(item),
                None => break,
            }
        }
        batch
    }
}

/// The next write to commit; after the stop, those still queued, then None.
async fn next(receiver: &mut mpsc::Receiver<Item>, stop: &CancellationToken) -> Option<Item> {
    tokio::select! {
        biased;
        () = stop.cancelled() => {
            receiver.close();
            receiver.recv().await
        }
        item = receiver.recv() => item,
    }
}

/// Commits the writes of `pending` and answers each of them; normally in one transaction,
/// in more when one breaks.
async fn commit_batch(store: &Store, mut pending: VecDeque<Item>) {
    while !pending.is_empty() {
        commit_some(store, &mut pending).await;
    }
}

/// Runs writes of `pending` in one transaction until none is left or the transaction
/// breaks, commits, and answers those that ran.
async fn commit_some(store: &Store, pending: &mut VecDeque<Item>) {
    let shared = pending.len() > 1;
    let mut tx = match open(store, shared).await {
        Ok(tx) => tx,
        Err(e) => {
            for item in pending.drain(..) {
                let _ = item.reply.send(Err(not_committed(&e)));
            }
            return;
        }
    };
    let mut ran = Vec::with_capacity(pending.len());
    while let Some(item) = pending.pop_front() {
        if !shared {
            ran.push((item.reply, (item.work)(&mut tx).await));
            break;
        }
        let first = ran.is_empty();
        match in_savepoint(&mut tx, item.work, first).await {
            Ok(result) => ran.push((item.reply, result)),
            Err(broken) => {
                let _ = item.reply.send(Err(not_committed(&broken)));
                answer(ran, Err(broken));
                return;
            }
        }
    }
    // Nothing to keep: a lone write that failed leaves its transaction to roll back.
    let committed = if ran.iter().any(|(_, result)| result.is_ok()) {
        commit(tx).await
    } else {
        Ok(())
    };
    answer(ran, committed);
}

/// Answers every write that ran: its own result, or the transaction's failure for the
/// writes that succeeded in it.
fn answer(ran: Vec<(oneshot::Sender<Result<Erased>>, Result<Erased>)>, committed: Result<()>) {
    for (reply, result) in ran {
        let answer = match (&committed, result) {
            (Err(e), Ok(_)) => Err(not_committed(e)),
            (_, result) => result,
        };
        let _ = reply.send(answer);
    }
}

/// The error a write gets when the transaction it ran in did not commit.
fn not_committed(e: &Error) -> Error {
    Error::Internal(anyhow::anyhow!(
        "the shared transaction did not commit: {e}"
    ))
}

/// Opens a batch's transaction; a shared one on PostgreSQL takes the batch lock and keeps
/// its events for the end.
async fn open(store: &Store, shared: bool) -> Result<Tx> {
    let mut tx = store.begin().await?;
    if shared && tx.backend() == Backend::Postgres {
        with_tx!(tx, conn => sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BATCH_LOCK)
            .execute(&mut *conn)
            .await
            .map(drop))?;
        tx.deferred_events = Some(Vec::new());
    }
    Ok(tx)
}

/// Writes the events kept for the end, then commits.
async fn commit(mut tx: Tx) -> Result<()> {
    if let Some(events) = tx.deferred_events.take() {
        for event in &events {
            super::events::append(&mut tx, event).await?;
        }
    }
    Ok(tx.commit().await?)
}

/// Runs one write of a shared transaction in a savepoint: its result, with what it wrote
/// rolled back when it failed; Err when the transaction itself broke. The savepoint of the
/// write before is released in the same round trip that opens this one (`first`: there is
/// none), and the last one by the commit, so a write costs the database one round trip more
/// than its own statements.
async fn in_savepoint(tx: &mut Tx, work: Work, first: bool) -> Result<Result<Erased>> {
    let notes = Notes::of(tx);
    let open = if first {
        "SAVEPOINT grouped_write"
    } else {
        "RELEASE SAVEPOINT grouped_write; SAVEPOINT grouped_write"
    };
    execute(tx, open).await?;
    let result = work(&mut *tx).await;
    if result.is_err() {
        execute(tx, "ROLLBACK TO SAVEPOINT grouped_write").await?;
        notes.restore(tx);
    }
    Ok(result)
}

async fn execute(tx: &mut Tx, sql: &'static str) -> Result<()> {
    with_tx!(tx, conn => sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop))?;
    Ok(())
}

/// What a transaction notes beside its writes (events and jobs to announce, events kept
/// for the end), as it was before a write, for a rolled-back write to leave no trace.
struct Notes {
    newest_event: Option<i64>,
    pushed_job: bool,
    deferred_events: Option<usize>,
}

impl Notes {
    fn of(tx: &Tx) -> Notes {
        Notes {
            newest_event: tx.newest_event,
            pushed_job: tx.pushed_job,
            deferred_events: tx.deferred_events.as_ref().map(Vec::len),
        }
    }

    fn restore(self, tx: &mut Tx) {
        tx.newest_event = self.newest_event;
        tx.pushed_job = self.pushed_job;
        if let (Some(deferred), Some(len)) = (&mut tx.deferred_events, self.deferred_events) {
            deferred.truncate(len);
        }
    }
}
