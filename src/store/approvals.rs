//! Queries on `approvals` for the approval gate: deciding once, snapshots, deadlines, and
//! what became of approved work.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Store, Tx};
use crate::error::{Error, Result};
use crate::model::{
    ApprovalFilter, ApprovalKind, ApprovalPolicy, ApprovalRecord, ApprovalSnapshot, ApprovalStatus,
    ApprovalVote, Channel, Decider, Decision, Priority, ProjectScope, TaskStatus,
};

/// The columns of an [`ApprovalRecord`].
pub(crate) const APPROVAL_COLUMNS: &str = "id, task_id, request_id, kind, risk_level, tool_name,
    tool_input, summary, diff_stat, status, decision, comment, decided_by, decided_at, channel,
    requested_at, expires_at, snapshot_at, resumed_at";

/// What deciding an approval needs to know, read inside the deciding transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DecisionTarget {
    pub task_id: i64,
    pub project_id: i64,
    pub task_status: TaskStatus,
    pub priority: Priority,
    pub status: ApprovalStatus,
    pub kind: ApprovalKind,
    pub risk_level: Option<String>,
    /// The principal whose request started the task.
    pub requested_by: Option<i64>,
    /// The project's approval policy.
    #[sqlx(flatten)]
    pub policy: ApprovalPolicy,
}

/// The approval `id`, its task and its project's policy, read inside `tx`; None when there
/// is no such approval.
pub async fn decision_target(tx: &mut Tx, id: i64) -> Result<Option<DecisionTarget>> {
    Ok(with_tx!(tx, conn => sqlx::query_as(
        "SELECT a.task_id, t.project_id, t.status AS task_status, t.priority, a.status, a.kind,
            a.risk_level, t.requested_by, p.decide_role, p.self_approval, p.required_approvals
         FROM approvals a JOIN tasks t ON t.id = a.task_id JOIN projects p ON p.id = t.project_id
         WHERE a.id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await)?)
}

/// Locks approval `id` inside `tx` while it is pending (an update that changes nothing
/// takes the row lock on PostgreSQL; SQLite's transaction holds the write lock already), so
/// the votes counted after it are all that were committed; false when it is not pending.
pub async fn lock_pending(tx: &mut Tx, id: i64) -> Result<bool> {
    let locked = with_tx!(tx, conn => sqlx::query(
        "UPDATE approvals SET status = status WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(ApprovalStatus::Pending)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(locked == 1)
}

/// Records `principal_id`'s vote on approval `id` inside `tx`; false when that principal
/// already voted on it (the primary key keeps one vote per person).
pub async fn add_vote(
    tx: &mut Tx,
    id: i64,
    principal_id: i64,
    decision: Decision,
    channel: Channel,
) -> Result<bool> {
    let added = with_tx!(tx, conn => sqlx::query(
        "INSERT INTO approval_votes (approval_id, principal_id, decision, channel, voted_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(principal_id)
        .bind(decision)
        .bind(channel)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(added == 1)
}

/// The logins of those who voted to approve approval `id`, first vote first, inside `tx`.
pub async fn approvers(tx: &mut Tx, id: i64) -> Result<Vec<String>> {
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "SELECT p.name FROM approval_votes v JOIN principals p ON p.id = v.principal_id
         WHERE v.approval_id = $1 AND v.decision = $2 ORDER BY v.voted_at, p.name")
        .bind(id)
        .bind(Decision::Approve)
        .fetch_all(&mut *conn)
        .await)?)
}

/// Records `decision` on approval `id` inside `tx` if it is still pending; false when
/// somebody decided it first (the update only takes a pending row, so only one decision
/// ever wins, on any node).
pub async fn record_decision(
    tx: &mut Tx,
    id: i64,
    decision: Decision,
    comment: Option<&str>,
    decider: &Decider,
) -> Result<bool> {
    let updated = with_tx!(tx, conn => sqlx::query(
        "UPDATE approvals SET status = $7, decision = $2, comment = $3,
            decided_by = $4, decided_at = $5, channel = $6
         WHERE id = $1 AND status = $8")
        .bind(id)
        .bind(decision)
        .bind(comment)
        .bind(&decider.name)
        .bind(Utc::now())
        .bind(decider.channel)
        .bind(ApprovalStatus::Decided)
        .bind(ApprovalStatus::Pending)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}

impl Store {
    /// The approval with this id, or NotFound.
    pub async fn approval(&self, id: i64) -> Result<ApprovalRecord> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"
        ));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))
    }

    /// The votes on approval `id`, first first.
    pub async fn approval_votes(&self, id: i64) -> Result<Vec<ApprovalVote>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT p.name AS login, v.decision, v.channel, v.voted_at
             FROM approval_votes v JOIN principals p ON p.id = v.principal_id
             WHERE v.approval_id = $1 ORDER BY v.voted_at, p.name")
            .bind(id)
            .fetch_all(pool)
            .await)?)
    }

    /// The change and findings shown with an approval.
    pub async fn approval_snapshot(&self, id: i64) -> Result<ApprovalSnapshot> {
        with_pool!(self, pool => sqlx::query_as(
            "SELECT diff_files, diff_patch, diff_truncated, findings FROM approvals WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("approval {id}")))
    }

    /// Approvals matching `filter`, newest first.
    pub async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalRecord>> {
        self.list_approvals_in(filter, &ProjectScope::All).await
    }

    /// Approvals of the projects in `scope` matching `filter`, newest first.
    pub async fn list_approvals_in(
        &self,
        filter: &ApprovalFilter,
        scope: &ProjectScope,
    ) -> Result<Vec<ApprovalRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals a
             WHERE ($1 IS NULL OR a.status = $1)
               AND ($2 IS NULL OR a.task_id IN (SELECT id FROM tasks WHERE project_id = $2))
               AND ($3 IS NULL OR a.task_id = $3)
               AND ($5 IS NULL OR a.id < $5)
               AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = a.task_id{})
             ORDER BY a.id DESC LIMIT $4",
            super::scope_sql("t.project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(filter.status)
            .bind(filter.project_id)
            .bind(filter.task_id)
            .bind(filter.limit)
            .bind(filter.before_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Pending approvals of a task that have no snapshot yet (the engine has not shown them).
    pub async fn approvals_without_snapshot(&self, task_id: i64) -> Result<Vec<ApprovalRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals
             WHERE task_id = $1 AND status = $2 AND snapshot_at IS NULL ORDER BY id"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(task_id)
            .bind(ApprovalStatus::Pending)
            .fetch_all(pool)
            .await)?)
    }

    /// Stores what an approval shows (and the diff stat, when the request had none) and its
    /// deadline, once; true when this call did it.
    pub async fn record_approval_snapshot(
        &self,
        id: i64,
        snapshot: &ApprovalSnapshot,
        diff_stat: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE approvals SET diff_files = $2, diff_patch = $3, diff_truncated = $4, findings = $5,
                expires_at = $6, snapshot_at = $7, diff_stat = COALESCE(diff_stat, $8)
             WHERE id = $1 AND snapshot_at IS NULL")
            .bind(id)
            .bind(snapshot.diff_files.as_ref().map(Json))
            .bind(&snapshot.diff_patch)
            .bind(snapshot.diff_truncated)
            .bind(snapshot.findings.as_ref().map(Json))
            .bind(expires_at)
            .bind(Utc::now())
            .bind(diff_stat)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Marks a decision as handed to the pipeline; false when a run already did.
    pub async fn mark_approval_resumed(&self, id: i64) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE approvals SET resumed_at = $2 WHERE id = $1 AND resumed_at IS NULL")
            .bind(id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(updated == 1)
    }

    /// The request ids of a task's approvals still waiting for a decision in the store.
    pub async fn pending_request_ids(&self, task_id: i64) -> Result<Vec<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT request_id FROM approvals WHERE task_id = $1 AND status = $2 ORDER BY id")
            .bind(task_id)
            .bind(ApprovalStatus::Pending)
            .fetch_all(pool)
            .await)?)
    }

    /// The oldest result approval of a task a human decided whose decision no run has handed
    /// to the pipeline yet (it waited for a tool request to be decided first).
    pub async fn waiting_result_decision(&self, task_id: i64) -> Result<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM approvals WHERE task_id = $1 AND kind = $2 AND status = $3
                AND resumed_at IS NULL AND channel <> $4 ORDER BY id LIMIT 1")
            .bind(task_id)
            .bind(ApprovalKind::Result)
            .bind(ApprovalStatus::Decided)
            .bind(Channel::Pipeline)
            .fetch_optional(pool)
            .await)?)
    }

    /// Pending approvals past their deadline.
    pub async fn expired_approvals(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM approvals WHERE status = $2 AND expires_at IS NOT NULL AND expires_at <= $1
             ORDER BY id")
            .bind(now)
            .bind(ApprovalStatus::Pending)
            .fetch_all(pool)
            .await)?)
    }

    /// The decision of the task's latest decided result approval.
    pub async fn last_result_decision(&self, task_id: i64) -> Result<Option<Decision>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT decision FROM approvals WHERE task_id = $1 AND kind = $2 AND status = $3
             ORDER BY id DESC LIMIT 1")
            .bind(task_id)
            .bind(ApprovalKind::Result)
            .bind(ApprovalStatus::Decided)
            .fetch_optional(pool)
            .await)?
        .flatten())
    }

    /// Records the pull request made of a task's work, or why there is none.
    pub async fn set_task_change(
        &self,
        task_id: i64,
        pr: Option<(&str, i64)>,
        note: Option<&str>,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET pr_url = COALESCE($2, pr_url), pr_number = COALESCE($3, pr_number),
                change_note = $4, updated_at = $5 WHERE id = $1")
            .bind(task_id)
            .bind(pr.map(|(url, _)| url))
            .bind(pr.map(|(_, number)| number))
            .bind(note)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
