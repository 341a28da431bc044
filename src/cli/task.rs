//! `aiops task watch`: following tasks live.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum TaskCommand {
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
pub(super) async fn run(command: TaskCommand) -> anyhow::Result<()> {
    let TaskCommand::Watch {
        id,
        url,
        token,
        follow,
    } = command;
    crate::watch::watch_task(&url, &token, id, follow).await
}
