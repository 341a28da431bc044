//! Queries on `notification_channels` and `notifications`. A notification row and its queue
//! job are written in one transaction, and so are a failed attempt and the job that retries
//! it: no notification waits without a job to send it.

use std::time::Duration;

use chrono::Utc;
use sqlx::types::Json;

use super::tasks::push_into;
use super::{BeginWrite, Store};
use crate::error::{Error, Result};
use crate::notify::{ChannelSpec, Notice, NoticeKind, Notification, NotificationChannel};
use crate::queue::NewJob;

const CHANNEL_SELECT: &str =
    "SELECT c.id, p.name AS project, c.kind, c.target, c.credential, c.events, c.enabled,
    c.created_at FROM notification_channels c JOIN projects p ON p.id = c.project_id";

const NOTIFICATION_SELECT: &str =
    "SELECT n.id, p.name AS project, n.channel_id, c.kind AS channel_kind, n.event, n.task_id,
    n.approval_id, n.status, n.attempts, n.last_error, n.created_at, n.last_attempt_at,
    n.next_attempt_at, n.sent_at
    FROM notifications n JOIN notification_channels c ON c.id = n.channel_id
    JOIN projects p ON p.id = c.project_id";

/// A queued notification with what sending it needs to know about its channel.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationDue {
    pub id: i64,
    pub event: String,
    pub task_id: i64,
    pub approval_id: Option<i64>,
    pub attempts: i64,
    pub channel_id: i64,
    pub channel_kind: String,
    pub target: Option<String>,
    pub credential: String,
    pub project_id: i64,
}

/// How one attempt to send a notification went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Failed; a new job tries again after the delay.
    Retry {
        error: String,
        after: Duration,
    },
    /// Failed for good: the notification becomes a dead letter.
    Dead {
        error: String,
    },
}

/// Filters of a notification listing.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<String>,
    pub project_id: Option<i64>,
    /// Only ids below this one (the page cursor).
    pub before: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Adds a channel to a project.
    pub async fn insert_channel(
        &self,
        project_id: i64,
        spec: &ChannelSpec,
    ) -> Result<NotificationChannel> {
        let id: i64 = with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO notification_channels (project_id, kind, target, credential, events, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(project_id)
            .bind(spec.kind.as_str())
            .bind(&spec.target)
            .bind(&spec.credential)
            .bind(Json(&spec.events))
            .bind(spec.enabled)
            .bind(Utc::now())
            .fetch_one(pool)
            .await)?;
        let sql = sqlx::AssertSqlSafe(format!("{CHANNEL_SELECT} WHERE c.id = $1"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await)?)
    }

    /// A project's channels, oldest first.
    pub async fn channels(&self, project_id: i64) -> Result<Vec<NotificationChannel>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{CHANNEL_SELECT} WHERE c.project_id = $1 ORDER BY c.id"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(project_id).fetch_all(pool).await)?)
    }

    /// Removes a project's channel and its notifications, or NotFound.
    pub async fn delete_channel(&self, project_id: i64, id: i64) -> Result<()> {
        let deleted = with_pool!(self, pool => sqlx::query(
            "DELETE FROM notification_channels WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if deleted == 0 {
            return Err(Error::NotFound(format!("channel {id} of this project")));
        }
        Ok(())
    }

    /// Writes a queued notification and its job for every enabled channel of the task's
    /// project that wants `notice`, in one transaction; returns their ids.
    pub async fn enqueue_notifications(&self, notice: &Notice) -> Result<Vec<i64>> {
        let now = Utc::now();
        let ids = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let channels: Vec<(i64, Json<Vec<NoticeKind>>)> = sqlx::query_as(
                "SELECT c.id, c.events FROM notification_channels c
                 JOIN tasks t ON t.project_id = c.project_id
                 WHERE t.id = $1 AND c.enabled ORDER BY c.id")
                .bind(notice.task_id)
                .fetch_all(&mut *tx)
                .await?;
            let mut ids = Vec::new();
            for (channel_id, events) in channels {
                if !events.0.contains(&notice.kind) {
                    continue;
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO notifications (channel_id, event, task_id, approval_id, status, created_at)
                     VALUES ($1, $2, $3, $4, 'queued', $5) RETURNING id")
                    .bind(channel_id)
                    .bind(notice.kind.as_str())
                    .bind(notice.task_id)
                    .bind(notice.approval_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                push_into(&mut *tx, &NewJob::notify(id, Duration::ZERO)).await?;
                ids.push(id);
            }
            tx.commit().await?;
            ids
        });
        Ok(ids)
    }

    /// The notification `id` if it still waits to be sent, with its channel.
    pub async fn notification_due(&self, id: i64) -> Result<Option<NotificationDue>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT n.id, n.event, n.task_id, n.approval_id, n.attempts, n.channel_id,
                c.kind AS channel_kind, c.target, c.credential, c.project_id
             FROM notifications n JOIN notification_channels c ON c.id = n.channel_id
             WHERE n.id = $1 AND n.status = 'queued'")
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Records attempt number `attempt` of a queued notification and, for a retry, pushes
    /// the job that makes it, in one transaction. False when that attempt was already
    /// recorded (a repeated job): nothing changes then.
    pub async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: i64,
        outcome: &Attempt,
    ) -> Result<bool> {
        let now = Utc::now();
        let (status, error, next_attempt_at, sent_at) = match outcome {
            Attempt::Sent => ("sent", None, None, Some(now)),
            Attempt::Retry { error, after } => (
                "queued",
                Some(error.as_str()),
                Some(now + chrono::Duration::from_std(*after).unwrap_or_default()),
                None,
            ),
            Attempt::Dead { error } => ("dead", Some(error.as_str()), None, None),
        };
        let recorded = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE notifications SET status = $3, attempts = $2,
                    last_error = COALESCE($4, last_error), last_attempt_at = $5,
                    next_attempt_at = $6, sent_at = $7
                 WHERE id = $1 AND status = 'queued' AND attempts = $2 - 1")
                .bind(id)
                .bind(attempt)
                .bind(status)
                .bind(error)
                .bind(now)
                .bind(next_attempt_at)
                .bind(sent_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 1
                && let Attempt::Retry { after, .. } = outcome
            {
                push_into(&mut *tx, &NewJob::notify(id, *after)).await?;
            }
            tx.commit().await?;
            updated == 1
        });
        Ok(recorded)
    }

    /// The notification `id`, or NotFound.
    pub async fn notification(&self, id: i64) -> Result<Notification> {
        let sql = sqlx::AssertSqlSafe(format!("{NOTIFICATION_SELECT} WHERE n.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("notification {id}")))
    }

    /// Sends a dead letter again from its first attempt: queued again with its job, in one
    /// transaction. Anything but a dead letter is a conflict.
    pub async fn requeue_dead_notification(&self, id: i64) -> Result<Notification> {
        let requeued = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE notifications SET status = 'queued', attempts = 0, next_attempt_at = NULL
                 WHERE id = $1 AND status = 'dead'")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 1 {
                push_into(&mut *tx, &NewJob::notify(id, Duration::ZERO)).await?;
            }
            tx.commit().await?;
            updated == 1
        });
        let notification = self.notification(id).await?;
        if !requeued {
            return Err(Error::Conflict(format!(
                "notification {id} is {}, not a dead letter; only dead letters are sent again",
                notification.status
            )));
        }
        Ok(notification)
    }

    /// Notifications matching `filter`, newest first.
    pub async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{NOTIFICATION_SELECT}
             WHERE ($1 IS NULL OR n.status = $1)
               AND ($2 IS NULL OR c.project_id = $2)
               AND ($3 IS NULL OR n.id < $3)
             ORDER BY n.id DESC LIMIT $4"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(&filter.status)
            .bind(filter.project_id)
            .bind(filter.before)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }
}
