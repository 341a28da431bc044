//! Start-up of a service process: data dir, store, migrations, vault, first admin token,
//! `jobs/` schedules and routing rules, workers (pipelines and notifications), the scheduler
//! and the group committer of intake writes.
//!
//! Shared by `aiops serve` and the integration tests, so the tests run the real start-up.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::{Engine, worker};
use crate::http::AppState;
use crate::notify::Notifier;
use crate::schedules::scheduler::Scheduler;
use crate::store::Store;
use crate::store::group_commit::{GroupCommitSettings, GroupCommitter, Observers};
use crate::vault::{self, KeySource, MasterKey, Vault, VaultError};

/// Name of the token `serve` creates on an empty store.
pub const BOOTSTRAP_TOKEN_NAME: &str = crate::users::BOOTSTRAP_ADMIN;

/// What start-up produced, and what it has to tell the operator once.
pub struct Started {
    pub state: AppState,
    /// The admin token created on an empty store; shown once, never stored in clear.
    pub admin_token: Option<String>,
    /// The admin user's one-time password, set on an empty store with the token; shown once.
    pub admin_password: Option<String>,
    /// The key file generated on a fresh data dir.
    pub generated_key_file: Option<PathBuf>,
    /// The queue workers of this process, if it runs any.
    pub workers: Option<Workers>,
    /// The notification workers of this process, unless `notify.workers` is 0.
    pub notifications: Option<Workers>,
    /// Stops the GitHub comment updater, if it runs.
    pub replies: Option<CancellationToken>,
    /// Stops this process' background loops: the check of approval deadlines, the pruning
    /// of old data, reading the stored team presets again, and (PostgreSQL) listening for
    /// other nodes' events.
    pub background: CancellationToken,
    /// The cron scheduler of this process, unless `scheduler.enabled` is off.
    pub scheduler: Option<Scheduler>,
    /// The group committer of deliveries and task creations, unless
    /// `intake.group_commit_max` is below 2.
    pub group_commit: Option<GroupCommitter>,
}

/// Running queue workers and the switch that stops them.
pub struct Workers {
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Starts `engine.workers` queue workers for `engine`.
    pub fn start(engine: Arc<Engine>) -> Workers {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker::run_workers(engine, shutdown.clone()));
        Workers { shutdown, handle }
    }

    /// Starts `notify.workers` notification workers, named after the process' `engine`.
    pub fn start_notifications(notifier: Arc<Notifier>, engine: &Engine) -> Workers {
        let shutdown = CancellationToken::new();
        let holder = engine.holder().to_string();
        let stop = shutdown.clone();
        let handle = tokio::spawn(async move {
            crate::notify::run_workers(notifier, &holder, stop).await;
        });
        Workers { shutdown, handle }
    }

    /// Stops fetching, lets running jobs finish (or be recovered later), and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

/// Connects to the store and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_empty() {
        create_data_dir(&config.data_dir)?;
        // Created before SQLite opens it, so it (and the -wal and -shm files SQLite gives the
        // same mode) is the owner's alone.
        let db = config.data_dir.join("aiops.db");
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&db)
            .with_context(|| format!("cannot create the store file {}", db.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", db.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot make {} private", file.display()))?;
            }
        }
    }
    let url = config.effective_database_url();
    let store = Store::connect(&url, &config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", redact_url(&url)))?;
    store
        .migrate()
        .await
        .context("cannot apply the store's migrations")?;
    crate::queue::setup(&store)
        .await
        .context("cannot set up the job queue")?;
    Ok(store)
}

/// Creates the data directory (and missing parents) with mode 0700: the master key, the
/// store and every worktree are its owner's alone. An existing directory is left as it is.
pub fn create_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))
}

/// Unlocks the vault. With `create_key`, a fresh store without any key gets a new key
/// file (mode 0600); the returned path says so.
pub async fn open_vault(
    config: &Config,
    store: &Store,
    create_key: bool,
) -> anyhow::Result<(Vault, KeySource, Option<PathBuf>)> {
    let key_file = config.key_file();
    let (key, source, generated) = match vault::read_master_key(&key_file)? {
        Some((key, source)) => (key, source, None),
        None if create_key && store.current_vault_key().await?.is_none() => {
            let key = MasterKey::generate();
            vault::write_key_file(&key_file, &key)?;
            (key, KeySource::File(key_file.clone()), Some(key_file))
        }
        None => return Err(VaultError::MissingKey { path: key_file }.into()),
    };
    let vault = Vault::unlock(store, key, &source).await?;
    Ok((vault, source, generated))
}

/// Starts the SQLite write-ahead log's background checkpoint (`store.sqlite_checkpoint_ms`),
/// until `stop`.
pub fn checkpoint_in_background(store: &Store, config: &Config, stop: &CancellationToken) {
    if config.store.sqlite_checkpoint_ms > 0 {
        let every = std::time::Duration::from_millis(config.store.sqlite_checkpoint_ms);
        tokio::spawn(store.clone().checkpoint_in_background(every, stop.clone()));
    }
}

/// Starts the store's group committer (`[intake] group_commit_*`), counted in the metrics.
fn start_group_commit(store: &mut Store, config: &Config) -> Option<GroupCommitter> {
    let settings = GroupCommitSettings {
        window: std::time::Duration::from_millis(config.intake.group_commit_window_ms),
        max: config.intake.group_commit_max,
    };
    let observers = Observers {
        batch: crate::metrics::intake_batch,
        bulk: crate::metrics::intake_bulk,
    };
    store.start_group_commit(settings, observers)
}

/// Everything `serve` does before it binds the listener.
pub async fn start(config: Config) -> anyhow::Result<Started> {
    crate::metrics::install();
    let mut store = open_store(&config).await?;
    // Before any clone, so every part of the service shares the committer.
    let group_commit = start_group_commit(&mut store, &config);
    let (vault, _, generated_key_file) = open_vault(&config, &store, true).await?;
    let bootstrap = crate::users::bootstrap_admin(&store).await?;
    let (admin_token, admin_password) = bootstrap.map(|b| (b.token, b.password)).unzip();
    let teams = Arc::new(load_teams(&config)?);
    crate::team_presets::refresh(&store, &teams).await?;
    crate::declarations::load_at_start(&store, &config, &teams).await?;
    let config = Arc::new(config);
    let engine = Engine::new(store.clone(), vault.clone(), config.clone());
    take_over_predecessor(&engine).await;
    let workers = (config.engine.workers > 0).then(|| Workers::start(engine.clone()));
    let notifier = Notifier::new(store.clone(), vault.clone(), config.clone());
    let notifications = (config.notify.workers > 0)
        .then(|| Workers::start_notifications(notifier.clone(), &engine));
    let replies = config.github.reply.then(|| {
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::triggers::reply::run_replies(
            store.clone(),
            vault.clone(),
            config.clone(),
            shutdown.clone(),
        ));
        shutdown
    });
    let background = CancellationToken::new();
    tokio::spawn(crate::approvals::run_expiry(
        store.clone(),
        config.clone(),
        background.clone(),
    ));
    tokio::spawn(crate::retention::run_retention(
        store.clone(),
        config.retention.clone(),
        background.clone(),
    ));
    tokio::spawn(crate::team_presets::run_refresh(
        store.clone(),
        teams.clone(),
        background.clone(),
    ));
    tokio::spawn(store.clone().follow_other_nodes(background.clone()));
    checkpoint_in_background(&store, &config, &background);
    let scheduler = config
        .scheduler
        .enabled
        .then(|| Scheduler::start(store.clone(), config.scheduler.clone()));
    let guards = crate::http::Guards::new(&config.intake);
    Ok(Started {
        state: AppState {
            config,
            store,
            vault,
            engine,
            guards,
            teams,
            notifier,
        },
        admin_token,
        admin_password,
        generated_key_file,
        workers,
        notifications,
        replies,
        background,
        scheduler,
        group_commit,
    })
}

/// Takes back what the process that ran on this data directory before held (see
/// `Engine::take_over_predecessor`); if that fails, the queue's heartbeats still hand its
/// work back, later.
pub async fn take_over_predecessor(engine: &Engine) {
    if let Err(e) = engine.take_over_predecessor().await {
        tracing::warn!(error = %e, "could not take back the work of the previous process on this data directory; its tasks are recovered after its missed heartbeats");
    }
}

/// The team presets: the plugin's teams built into aiops, plus what `teams_dir` adds or
/// overrides when that directory exists (wherever aiops is started from).
pub fn load_teams(config: &Config) -> anyhow::Result<crate::teams::Teams> {
    if !config.teams_dir.is_dir() {
        tracing::debug!(dir = %config.teams_dir.display(), "no team presets directory; the built-in teams apply");
        return Ok(crate::teams::Teams::built_in());
    }
    crate::teams::Teams::built_in_with(&config.teams_dir).with_context(|| {
        format!(
            "cannot load the team presets in {}",
            config.teams_dir.display()
        )
    })
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// One `serve` per data directory: an exclusive lock on `<data dir>/aiops.lock`, held for
/// the life of the process (the kernel lets go of it when the process ends, however it
/// ends), with the holder's pid and address written in the file for the next one to name.
#[derive(Debug)]
pub struct InstanceLock {
    _file: std::fs::File,
}

impl InstanceLock {
    /// Takes the data directory for this process, listening on `listen`; refuses, naming
    /// the holder, while another process has it.
    pub fn acquire(data_dir: &Path, listen: &str) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        create_data_dir(data_dir)?;
        let path = data_dir.join("aiops.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if let Err(e) = file.try_lock() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.split_whitespace().collect::<Vec<_>>().join(", ");
            return Err(match e {
                std::fs::TryLockError::WouldBlock => anyhow::anyhow!(
                    "another aiops ({}) already runs on the data directory {}; stop it first, or give this one its own --data-dir",
                    if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder
                    },
                    data_dir.display()
                ),
                std::fs::TryLockError::Error(e) => {
                    anyhow::anyhow!("cannot lock {}: {e}", path.display())
                }
            });
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(
            file,
            "pid={} listen={listen} since={}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )?;
        Ok(Self { _file: file })
    }
}
