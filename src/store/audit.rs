//! Queries on `audit_log`.

use super::{Store, Tx};
use crate::error::Result;
use crate::model::{AuditEntry, AuditFilter, NewAuditEntry};

/// Appends an audit entry inside `tx`, so it commits with what it records.
pub async fn append(tx: &mut Tx, entry: &NewAuditEntry) -> Result<()> {
    let (principal_id, principal_name) = match &entry.principal {
        Some(actor) => (actor.id, actor.name.as_str()),
        None => (None, "anonymous"),
    };
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO audit_log (at, principal_id, principal_name, action, target, source, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(chrono::Utc::now())
    .bind(principal_id)
    .bind(principal_name)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.source)
    .bind(&entry.outcome)
    .bind(sqlx::types::Json(&entry.detail))
    .execute(&mut *conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

impl Store {
    /// Appends an audit entry.
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        append(&mut tx, entry).await?;
        Ok(tx.commit().await?)
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT * FROM audit_log
             WHERE ($1 IS NULL OR target = $1)
               AND ($2 IS NULL OR principal_name = $2)
               AND ($3 IS NULL OR at >= $3)
               AND ($4 IS NULL OR at <= $4)
               AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6")
            .bind(&filter.target)
            .bind(&filter.principal)
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }
}
