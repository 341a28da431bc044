//! `aiops serve`, `aiops worker` and `aiops migrate`: running the service and its store.

use anyhow::{Context, bail};

use crate::config::{Config, LogFormat};
use crate::schedules::scheduler::Scheduler;
use crate::server;

/// `aiops migrate`: applies the store's migrations.
pub(super) async fn migrate(config: Config) -> anyhow::Result<()> {
    server::open_store(&config).await?;
    eprintln!(
        "store at {} is migrated",
        server::redact_url(&config.effective_database_url())
    );
    Ok(())
}

/// Work to do once the service has started and before it says where it listens (the
/// demo's project and tasks).
pub(super) type Seed = Box<
    dyn FnOnce(
            crate::http::AppState,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>
        + Send,
>;

/// `aiops serve`: the API, webhooks and dashboard in one process.
pub(super) async fn serve(config: Config) -> anyhow::Result<()> {
    serve_with(config, None).await
}

/// `serve`, with `seed` run right after start-up.
pub(super) async fn serve_with(config: Config, seed: Option<Seed>) -> anyhow::Result<()> {
    init_logging(&config);
    // Bind first: a busy port must fail before start-up creates a key or a token that
    // would then never be shown.
    let listen = config.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; pick another address with --listen")
        })?;
    let local = listener.local_addr()?;
    // One serve per data directory, checked before start-up creates a key or a token.
    let _instance = server::InstanceLock::acquire(&config.data_dir, &local.to_string())?;
    let metrics_listener = bind_metrics(&config).await?;
    let started = server::start(config).await?;
    serve_metrics(metrics_listener, started.state.store.clone());
    let base = if started.state.config.public_url.is_empty() {
        format!("http://{local}")
    } else {
        started.state.config.public_base_url()
    };
    if let Some(path) = &started.generated_key_file {
        eprintln!(
            "Generated a new master key in {} (mode 0600). Back it up: without it the stored secrets cannot be decrypted.",
            path.display()
        );
    }
    if let Some(seed) = seed {
        seed(started.state.clone()).await?;
    }
    warn_about_engine(&started.state.config);
    let sandbox = started.state.engine.sandbox_status();
    match sandbox.mode {
        "enforced" => eprintln!(
            "Agent sandbox: enforced (Landlock ABI {}).",
            sandbox.landlock_abi
        ),
        "off" => eprintln!(
            "Agent sandbox: OFF (engine.sandbox = \"off\"); agents run unconfined (Landlock ABI {}).",
            sandbox.landlock_abi
        ),
        _ => eprintln!(
            "Agent sandbox: UNAVAILABLE, no agent will start: {} (Landlock ABI {}). Fix it, or set engine.sandbox = \"off\" to run agents unconfined.",
            sandbox.reason.as_deref().unwrap_or_default(),
            sandbox.landlock_abi
        ),
    }
    eprintln!("aiops is listening on http://{local}");
    eprintln!("  API:       {base}/api/v1  (OpenAPI: {base}/api/v1/openapi.json)");
    eprintln!("  Dashboard: {base}/  (sign in at {base}/sign-in)");
    if let Some(password) = &started.admin_password {
        eprintln!(
            "  Admin user `{}`, one-time password for the dashboard's sign-in (shown only once; change it with `aiops user set-password {}`): {password}",
            crate::users::BOOTSTRAP_ADMIN,
            crate::users::BOOTSTRAP_ADMIN
        );
    }
    match &started.admin_token {
        Some(token) => {
            eprintln!(
                "  API admin token (Authorization: Bearer …). It is shown only once; store it now:"
            );
            println!("{token}");
        }
        None => eprintln!(
            "  Log in with an existing token, or create one: aiops token create --name me --admin"
        ),
    }
    server_loop(listener, started).await
}

async fn server_loop(
    listener: tokio::net::TcpListener,
    started: server::Started,
) -> anyhow::Result<()> {
    let store = started.state.store.clone();
    let holder = started.state.engine.holder().to_string();
    crate::http::serve(listener, started.state, shutdown_signal()).await?;
    if let Some(workers) = started.workers {
        let running = store.slots_held_by(&holder).await.unwrap_or(0);
        stop_workers(workers, running).await;
    }
    if let Some(notifications) = started.notifications {
        notifications.stop().await;
    }
    started.background.cancel();
    if let Some(replies) = started.replies {
        replies.cancel();
    }
    if let Some(scheduler) = started.scheduler {
        scheduler.stop().await;
    }
    if let Some(group_commit) = started.group_commit {
        group_commit.stop().await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `aiops worker`: queue workers and the scheduler without HTTP; `workers` overrides
/// `engine.workers`.
pub(super) async fn worker(mut config: Config, workers: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = workers {
        config.engine.workers = n;
    }
    init_logging(&config);
    if config.engine.workers == 0 {
        bail!("engine.workers is 0; a worker process needs at least one (--workers N)");
    }
    // One process per data directory: a worker's clones and worktrees are its own.
    let _instance = server::InstanceLock::acquire(&config.data_dir, "worker")?;
    let metrics_listener = bind_metrics(&config).await?;
    warn_about_engine(&config);
    let store = server::open_store(&config).await?;
    let checkpoints = tokio_util::sync::CancellationToken::new();
    server::checkpoint_in_background(&store, &config, &checkpoints);
    let _stop_checkpoints = checkpoints.drop_guard();
    let (vault, _, _) = server::open_vault(&config, &store, false).await?;
    crate::metrics::install();
    serve_metrics(metrics_listener, store.clone());
    let config = std::sync::Arc::new(config);
    let engine = crate::engine::Engine::new(store.clone(), vault.clone(), config.clone());
    server::take_over_predecessor(&engine).await;
    let workers = server::Workers::start(engine.clone());
    let notifier = crate::notify::Notifier::new(store.clone(), vault, config.clone());
    let notifications = (config.notify.workers > 0)
        .then(|| server::Workers::start_notifications(notifier, &engine));
    let settings = &engine.config.scheduler;
    let scheduler = settings
        .enabled
        .then(|| Scheduler::start(store.clone(), settings.clone()));
    eprintln!(
        "aiops worker {} is running; Ctrl-C stops it",
        engine.holder()
    );
    shutdown_signal().await;
    let running = store.slots_held_by(engine.holder()).await.unwrap_or(0);
    stop_workers(workers, running).await;
    if let Some(notifications) = notifications {
        notifications.stop().await;
    }
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    store.close().await;
    Ok(())
}

/// Says at start, not at the first task, when an engine command cannot start.
fn warn_about_engine(config: &Config) {
    if config.engine.workers == 0 {
        return;
    }
    for (key, template) in [
        ("engine.command", &config.engine.command),
        ("engine.resume_command", &config.engine.resume_command),
    ] {
        if let Err(why) = crate::command_template::locate_program(template) {
            eprintln!(
                "  Warning:   {key} cannot start: {why}; tasks will fail until it can (install Claude Code, fix {key}, or try `aiops demo`)"
            );
        }
    }
}

/// Lets the running pipelines finish; a second Ctrl-C (or SIGTERM) stops the process at
/// once. The agents die with it (their parent-death signal) and their tasks are recovered
/// on the next start, like after a crash.
async fn stop_workers(workers: server::Workers, running: i64) {
    if running > 0 {
        eprintln!(
            "aiops: waiting for {running} running task(s) to finish (Ctrl-C again to stop now; they are picked up again on the next start)"
        );
    }
    tokio::select! {
        () = workers.stop() => {}
        () = shutdown_signal() => {
            eprintln!("aiops: stopping now; the interrupted tasks are recovered on the next start");
            std::process::exit(130);
        }
    }
}

/// The listener of `metrics.listen`, when it is set; bound before start-up so a busy port
/// fails first.
async fn bind_metrics(config: &Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let address = &config.metrics.listen;
    if address.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("cannot listen on {address} for /metrics; change metrics.listen")
        })?;
    eprintln!("  Metrics:   http://{}/metrics", listener.local_addr()?);
    Ok(Some(listener))
}

/// Serves `/metrics` on its own listener, if there is one, for as long as the process runs.
fn serve_metrics(listener: Option<tokio::net::TcpListener>, store: crate::store::Store) {
    if let Some(listener) = listener {
        tokio::spawn(async move {
            let forever = std::future::pending::<()>();
            if let Err(e) = crate::http::metrics::serve_separately(listener, store, forever).await {
                tracing::error!(error = %e, "the /metrics listener stopped");
            }
        });
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a redirected log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
