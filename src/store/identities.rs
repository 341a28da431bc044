//! Queries on `chat_identities` (chat accounts linked to users) and `identity_links` (the
//! one-time links offered in chat to link an account).

use chrono::{DateTime, Utc};

use super::{ConstraintExt, Store, Tx};
use crate::error::Result;
use crate::model::{ChatIdentity, ChatProvider};

/// Links `external_id` of `provider` to principal `principal_id` inside `tx`, replacing the
/// principal's earlier id of that provider; a chat id linked to someone else is a conflict.
pub async fn link(
    tx: &mut Tx,
    provider: ChatProvider,
    external_id: &str,
    principal_id: i64,
) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "DELETE FROM chat_identities WHERE principal_id = $1 AND provider = $2")
        .bind(principal_id)
        .bind(provider)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO chat_identities (provider, external_id, principal_id, linked_at)
         VALUES ($1, $2, $3, $4)")
        .bind(provider)
        .bind(external_id)
        .bind(principal_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))
    .on_conflict(format!(
        "{provider} user {external_id} is linked to another user; an admin can unlink it first"
    ))?;
    Ok(())
}

/// Records a one-time link (by the hash of its token) offered to chat user `external_id`
/// inside `tx`; earlier open links of that chat user, and every expired link, are removed, so
/// the table holds at most one open link per chat user.
pub async fn offer_link(
    tx: &mut Tx,
    token_hash: &str,
    provider: ChatProvider,
    external_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    let now = Utc::now();
    with_tx!(tx, conn => sqlx::query(
        "DELETE FROM identity_links WHERE expires_at <= $3
            OR (provider = $1 AND external_id = $2 AND used_at IS NULL)")
        .bind(provider)
        .bind(external_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO identity_links (token_hash, provider, external_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)")
        .bind(token_hash)
        .bind(provider)
        .bind(external_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Marks the open, unexpired link with this token hash used by `principal_id` inside `tx`
/// and returns the chat account it names; None when there is no such open link (unknown,
/// used or expired): only one use of a link ever succeeds.
pub async fn use_link(
    tx: &mut Tx,
    token_hash: &str,
    principal_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<(ChatProvider, String)>> {
    Ok(with_tx!(tx, conn => sqlx::query_as(
        "UPDATE identity_links SET used_at = $2, used_by = $3
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING provider, external_id")
        .bind(token_hash)
        .bind(now)
        .bind(principal_id)
        .fetch_optional(&mut *conn)
        .await)?)
}

impl Store {
    /// The principal chat user `external_id` of `provider` is linked to.
    pub async fn principal_by_chat(
        &self,
        provider: ChatProvider,
        external_id: &str,
    ) -> Result<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT principal_id FROM chat_identities WHERE provider = $1 AND external_id = $2")
            .bind(provider)
            .bind(external_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The chat accounts linked to principal `id`.
    pub async fn chat_identities(&self, id: i64) -> Result<Vec<ChatIdentity>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT provider, external_id, linked_at FROM chat_identities
             WHERE principal_id = $1 ORDER BY provider")
            .bind(id)
            .fetch_all(pool)
            .await)?)
    }

    /// Unlinks principal `id`'s account of `provider`; false when it had none.
    pub async fn unlink_chat(&self, id: i64, provider: ChatProvider) -> Result<bool> {
        let removed = with_pool!(self, pool => sqlx::query(
            "DELETE FROM chat_identities WHERE principal_id = $1 AND provider = $2")
            .bind(id)
            .bind(provider)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(removed > 0)
    }

    /// Whether the link with this token hash was already used (None: no such link).
    pub async fn identity_link_used(&self, token_hash: &str) -> Result<Option<bool>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT used_at IS NOT NULL FROM identity_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(pool)
            .await)?)
    }
}
