//! Principals and their roles: who acts on the service.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::text_enum;
use crate::error::{Error, Result};

text_enum! {
    /// What a principal may do; later roles include the earlier ones.
    #[derive(PartialOrd, Ord, clap::ValueEnum)]
    Role("role") {
        /// Read only.
        Viewer = "viewer",
        /// Read, and create or change projects, credentials and tasks.
        Operator = "operator",
        /// Everything, including tokens and the audit log.
        Admin = "admin",
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

/// A token's metadata; never the token (a row of `api_tokens`, without the hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}
