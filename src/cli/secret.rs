//! `aiops secret set|list|remove|rotate-key` and `aiops keygen`: credentials and the master key.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::{StoreArgs, audited, load_config, open_store, print_json};
use crate::auth::Principal;
use crate::credentials::{self, CredentialKind, NewCredential};
use crate::server;
use crate::vault::{KeySource, MASTER_KEY_VAR, MasterKey};

#[derive(Debug, Subcommand)]
pub(super) enum SecretCommand {
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

/// `aiops keygen`: prints a new random master key.
pub(super) fn keygen() -> anyhow::Result<()> {
    println!("{}", MasterKey::generate().to_base64());
    Ok(())
}

/// Runs an `aiops secret` subcommand.
pub(super) async fn run(
    config_file: &Option<PathBuf>,
    command: SecretCommand,
) -> anyhow::Result<()> {
    match command {
        SecretCommand::Set {
            store,
            project,
            name,
            kind,
            env_var,
        } => set(config_file, &store, project, name, kind, env_var).await,
        SecretCommand::List { store, project } => list(config_file, &store, project).await,
        SecretCommand::Remove { store, id } => remove(config_file, &store, id).await,
        SecretCommand::RotateKey { store } => rotate_key(config_file, &store).await,
    }
}

/// Stores a secret whose value it reads from standard input.
async fn set(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    project: Option<String>,
    name: String,
    kind: CredentialKind,
    env_var: Option<String>,
) -> anyhow::Result<()> {
    let config = load_config(config_file, store, None)?;
    let store = server::open_store(&config).await?;
    let (vault, _, generated) = server::open_vault(&config, &store, true).await?;
    if let Some(path) = generated {
        eprintln!(
            "Generated a new master key in {} (mode 0600). Back it up.",
            path.display()
        );
    }
    let value = read_secret_value()?;
    let scope = project.clone().unwrap_or_else(|| "global".into());
    let target = format!("credentials/{scope}/{name}");
    let new = NewCredential {
        project,
        name,
        kind,
        env_var,
        value,
    };
    let credential = audited(&store, "secret set", target, async {
        let cli = Principal::cli();
        credentials::store_credential(&store, &vault, &config, &cli, new, true).await
    })
    .await?;
    print_json(&credential)
}

/// Reads a secret value from standard input, without one trailing line break.
fn read_secret_value() -> anyhow::Result<String> {
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
    Ok(value)
}

async fn list(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    project: Option<String>,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    let project_id = crate::projects::filter_id(&store, project.as_deref()).await?;
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
    Ok(())
}

async fn remove(config_file: &Option<PathBuf>, store: &StoreArgs, id: i64) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    audited(
        &store,
        "secret remove",
        format!("credentials/{id}"),
        store.delete_credential(id),
    )
    .await?;
    eprintln!("removed credential {id}");
    Ok(())
}

/// Re-encrypts every secret under a new master key and says where that key now is.
async fn rotate_key(config_file: &Option<PathBuf>, store: &StoreArgs) -> anyhow::Result<()> {
    let config = load_config(config_file, store, None)?;
    let store = server::open_store(&config).await?;
    let (vault, source, _) = server::open_vault(&config, &store, false).await?;
    let rotated = vault.rotate(&store, &source).await;
    // With the key in the environment the new key exists only in this process: print
    // it before anything else can fail.
    if let (Ok((_, new_key)), KeySource::Env) = (&rotated, &source) {
        println!("{}", new_key.to_base64());
    }
    let (rotated, _) = audited(&store, "secret rotate-key", "vault".into(), async {
        rotated.map_err(|e| crate::error::Error::Internal(e.into()))
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
    Ok(())
}
