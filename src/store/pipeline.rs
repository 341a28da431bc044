//! The idempotent mirror of a pipeline's `.party/` files: findings, tickets and approval
//! requests, as ingestion reads them.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::Store;
use super::approvals::APPROVAL_COLUMNS;
use crate::error::Result;
use crate::model::{
    ApprovalRecord, ApprovalRequestMirror, ApprovalStatus, Channel, FindingRecord, TicketRecord,
    TicketTimes,
};

impl Store {
    /// Stores a finding's latest content; true when it was new or changed.
    pub async fn upsert_finding(
        &self,
        task_id: i64,
        name: &str,
        content: &str,
        sha256: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = with_pool!(self, pool => sqlx::query(
            "INSERT INTO findings (task_id, name, content, sha256, changed_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (task_id, name) DO UPDATE SET content = excluded.content, sha256 = excluded.sha256,
                changed_at = excluded.changed_at
             WHERE findings.sha256 <> excluded.sha256")
            .bind(task_id)
            .bind(name)
            .bind(content)
            .bind(sha256)
            .bind(changed_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// A task's findings, whole, oldest change first.
    pub async fn findings(&self, task_id: i64) -> Result<Vec<FindingRecord>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT name, content, CAST(length(content) AS BIGINT) AS size, false AS truncated, changed_at
             FROM findings WHERE task_id = $1 ORDER BY changed_at, name")
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }

    /// A task's findings with only their first `chars` characters read from the database,
    /// oldest change first: what a page shows of findings a pipeline may have made huge.
    pub async fn finding_previews(&self, task_id: i64, chars: i32) -> Result<Vec<FindingRecord>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT name, substr(content, 1, $2) AS content, CAST(length(content) AS BIGINT) AS size,
                length(content) > $2 AS truncated, changed_at
             FROM findings WHERE task_id = $1 ORDER BY changed_at, name")
            .bind(task_id)
            .bind(chars)
            .fetch_all(pool)
            .await)?)
    }

    /// One finding of a task, whole.
    pub async fn finding(&self, task_id: i64, name: &str) -> Result<FindingRecord> {
        let found: Option<FindingRecord> = with_pool!(self, pool => sqlx::query_as(
            "SELECT name, content, CAST(length(content) AS BIGINT) AS size, false AS truncated, changed_at
             FROM findings WHERE task_id = $1 AND name = $2")
            .bind(task_id)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        found.ok_or_else(|| {
            crate::error::Error::NotFound(format!("task {task_id} has no finding named {name:?}"))
        })
    }

    /// Stores a ticket's latest state, with when it was opened (the plugin's `createdAt`,
    /// else the first time it was stored) and, while it is DONE, when it was done (the
    /// plugin's `completedAt`, else the first time it was stored DONE).
    pub async fn upsert_ticket(
        &self,
        task_id: i64,
        ticket: &TicketRecord,
        times: TicketTimes,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO tickets (task_id, ticket_id, kind, title, status, phase, assignee, parent_id, body,
                updated_at, opened_at, done_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, $10),
                CASE WHEN $5 = 'DONE' THEN COALESCE($12, $10) END)
             ON CONFLICT (task_id, ticket_id) DO UPDATE SET kind = excluded.kind, title = excluded.title,
                status = excluded.status, phase = excluded.phase, assignee = excluded.assignee,
                parent_id = excluded.parent_id, body = excluded.body, updated_at = excluded.updated_at,
                opened_at = COALESCE($11, tickets.opened_at, excluded.opened_at),
                done_at = CASE WHEN excluded.status = 'DONE' THEN COALESCE($12,
                    CASE WHEN tickets.status = 'DONE' THEN tickets.done_at END, excluded.updated_at) END")
            .bind(task_id)
            .bind(&ticket.ticket_id)
            .bind(&ticket.kind)
            .bind(&ticket.title)
            .bind(&ticket.status)
            .bind(&ticket.phase)
            .bind(&ticket.assignee)
            .bind(&ticket.parent_id)
            .bind(Json(&ticket.body))
            .bind(ticket.updated_at)
            .bind(times.created_at)
            .bind(times.completed_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A task's tickets by id.
    pub async fn tickets(&self, task_id: i64) -> Result<Vec<TicketRecord>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT ticket_id, kind, title, status, phase, assignee, parent_id, body, updated_at
             FROM tickets WHERE task_id = $1 ORDER BY ticket_id")
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Mirrors an approval request. A new pending request is inserted; a request the
    /// pipeline itself already decided is marked decided by `pipeline` unless the platform
    /// recorded a decision first. Returns true when the request was new.
    pub async fn upsert_approval(
        &self,
        task_id: i64,
        approval: &ApprovalRequestMirror,
    ) -> Result<bool> {
        let pending = ApprovalStatus::Pending.as_str();
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO approvals (task_id, request_id, kind, risk_level, tool_name, tool_input, summary,
                diff_stat, status, decision, decided_by, decided_at, channel, requested_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                CASE WHEN $9 = $13 THEN $14 END, CASE WHEN $9 = $13 THEN $11 END,
                CASE WHEN $9 = $13 THEN $14 END, $12)
             ON CONFLICT (task_id, request_id) DO NOTHING")
            .bind(task_id)
            .bind(&approval.request_id)
            .bind(approval.kind)
            .bind(&approval.risk_level)
            .bind(&approval.tool_name)
            .bind(approval.tool_input.as_ref().map(Json))
            .bind(&approval.summary)
            .bind(&approval.diff_stat)
            .bind(&approval.file_status)
            .bind(&approval.file_decision)
            .bind(Utc::now())
            .bind(approval.requested_at)
            .bind(ApprovalStatus::Decided)
            .bind(Channel::Pipeline)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if inserted == 0 && approval.file_status != pending {
            with_pool!(self, pool => sqlx::query(
                "UPDATE approvals SET status = $5, decision = COALESCE(decision, $3),
                    decided_by = COALESCE(decided_by, $6), decided_at = COALESCE(decided_at, $4),
                    channel = COALESCE(channel, $6)
                 WHERE task_id = $1 AND request_id = $2 AND status = $7")
                .bind(task_id)
                .bind(&approval.request_id)
                .bind(&approval.file_decision)
                .bind(Utc::now())
                .bind(ApprovalStatus::Decided)
                .bind(Channel::Pipeline)
                .bind(ApprovalStatus::Pending)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(inserted == 1)
    }

    /// A task's approval requests, oldest first.
    pub async fn approvals(&self, task_id: i64) -> Result<Vec<ApprovalRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM approvals WHERE task_id = $1 ORDER BY id",
            APPROVAL_COLUMNS
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(task_id)
            .fetch_all(pool)
            .await)?)
    }
}
