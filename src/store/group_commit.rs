//! Group commit: concurrent writes share one transaction, so a burst of webhook deliveries
//! and task creations costs one commit (one fsync) instead of one each.
//!
//! A caller hands its write to [`Store::write_grouped`] and waits. One background task
//! ([`Store::start_group_commit`], started with the service) takes the first waiting write,
//! gathers more for at most `window`, and while the batch before is still being committed,
//! until it has been (at most `max` in all); then it opens one transaction, runs each
//! write in its own savepoint — a write that fails is rolled back alone and gets its own
//! error, the others go on — commits once, and only then answers every caller. Nothing is
//! answered before the commit returns. When the commit fails, every write of the batch gets
//! that error (none of them was acknowledged); when the transaction itself breaks (the
//! connection is lost), the writes that ran in it get the error and the rest go on in the
//! next transaction. Without a running committer a write runs in a transaction of its own.
//!
//! A kind of write that many callers make (a webhook delivery, a task creation) can also be
//! handed in as a [`BulkWrite`] ([`Store::write_grouped_bulk`]): the committer writes every
//! such write of a batch together, in one savepoint and a few multi-row statements instead
//! of a few statements each. When those statements fail, the savepoint is rolled back and
//! each of them is written alone in its own savepoint, as any other write, so one bad write
//! still fails alone.
//!
//! On PostgreSQL a batch first takes an advisory lock, so the batches of several nodes take
//! turns, and writes its events last, just before the commit: the event order lock is then
//! the last lock the batch takes, as in every other transaction, so a batch that holds many
//! rows never waits for a row while holding that lock. This module runs the callers' writes
//! and decides nothing about them.

use std::any::{Any, TypeId};
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

/// What the committer tells about its work (the service counts it in its metrics).
#[derive(Debug, Clone, Copy)]
pub struct Observers {
    /// How many writes shared a transaction.
    pub batch: fn(Backend, usize),
    /// How many writes of one kind were written together (true), or each alone after the
    /// statements writing them together failed (false).
    pub bulk: fn(Backend, usize, bool),
}

/// What a write answers, its type erased on the way through the committer.
type Erased = Box<dyn Any + Send>;

/// A write, erased: runs inside the transaction it is given.
type Work = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<Erased>> + Send>;

/// A kind of write the committer can write many of at once.
pub trait BulkWrite: Send + Sync + Sized + 'static {
    /// What one write answers.
    type Output: Send + 'static;

    /// Writes every one of `writes` inside `tx`, together, and answers each in order. An
    /// answer may be an error only when that write wrote nothing. An `Err` of the whole
    /// means the statements failed: the committer rolls all of them back and writes each
    /// with [`BulkWrite::write_one`].
    fn write_all<'t>(
        tx: &'t mut Tx,
        writes: &'t [&'t Self],
    ) -> BoxFuture<'t, Result<Vec<Result<Self::Output>>>>;

    /// Writes this one alone inside `tx`.
    fn write_one<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<Self::Output>>;
}

/// A [`BulkWrite`], erased: its kind, the value, and how to write many or one of its kind.
struct Bulk {
    kind: TypeId,
    value: Box<dyn Any + Send + Sync>,
    all: AllFn,
    one: OneFn,
}

type AllFn = for<'t> fn(
    &'t mut Tx,
    Vec<&'t (dyn Any + Send + Sync)>,
) -> BoxFuture<'t, Result<Vec<Result<Erased>>>>;
type OneFn = for<'t> fn(&'t mut Tx, &'t (dyn Any + Send + Sync)) -> BoxFuture<'t, Result<Erased>>;

/// [`BulkWrite::write_all`] on erased values, all of kind `B`.
fn write_all_erased<'t, B: BulkWrite>(
    tx: &'t mut Tx,
    values: Vec<&'t (dyn Any + Send + Sync)>,
) -> BoxFuture<'t, Result<Vec<Result<Erased>>>> {
    Box::pin(async move {
        let writes: Vec<&B> = values.into_iter().map(downcast::<B>).collect();
        let answers = B::write_all(tx, &writes).await?;
        Ok(answers
            .into_iter()
            .map(|answer| answer.map(|output| Box::new(output) as Erased))
            .collect())
    })
}

/// [`BulkWrite::write_one`] on an erased value of kind `B`.
fn write_one_erased<'t, B: BulkWrite>(
    tx: &'t mut Tx,
    value: &'t (dyn Any + Send + Sync),
) -> BoxFuture<'t, Result<Erased>> {
    Box::pin(async move {
        let output = downcast::<B>(value).write_one(tx).await?;
        Ok(Box::new(output) as Erased)
    })
}

fn downcast<B: 'static>(value: &(dyn Any + Send + Sync)) -> &B {
    value
        .downcast_ref::<B>()
        .expect("a bulk write is grouped with writes of its own kind")
}

/// What the committer writes for one caller: a write of its own, or one of a kind.
enum Write {
    One(Work),
    Bulk(Bulk),
}

/// A write handed to the committer and where its answer goes.
pub(crate) struct Item {
    write: Write,
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
        observe: Observers,
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
        self.hand_in(Write::One(work)).await
    }

    /// Like [`Store::write_grouped`], for a write of a kind the committer writes many of at
    /// once (see the module comment).
    pub async fn write_grouped_bulk<B: BulkWrite>(&self, write: B) -> Result<B::Output> {
        self.hand_in(Write::Bulk(Bulk {
            kind: TypeId::of::<B>(),
            value: Box::new(write),
            all: write_all_erased::<B>,
            one: write_one_erased::<B>,
        }))
        .await
    }

    /// Hands `write` to the committer (or, without one, writes it alone) and waits for its
    /// answer, of type `T`.
    async fn hand_in<T: 'static>(&self, write: Write) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let item = Item { write, reply };
        // A stopped committer hands the write back; it then runs alone.
        let alone = match &self.group_commit {
            Some(committer) => committer.send(item).await.err().map(|returned| returned.0),
            None => Some(item),
        };
        if let Some(item) = alone {
            commit_batch(self, VecDeque::from([item]), None).await;
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
    observe: Observers,
}

impl Committer {
    /// Commits batches one after the other, gathering the next while one is written and
    /// committed: what arrived by the time the batch before has committed joins the next.
    async fn run(self, mut receiver: mpsc::Receiver<Item>, stop: CancellationToken) {
        let mut committing: Option<JoinHandle<()>> = None;
        while let Some(first) = next(&mut receiver, &stop).await {
            let mut batch = self.gather(first, &mut receiver).await;
            if let Some(before) = committing.take() {
                let _ = before.await;
                while batch.len() < self.settings.max {
                    let Ok(item) = receiver.try_recv() else { break };
                    batch.push_back(item);
                }
            }
            (self.observe.batch)(self.store.backend(), batch.len());
            let (store, observe) = (self.store.clone(), self.observe.bulk);
            committing = Some(tokio::spawn(async move {
                commit_batch(&store, batch, Some(observe)).await;
            }));
        }
        if let Some(last) = committing {
            let _ = last.await;
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
async fn commit_batch(store: &Store, mut pending: VecDeque<Item>, observe: Option<BulkObserver>) {
    while !pending.is_empty() {
        commit_some(store, &mut pending, observe).await;
    }
}

type BulkObserver = fn(Backend, usize, bool);

/// Runs writes of `pending` in one transaction until none is left or the transaction
/// breaks, commits, and answers those that ran.
async fn commit_some(store: &Store, pending: &mut VecDeque<Item>, observe: Option<BulkObserver>) {
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
    let mut batch = Batch {
        tx: &mut tx,
        observe,
        savepoint: false,
        ran: Vec::with_capacity(pending.len()),
    };
    while let Some(item) = pending.pop_front() {
        let written = match item.write {
            Write::One(work) if !shared => {
                let result = work(batch.tx).await;
                batch.ran.push((item.reply, result));
                break;
            }
            Write::Bulk(bulk) if !shared => {
                let result = (bulk.one)(batch.tx, &*bulk.value).await;
                batch.ran.push((item.reply, result));
                break;
            }
            Write::One(work) => batch.one(item.reply, work).await,
            Write::Bulk(bulk) => {
                let mut group = vec![(bulk, item.reply)];
                take_kind(pending, &mut group);
                batch.bulk(group).await
            }
        };
        if let Err(broken) = written {
            // What was left unwritten of a broken transaction goes on in the next one.
            answer(batch.ran, Err(broken));
            return;
        }
    }
    let ran = batch.ran;
    // Nothing to keep: a lone write that failed leaves its transaction to roll back.
    let committed = if ran.iter().any(|(_, result)| result.is_ok()) {
        commit(tx).await
    } else {
        Ok(())
    };
    answer(ran, committed);
}

/// Moves every write of `pending` of the same kind as `group`'s first into `group`, in order.
fn take_kind(pending: &mut VecDeque<Item>, group: &mut Vec<(Bulk, Reply)>) {
    let kind = group[0].0.kind;
    let mut rest = VecDeque::with_capacity(pending.len());
    for item in pending.drain(..) {
        match item.write {
            Write::Bulk(bulk) if bulk.kind == kind => group.push((bulk, item.reply)),
            write => rest.push_back(Item {
                write,
                reply: item.reply,
            }),
        }
    }
    *pending = rest;
}

type Reply = oneshot::Sender<Result<Erased>>;

/// The writes of one shared transaction so far, each with its own savepoint.
struct Batch<'a> {
    tx: &'a mut Tx,
    observe: Option<BulkObserver>,
    /// Whether a savepoint is open, for the next to release it in the same round trip.
    savepoint: bool,
    ran: Vec<(Reply, Result<Erased>)>,
}

impl Batch<'_> {
    /// Runs one write in a savepoint of its own; Err when the transaction broke (the write
    /// is answered with that error).
    async fn one(&mut self, reply: Reply, work: Work) -> Result<()> {
        match self.in_savepoint(work).await {
            Ok(result) => {
                self.ran.push((reply, result));
                Ok(())
            }
            Err(broken) => {
                let _ = reply.send(Err(not_committed(&broken)));
                Err(broken)
            }
        }
    }

    /// Writes a group of one kind together in one savepoint; when that fails, rolls it back
    /// and writes each alone. Err when the transaction broke (the group is answered with it).
    async fn bulk(&mut self, group: Vec<(Bulk, Reply)>) -> Result<()> {
        let notes = Notes::of(self.tx);
        if let Err(broken) = self.open_savepoint().await {
            for (_, reply) in group {
                let _ = reply.send(Err(not_committed(&broken)));
            }
            return Err(broken);
        }
        let all = group[0].0.all;
        let values = group.iter().map(|(bulk, _)| &*bulk.value).collect();
        let written = match all(self.tx, values).await {
            Ok(answers) if answers.len() == group.len() => Some(answers),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, writes = group.len(), "a bulk write failed; writing each alone");
                None
            }
        };
        let backend = self.tx.backend();
        if let Some(observe) = self.observe {
            observe(backend, group.len(), written.is_some());
        }
        if let Some(answers) = written {
            for ((_, reply), answer) in group.into_iter().zip(answers) {
                self.ran.push((reply, answer));
            }
            return Ok(());
        }
        if let Err(broken) = execute(self.tx, "ROLLBACK TO SAVEPOINT grouped_write").await {
            for (_, reply) in group {
                let _ = reply.send(Err(not_committed(&broken)));
            }
            return Err(broken);
        }
        notes.restore(self.tx);
        let mut group = group.into_iter();
        while let Some((bulk, reply)) = group.next() {
            let Bulk { value, one, .. } = bulk;
            let work = erase(move |tx| Box::pin(async move { one(tx, &*value).await }));
            if let Err(broken) = self.one(reply, work).await {
                for (_, reply) in group {
                    let _ = reply.send(Err(not_committed(&broken)));
                }
                return Err(broken);
            }
        }
        Ok(())
    }

    /// Opens a savepoint, releasing the one before in the same round trip.
    async fn open_savepoint(&mut self) -> Result<()> {
        let open = if self.savepoint {
            "RELEASE SAVEPOINT grouped_write; SAVEPOINT grouped_write"
        } else {
            "SAVEPOINT grouped_write"
        };
        execute(self.tx, open).await?;
        self.savepoint = true;
        Ok(())
    }

    /// Runs one write in a savepoint: its result, with what it wrote rolled back when it
    /// failed; Err when the transaction itself broke. The last savepoint is released by the
    /// commit, so a write costs the database one round trip more than its own statements.
    async fn in_savepoint(&mut self, work: Work) -> Result<Result<Erased>> {
        let notes = Notes::of(self.tx);
        self.open_savepoint().await?;
        let result = work(&mut *self.tx).await;
        if result.is_err() {
            execute(self.tx, "ROLLBACK TO SAVEPOINT grouped_write").await?;
            notes.restore(self.tx);
        }
        Ok(result)
    }
}

/// Answers every write that ran: its own result, or the transaction's failure for the
/// writes that succeeded in it.
fn answer(ran: Vec<(Reply, Result<Erased>)>, committed: Result<()>) {
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
        super::events::append_all(&mut tx, &events).await?;
    }
    Ok(tx.commit().await?)
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
