//! Sign-in sessions: a row per signed-in browser (never its secret).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::principal::UserStatus;
use super::text_enum;

text_enum! {
    /// How a session was signed in.
    SessionMethod("method") {
        Password = "password",
        Github = "github",
        Oidc = "oidc",
    }
}

/// A session as stored (a row of `sessions` with its user's login and status), without the
/// secret's hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSession {
    pub id: i64,
    pub principal_id: i64,
    pub login: String,
    pub status: UserStatus,
    pub method: SessionMethod,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client_addr: String,
    pub user_agent: String,
}

/// A live session as its owner (or an admin) sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// The session's id (never its secret).
    pub id: i64,
    /// The login of the user signed in.
    pub user: String,
    pub method: SessionMethod,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When it ends unless used again before (idle expiry), and at the latest (absolute).
    pub idle_expires_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Where it was signed in from.
    pub client_addr: String,
    pub user_agent: String,
    /// The session this request came with.
    pub current: bool,
}
