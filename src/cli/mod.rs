//! The `aiops` command line.
//!
//! Parses arguments, loads configuration and calls the domain; it holds no rules of its
//! own. Management commands talk to the store directly and leave audit entries as
//! `cli:<user>`. Only `token create` and `keygen` print secrets, alone on stdout.
//!
//! This module holds the top-level parser, the dispatch and the helpers the commands share;
//! each command family lives in its own submodule.

mod approve;
mod demo;
mod hook;
mod jobs;
mod mcp;
mod project;
mod secret;
mod serve;
mod task;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::json;

use crate::approvals::Decision;
use crate::audit::NewAuditEntry;
use crate::auth::Principal;
use crate::config::{Config, Overrides};
use crate::server;
use crate::store::Store;

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
    /// Try aiops without Claude: the service on a throw-away directory, with the pipeline
    /// simulator as the engine and a demo project whose tasks stop for your approval.
    ///
    /// Needs the simulator built next to the binary (`cargo build --example party_sim`).
    /// Approving a task commits its work on a branch and pushes it to the demo's own remote.
    Demo {
        /// Directory for the demo's repository, remote and data [default: a new directory
        /// under the system's temporary directory]. Run again with the same one to go on.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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
        command: project::ProjectCommand,
    },
    /// Manage encrypted credentials injected into a project's agents.
    Secret {
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// Manage API bearer tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Manage users, service accounts and their roles in projects.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
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
    /// Create, list, show, cancel, retry and follow tasks.
    Task {
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// Claude Code hook commands.
    Hook {
        #[command(subcommand)]
        command: hook::HookCommand,
    },
    /// The MCP server over stdio, for a local Claude Code: relays to a running service's
    /// /mcp with your token (AIOPS_TOKEN).
    ///
    /// Add it with `claude mcp add aiops --env AIOPS_TOKEN=… -- aiops mcp`.
    Mcp {
        #[command(flatten)]
        args: mcp::McpArgs,
    },
    /// Declarative schedules and routing rules in the jobs directory (jobs/*.toml).
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// Approval requests of pipelines.
    Approvals {
        #[command(subcommand)]
        command: approve::ApprovalsCommand,
    },
    /// Approve a pending approval: the pipeline goes on (and approved work becomes a pull
    /// request). A decision is final: a second one on any channel is refused.
    Approve {
        #[command(flatten)]
        decision: approve::DecisionArgs,
    },
    /// Reject a pending approval: the pipeline rolls back and its branch is deleted.
    Reject {
        #[command(flatten)]
        decision: approve::DecisionArgs,
    },
    /// Send work back with instructions: the pipeline works again and asks again.
    Revise {
        #[command(flatten)]
        decision: approve::DecisionArgs,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // The agent shim is started by the engine, never by a person: it runs before clap and
    // before any thread exists (it forks the agent), so it is no listed subcommand.
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|word| word == crate::engine::agent::shim::SUBCOMMAND)
    {
        return crate::engine::agent::shim::main(args.collect());
    }
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_file = cli.config;
    match cli.command {
        Command::Serve { store, listen } => {
            serve::serve(load_config(&config_file, &store, listen)?).await
        }
        Command::Demo { dir, listen } => demo::demo(&config_file, dir, listen).await,
        Command::Migrate { store } => {
            serve::migrate(load_config(&config_file, &store, None)?).await
        }
        Command::Keygen => secret::keygen(),
        Command::Project { command } => project::run(&config_file, command).await,
        Command::Secret { command } => secret::run(&config_file, command).await,
        Command::Token { command } => token::run(&config_file, command).await,
        Command::User { command } => user::run(&config_file, command).await,
        Command::Worker { store, workers } => {
            serve::worker(load_config(&config_file, &store, None)?, workers).await
        }
        Command::Task { command } => task::run(&config_file, command).await,
        Command::Hook { command } => hook::run(&config_file, command).await,
        Command::Jobs { command } => jobs::run(&config_file, command).await,
        Command::Mcp { args } => mcp::run(&config_file, args).await,
        Command::Approvals { command } => approve::approvals(&config_file, command).await,
        Command::Approve { decision } => {
            approve::decide(&config_file, decision, Decision::Approve).await
        }
        Command::Reject { decision } => {
            approve::decide(&config_file, decision, Decision::Reject).await
        }
        Command::Revise { decision } => {
            approve::decide(&config_file, decision, Decision::Revise).await
        }
    }
}

/// Loads the configuration from the file, the store options and an optional listen address.
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

/// Loads the configuration and opens (and migrates) the store it names.
async fn open_store(config_file: &Option<PathBuf>, store: &StoreArgs) -> anyhow::Result<Store> {
    server::open_store(&load_config(config_file, store, None)?).await
}

/// Prints a value as pretty JSON on stdout.
fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a CLI mutation and records it in the audit log with its outcome.
async fn audited<T>(
    store: &Store,
    action: &str,
    target: String,
    work: impl std::future::Future<Output = crate::error::Result<T>>,
) -> anyhow::Result<T> {
    let result = work.await;
    let entry = NewAuditEntry {
        principal: Some(Principal::cli().into()),
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
    result.map_err(in_flag_words)
}

/// The API's field names and the CLI flags that set them.
const FIELD_FLAGS: [(&str, &str); 14] = [
    ("repo_url", "--repo-url"),
    ("local_path", "--path"),
    ("default_branch", "--default-branch"),
    ("branch_strategy", "--branch-strategy"),
    ("tech_stack", "--stack"),
    ("conventions", "--conventions"),
    ("github_repo", "--github"),
    ("max_concurrency", "--max-concurrency"),
    ("timeout_secs", "--timeout-secs"),
    ("project", "--project"),
    ("prompt", "--prompt"),
    ("team", "--team"),
    ("priority", "--priority"),
    ("comment", "--comment"),
];

/// A use case's error as the CLI user should read it: an invalid field is named by the
/// flag that sets it, in the message too ("--repo-url: give a --repo-url, a --path, or both").
fn in_flag_words(error: crate::error::Error) -> anyhow::Error {
    let crate::error::Error::Invalid { field, message } = error else {
        return error.into();
    };
    let flag = |word: &str| {
        FIELD_FLAGS
            .iter()
            .find(|(f, _)| *f == word)
            .map_or_else(|| word.to_string(), |(_, flag)| flag.to_string())
    };
    // Only snake_case words are field names; "project" in a sentence stays a word.
    let words = regex::Regex::new(r"\b[a-z]+(?:_[a-z]+)+\b").expect("a valid pattern");
    let message = words.replace_all(&message, |c: &regex::Captures| flag(&c[0]));
    anyhow::anyhow!("{}: {message}", flag(&field))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn an_invalid_field_is_named_by_its_flag() {
        let error =
            crate::error::Error::invalid("repo_url", "give a repo_url, a local_path, or both");
        assert_eq!(
            super::in_flag_words(error).to_string(),
            "--repo-url: give a --repo-url, a --path, or both"
        );
        let error = crate::error::Error::invalid("project", "unknown project \"x\"; register it");
        assert_eq!(
            super::in_flag_words(error).to_string(),
            "--project: unknown project \"x\"; register it"
        );
    }
}
