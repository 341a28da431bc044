//! The store: one connection pool over SQLite or PostgreSQL, migrations, and the queries.
//!
//! Owns every SQL statement of the service; nothing outside `store` writes SQL. Each query
//! is written once and runs on both databases (`with_pool!` and `with_tx!` compile it for
//! each). A write that must commit with others takes the caller's [`Tx`]; the use cases
//! above compose them. The store holds no rule of its own and imports only `model`,
//! `error` and `config`. It never decrypts: credential values pass through it sealed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteOperation, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, StoreConfig};
use queue::JobsInserted;

/// Runs `$body` with `$pool` bound to the concrete pool, compiled once per database.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's concrete connection, compiled once
/// per database (the transaction's counterpart of `with_pool!`).
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match &mut $tx.conn {
            $crate::store::TxConn::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::TxConn::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

pub mod analytics;
pub mod approvals;
pub mod audit;
pub mod budgets;
mod busy_wait;
pub mod credentials;
pub mod dashboard;
pub mod deliveries;
pub mod events;
pub mod group_commit;
pub mod identities;
pub mod kept_payload;
pub mod notifications;
pub mod oauth;
pub mod pipeline;
pub mod projects;
pub mod queue;
pub mod recovery;
pub mod retention;
pub mod routing_rules;
pub mod runs;
pub mod schedules;
pub mod sessions;
pub mod shared_read;
pub mod sign_in_flows;
pub mod slots;
pub mod tasks;
pub mod team_presets;
pub mod tokens;
pub mod users;
pub mod views;

/// Name of aiops' own migrations table, apart from the queue library's.
const MIGRATIONS_TABLE: &str = "aiops_migrations";

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The concrete connection pool.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    /// Fires when this process inserts a queue job (SQLite only; PostgreSQL uses NOTIFY).
    jobs_inserted: Option<JobsInserted>,
    /// The id of the newest event this process stored; SSE streams wait on it.
    latest_event: std::sync::Arc<watch::Sender<i64>>,
    /// Counts schedule changes made by this process; its scheduler waits on it.
    schedules_changed: std::sync::Arc<watch::Sender<u64>>,
    /// Where `write_grouped` hands its writes, once the group committer runs.
    group_commit: Option<tokio::sync::mpsc::Sender<group_commit::Item>>,
    /// GitHub delivery contexts, read once for the deliveries that ask at the same time.
    delivery_contexts: std::sync::Arc<deliveries::SharedContexts>,
    /// On SQLite, whose one write lock every write transaction takes: this store's write
    /// transactions take turns here first, in order and each woken as the one before ends,
    /// instead of each polling the lock from its connection's thread (`busy_wait` still
    /// serves the writes that take no turn: single statements, the queue's, other
    /// processes'). With the wait it allows.
    write_turns: Option<(std::sync::Arc<tokio::sync::Semaphore>, Duration)>,
}

/// How many times a SQLite connection of this process found a lock taken and waited for
/// it (its busy handler: `busy_wait`).
pub fn sqlite_lock_waits() -> u64 {
    busy_wait::waits()
}

/// The same as `sqlx::Error`; named for what callers see.
pub type DbError = sqlx::Error;

impl Store {
    /// Connects to `url` (sqlite: or postgres://) with aiops' connection settings.
    pub async fn connect(url: &str, settings: &StoreConfig) -> Result<Self, DbError> {
        let mut jobs_inserted = None;
        let pool = if url.starts_with("sqlite:") {
            let signal = JobsInserted::default();
            jobs_inserted = Some(signal.clone());
            let busy_timeout = Duration::from_millis(settings.busy_timeout_ms);
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
                .synchronous(match settings.sqlite_synchronous {
                    config::SqliteSynchronous::Full => SqliteSynchronous::Full,
                    config::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
                });
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .after_connect(move |conn, _| {
                        let signal = signal.clone();
                        Box::pin(async move {
                            let mut handle = conn.lock_handle().await?;
                            // SAFETY: the locked handle is this open connection's, ours
                            // until it is dropped.
                            let set = unsafe {
                                busy_wait::install(handle.as_raw_handle().as_ptr(), busy_timeout)
                            };
                            if set != 0 {
                                return Err(DbError::Protocol(format!(
                                    "could not set the SQLite busy handler (code {set})"
                                )));
                            }
                            handle.set_update_hook(move |event| {
                                if event.operation == SqliteOperation::Insert
                                    && event.table == "Jobs"
                                {
                                    signal.announce();
                                }
                            });
                            Ok(())
                        })
                    })
                    .max_connections(settings.max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    // A ping before each use would be a second hand-off to the connection's
                    // thread for every query, and a local file has no link to lose.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?,
            )
        } else {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?,
            )
        };
        let write_turns = matches!(pool, Pool::Sqlite(_)).then(|| {
            let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
            (turns, Duration::from_millis(settings.busy_timeout_ms))
        });
        Ok(Self {
            write_turns,
            delivery_contexts: deliveries::shared_contexts(pool.clone()),
            pool,
            jobs_inserted,
            latest_event: std::sync::Arc::new(watch::channel(0).0),
            schedules_changed: std::sync::Arc::new(watch::channel(0).0),
            group_commit: None,
        })
    }

    /// On SQLite, copies the write-ahead log into the database file every `every` (a passive
    /// checkpoint: it waits for no reader or writer) until `stop`, so the log seldom reaches
    /// SQLite's automatic checkpoint, which a commit runs while the writers behind it wait;
    /// that one stays, as the bound of the log under a flood. Nothing to do on PostgreSQL.
    pub async fn checkpoint_in_background(self, every: Duration, stop: CancellationToken) {
        let Pool::Sqlite(pool) = &self.pool else {
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = pool.close_event() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(pool)
                .await
            {
                tracing::warn!(error = %e, "checkpointing the write-ahead log failed; trying again");
            }
        }
    }

    /// Signal of queue inserts made through this pool (SQLite), for prompt claims; each
    /// queue's workers subscribe to it.
    pub fn jobs_inserted(&self) -> Option<JobsInserted> {
        self.jobs_inserted.clone()
    }

    /// Watches the id of the newest event stored by this process.
    pub fn subscribe_events(&self) -> watch::Receiver<i64> {
        self.latest_event.subscribe()
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The concrete pool, for libraries that need it (the queue).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn migrator(&self) -> Migrator {
        let mut migrator = match self.backend() {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = self.migrator();
        with_pool!(self, pool => migrator.run(pool).await)
    }

    /// True when the database answers and every known migration is applied.
    pub async fn is_ready(&self) -> Result<bool, DbError> {
        let known = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count() as i64;
        let applied: Result<i64, DbError> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM aiops_migrations WHERE success"
        ).fetch_one(pool).await);
        match applied {
            Ok(applied) => Ok(applied == known),
            // The table does not exist yet: reachable but not migrated.
            Err(sqlx::Error::Database(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// An open write transaction on either database: the handle repository functions take
/// (`tasks::insert(&mut tx, …)`, `events::append(&mut tx, …)`, `queue::push(&mut tx, …)`),
/// so a use case composes several writes that commit together or not at all.
///
/// On SQLite it holds the write lock from the start (`BEGIN IMMEDIATE`): a deferred
/// transaction that reads and then writes fails with SQLITE_BUSY when another writer
/// committed in between, and the busy timeout does not help with that. Events appended
/// through it are announced to this process's live streams when it commits.
pub struct Tx {
    conn: TxConn,
    latest_event: std::sync::Arc<watch::Sender<i64>>,
    newest_event: Option<i64>,
    /// This process's queue workers, told after the commit that a job was pushed (the
    /// update hook fires before the commit, when a claim cannot see the row yet).
    jobs_inserted: Option<JobsInserted>,
    pushed_job: bool,
    /// Events appended in it, kept to be written right before the commit (a group commit's
    /// transaction on PostgreSQL; see `group_commit`).
    deferred_events: Option<Vec<crate::model::NewEvent>>,
    /// Its turn to write (SQLite), given back when it ends.
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The concrete transaction.
pub(crate) enum TxConn {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Store {
    /// Opens a write transaction.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        let turn = match &self.write_turns {
            Some((turns, wait)) => Some(
                tokio::time::timeout(*wait, turns.clone().acquire_owned())
                    .await
                    .map_err(|_| {
                        DbError::Protocol(format!(
                            "no turn to write within {} ms: SQLite's write lock stayed with \
                             another transaction of this process",
                            wait.as_millis()
                        ))
                    })?
                    .expect("the write turns are never closed"),
            ),
            None => None,
        };
        let conn = match &self.pool {
            Pool::Sqlite(pool) => TxConn::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => TxConn::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            conn,
            latest_event: self.latest_event.clone(),
            newest_event: None,
            jobs_inserted: self.jobs_inserted.clone(),
            pushed_job: false,
            deferred_events: None,
            _turn: turn,
        })
    }
}

impl Tx {
    /// Which database this transaction is on.
    pub fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Sqlite(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Commits, then tells this process's live streams about the events it appended; on
    /// PostgreSQL the other nodes hear of them too, through a notification the commit sends.
    pub async fn commit(self) -> Result<(), DbError> {
        match self.conn {
            TxConn::Sqlite(tx) => tx.commit().await?,
            TxConn::Postgres(mut tx) => {
                if let Some(id) = self.newest_event {
                    events::notify_other_nodes(&mut tx, id).await?;
                }
                tx.commit().await?
            }
        }
        if let Some(id) = self.newest_event {
            announce(&self.latest_event, id);
        }
        if self.pushed_job
            && let Some(signal) = &self.jobs_inserted
        {
            signal.announce();
        }
        Ok(())
    }

    /// Notes a queue job pushed in this transaction, announced on commit.
    pub(crate) fn pushed_job(&mut self) {
        self.pushed_job = true;
    }

    /// Notes an event appended in this transaction, announced on commit.
    pub(crate) fn appended_event(&mut self, id: i64) {
        self.newest_event = Some(self.newest_event.map_or(id, |newest| newest.max(id)));
    }
}

/// Moves the newest-event watch forward (never back).
pub(crate) fn announce(latest: &watch::Sender<i64>, id: i64) {
    latest.send_if_modified(|latest| {
        let newer = id > *latest;
        if newer {
            *latest = id;
        }
        newer
    });
}

/// ` AND <column> IN (…)`: the SQL condition keeping the rows of the projects in `scope`
/// (nothing for every project; a false condition for none). The ids are integers, so they
/// are written into the text.
pub(crate) fn scope_sql(column: &str, scope: &crate::model::ProjectScope) -> String {
    match scope {
        crate::model::ProjectScope::All => String::new(),
        crate::model::ProjectScope::Only(ids) if ids.is_empty() => " AND 1 = 0".into(),
        crate::model::ProjectScope::Only(ids) => {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!(" AND {column} IN ({})", list.join(", "))
        }
    }
}

/// Maps database constraint violations to domain errors.
pub trait ConstraintExt<T> {
    /// A unique violation becomes `Conflict(message)`; a foreign key violation becomes
    /// `Conflict(fk_message)`.
    fn on_conflict(self, message: impl Into<String>) -> Result<T, crate::error::Error>;
}

impl<T> ConstraintExt<T> for Result<T, DbError> {
    fn on_conflict(self, message: impl Into<String>) -> Result<T, crate::error::Error> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                crate::error::Error::Conflict(message.into())
            }
            _ => crate::error::Error::Db(e),
        })
    }
}
