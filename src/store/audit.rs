//! Queries on `audit_log`.

use super::Store;
use crate::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use crate::error::Result;

/// Appends an audit entry through `$executor` (a pool, or an open transaction so the entry
/// commits with what it records), as `$principal_id` / `$principal_name`.
macro_rules! insert_audit {
    ($executor:expr, $principal_id:expr, $principal_name:expr, $entry:expr) => {{
        let entry: &$crate::audit::NewAuditEntry = $entry;
        sqlx::query(
            "INSERT INTO audit_log (at, principal_id, principal_name, action, target, source, outcome, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(chrono::Utc::now())
        .bind($principal_id)
        .bind($principal_name)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.source)
        .bind(&entry.outcome)
        .bind(sqlx::types::Json(&entry.detail))
        .execute($executor)
        .await
    }};
}
pub(crate) use insert_audit;

impl Store {
    /// Appends an audit entry.
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let (principal_id, principal_name) = match &entry.principal {
            Some(p) => (p.id, p.name.as_str()),
            None => (None, "anonymous"),
        };
        with_pool!(self, pool => insert_audit!(pool, principal_id, principal_name, entry)
            .map(|r| r.rows_affected()))?;
        Ok(())
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
