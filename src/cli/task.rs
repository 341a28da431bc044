//! `aiops task create|list|show|cancel|retry|watch`: tasks, from the store (like every
//! management command) or, for `watch`, live from a running service's event stream.

use std::path::PathBuf;

use clap::Subcommand;

use super::{StoreArgs, audited, open_store, print_json};
use crate::auth::Principal;
use crate::model::{Priority, Source, TaskFilter, TaskStatus};
use crate::tasks::{self, NewTask};

#[derive(Debug, Subcommand)]
pub(super) enum TaskCommand {
    /// Create a task: it is queued and a running service (or worker) picks it up.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Project name (`aiops project list`).
        #[arg(long)]
        project: String,
        /// What the team should do.
        #[arg(long)]
        prompt: String,
        /// Team preset [default: chosen from the prompt, else tasks.default_team].
        #[arg(long)]
        team: Option<String>,
        /// How urgent [default: tasks.default_priority].
        #[arg(long, value_enum)]
        priority: Option<Priority>,
    },
    /// List tasks, newest first.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this project's tasks.
        #[arg(long)]
        project: Option<String>,
        /// Only tasks in this status (queued, running, awaiting_approval, done, failed,
        /// rolled_back, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a task with its findings, tickets, approvals and runs, as JSON.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Task id.
        id: i64,
    },
    /// Cancel a task: a queued or waiting one ends at once, a running pipeline is stopped
    /// by the worker that runs it.
    Cancel {
        #[command(flatten)]
        store: StoreArgs,
        /// Task id.
        id: i64,
    },
    /// Run a failed or cancelled task again.
    Retry {
        #[command(flatten)]
        store: StoreArgs,
        /// Task id.
        id: i64,
    },
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

/// Runs an `aiops task` subcommand.
pub(super) async fn run(config_file: &Option<PathBuf>, command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Create {
            store,
            project,
            prompt,
            team,
            priority,
        } => {
            let new = NewTask {
                project,
                team,
                prompt,
                priority,
                dedup_key: None,
            };
            create(config_file, &store, new).await
        }
        TaskCommand::List {
            store,
            project,
            status,
            limit,
        } => list(config_file, &store, project, status, limit).await,
        TaskCommand::Show { store, id } => {
            let store = open_store(config_file, &store).await?;
            print_json(&tasks::detail(&store, id).await?)
        }
        TaskCommand::Cancel { store, id } => cancel(config_file, &store, id).await,
        TaskCommand::Retry { store, id } => retry(config_file, &store, id).await,
        TaskCommand::Watch {
            id,
            url,
            token,
            follow,
        } => crate::watch::watch_task(&url, &token, id, follow).await,
    }
}

async fn create(
    config_file: &Option<PathBuf>,
    store_args: &StoreArgs,
    new: NewTask,
) -> anyhow::Result<()> {
    let config = super::load_config(config_file, store_args, None)?;
    let store = crate::server::open_store(&config).await?;
    let teams = crate::server::load_teams(&config)?;
    crate::team_presets::refresh(&store, &teams).await?;
    let principal = Principal::cli();
    let target = format!("projects/{}", new.project);
    let task = audited(&store, "task create", target, async {
        let spec = tasks::task_spec(
            &store,
            &config.tasks,
            &teams,
            new,
            Source::Cli,
            &principal.name,
            principal.id,
        )
        .await?;
        tasks::enqueue(&store, &spec).await
    })
    .await?;
    eprintln!(
        "task {} queued for {} ({} team); follow it with `aiops task watch {}`",
        task.id, task.project, task.team, task.id
    );
    print_json(&task)
}

async fn list(
    config_file: &Option<PathBuf>,
    store_args: &StoreArgs,
    project: Option<String>,
    status: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store_args).await?;
    let status: Option<TaskStatus> = status.as_deref().map(str::parse).transpose()?;
    let project_id = crate::projects::filter_id(&store, project.as_deref()).await?;
    let filter = TaskFilter {
        project_id,
        status,
        before_id: None,
        limit: i64::from(limit.clamp(1, 1000)),
    };
    println!(
        "{:<6} {:<16} {:<12} {:<18} {:<8} PROMPT",
        "ID", "PROJECT", "TEAM", "STATUS", "PRIORITY"
    );
    for task in store.list_tasks(&filter).await? {
        let prompt: String = task
            .prompt
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        println!(
            "{:<6} {:<16} {:<12} {:<18} {:<8} {prompt}",
            task.id, task.project, task.team, task.status, task.priority
        );
    }
    Ok(())
}

async fn cancel(
    config_file: &Option<PathBuf>,
    store_args: &StoreArgs,
    id: i64,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store_args).await?;
    let status = audited(&store, "task cancel", format!("tasks/{id}"), async {
        tasks::request_cancel(&store, id).await
    })
    .await?;
    if status == TaskStatus::Cancelled {
        eprintln!("task {id} cancelled");
    } else {
        eprintln!("task {id} is {status}; the worker running it stops it within a moment");
    }
    Ok(())
}

async fn retry(
    config_file: &Option<PathBuf>,
    store_args: &StoreArgs,
    id: i64,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store_args).await?;
    let name = Principal::cli().name;
    let task = audited(&store, "task retry", format!("tasks/{id}"), async {
        tasks::retry(&store, id, &name).await
    })
    .await?;
    eprintln!(
        "task {id} queued again; follow it with `aiops task watch {}`",
        task.id
    );
    Ok(())
}
