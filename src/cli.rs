//! The `aiops` command line.
//!
//! Parses arguments, loads configuration and calls the domain; it holds no rules of its
//! own. Management commands talk to the store directly and leave audit entries as
//! `cli:<user>`. Only `token create` and `keygen` print secrets, alone on stdout.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::approvals::{self, Decision};
use crate::audit::NewAuditEntry;
use crate::auth::{self, Principal, Role};
use crate::config::{Config, LogFormat, Overrides};
use crate::credentials::{self, CredentialKind, NewCredential};
use crate::projects::{NewProject, ProjectPatch};
use crate::schedules::scheduler::Scheduler;
use crate::server;
use crate::store::Store;
use crate::vault::{KeySource, MASTER_KEY_VAR, MasterKey};

/// Run Claude Code + ai-party pipelines as an operated service.
#[derive(Debug, Parser)]
#[command(name = "aiops", version, propagate_version = true)]
#[command(
    long_about = "aiops turns GitHub webhooks, schedules, alerts and API calls into tasks, runs each \
as a Claude Code + ai-party pipeline in its own git worktree, records what the pipeline writes, \
and waits for a human to approve its change.\n\nStart with `aiops serve`; it prints where it \
listens and a one-time admin token."
)]
pub struct Cli {
    /// Configuration file [default: ./config/aiops.toml when it exists].
    #[arg(long, global = true, env = "AIOPS_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Where the store is. Every command that touches the store takes these.
#[derive(Debug, Clone, Args)]
struct StoreArgs {
    /// Data directory: SQLite file, master key file, repositories, worktrees [default: ./data].
    #[arg(long, env = "AIOPS_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL, sqlite:… or postgres://… [default: SQLite file in the data directory].
    #[arg(
        long,
        env = "AIOPS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: API, webhooks and dashboard in one process.
    ///
    /// On a fresh data directory it creates the SQLite store and a master key file
    /// (mode 0600), and on an empty store it prints a one-time admin token.
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "AIOPS_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply the store's migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a new random master key (base64 of 32 bytes) for AIOPS_MASTER_KEY.
    Keygen,
    /// Register and manage projects (repositories aiops runs pipelines on).
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Manage encrypted credentials injected into a project's agents.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Manage API bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run queue workers (pipelines and notifications) and the cron scheduler (no HTTP): add
    /// machines that run pipelines.
    ///
    /// Needs the same store as `serve` (PostgreSQL for several machines) and the same
    /// master key (AIOPS_MASTER_KEY or the key file).
    Worker {
        #[command(flatten)]
        store: StoreArgs,
        /// Concurrent pipelines in this process [default: engine.workers].
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Follow tasks.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Claude Code hook commands.
    Hook {
        #[command(subcommand)]
        command: HookCommand,
    },
    /// Declarative schedules and routing rules in the jobs directory (jobs/*.toml).
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Approval requests of pipelines.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Approve a pending approval: the pipeline goes on (and approved work becomes a pull
    /// request). A decision is final: a second one on any channel is refused.
    Approve {
        #[command(flatten)]
        decision: DecisionArgs,
    },
    /// Reject a pending approval: the pipeline rolls back and its branch is deleted.
    Reject {
        #[command(flatten)]
        decision: DecisionArgs,
    },
    /// Send work back with instructions: the pipeline works again and asks again.
    Revise {
        #[command(flatten)]
        decision: DecisionArgs,
    },
}

#[derive(Debug, Clone, Args)]
struct DecisionArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Approval id (`aiops approvals list`).
    id: i64,
    /// Why, or what should change (required by revise).
    #[arg(long, short = 'm')]
    comment: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List approvals, newest first: pending ones unless --all.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Include decided and expired approvals.
        #[arg(long)]
        all: bool,
        /// Only this project's approvals.
        #[arg(long)]
        project: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Make the store's file schedules and routing rules match the jobs directory: create,
    /// change and remove them; those made through the API are left alone.
    ///
    /// Every file is validated first, so a bad file changes nothing. Prints what changed as
    /// JSON; a schedule or rule whose project is not registered is listed under "skipped".
    Reload {
        #[command(flatten)]
        store: StoreArgs,
        /// Directory of *.toml job files [default: scheduler.jobs_dir, ./jobs].
        #[arg(long, value_name = "DIR")]
        jobs_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// Follow a task live: prints each event until the task ends or waits for a human.
    Watch {
        /// Task id.
        id: i64,
        /// Base URL of the aiops server.
        #[arg(long, env = "AIOPS_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API token.
        #[arg(long, env = "AIOPS_TOKEN", hide_env_values = true)]
        token: String,
        /// Keep following through approvals until the task ends.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HookCommand {
    /// Claude Code SessionStart hook: reads the hook JSON on stdin and prints the project's
    /// facts as additional context when `cwd` is a registered project or a task worktree.
    ///
    /// Prints nothing for an unknown directory. Never prints a secret.
    SessionStart {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Project values shared by `add` and `update`.
#[derive(Debug, Clone, Args)]
struct ProjectFields {
    /// Git remote to clone, e.g. https://github.com/acme/shop.git or git@github.com:acme/shop.git.
    #[arg(long, value_name = "URL")]
    repo_url: Option<String>,
    /// Existing local checkout (must be a git repository).
    #[arg(long, value_name = "DIR")]
    path: Option<String>,
    /// Branch new work starts from [default: main].
    #[arg(long, value_name = "BRANCH")]
    default_branch: Option<String>,
    /// Task branch template with {team}, {task_id}, {project} [default: aiops/{team}/{task_id}].
    #[arg(long, value_name = "TEMPLATE")]
    branch_strategy: Option<String>,
    /// Tech stack, comma-separated, e.g. rust,postgres.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    stack: Option<Vec<String>>,
    /// Conventions the agents should follow (free text).
    #[arg(long, value_name = "TEXT")]
    conventions: Option<String>,
    /// GitHub repository as owner/repo.
    #[arg(long, value_name = "OWNER/REPO")]
    github: Option<String>,
    /// Most tasks of this project running at once [default: 1].
    #[arg(long, value_name = "N")]
    max_concurrency: Option<i64>,
    /// Agent timeout for this project in seconds [default: the global one].
    #[arg(long, value_name = "SECS")]
    timeout_secs: Option<i64>,
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Register a project.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Unique slug: lower-case letters, digits and '-'.
        name: String,
        #[command(flatten)]
        fields: ProjectFields,
    },
    /// List projects.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one project as JSON.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
    /// Change a project; only the options given change ("" clears a URL, path or repo).
    Update {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
        #[command(flatten)]
        fields: ProjectFields,
    },
    /// Remove a project and its credentials (refused while it has tasks).
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Store a secret, reading its value from standard input (never from the command line).
    ///
    /// Example: `printf %s "$TOKEN" | aiops secret set --project shop --name github-token --kind token`
    Set {
        #[command(flatten)]
        store: StoreArgs,
        /// Project the secret belongs to; omit for a global secret.
        #[arg(long)]
        project: Option<String>,
        /// Name, unique within its project.
        #[arg(long)]
        name: String,
        /// What the secret is.
        #[arg(long, value_enum)]
        kind: CredentialKind,
        /// Environment variable the agent gets it as [default: NAME in upper case].
        #[arg(long, value_name = "VAR")]
        env_var: Option<String>,
    },
    /// List secrets (metadata only; values are never shown).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this project's secrets.
        #[arg(long)]
        project: Option<String>,
    },
    /// Delete a secret by id.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        id: i64,
    },
    /// Re-encrypt every secret under a new master key, in one transaction.
    ///
    /// With a key file the file is replaced; with AIOPS_MASTER_KEY the new key is printed
    /// and must replace the variable's value before the next start.
    RotateKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on stdout. It is shown only this once.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Name of the token (and of the service principal holding it).
        #[arg(long)]
        name: String,
        /// Give the token the admin role (same as --role admin).
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// Role of the token [default: operator].
        #[arg(long, value_enum)]
        role: Option<Role>,
    },
    /// List tokens (metadata only).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by name; it stops working at once.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    listen: Option<String>,
) -> anyhow::Result<Config> {
    Ok(Config::load(&Overrides {
        config_file: config_file.clone(),
        data_dir: store.data_dir.clone(),
        database_url: store.database_url.clone(),
        listen,
    })?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_file = cli.config;
    match cli.command {
        Command::Serve { store, listen } => serve(load_config(&config_file, &store, listen)?).await,
        Command::Migrate { store } => {
            let config = load_config(&config_file, &store, None)?;
            server::open_store(&config).await?;
            eprintln!(
                "store at {} is migrated",
                server::redact_url(&config.effective_database_url())
            );
            Ok(())
        }
        Command::Keygen => {
            println!("{}", MasterKey::generate().to_base64());
            Ok(())
        }
        Command::Project { command } => project(&config_file, command).await,
        Command::Secret { command } => secret(&config_file, command).await,
        Command::Token { command } => token(&config_file, command).await,
        Command::Worker { store, workers } => {
            let mut config = load_config(&config_file, &store, None)?;
            if let Some(n) = workers {
                config.engine.workers = n;
            }
            worker(config).await
        }
        Command::Task {
            command:
                TaskCommand::Watch {
                    id,
                    url,
                    token,
                    follow,
                },
        } => crate::watch::watch_task(&url, &token, id, follow).await,
        Command::Hook {
            command: HookCommand::SessionStart { store },
        } => {
            let config = load_config(&config_file, &store, None)?;
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("cannot read the hook input")?;
            if let Some(output) = crate::hook::session_start(&config, &input).await? {
                println!("{output}");
            }
            Ok(())
        }
        Command::Jobs { command } => jobs(&config_file, command).await,
        Command::Approvals {
            command:
                ApprovalsCommand::List {
                    store,
                    all,
                    project,
                },
        } => list_approvals(&config_file, &store, all, project).await,
        Command::Approve { decision } => decide(&config_file, decision, Decision::Approve).await,
        Command::Reject { decision } => decide(&config_file, decision, Decision::Reject).await,
        Command::Revise { decision } => decide(&config_file, decision, Decision::Revise).await,
    }
}

async fn list_approvals(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    all: bool,
    project: Option<String>,
) -> anyhow::Result<()> {
    let store = server::open_store(&load_config(config_file, store, None)?).await?;
    let project_id = match project {
        Some(name) => Some(store.project(&name).await?.id),
        None => None,
    };
    let filter = crate::store::approvals::ApprovalFilter {
        status: (!all).then(|| "pending".to_string()),
        project_id,
        task_id: None,
        limit: 200,
    };
    println!(
        "{:<6} {:<6} {:<7} {:<9} {:<26} WHAT",
        "ID", "TASK", "KIND", "STATUS", "REQUESTED"
    );
    for a in store.list_approvals(&filter).await? {
        let what = match (&a.decision, &a.tool_name, &a.summary) {
            (Some(decision), _, _) => format!(
                "{decision} by {} via {}",
                a.decided_by.as_deref().unwrap_or("?"),
                a.channel.as_deref().unwrap_or("?")
            ),
            (None, Some(tool), _) => format!("{tool} ({})", a.risk_level.as_deref().unwrap_or("?")),
            (None, None, Some(summary)) => summary
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect(),
            _ => String::new(),
        };
        println!(
            "{:<6} {:<6} {:<7} {:<9} {:<26} {what}",
            a.id,
            a.task_id,
            a.kind,
            a.status,
            a.requested_at.to_rfc3339()
        );
    }
    Ok(())
}

async fn decide(
    config_file: &Option<PathBuf>,
    args: DecisionArgs,
    decision: Decision,
) -> anyhow::Result<()> {
    let store = server::open_store(&load_config(config_file, &args.store, None)?).await?;
    let principal = auth::Principal::cli();
    let decider = approvals::Decider {
        name: principal.name,
        principal_id: None,
        channel: approvals::Channel::Cli,
        source: "cli".into(),
    };
    let request = approvals::DecisionRequest {
        decision,
        comment: args.comment,
    };
    let approval = approvals::decide(&store, args.id, &request, &decider).await?;
    eprintln!(
        "approval {} decided: {decision}; task {} resumes with it",
        approval.id, approval.task_id
    );
    Ok(())
}

async fn worker(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    if config.engine.workers == 0 {
        bail!("engine.workers is 0; a worker process needs at least one (--workers N)");
    }
    let store = server::open_store(&config).await?;
    let (vault, _, _) = server::open_vault(&config, &store, false).await?;
    let config = std::sync::Arc::new(config);
    let engine = crate::engine::Engine::new(store.clone(), vault.clone(), config.clone());
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
    workers.stop().await;
    if let Some(notifications) = notifications {
        notifications.stop().await;
    }
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    store.close().await;
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn serve(config: Config) -> anyhow::Result<()> {
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
    let started = server::start(config).await?;
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
    eprintln!("aiops is listening on http://{local}");
    eprintln!("  API:       {base}/api/v1  (OpenAPI: {base}/api/v1/openapi.json)");
    eprintln!("  Dashboard: {base}/");
    match &started.admin_token {
        Some(token) => {
            eprintln!("  Log in with this admin token. It is shown only once; store it now:");
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
    crate::http::serve(listener, started.state, shutdown_signal()).await?;
    if let Some(workers) = started.workers {
        workers.stop().await;
    }
    if let Some(notifications) = started.notifications {
        notifications.stop().await;
    }
    started.approval_deadlines.cancel();
    if let Some(replies) = started.replies {
        replies.cancel();
    }
    if let Some(scheduler) = started.scheduler {
        scheduler.stop().await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
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

/// Runs a CLI mutation and records it in the audit log with its outcome.
async fn audited<T>(
    store: &Store,
    action: &str,
    target: String,
    work: impl std::future::Future<Output = crate::Result<T>>,
) -> anyhow::Result<T> {
    let result = work.await;
    let entry = NewAuditEntry {
        principal: Some(Principal::cli()),
        action: format!("cli {action}"),
        target,
        source: "cli".into(),
        outcome: if result.is_ok() { "ok" } else { "error" }.into(),
        detail: match &result {
            Ok(_) => json!({}),
            Err(e) => json!({ "error": e.to_string() }),
        },
    };
    store.append_audit(&entry).await?;
    Ok(result?)
}

async fn project(config_file: &Option<PathBuf>, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Add {
            store,
            name,
            fields,
        } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            let new = NewProject {
                name: name.clone(),
                repo_url: fields.repo_url,
                local_path: fields.path,
                default_branch: fields.default_branch,
                branch_strategy: fields.branch_strategy,
                tech_stack: fields.stack,
                conventions: fields.conventions,
                github_repo: fields.github,
                max_concurrency: fields.max_concurrency,
                timeout_secs: fields.timeout_secs,
            };
            let project = audited(&store, "project add", format!("projects/{name}"), async {
                store.insert_project(&new.into_spec()?).await
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&project)?);
        }
        ProjectCommand::List { store, json } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            let projects = store.list_projects().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&projects)?);
            } else {
                println!("{:<24} {:<8} {:<16} SOURCE", "NAME", "MAX", "BRANCH");
                for p in projects {
                    let source = p.repo_url.or(p.local_path).unwrap_or_default();
                    println!(
                        "{:<24} {:<8} {:<16} {source}",
                        p.name, p.max_concurrency, p.default_branch
                    );
                }
            }
        }
        ProjectCommand::Show { store, name } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&store.project(&name).await?)?
            );
        }
        ProjectCommand::Update {
            store,
            name,
            fields,
        } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            let patch = ProjectPatch {
                repo_url: fields.repo_url,
                local_path: fields.path,
                default_branch: fields.default_branch,
                branch_strategy: fields.branch_strategy,
                tech_stack: fields.stack,
                conventions: fields.conventions,
                github_repo: fields.github,
                max_concurrency: fields.max_concurrency,
                timeout_secs: fields.timeout_secs,
            };
            let project = audited(
                &store,
                "project update",
                format!("projects/{name}"),
                async {
                    let project = store.project(&name).await?;
                    store
                        .update_project(project.id, &project.patched(patch)?)
                        .await
                },
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&project)?);
        }
        ProjectCommand::Remove { store, name } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            audited(
                &store,
                "project remove",
                format!("projects/{name}"),
                async {
                    let project = store.project(&name).await?;
                    store.delete_project(project.id).await
                },
            )
            .await?;
            eprintln!("removed project {name}");
        }
    }
    Ok(())
}

async fn secret(config_file: &Option<PathBuf>, command: SecretCommand) -> anyhow::Result<()> {
    match command {
        SecretCommand::Set {
            store,
            project,
            name,
            kind,
            env_var,
        } => {
            let config = load_config(config_file, &store, None)?;
            let store = server::open_store(&config).await?;
            let (vault, _, generated) = server::open_vault(&config, &store, true).await?;
            if let Some(path) = generated {
                eprintln!(
                    "Generated a new master key in {} (mode 0600). Back it up.",
                    path.display()
                );
            }
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("cannot read the secret value from standard input")?;
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let value = value.strip_suffix('\r').unwrap_or(value).to_string();
            if value.is_empty() {
                bail!(
                    "no value on standard input; pipe the secret in, e.g. printf %s \"$VALUE\" | aiops secret set …"
                );
            }
            let new = NewCredential {
                project,
                name: name.clone(),
                kind,
                env_var,
                value,
            };
            let scope = new.project.clone().unwrap_or_else(|| "global".into());
            let credential = audited(
                &store,
                "secret set",
                format!("credentials/{scope}/{name}"),
                async { credentials::store_credential(&store, &vault, new, true).await },
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&credential)?);
        }
        SecretCommand::List { store, project } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            let project_id = match project {
                Some(name) => Some(store.project(&name).await?.id),
                None => None,
            };
            println!(
                "{:<6} {:<16} {:<24} {:<14} {:<24} KEY",
                "ID", "PROJECT", "NAME", "KIND", "ENV VAR"
            );
            for c in store.list_credentials(project_id).await? {
                let scope = c.project.unwrap_or_else(|| "(global)".into());
                println!(
                    "{:<6} {:<16} {:<24} {:<14} {:<24} v{}",
                    c.id, scope, c.name, c.kind, c.env_var, c.key_version
                );
            }
        }
        SecretCommand::Remove { store, id } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            audited(
                &store,
                "secret remove",
                format!("credentials/{id}"),
                store.delete_credential(id),
            )
            .await?;
            eprintln!("removed credential {id}");
        }
        SecretCommand::RotateKey { store } => {
            let config = load_config(config_file, &store, None)?;
            let store = server::open_store(&config).await?;
            let (vault, source, _) = server::open_vault(&config, &store, false).await?;
            let rotated = vault.rotate(&store, &source).await;
            // With the key in the environment the new key exists only in this process: print
            // it before anything else can fail.
            if let (Ok((_, new_key)), KeySource::Env) = (&rotated, &source) {
                println!("{}", new_key.to_base64());
            }
            let (rotated, _) = audited(&store, "secret rotate-key", "vault".into(), async {
                rotated.map_err(|e| crate::Error::Internal(e.into()))
            })
            .await?;
            match source {
                KeySource::File(path) => eprintln!(
                    "rotated to key version {}; {} holds the new key and the old key is no longer needed",
                    rotated.key_version(),
                    path.display()
                ),
                KeySource::Env => {
                    eprintln!(
                        "rotated to key version {}; set {MASTER_KEY_VAR} to the key printed above before the next start. The old key is no longer needed.",
                        rotated.key_version()
                    );
                }
            }
        }
    }
    Ok(())
}

async fn jobs(config_file: &Option<PathBuf>, command: JobsCommand) -> anyhow::Result<()> {
    let JobsCommand::Reload { store, jobs_dir } = command;
    let config = load_config(config_file, &store, None)?;
    let dir = jobs_dir.unwrap_or_else(|| config.scheduler.jobs_dir.clone());
    let teams = server::load_teams(&config)?;
    let store = server::open_store(&config).await?;
    let reloaded = audited(&store, "jobs reload", "jobs".into(), async {
        crate::jobs::reconcile(&store, &config, &teams, &dir)
            .await
            .map_err(crate::Error::Internal)
    })
    .await?;
    for (kind, skipped) in reloaded.skipped() {
        eprintln!(
            "skipped {kind} {} ({}): {}",
            skipped.name, skipped.file, skipped.reason
        );
    }
    eprintln!("{}: {}", dir.display(), reloaded.summary());
    println!("{}", serde_json::to_string_pretty(&reloaded)?);
    Ok(())
}

async fn token(config_file: &Option<PathBuf>, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            store,
            name,
            admin,
            role,
        } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            let role = if admin {
                Role::Admin
            } else {
                role.unwrap_or(Role::Operator)
            };
            let (token, _) = audited(
                &store,
                "token create",
                format!("tokens/{name}"),
                auth::create_token(&store, &name, role),
            )
            .await?;
            println!("{token}");
        }
        TokenCommand::List { store } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            println!(
                "{:<24} {:<9} {:<14} {:<26} STATE",
                "NAME", "ROLE", "PREFIX", "CREATED"
            );
            for t in store.list_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<9} {:<14} {:<26} {state}",
                    t.name,
                    t.role,
                    t.prefix,
                    t.created_at.to_rfc3339()
                );
            }
        }
        TokenCommand::Revoke { store, name } => {
            let store = server::open_store(&load_config(config_file, &store, None)?).await?;
            audited(
                &store,
                "token revoke",
                format!("tokens/{name}"),
                store.revoke_token(&name),
            )
            .await?;
            eprintln!("revoked token {name}");
        }
    }
    Ok(())
}
