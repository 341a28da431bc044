//! Deletes for retention: one small batch of the oldest rows per call, oldest ids first.

use chrono::{DateTime, Utc};

use super::Store;
use crate::error::Result;

impl Store {
    /// Deletes up to `limit` events stored before `before`; returns how many.
    pub async fn prune_events(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM events WHERE id IN (
                SELECT id FROM events WHERE created_at < $1 ORDER BY id LIMIT $2)")
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Empties the logs of up to `limit` runs that finished before `before` (their figures
    /// stay); returns how many.
    pub async fn prune_run_logs(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE runs SET log = '' WHERE id IN (
                SELECT id FROM runs WHERE finished_at < $1 AND log <> '' ORDER BY id LIMIT $2)")
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Deletes up to `limit` webhook deliveries received before `before`; returns how many.
    pub async fn prune_deliveries(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM deliveries WHERE id IN (
                SELECT id FROM deliveries WHERE received_at < $1 ORDER BY id LIMIT $2)")
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }
}
