//! Queries on `sessions`, the sign-in counters on `principals`, and `sign_in_attempts`.

use chrono::{DateTime, Utc};

use super::Store;
use crate::error::Result;
use crate::model::{PrincipalKind, SessionMethod, StoredSession, UserStatus};

const SESSION_COLUMNS: &str = "SELECT s.id, s.principal_id, p.name AS login, p.status, s.method,
        s.created_at, s.last_seen_at, s.expires_at, s.client_addr, s.user_agent
    FROM sessions s JOIN principals p ON p.id = s.principal_id";

/// A session to store: everything but the secret, which is passed as its hash.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub principal_id: i64,
    pub secret_hash: &'a str,
    pub method: SessionMethod,
    pub at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client_addr: &'a str,
    pub user_agent: &'a str,
}

/// What a password sign-in needs to know about an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignInAccount {
    pub id: i64,
    pub kind: PrincipalKind,
    pub status: UserStatus,
    pub password_hash: Option<String>,
    pub failed_sign_ins: i64,
    pub locked_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a new session; returns its id.
    pub async fn insert_session(&self, new: &NewSession<'_>) -> Result<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO sessions (principal_id, secret_hash, method, created_at, last_seen_at,
                expires_at, client_addr, user_agent)
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7) RETURNING id")
            .bind(new.principal_id)
            .bind(new.secret_hash)
            .bind(new.method)
            .bind(new.at)
            .bind(new.expires_at)
            .bind(new.client_addr)
            .bind(new.user_agent)
            .fetch_one(pool)
            .await)?)
    }

    /// The session with this secret hash, unless revoked; expiry is for the caller to judge.
    pub async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<StoredSession>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SESSION_COLUMNS} WHERE s.secret_hash = $1 AND s.revoked_at IS NULL"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(secret_hash)
            .fetch_optional(pool)
            .await)?)
    }

    /// Session `id`, unless revoked.
    pub async fn live_session(&self, id: i64) -> Result<Option<StoredSession>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SESSION_COLUMNS} WHERE s.id = $1 AND s.revoked_at IS NULL"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Principal `principal_id`'s sessions that are not revoked, not past `now` and seen
    /// after `idle_cutoff`, newest first.
    pub async fn live_sessions_of(
        &self,
        principal_id: i64,
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SESSION_COLUMNS} WHERE s.principal_id = $1 AND s.revoked_at IS NULL
               AND s.expires_at > $2 AND s.last_seen_at > $3 ORDER BY s.id DESC"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(principal_id)
            .bind(now)
            .bind(idle_cutoff)
            .fetch_all(pool)
            .await)?)
    }

    /// Records that session `id` (and its user) was used at `at`.
    pub async fn touch_session(&self, id: i64, principal_id: i64, at: DateTime<Utc>) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        self.touch_principal(principal_id, at).await
    }

    /// Moves session `id`'s absolute end to `at` (an end in the past ends it now; tests
    /// reach expiry this way without waiting).
    pub async fn set_session_expiry(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE sessions SET expires_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends session `id`; false if it had already ended.
    pub async fn revoke_session(&self, id: i64) -> Result<bool> {
        let revoked = with_pool!(self, pool => sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(revoked > 0)
    }

    /// Ends every session of principal `principal_id`; returns how many were live.
    pub async fn revoke_sessions_of(&self, principal_id: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE principal_id = $1 AND revoked_at IS NULL")
            .bind(principal_id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// The account a password sign-in names, if there is one.
    pub async fn sign_in_account(&self, login: &str) -> Result<Option<SignInAccount>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, kind, status, password_hash, failed_sign_ins, locked_until
             FROM principals WHERE name = $1")
            .bind(login)
            .fetch_optional(pool)
            .await)?)
    }

    /// Counts one more wrong password for principal `id`; returns the consecutive count.
    pub async fn count_sign_in_failure(&self, id: i64) -> Result<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "UPDATE principals SET failed_sign_ins = failed_sign_ins + 1 WHERE id = $1
             RETURNING failed_sign_ins")
            .bind(id)
            .fetch_one(pool)
            .await)?)
    }

    /// Locks principal `id`'s password sign-in until `until`.
    pub async fn lock_sign_in(&self, id: i64, until: DateTime<Utc>) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE principals SET locked_until = $2 WHERE id = $1")
            .bind(id)
            .bind(until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forgets principal `id`'s failed sign-ins and lock (after a success, or by an admin).
    pub async fn clear_sign_in_failures(&self, id: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE principals SET failed_sign_ins = 0, locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Counts one sign-in attempt from `client_addr` in minute `window` (Unix minutes);
    /// returns the attempts in that window, this one included. Older windows are deleted.
    pub async fn count_sign_in_attempt(&self, client_addr: &str, window: i64) -> Result<i64> {
        with_pool!(self, pool => sqlx::query("DELETE FROM sign_in_attempts WHERE window_start < $1")
            .bind(window)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO sign_in_attempts (client_addr, window_start, attempts) VALUES ($1, $2, 1)
             ON CONFLICT (client_addr, window_start)
             DO UPDATE SET attempts = sign_in_attempts.attempts + 1
             RETURNING attempts")
            .bind(client_addr)
            .bind(window)
            .fetch_one(pool)
            .await)?)
    }
}
