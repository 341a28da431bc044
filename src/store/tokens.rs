//! Queries on `principals` and `api_tokens`.

use chrono::{DateTime, Duration, Utc};

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::model::{ApiToken, Principal, Role};

/// `last_used_at` is refreshed at most this often, so reads do not turn into writes.
const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

const TOKEN_COLUMNS: &str =
    "SELECT t.id, t.name, p.role, t.prefix, t.created_at, t.last_used_at, t.revoked_at
    FROM api_tokens t JOIN principals p ON p.id = t.principal_id";

impl Store {
    /// Creates a service principal and its token in one transaction.
    pub async fn insert_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        prefix: &str,
    ) -> Result<ApiToken> {
        let now = Utc::now();
        let conflict = format!("a token or principal named {name:?} already exists");
        let mut tx = self.begin().await?;
        let id: i64 = with_tx!(tx, conn => {
            let principal_id: i64 = sqlx::query_scalar(
                "INSERT INTO principals (kind, name, role, created_at) VALUES ('service', $1, $2, $3) RETURNING id")
                .bind(name)
                .bind(role)
                .bind(now)
                .fetch_one(&mut *conn)
                .await
                .on_conflict(conflict.clone())?;
            sqlx::query_scalar(
                "INSERT INTO api_tokens (principal_id, name, token_hash, prefix, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id")
                .bind(principal_id)
                .bind(name)
                .bind(token_hash)
                .bind(prefix)
                .bind(now)
                .fetch_one(&mut *conn)
                .await
                .on_conflict(conflict)?
        });
        tx.commit().await?;
        self.token(id).await
    }

    async fn token(&self, id: i64) -> Result<ApiToken> {
        let sql = sqlx::AssertSqlSafe(format!("{TOKEN_COLUMNS} WHERE t.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("token {id}")))
    }

    /// Every token's metadata, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        let sql = sqlx::AssertSqlSafe(format!("{TOKEN_COLUMNS} ORDER BY t.id DESC"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// How many tokens exist, revoked or not.
    pub async fn count_tokens(&self) -> Result<i64> {
        Ok(
            with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(pool)
            .await)?,
        )
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

    /// The principal holding the live token with this hash, recording the use.
    pub async fn principal_for_token_hash(&self, token_hash: &str) -> Result<Option<Principal>> {
        type Row = (i64, i64, String, Role, Option<DateTime<Utc>>);
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT t.id, p.id, p.name, p.role, t.last_used_at
             FROM api_tokens t JOIN principals p ON p.id = t.principal_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(pool)
            .await)?;
        let Some((token_id, principal_id, name, role, last_used)) = row else {
            return Ok(None);
        };
        let now = Utc::now();
        if last_used.is_none_or(|at| now - at > LAST_USED_GRANULARITY) {
            with_pool!(self, pool => sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(token_id)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(Some(Principal {
            id: Some(principal_id),
            name,
            role,
        }))
    }
}
