//! Queries on the OAuth tables of the MCP resource: `oauth_clients`, `oauth_codes`,
//! `oauth_grants` and `oauth_tokens`. Every secret arrives here already hashed.

use chrono::{DateTime, Duration, Utc};

use super::{Store, Tx};
use crate::error::Result;

/// A registered client.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthClient {
    pub client_id: String,
    pub secret_hash: Option<String>,
    pub auth_method: String,
    pub name: String,
    /// JSON array of the redirect URIs.
    pub redirect_uris: String,
    pub created_at: DateTime<Utc>,
}

/// An authorization code as issued: who consented, to what, for which client.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub principal_id: i64,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scopes: String,
    pub resource: String,
    pub expires_at: DateTime<Utc>,
}

/// What taking a code found.
#[derive(Debug, Clone)]
pub enum TakenCode {
    /// Unused until now; it is marked used.
    Fresh(OAuthCode),
    /// Used before; the grant its first exchange made, if any.
    Reused {
        grant_id: Option<i64>,
    },
    Unknown,
}

/// A token with its grant and client, as authentication and refresh need them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthTokenGrant {
    pub grant_id: i64,
    pub kind: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub principal_id: i64,
    pub scopes: String,
    pub resource: String,
    pub client_id: String,
    pub client_name: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the grant was last used (kept to the minute).
    pub grant_used_at: DateTime<Utc>,
}

/// A grant as "my account" lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthGrantRow {
    pub id: i64,
    pub principal_id: i64,
    pub client_name: String,
    pub scopes: String,
    pub resource: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

impl Store {
    /// Registers `client`, first deleting clients older than a day that never got a grant;
    /// false (nothing stored) when `max` clients are registered already.
    pub async fn insert_oauth_client(&self, client: &OAuthClient, max: i64) -> Result<bool> {
        let stale = Utc::now() - Duration::days(1);
        with_pool!(self, pool => sqlx::query(
            "DELETE FROM oauth_clients WHERE created_at < $1
               AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.client_id)")
            .bind(stale)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        let count: i64 = with_pool!(self, pool =>
            sqlx::query_scalar("SELECT COUNT(*) FROM oauth_clients").fetch_one(pool).await)?;
        if count >= max {
            return Ok(false);
        }
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO oauth_clients (client_id, secret_hash, auth_method, name, redirect_uris, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&client.client_id)
            .bind(&client.secret_hash)
            .bind(&client.auth_method)
            .bind(&client.name)
            .bind(&client.redirect_uris)
            .bind(client.created_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(true)
    }

    /// The client `client_id`.
    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT client_id, secret_hash, auth_method, name, redirect_uris, created_at
             FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Stores an authorization code, dropping codes that expired an hour ago or more.
    pub async fn insert_oauth_code(&self, code: &OAuthCode) -> Result<()> {
        with_pool!(self, pool => sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
            .bind(Utc::now() - Duration::hours(1))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO oauth_codes (code_hash, client_id, principal_id, redirect_uri, code_challenge, scopes, resource, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&code.code_hash)
            .bind(&code.client_id)
            .bind(code.principal_id)
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(&code.scopes)
            .bind(&code.resource)
            .bind(code.expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Marks code `code_hash` used, once: the first caller gets it, every later one learns
    /// it was reused (and which grant its first exchange made).
    pub async fn take_oauth_code(&self, code_hash: &str) -> Result<TakenCode> {
        let fresh: Option<OAuthCode> = with_pool!(self, pool => sqlx::query_as(
            "UPDATE oauth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL
             RETURNING code_hash, client_id, principal_id, redirect_uri, code_challenge, scopes, resource, expires_at")
            .bind(code_hash)
            .bind(Utc::now())
            .fetch_optional(pool)
            .await)?;
        if let Some(code) = fresh {
            return Ok(TakenCode::Fresh(code));
        }
        let used: Option<Option<i64>> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT grant_id FROM oauth_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(pool)
            .await)?;
        Ok(match used {
            Some(grant_id) => TakenCode::Reused { grant_id },
            None => TakenCode::Unknown,
        })
    }

    /// The token `token_hash` with its grant and client.
    pub async fn oauth_token(&self, token_hash: &str) -> Result<Option<OAuthTokenGrant>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT t.grant_id, t.kind, t.expires_at, t.used_at, g.principal_id, g.scopes,
                    g.resource, g.client_id, c.name AS client_name, g.revoked_at,
                    g.last_used_at AS grant_used_at
             FROM oauth_tokens t
             JOIN oauth_grants g ON g.id = t.grant_id
             JOIN oauth_clients c ON c.client_id = g.client_id
             WHERE t.token_hash = $1")
            .bind(token_hash)
            .fetch_optional(pool)
            .await)?)
    }

    /// Marks refresh token `token_hash` used; false when it already was (a replay).
    pub async fn use_oauth_refresh_token(&self, token_hash: &str) -> Result<bool> {
        let changed = with_pool!(self, pool => sqlx::query(
            "UPDATE oauth_tokens SET used_at = $2
             WHERE token_hash = $1 AND kind = 'refresh' AND used_at IS NULL")
            .bind(token_hash)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Records that grant `id` was used now (at most once a minute; callers that read the
    /// grant's last use skip the call within the minute, sparing a write per request).
    pub async fn touch_oauth_grant(&self, id: i64) -> Result<()> {
        let now = Utc::now();
        with_pool!(self, pool => sqlx::query(
            "UPDATE oauth_grants SET last_used_at = $2 WHERE id = $1 AND last_used_at < $3")
            .bind(id)
            .bind(now)
            .bind(now - Duration::minutes(1))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Narrows grant `id` to `scopes` (a refresh that asked for less).
    pub async fn narrow_oauth_grant(&self, id: i64, scopes: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE oauth_grants SET scopes = $2 WHERE id = $1")
            .bind(id)
            .bind(scopes)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Revokes grant `id` (and so every token of it); false when it was already revoked or
    /// is not `principal_id`'s (when given).
    pub async fn revoke_oauth_grant(&self, id: i64, principal_id: Option<i64>) -> Result<bool> {
        let changed = with_pool!(self, pool => sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $2
             WHERE id = $1 AND revoked_at IS NULL AND ($3 IS NULL OR principal_id = $3)")
            .bind(id)
            .bind(Utc::now())
            .bind(principal_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// The grants of `principal_id` still in force, newest first.
    pub async fn oauth_grants_of(&self, principal_id: i64) -> Result<Vec<OAuthGrantRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT g.id, g.principal_id, c.name AS client_name, g.scopes, g.resource,
                    g.created_at, g.last_used_at
             FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id
             WHERE g.principal_id = $1 AND g.revoked_at IS NULL
             ORDER BY g.id DESC")
            .bind(principal_id)
            .fetch_all(pool)
            .await)?)
    }
}

/// Creates the grant a code's exchange makes, and ties the code to it, inside `tx`.
pub async fn insert_oauth_grant(tx: &mut Tx, code: &OAuthCode) -> Result<i64> {
    let now = Utc::now();
    let id: i64 = with_tx!(tx, conn => sqlx::query_scalar(
        "INSERT INTO oauth_grants (client_id, principal_id, scopes, resource, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
        .bind(&code.client_id)
        .bind(code.principal_id)
        .bind(&code.scopes)
        .bind(&code.resource)
        .bind(now)
        .fetch_one(&mut *conn)
        .await)?;
    with_tx!(tx, conn => sqlx::query("UPDATE oauth_codes SET grant_id = $2 WHERE code_hash = $1")
        .bind(&code.code_hash)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(id)
}

/// Stores a token of grant `grant_id` inside `tx`, dropping the grant's expired ones.
pub async fn insert_oauth_token(
    tx: &mut Tx,
    grant_id: i64,
    kind: &str,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "DELETE FROM oauth_tokens WHERE grant_id = $1 AND expires_at < $2")
        .bind(grant_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, grant_id, kind, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(grant_id)
        .bind(kind)
        .bind(expires_at)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
