//! `aiops mcp`: the MCP server over stdio for a local Claude Code, bridged to a running
//! service's `/mcp` with the user's token (see `mcp::bridge`).

use std::path::PathBuf;

use clap::Args;

use super::{StoreArgs, load_config};

#[derive(Debug, Args)]
pub(super) struct McpArgs {
    /// The service's MCP endpoint [default: `public_url` (or the listen address) + /mcp].
    #[arg(long, env = "AIOPS_URL", value_name = "URL")]
    url: Option<String>,
    /// Your API token (`aiops token create`); set it in the environment rather than on the
    /// command line, where other users can read it.
    #[arg(
        long,
        env = "AIOPS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: String,
}

/// Relays Claude Code's stdio to the service until Claude Code closes it.
pub(super) async fn run(config_file: &Option<PathBuf>, args: McpArgs) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => {
            let no_store = StoreArgs {
                data_dir: None,
                database_url: None,
            };
            let config = load_config(config_file, &no_store, None)?;
            format!("{}/mcp", config.public_base_url())
        }
    };
    crate::mcp::bridge::run(&url, &args.token).await
}
