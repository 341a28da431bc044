//! Credentials: secrets bound to a project (or global), sealed by the vault.
//!
//! Values are write-only: nothing here returns a plaintext except `reveal_for_project`,
//! whose only caller puts the values into an agent's environment.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Principal;
pub use crate::model::{Credential, CredentialKind, SealedCredential};
use crate::permissions::{On, Permission, authorize};
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

/// Variables that make a program load or run other code (the dynamic loader, shells, language
/// runtimes, git and ssh hooks): a credential set as one would run code in every agent.
const HOOK_ENV_VARS: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "ZDOTDIR",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "CDPATH",
    "PS4",
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    "HOSTALIASES",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_PROXY_COMMAND",
    "GIT_EXTERNAL_DIFF",
    "GIT_TEMPLATE_DIR",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "GIT_PAGER",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "RUSTC_WRAPPER",
    "RUSTC",
    "CARGO_HOME",
];

/// Prefixes of hook variables: the loader's (`LD_PRELOAD`, `LD_LIBRARY_PATH`, …, and macOS'
/// `DYLD_*`), exported bash functions, git's config from the environment, npm's config.
const HOOK_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "BASH_FUNC_", "GIT_CONFIG", "NPM_CONFIG_"];

/// True if a credential may not be injected as `var`: aiops sets it, or it runs code.
fn is_denied_env_var(var: &str) -> bool {
    RESERVED_ENV_VARS.contains(&var)
        || HOOK_ENV_VARS.contains(&var)
        || HOOK_ENV_PREFIXES.iter().any(|p| var.starts_with(p))
        || var.starts_with("AIOPS_")
}

/// The permission it takes to create or delete this credential: admin for the secrets that
/// let their holder forge what aiops trusts (a global webhook or signing secret, the GitHub
/// App's key), maintaining its project (every project, for a global one) for the rest.
pub fn permission_to_manage(
    config: &Config,
    project: Option<&str>,
    kind: CredentialKind,
    name: &str,
) -> Permission {
    let signing_names = [
        config.notify.slack_signing_secret_credential.as_str(),
        config.notify.kakaowork_callback_secret_credential.as_str(),
        config.github.app_secret_credential.as_str(),
        config.github.app_credential.as_str(),
    ];
    let alert_secret = config.alerts.sources.iter().any(|s| s.credential == name);
    let global_signing = project.is_none()
        && (kind == CredentialKind::WebhookSecret || signing_names.contains(&name) || alert_secret);
    if global_signing || kind == CredentialKind::GithubApp {
        Permission::Admin
    } else {
        Permission::Maintain
    }
}

/// Ok when `by` may create or delete a credential of this scope, kind and name.
fn authorize_manage(
    config: &Config,
    by: &Principal,
    project: Option<(&str, i64)>,
    kind: CredentialKind,
    name: &str,
) -> Result<()> {
    let permission = permission_to_manage(config, project.map(|p| p.0), kind, name);
    let on = project.map_or(On::EveryProject, |p| On::Project(p.1));
    authorize(by, permission, on)
}

/// Body of a credential creation. `value` is write-only.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Project name; omit for a global credential.
    pub project: Option<String>,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]
    pub name: String,
    pub kind: CredentialKind,
    /// Defaults to the name in upper case with '-' as '_'.
    #[schema(pattern = "^[A-Z_][A-Z0-9_]*$")]
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

/// Validates, seals and stores a credential, if `by` may. With `replace`, an existing
/// credential of the same scope and name gets the new value; without, that is a conflict.
pub async fn store_credential(
    store: &Store,
    vault: &Vault,
    config: &Config,
    by: &Principal,
    new: NewCredential,
    replace: bool,
) -> Result<Credential> {
    let project_id = match &new.project {
        Some(name) => Some(store.project(name).await?.id),
        None => None,
    };
    let project = new.project.as_deref().zip(project_id);
    authorize_manage(config, by, project, new.kind, &new.name)?;
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
    if is_denied_env_var(&env_var) {
        return Err(Error::invalid(
            "env_var",
            format!(
                "{env_var} is set by aiops itself or makes programs load code (a loader, shell or runtime hook); choose another variable name"
            ),
        ));
    }
    if new.value.is_empty() || new.value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("must be 1 to {MAX_VALUE_BYTES} bytes"),
        ));
    }
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

/// Deletes credential `id`, if `by` may.
pub async fn remove(store: &Store, config: &Config, by: &Principal, id: i64) -> Result<()> {
    let credential = store.credential(id).await?;
    let project = match credential.project.as_deref() {
        Some(name) => Some((name, store.project(name).await?.id)),
        None => None,
    };
    authorize_manage(config, by, project, credential.kind, &credential.name)?;
    store.delete_credential(id).await
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

/// The values of sealed credentials read with something else (a GitHub delivery's signing
/// secrets, read with its routing), for verifying an inbound request only.
pub fn reveal_sealed(vault: &Vault, rows: &[SealedCredential]) -> Result<Vec<String>> {
    rows.iter().map(|row| open_sealed(vault, row)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_variables_are_denied() {
        for var in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "NODE_OPTIONS",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_GLOBAL",
            "PYTHONSTARTUP",
            "PATH",
            "AIOPS_ANYTHING",
            "BASH_FUNC_X%%",
        ] {
            assert!(is_denied_env_var(var), "{var}");
        }
        for var in ["DEPLOY_TOKEN", "DATABASE_URL", "GITHUB_TOKEN", "NODE_ENV"] {
            assert!(!is_denied_env_var(var), "{var}");
        }
    }

    #[test]
    fn signing_secrets_need_an_admin() {
        let config = Config::default();
        let role = |project, kind, name| permission_to_manage(&config, project, kind, name);
        assert_eq!(
            role(None, CredentialKind::Token, "slack-signing-secret"),
            Permission::Admin
        );
        assert_eq!(
            role(None, CredentialKind::Token, "kakaowork-callback-secret"),
            Permission::Admin
        );
        assert_eq!(
            role(None, CredentialKind::Token, "github-webhook"),
            Permission::Admin
        );
        assert_eq!(
            role(None, CredentialKind::Token, "alertmanager-webhook"),
            Permission::Admin
        );
        assert_eq!(
            role(None, CredentialKind::WebhookSecret, "any"),
            Permission::Admin
        );
        assert_eq!(
            role(Some("p"), CredentialKind::GithubApp, "key"),
            Permission::Admin
        );
        assert_eq!(
            role(Some("p"), CredentialKind::WebhookSecret, "hook"),
            Permission::Maintain
        );
        assert_eq!(
            role(None, CredentialKind::Token, "deploy"),
            Permission::Maintain
        );
    }
}
