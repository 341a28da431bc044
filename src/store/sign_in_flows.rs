//! Queries on `sign_in_flows` (provider sign-ins under way) and `external_identities` (an
//! OpenID Connect account → its aiops user), and the global role a provider's claims give.

use chrono::{DateTime, Utc};

use super::{Store, Tx};
use crate::error::Result;
use crate::model::ProjectRole;

/// A provider sign-in under way, keyed by its state's hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignInFlow {
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: Option<String>,
    pub next_path: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores a flow under `state_hash`, dropping flows that have expired.
    pub async fn insert_sign_in_flow(&self, state_hash: &str, flow: &SignInFlow) -> Result<()> {
        with_pool!(self, pool => sqlx::query("DELETE FROM sign_in_flows WHERE expires_at < $1")
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO sign_in_flows (state_hash, provider, pkce_verifier, nonce, next_path, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(state_hash)
            .bind(&flow.provider)
            .bind(&flow.pkce_verifier)
            .bind(&flow.nonce)
            .bind(&flow.next_path)
            .bind(flow.expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Removes and returns the flow of `state_hash` (a flow is used once); expiry is for the
    /// caller to judge.
    pub async fn take_sign_in_flow(&self, state_hash: &str) -> Result<Option<SignInFlow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "DELETE FROM sign_in_flows WHERE state_hash = $1
             RETURNING provider, pkce_verifier, nonce, next_path, expires_at")
            .bind(state_hash)
            .fetch_optional(pool)
            .await)?)
    }

    /// The user linked to account `subject` of `issuer`.
    pub async fn principal_by_external_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT principal_id FROM external_identities WHERE issuer = $1 AND subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(pool)
            .await)?)
    }

    /// The account of `issuer` linked to principal `principal_id`, if any.
    pub async fn external_subject_of(
        &self,
        issuer: &str,
        principal_id: i64,
    ) -> Result<Option<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT subject FROM external_identities WHERE issuer = $1 AND principal_id = $2 LIMIT 1")
            .bind(issuer)
            .bind(principal_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The user (not a service account) whose email is `email`, ignoring case, when exactly
    /// one has it.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<i64>> {
        let ids: Vec<i64> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM principals WHERE kind = $2 AND LOWER(email) = LOWER($1) LIMIT 2")
            .bind(email)
            .bind(crate::model::PrincipalKind::User)
            .fetch_all(pool)
            .await)?;
        Ok(if ids.len() == 1 {
            ids.first().copied()
        } else {
            None
        })
    }
}

/// Links account `subject` of `issuer` to principal `principal_id` inside `tx`.
pub async fn link_external_identity(
    tx: &mut Tx,
    issuer: &str,
    subject: &str,
    principal_id: i64,
) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO external_identities (issuer, subject, principal_id, created_at)
         VALUES ($1, $2, $3, $4)")
        .bind(issuer)
        .bind(subject)
        .bind(principal_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Makes principal `id` an admin because a claim says so (`admin`), or takes back an admin
/// role that only a claim gave (not `admin`); an admin made otherwise stays one.
pub async fn set_claim_admin(tx: &mut Tx, id: i64, admin: bool) -> Result<()> {
    let sql = if admin {
        "UPDATE principals SET global_role = 'admin',
            admin_from_claim = CASE WHEN global_role = 'admin' THEN admin_from_claim ELSE true END
         WHERE id = $1"
    } else {
        "UPDATE principals SET global_role = 'member', admin_from_claim = false
         WHERE id = $1 AND admin_from_claim"
    };
    with_tx!(tx, conn => sqlx::query(sql)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Principal `id`'s memberships inside `tx`: project (None: every project), role, and
/// whether a claim gave it.
pub async fn memberships_by_origin(
    tx: &mut Tx,
    id: i64,
) -> Result<Vec<(Option<i64>, ProjectRole, bool)>> {
    Ok(with_tx!(tx, conn => sqlx::query_as(
        "SELECT project_id, role, from_claim FROM memberships WHERE principal_id = $1")
        .bind(id)
        .fetch_all(&mut *conn)
        .await)?)
}

/// Takes away the membership a claim gave principal `id` in `project_id`.
pub async fn revoke_claim_membership(tx: &mut Tx, id: i64, project_id: Option<i64>) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "DELETE FROM memberships
         WHERE principal_id = $1 AND COALESCE(project_id, 0) = COALESCE($2, 0) AND from_claim")
        .bind(id)
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
