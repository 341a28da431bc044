//! Queries on `api_tokens`.

use chrono::{DateTime, Duration, Utc};

use super::{ConstraintExt, Store, Tx};
use crate::error::{Error, Result};
use crate::model::{ApiToken, GlobalRole, Scopes, UserStatus};

/// `last_used_at` is refreshed at most this often, so reads do not turn into writes.
const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

const TOKEN_COLUMNS: &str = "SELECT t.id, t.name, p.name AS owner, t.scopes, pr.name AS project,
        t.service, t.expires_at, t.prefix, t.created_at, t.last_used_at, t.revoked_at
    FROM api_tokens t JOIN principals p ON p.id = t.principal_id
    LEFT JOIN projects pr ON pr.id = t.project_id";

/// A token to store: everything but the secret, which is passed as its hash.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub principal_id: i64,
    pub name: &'a str,
    pub scopes: Scopes,
    pub project_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub service: bool,
    pub token_hash: &'a str,
    pub prefix: &'a str,
}

/// The live token with a hash and its owner, as authentication needs them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenOwner {
    pub token_id: i64,
    pub token_name: String,
    pub scopes: Scopes,
    pub project_id: Option<i64>,
    pub service: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub principal_id: i64,
    pub login: String,
    pub global_role: GlobalRole,
    pub status: UserStatus,
}

/// Inserts a token inside `tx`; a taken name is a conflict.
pub async fn insert(tx: &mut Tx, token: &NewToken<'_>) -> Result<i64> {
    let conflict = format!("a token named {:?} already exists", token.name);
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "INSERT INTO api_tokens (principal_id, name, token_hash, prefix, created_at, scopes,
            project_id, expires_at, service)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id")
        .bind(token.principal_id)
        .bind(token.name)
        .bind(token.token_hash)
        .bind(token.prefix)
        .bind(Utc::now())
        .bind(token.scopes)
        .bind(token.project_id)
        .bind(token.expires_at)
        .bind(token.service)
        .fetch_one(&mut *conn)
        .await
        .on_conflict(conflict))?)
}

impl Store {
    /// One token's metadata.
    pub async fn token(&self, id: i64) -> Result<ApiToken> {
        let sql = sqlx::AssertSqlSafe(format!("{TOKEN_COLUMNS} WHERE t.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("token {id}")))
    }

    /// Every token's metadata (only principal `owner`'s, when given), newest first.
    pub async fn list_tokens_of(&self, owner: Option<i64>) -> Result<Vec<ApiToken>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{TOKEN_COLUMNS} WHERE ($1 IS NULL OR t.principal_id = $1) ORDER BY t.id DESC"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(owner).fetch_all(pool).await)?)
    }

    /// Every token's metadata, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.list_tokens_of(None).await
    }

    /// How many tokens exist, revoked or not.
    pub async fn count_tokens(&self) -> Result<i64> {
        Ok(
            with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(pool)
            .await)?,
        )
    }

    /// The principal id owning the token named `name`, if there is one.
    pub async fn token_owner(&self, name: &str) -> Result<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT principal_id FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await)?)
    }

    /// Revokes the token with this name; NotFound if there is none not yet revoked.
    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        let revoked = with_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if revoked == 0 {
            return Err(Error::NotFound(format!("active token {name:?}")));
        }
        Ok(())
    }

    /// The live (not revoked, not expired) token with this hash and its owner, recording
    /// the use; the owner's status is for the caller to judge.
    pub async fn token_owner_by_hash(&self, token_hash: &str) -> Result<Option<TokenOwner>> {
        let now = Utc::now();
        let row: Option<TokenOwner> = with_pool!(self, pool => sqlx::query_as(
            "SELECT t.id AS token_id, t.name AS token_name, t.scopes, t.project_id, t.service,
                    t.expires_at, t.last_used_at, p.id AS principal_id, p.name AS login,
                    p.global_role, p.status
             FROM api_tokens t JOIN principals p ON p.id = t.principal_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > $2)")
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        if row
            .last_used_at
            .is_none_or(|at| now - at > LAST_USED_GRANULARITY)
        {
            with_pool!(self, pool => sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(row.token_id)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
            self.touch_principal(row.principal_id, now).await?;
        }
        Ok(Some(row))
    }
}
