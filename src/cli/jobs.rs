//! `aiops jobs reload`: schedules and routing rules from the jobs directory.

use std::path::PathBuf;

use clap::Subcommand;

use super::{StoreArgs, audited, load_config, print_json};
use crate::server;

#[derive(Debug, Subcommand)]
pub(super) enum JobsCommand {
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

/// Runs an `aiops jobs` subcommand.
pub(super) async fn run(config_file: &Option<PathBuf>, command: JobsCommand) -> anyhow::Result<()> {
    let JobsCommand::Reload { store, jobs_dir } = command;
    let config = load_config(config_file, &store, None)?;
    let dir = jobs_dir.unwrap_or_else(|| config.scheduler.jobs_dir.clone());
    let teams = server::load_teams(&config)?;
    let store = server::open_store(&config).await?;
    crate::team_presets::refresh(&store, &teams).await?;
    let reloaded = audited(&store, "jobs reload", "jobs".into(), async {
        crate::declarations::reconcile(&store, &config, &teams, &dir)
            .await
            .map_err(crate::error::Error::Internal)
    })
    .await?;
    for (kind, skipped) in reloaded.skipped() {
        eprintln!(
            "skipped {kind} {} ({}): {}",
            skipped.name, skipped.file, skipped.reason
        );
    }
    eprintln!("{}: {}", dir.display(), reloaded.summary());
    print_json(&reloaded)
}
