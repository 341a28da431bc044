//! `aiops hook session-start`: Claude Code hook commands.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{StoreArgs, load_config};

#[derive(Debug, Subcommand)]
pub(super) enum HookCommand {
    /// Claude Code SessionStart hook: reads the hook JSON on stdin and prints the project's
    /// facts as additional context when `cwd` is a registered project or a task worktree.
    ///
    /// Prints nothing for an unknown directory. Never prints a secret.
    SessionStart {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs an `aiops hook` subcommand.
pub(super) async fn run(config_file: &Option<PathBuf>, command: HookCommand) -> anyhow::Result<()> {
    let HookCommand::SessionStart { store } = command;
    let config = load_config(config_file, &store, None)?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the hook input")?;
    if let Some(output) = crate::hook::session_start(&config, &input).await? {
        println!("{output}");
    }
    Ok(())
}
