//! Queries on `approvals` for the approval gate: deciding once, snapshots, deadlines, and
//! what became of approved work.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{BeginWrite, Store};
use crate::approvals::{Decider, Decision};
use crate::audit::NewAuditEntry;
use crate::error::{Error, Result};
use crate::queue::NewJob;
use crate::records::{ApprovalRecord, ApprovalSnapshot, NewEvent};
use crate::store::audit::insert_audit;
use crate::store::events::insert_event_in_tx;
use crate::tasks::Priority;

/// The columns of an [`ApprovalRecord`].
pub(crate) const APPROVAL_COLUMNS: &str = "id, task_id, request_id, kind, risk_level, tool_name,
    tool_input, summary, diff_stat, status, decision, comment, decided_by, decided_at, channel,
    requested_at, expires_at, snapshot_at, resumed_at";

/// How a decision attempt ended inside its transaction.
enum Decided {
    /// This call recorded it; the id of its event.
    Now(Option<i64>),
    /// Somebody decided first (said as a conflict naming them).
    Before,
}

/// Filters of an approval listing.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<String>,
    pub project_id: Option<i64>,
    pub task_id: Option<i64>,
    pub limit: i64,
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
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals a
             WHERE ($1 IS NULL OR a.status = $1)
               AND ($2 IS NULL OR a.task_id IN (SELECT id FROM tasks WHERE project_id = $2))
               AND ($3 IS NULL OR a.task_id = $3)
             ORDER BY a.id DESC LIMIT $4"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(&filter.status)
            .bind(filter.project_id)
            .bind(filter.task_id)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Records a decision on a pending approval, its audit entry, its event and the job that
    /// resumes the pipeline, in one transaction. Only one decision ever wins: the update only
    /// takes a pending row, so a second one (any node, same instant) finds it decided and is
    /// a conflict naming the first.
    pub async fn decide_approval(
        &self,
        id: i64,
        decision: Decision,
        comment: Option<&str>,
        decider: &Decider,
    ) -> Result<ApprovalRecord> {
        let now = Utc::now();
        let outcome: Result<Decided> = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let target: Option<(i64, String, String, i64, String)> = sqlx::query_as(
                "SELECT a.task_id, t.status, t.priority, t.project_id, a.status
                 FROM approvals a JOIN tasks t ON t.id = a.task_id WHERE a.id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            match target {
                None => Err(Error::NotFound(format!("approval {id}"))),
                Some((_, _, _, _, status)) if status != "pending" => Ok(Decided::Before),
                Some((_, task_status, _, _, _)) if crate::tasks::has_ended(&task_status) => {
                    Err(Error::Conflict(format!(
                        "approval {id} cannot be decided: its task already ended ({task_status})"
                    )))
                }
                Some((task_id, _, priority, project_id, _)) => {
                    let updated = sqlx::query(
                        "UPDATE approvals SET status = 'decided', decision = $2, comment = $3,
                            decided_by = $4, decided_at = $5, channel = $6
                         WHERE id = $1 AND status = 'pending'")
                        .bind(id)
                        .bind(decision.as_str())
                        .bind(comment)
                        .bind(&decider.name)
                        .bind(now)
                        .bind(decider.channel.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if updated == 0 {
                        Ok(Decided::Before)
                    } else {
                        let audit = NewAuditEntry {
                            principal: None,
                            action: format!("decide approval: {decision}"),
                            target: format!("approvals/{id}"),
                            source: decider.source.clone(),
                            outcome: "ok".into(),
                            detail: serde_json::json!({
                                "task_id": task_id, "decision": decision.as_str(),
                                "channel": decider.channel.as_str(), "comment": comment,
                            }),
                        };
                        insert_audit!(&mut *tx, decider.principal_id, decider.name.as_str(), &audit)?;
                        let event = NewEvent::platform(task_id, project_id, "approval_decided", serde_json::json!({
                            "approval_id": id, "decision": decision.as_str(), "decided_by": decider.name,
                            "channel": decider.channel.as_str(), "comment": comment,
                        }));
                        let event_id = insert_event_in_tx!(self, tx, &event);
                        let mut resume = NewJob::now(task_id, Priority::from_stored(&priority));
                        resume.job.resume_approval_id = Some(id);
                        crate::store::tasks::push_into(&mut *tx, &resume).await?;
                        tx.commit().await?;
                        Ok(Decided::Now(event_id))
                    }
                }
            }
        });
        match outcome? {
            Decided::Now(event_id) => {
                if let Some(event_id) = event_id {
                    self.announce_event(event_id);
                }
                self.approval(id).await
            }
            Decided::Before => Err(Error::Conflict(already_decided(&self.approval(id).await?))),
        }
    }

    /// Pending approvals of a task that have no snapshot yet (the engine has not shown them).
    pub async fn approvals_without_snapshot(&self, task_id: i64) -> Result<Vec<ApprovalRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals
             WHERE task_id = $1 AND status = 'pending' AND snapshot_at IS NULL ORDER BY id"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(task_id).fetch_all(pool).await)?)
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

    /// Pending approvals past their deadline.
    pub async fn expired_approvals(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM approvals WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= $1
             ORDER BY id")
            .bind(now)
            .fetch_all(pool)
            .await)?)
    }

    /// The decision of the task's latest decided result approval.
    pub async fn last_result_decision(&self, task_id: i64) -> Result<Option<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT decision FROM approvals WHERE task_id = $1 AND kind = 'result' AND status = 'decided'
             ORDER BY id DESC LIMIT 1")
            .bind(task_id)
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

/// "approval 7 was already decided: approve by alice via slack at …".
pub fn already_decided(approval: &ApprovalRecord) -> String {
    format!(
        "approval {} was already decided: {} by {} via {} at {}",
        approval.id,
        approval.decision.as_deref().unwrap_or(&approval.status),
        approval.decided_by.as_deref().unwrap_or("unknown"),
        approval.channel.as_deref().unwrap_or("unknown"),
        approval
            .decided_at
            .map_or_else(|| "an unknown time".into(), |at| at.to_rfc3339())
    )
}
