//! Credentials: secrets bound to a project (or global), sealed by the vault.
//!
//! Values are write-only: nothing here returns a plaintext except `reveal_for_project`,
//! whose only caller puts the values into an agent's environment.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{Error, Result};
pub use crate::model::{Credential, CredentialKind, SealedCredential};
use crate::store::Store;
use crate::vault::Vault;

/// Largest secret value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Variables an agent environment sets itself; a credential may not replace them.
const RESERVED_ENV_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "LANG",
    "TERM",
    "AIOPS_MASTER_KEY",
    "AI_PARTY_APPROVAL_MODE",
    "AI_PARTY_SESSION_ID",
    "CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS",
];

/// Body of a credential creation. `value` is write-only.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Project name; omit for a global credential.
    pub project: Option<String>,
    pub name: String,
    pub kind: CredentialKind,
    /// Defaults to the name in upper case with '-' as '_'.
    pub env_var: Option<String>,
    pub value: String,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("project", &self.project)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("env_var", &self.env_var)
            .finish_non_exhaustive()
    }
}

fn valid_env_var(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// True for a usable credential name: 1-63 letters, digits, `-` or `_`, starting with a letter or digit.
pub(crate) fn valid_credential_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Validates, seals and stores a credential. With `replace`, an existing credential of the
/// same scope and name gets the new value; without, that is a conflict.
pub async fn store_credential(
    store: &Store,
    vault: &Vault,
    new: NewCredential,
    replace: bool,
) -> Result<Credential> {
    if !valid_credential_name(&new.name) {
        return Err(Error::invalid(
            "name",
            "must be 1-63 letters, digits, '-' or '_', starting with a letter or digit",
        ));
    }
    let env_var = new
        .env_var
        .clone()
        .unwrap_or_else(|| new.name.to_ascii_uppercase().replace('-', "_"));
    if !valid_env_var(&env_var) {
        return Err(Error::invalid(
            "env_var",
            "must be an environment variable name: A-Z, 0-9 and '_', not starting with a digit",
        ));
    }
    if RESERVED_ENV_VARS.contains(&env_var.as_str()) {
        return Err(Error::invalid(
            "env_var",
            format!("{env_var} is set by aiops itself and cannot be a credential"),
        ));
    }
    if new.value.is_empty() || new.value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("must be 1 to {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let project_id = match &new.project {
        Some(name) => Some(store.project(name).await?.id),
        None => None,
    };
    let sealed = vault.seal_credential(project_id, &new.name, &new.value);
    store
        .put_credential(
            project_id,
            &new.name,
            new.kind,
            &env_var,
            &sealed,
            vault.key_version(),
            replace,
        )
        .await
}

/// The decrypted credentials an agent of this project gets, as (env var, value, name):
/// global ones first, then the project's, so a project credential wins on the same variable.
/// Secrets only the platform uses (webhook secrets, GitHub App keys, the secrets of
/// notification channels) are never among them.
pub async fn reveal_for_project(
    store: &Store,
    vault: &Vault,
    project_id: i64,
) -> Result<Vec<(String, String, String)>> {
    let rows = store.sealed_agent_credentials_for(project_id).await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let value = open_sealed(vault, &row)?;
        out.push((row.env_var, value, row.name));
    }
    store.touch_credentials(&ids).await?;
    Ok(out)
}

fn open_sealed(vault: &Vault, row: &SealedCredential) -> Result<String> {
    vault
        .open_credential(row.project_id, &row.name, &row.sealed)
        .map_err(|e| Error::Internal(anyhow::anyhow!("credential {}: {e}", row.name)))
}

/// The value of the global credential `name`, for verifying inbound requests and calling
/// other services; never for storing or logging.
pub async fn reveal_global(store: &Store, vault: &Vault, name: &str) -> Result<Option<String>> {
    match store.sealed_global_credential(name).await? {
        Some(row) => open_sealed(vault, &row).map(Some),
        None => Ok(None),
    }
}

/// The values of a project's credentials of one kind (e.g. its webhook secrets).
pub async fn reveal_project_kind(
    store: &Store,
    vault: &Vault,
    project_id: i64,
    kind: CredentialKind,
) -> Result<Vec<String>> {
    store
        .sealed_project_credentials_of_kind(project_id, kind)
        .await?
        .iter()
        .map(|row| open_sealed(vault, row))
        .collect()
}

/// A project's credential by name, else the global one of that name.
pub async fn reveal_named(
    store: &Store,
    vault: &Vault,
    project_id: i64,
    name: &str,
) -> Result<Option<String>> {
    for row in store.sealed_credentials_for(project_id).await?.iter().rev() {
        if row.name == name {
            return open_sealed(vault, row).map(Some);
        }
    }
    Ok(None)
}
