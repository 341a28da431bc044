//! Principals, roles and bearer tokens.
//!
//! A token is 256 random bits shown once; only its SHA-256 is stored, so a leaked database
//! does not hand out access. Authorization is by role; users and finer roles can be added
//! as more principals without changing the token scheme.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::store::Store;

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "aiops_";

/// What a principal may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read, and create or change projects, credentials and tasks.
    Operator,
    /// Everything, including tokens and the audit log.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Someone acting on the service: the holder of a token, or the local CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// None for the local CLI, which acts with the operating system's authority.
    pub id: Option<i64>,
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// The local command line, acting as the operating system user who runs it.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Principal {
            id: None,
            name: format!("cli:{user}"),
            role: Role::Admin,
        }
    }

    /// Fails with Forbidden unless this principal has at least `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{} has role {} and this needs {}",
                self.name,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}

/// A token's metadata; never the token.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new random token.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a principal named `name` with `role` and a token for it; returns the token
/// (to be shown once) and its metadata.
pub async fn create_token(store: &Store, name: &str, role: Role) -> Result<(String, ApiToken)> {
    if !crate::projects::is_slug(name) {
        return Err(Error::invalid(
            "name",
            "must be 1-63 lower-case letters, digits or '-'",
        ));
    }
    let token = generate_token();
    let prefix: String = token.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let meta = store
        .insert_token(name, role, &hash_token(&token), &prefix)
        .await?;
    Ok((token, meta))
}

/// The principal a bearer token belongs to; Unauthorized if it is unknown or revoked.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal> {
    store
        .principal_for_token_hash(&hash_token(token))
        .await?
        .ok_or_else(|| Error::Unauthorized("the token is unknown or revoked".into()))
}
