//! Credentials: secrets a project's agents (or the platform) use, stored sealed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;

text_enum! {
    /// What kind of secret a credential is.
    #[derive(clap::ValueEnum)]
    #[value(rename_all = "snake_case")]
    CredentialKind("kind") {
        ApiKey = "api_key",
        SshKey = "ssh_key",
        DbUrl = "db_url",
        Token = "token",
        GithubApp = "github_app",
        WebhookSecret = "webhook_secret",
    }
}

impl CredentialKind {
    /// Kinds only the platform uses (webhook secrets, GitHub App keys): never in an
    /// agent's environment.
    pub const PLATFORM_ONLY: &'static [CredentialKind] =
        &[CredentialKind::WebhookSecret, CredentialKind::GithubApp];
}

/// Ciphertext with its nonce, as stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

/// A credential's metadata; never its value.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Credential {
    pub id: i64,
    /// Project name; none for a global credential.
    pub project: Option<String>,
    pub name: String,
    pub kind: CredentialKind,
    /// Environment variable the value is injected as.
    pub env_var: String,
    pub key_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A sealed credential row, as the store hands it to the vault.
#[derive(Debug, Clone)]
pub struct SealedCredential {
    pub id: i64,
    pub project_id: Option<i64>,
    pub name: String,
    pub env_var: String,
    pub sealed: Sealed,
}
