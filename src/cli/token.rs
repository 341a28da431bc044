//! `aiops token create|list|revoke`: API bearer tokens.

use std::path::PathBuf;

use clap::Subcommand;

use super::{StoreArgs, audited, open_store};
use crate::auth::{self, Role};

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
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

/// Runs an `aiops token` subcommand.
pub(super) async fn run(
    config_file: &Option<PathBuf>,
    command: TokenCommand,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            store,
            name,
            admin,
            role,
        } => {
            let role = if admin {
                Role::Admin
            } else {
                role.unwrap_or(Role::Operator)
            };
            create(config_file, &store, &name, role).await
        }
        TokenCommand::List { store } => list(config_file, &store).await,
        TokenCommand::Revoke { store, name } => revoke(config_file, &store, &name).await,
    }
}

async fn create(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    name: &str,
    role: Role,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    let (token, _) = audited(
        &store,
        "token create",
        format!("tokens/{name}"),
        auth::create_token(&store, name, role),
    )
    .await?;
    println!("{token}");
    Ok(())
}

async fn list(config_file: &Option<PathBuf>, store: &StoreArgs) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    println!(
        "{:<24} {:<16} {:<26} {:<14} {:<26} STATE",
        "NAME", "OWNER", "SCOPES", "PREFIX", "CREATED"
    );
    for t in store.list_tokens().await? {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        println!(
            "{:<24} {:<16} {:<26} {:<14} {:<26} {state}",
            t.name,
            t.owner,
            t.scopes.to_string().replace(' ', ","),
            t.prefix,
            t.created_at.to_rfc3339()
        );
    }
    Ok(())
}

async fn revoke(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    name: &str,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    audited(
        &store,
        "token revoke",
        format!("tokens/{name}"),
        store.revoke_token(name),
    )
    .await?;
    eprintln!("revoked token {name}");
    Ok(())
}
