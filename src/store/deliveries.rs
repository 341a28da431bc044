//! Queries on `deliveries` and `alert_groups`: an inbound event and the task it creates
//! are stored in one transaction, so an accepted delivery is never lost and never makes
//! two tasks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::events::insert_event_in_tx;
use super::tasks::insert_task_in_tx;
use super::{Backend, BeginWrite, Store};
use crate::error::{Error, Result};
use crate::records::NewEvent;
use crate::tasks::TaskSpec;

/// Key space of the PostgreSQL advisory locks that serialise one alert fingerprint.
const ALERT_LOCK_SPACE: i32 = 0x616c;

const DELIVERY_SELECT: &str =
    "SELECT id, source, delivery_id, event, action, repository, received_at,
    outcome, reason, task_id FROM deliveries";

/// An inbound delivery to record.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub source: String,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub payload: serde_json::Value,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryOutcome {
    /// Row id of the delivery record.
    pub id: i64,
    /// task_created | duplicate | duplicate_task | ignored | pong
    pub outcome: String,
    pub reason: Option<String>,
    pub task_id: Option<i64>,
}

/// A stored delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub source: String,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub received_at: DateTime<Utc>,
    pub outcome: String,
    pub reason: Option<String>,
    pub task_id: Option<i64>,
}

/// What an alert occurrence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEffect {
    /// A new task for this fingerprint.
    Created(i64),
    /// Added to the fingerprint's open task.
    Coalesced(i64),
    /// Recorded as resolved on the open task; `true` when the queued task was cancelled.
    Resolved(i64, bool),
    /// Resolved, but no task of this fingerprint is open.
    NothingOpen,
}

impl Store {
    /// Records a delivery and, when `task` is given, creates the task with its job, all in
    /// one transaction. A delivery id seen before is recorded as a duplicate and creates
    /// nothing; a task whose dedup key exists is not created again.
    pub async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        task: Option<&TaskSpec>,
        ignored: Option<&str>,
    ) -> Result<DeliveryOutcome> {
        let now = Utc::now();
        let (outcome, event_id) = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let first: Option<i64> = sqlx::query_scalar(
                "INSERT INTO deliveries (source, delivery_id, event, action, repository, received_at, outcome, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, 'received', $7)
                 ON CONFLICT DO NOTHING RETURNING id")
                .bind(&delivery.source)
                .bind(&delivery.delivery_id)
                .bind(&delivery.event)
                .bind(&delivery.action)
                .bind(&delivery.repository)
                .bind(now)
                .bind(Json(&delivery.payload))
                .fetch_optional(&mut *tx)
                .await?;
            let Some(id) = first else {
                let original: Option<i64> = sqlx::query_scalar(
                    "SELECT task_id FROM deliveries WHERE source = $1 AND delivery_id = $2 AND outcome <> 'duplicate'")
                    .bind(&delivery.source)
                    .bind(&delivery.delivery_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO deliveries (source, delivery_id, event, action, repository, received_at, outcome, reason, task_id, payload)
                     VALUES ($1, $2, $3, $4, $5, $6, 'duplicate', 'this delivery id was already received', $7, $8) RETURNING id")
                    .bind(&delivery.source)
                    .bind(&delivery.delivery_id)
                    .bind(&delivery.event)
                    .bind(&delivery.action)
                    .bind(&delivery.repository)
                    .bind(now)
                    .bind(original)
                    .bind(Json(serde_json::Value::Null))
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(DeliveryOutcome { id, outcome: "duplicate".into(), reason: Some("this delivery id was already received".into()), task_id: original });
            };
            let (outcome, reason, task_id, event_id) = match task {
                Some(spec) => match insert_task_in_tx!(self, tx, spec) {
                    Some((task_id, event_id)) => {
                        let issue = &spec.source_ref;
                        if let (Some("github_issue"), Some(repo), Some(number)) =
                            (issue["kind"].as_str(), issue["repo"].as_str(), issue["issue"].as_i64())
                        {
                            sqlx::query("INSERT INTO github_replies (task_id, repo, issue_number, installation_id, updated_at) VALUES ($1, $2, $3, $4, $5)")
                                .bind(task_id)
                                .bind(repo)
                                .bind(number)
                                .bind(issue["installation"].as_i64())
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        ("task_created", None, Some(task_id), event_id)
                    }
                    None => {
                        let existing: Option<i64> = sqlx::query_scalar(
                            "SELECT id FROM tasks WHERE project_id = $1 AND dedup_key = $2")
                            .bind(spec.project_id)
                            .bind(&spec.dedup_key)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let reason = format!("task {} already exists for {}", existing.unwrap_or_default(), spec.dedup_key.as_deref().unwrap_or("this event"));
                        ("duplicate_task", Some(reason), existing, None)
                    }
                },
                None => ("ignored", ignored.map(str::to_string), None, None),
            };
            sqlx::query("UPDATE deliveries SET outcome = $2, reason = $3, task_id = $4 WHERE id = $1")
                .bind(id)
                .bind(outcome)
                .bind(&reason)
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            (DeliveryOutcome { id, outcome: outcome.into(), reason, task_id }, event_id)
        });
        if let Some(event_id) = event_id {
            self.announce_event(event_id);
        }
        Ok(outcome)
    }

    /// Deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        source: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE ($1 IS NULL OR source = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(source)
            .bind(before_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// A delivery with its payload, for replay.
    pub async fn delivery_payload(&self, id: i64) -> Result<(Delivery, serde_json::Value)> {
        let sql = sqlx::AssertSqlSafe(format!("{DELIVERY_SELECT} WHERE id = $1"));
        let delivery: Delivery = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("delivery {id}")))?;
        let payload: Json<serde_json::Value> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT payload FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await)?;
        Ok((delivery, payload.0))
    }

    /// Applies one alert occurrence: a firing alert joins its fingerprint's open task or
    /// opens a new one (`new_task`); a resolved one is recorded on the open task and, with
    /// `cancel_queued`, cancels it if it has not started. Serialised per fingerprint, so a
    /// storm of one fingerprint makes exactly one task.
    pub async fn record_alert(
        &self,
        source: &str,
        fingerprint: &str,
        firing: bool,
        new_task: &TaskSpec,
        cancel_queued: bool,
    ) -> Result<AlertEffect> {
        let now = Utc::now();
        let (effect, event_id) = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if self.backend() == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind(ALERT_LOCK_SPACE)
                    .bind(format!("{source}:{fingerprint}"))
                    .execute(&mut *tx)
                    .await?;
            }
            let open: Option<(i64, i64, String)> = sqlx::query_as(
                "SELECT g.id, g.task_id, t.status FROM alert_groups g JOIN tasks t ON t.id = g.task_id
                 WHERE g.source = $1 AND g.fingerprint = $2 AND g.resolved_at IS NULL
                   AND t.status IN ('queued', 'running', 'awaiting_approval')
                 ORDER BY g.id DESC LIMIT 1")
                .bind(source)
                .bind(fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
            let (effect, event_id) = match (open, firing) {
                (Some((group, task_id, _)), true) => {
                    sqlx::query("UPDATE alert_groups SET occurrences = occurrences + 1, last_seen = $2 WHERE id = $1")
                        .bind(group)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    (AlertEffect::Coalesced(task_id), None)
                }
                (None, true) => {
                    let (task_id, event_id) = insert_task_in_tx!(self, tx, new_task)
                        .ok_or_else(|| Error::Conflict("the alert's task already exists".into()))?;
                    sqlx::query(
                        "INSERT INTO alert_groups (source, fingerprint, task_id, occurrences, first_seen, last_seen)
                         VALUES ($1, $2, $3, 1, $4, $4)")
                        .bind(source)
                        .bind(fingerprint)
                        .bind(task_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    (AlertEffect::Created(task_id), event_id)
                }
                (Some((group, task_id, status)), false) => {
                    sqlx::query("UPDATE alert_groups SET resolved_at = $2, last_seen = $2 WHERE id = $1")
                        .bind(group)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let cancel = cancel_queued && status == "queued";
                    let mut event_id = None;
                    if cancel {
                        let reason = "the alert resolved before the task started";
                        sqlx::query(
                            "UPDATE tasks SET status = 'cancelled', status_reason = $3,
                                cancel_requested_at = $2, completed_at = $2, updated_at = $2 WHERE id = $1")
                            .bind(task_id)
                            .bind(now)
                            .bind(reason)
                            .execute(&mut *tx)
                            .await?;
                        let event = NewEvent::platform(task_id, new_task.project_id, "status_changed",
                            serde_json::json!({"from": "queued", "to": "cancelled", "reason": reason}));
                        event_id = insert_event_in_tx!(self, tx, &event);
                    }
                    (AlertEffect::Resolved(task_id, cancel), event_id)
                }
                (None, false) => (AlertEffect::NothingOpen, None),
            };
            tx.commit().await?;
            (effect, event_id)
        });
        if let Some(event_id) = event_id {
            self.announce_event(event_id);
        }
        Ok(effect)
    }

    /// Occurrences and resolution of a task's alert, if it came from one.
    pub async fn alert_group_of(
        &self,
        task_id: i64,
    ) -> Result<Option<(i64, Option<DateTime<Utc>>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT occurrences, resolved_at FROM alert_groups WHERE task_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?)
    }
}

/// A GitHub comment whose task moved on since it was last written.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyDue {
    pub task_id: i64,
    pub project_id: i64,
    pub team: String,
    pub repo: String,
    pub issue_number: i64,
    pub comment_id: Option<i64>,
    pub installation_id: Option<i64>,
    pub status: String,
    pub status_reason: Option<String>,
    /// The pull request made of the task's work.
    pub pr_url: Option<String>,
    /// Why there is no pull request.
    pub change_note: Option<String>,
    /// The newest pending approval that is ready to be shown.
    pub approval_id: Option<i64>,
    /// Everything the comment shows, as one comparable key.
    pub shown: String,
}

impl Store {
    /// Comments to create or edit: tasks that moved on since their comment was written
    /// (status, pull request, pending approval).
    pub async fn github_replies_due(&self) -> Result<Vec<ReplyDue>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT task_id, project_id, team, repo, issue_number, comment_id, installation_id, status,
                status_reason, pr_url, change_note, approval_id, shown
             FROM (SELECT r.task_id, t.project_id, t.team, r.repo, r.issue_number, r.comment_id,
                     r.installation_id, t.status, t.status_reason, t.pr_url, t.change_note, r.reported_status, a.approval_id,
                     t.status || '|' || COALESCE(t.pr_url, '') || '|' || COALESCE(t.change_note, '')
                        || '|' || COALESCE(CAST(a.approval_id AS TEXT), '') AS shown
                   FROM github_replies r JOIN tasks t ON t.id = r.task_id
                   LEFT JOIN (SELECT task_id, MAX(id) AS approval_id FROM approvals
                              WHERE status = 'pending' AND snapshot_at IS NOT NULL GROUP BY task_id) a
                     ON a.task_id = t.id) due
             WHERE reported_status IS NULL OR reported_status <> shown
             ORDER BY task_id LIMIT 100")
            .fetch_all(pool)
            .await)?)
    }

    /// Records that a task's comment now shows `shown` (a [`ReplyDue::shown`] key).
    pub async fn mark_reply(
        &self,
        task_id: i64,
        comment_id: Option<i64>,
        shown: &str,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE github_replies SET comment_id = COALESCE($2, comment_id), reported_status = $3, updated_at = $4 WHERE task_id = $1")
            .bind(task_id)
            .bind(comment_id)
            .bind(shown)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// The issue a task answers on GitHub: (owner/repo, issue number, App installation).
    pub async fn github_issue_of(
        &self,
        task_id: i64,
    ) -> Result<Option<(String, i64, Option<i64>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT repo, issue_number, installation_id FROM github_replies WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?)
    }
}
