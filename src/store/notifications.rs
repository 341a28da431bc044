//! Queries on `notification_channels` and `notifications`. The writes that go with a queue
//! job take the caller's transaction (`notify` pushes the job in it): no notification
//! waits without a job to send it.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Store, Tx};
use crate::error::{Error, Result};
use crate::model::{
    ChannelKind, ChannelSpec, Notice, NoticeKind, Notification, NotificationChannel,
    NotificationStatus,
};

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
    pub event: NoticeKind,
    pub task_id: i64,
    pub approval_id: Option<i64>,
    pub attempts: i64,
    pub channel_id: i64,
    pub channel_kind: ChannelKind,
    pub target: Option<String>,
    pub credential: String,
    pub project_id: i64,
    /// Set while a worker sends; still set afterwards when it died before recording.
    pub sending_since: Option<DateTime<Utc>>,
}

/// Filters of a notification listing.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
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
            .bind(spec.kind)
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

    /// The project and credential of an enabled KakaoWork channel posting to
    /// `conversation_id` (that of `project_id` first): the bot whose message was clicked.
    pub async fn kakaowork_bot(
        &self,
        conversation_id: &str,
        project_id: Option<i64>,
    ) -> Result<Option<(i64, String)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT project_id, credential FROM notification_channels
             WHERE kind = $1 AND target = $2 AND enabled
             ORDER BY CASE WHEN project_id = $3 THEN 0 ELSE 1 END, id LIMIT 1")
            .bind(ChannelKind::Kakaowork)
            .bind(conversation_id)
            .bind(project_id)
            .fetch_optional(pool)
            .await)?)
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

    /// The notification `id` if it still waits to be sent, with its channel.
    pub async fn notification_due(&self, id: i64) -> Result<Option<NotificationDue>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT n.id, n.event, n.task_id, n.approval_id, n.attempts, n.channel_id,
                c.kind AS channel_kind, c.target, c.credential, c.project_id, n.sending_since
             FROM notifications n JOIN notification_channels c ON c.id = n.channel_id
             WHERE n.id = $1 AND n.status = $2")
            .bind(id)
            .bind(NotificationStatus::Queued)
            .fetch_optional(pool)
            .await)?)
    }

    /// The notification `id`, or NotFound.
    pub async fn notification(&self, id: i64) -> Result<Notification> {
        let sql = sqlx::AssertSqlSafe(format!("{NOTIFICATION_SELECT} WHERE n.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("notification {id}")))
    }

    /// Notifications matching `filter`, newest first.
    pub async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>> {
        self.list_notifications_in(filter, &crate::model::ProjectScope::All)
            .await
    }

    /// Notifications of the projects in `scope` matching `filter`, newest first.
    pub async fn list_notifications_in(
        &self,
        filter: &NotificationFilter,
        scope: &crate::model::ProjectScope,
    ) -> Result<Vec<Notification>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{NOTIFICATION_SELECT}
             WHERE ($1 IS NULL OR n.status = $1)
               AND ($2 IS NULL OR c.project_id = $2)
               AND ($3 IS NULL OR n.id < $3){}
             ORDER BY n.id DESC LIMIT $4",
            super::scope_sql("c.project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(filter.status)
            .bind(filter.project_id)
            .bind(filter.before)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }
}

/// What one attempt at sending a notification writes to its row.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub status: NotificationStatus,
    pub error: Option<&'a str>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The enabled channels of a task's project with the events each wants, read inside `tx`.
pub async fn channels_of_task(tx: &mut Tx, task_id: i64) -> Result<Vec<(i64, Vec<NoticeKind>)>> {
    let rows: Vec<(i64, Json<Vec<NoticeKind>>)> = with_tx!(tx, conn => sqlx::query_as(
        "SELECT c.id, c.events FROM notification_channels c
         JOIN tasks t ON t.project_id = c.project_id
         WHERE t.id = $1 AND c.enabled ORDER BY c.id")
        .bind(task_id)
        .fetch_all(&mut *conn)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, events)| (id, events.0))
        .collect())
}

/// Writes a queued notification of `notice` to `channel_id` inside `tx`; returns its id.
pub async fn insert_queued(tx: &mut Tx, channel_id: i64, notice: &Notice) -> Result<i64> {
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "INSERT INTO notifications (channel_id, event, task_id, approval_id, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
        .bind(channel_id)
        .bind(notice.kind)
        .bind(notice.task_id)
        .bind(notice.approval_id)
        .bind(NotificationStatus::Queued)
        .bind(Utc::now())
        .fetch_one(&mut *conn)
        .await)?)
}

/// Records attempt number `attempt` of a queued notification inside `tx`; false when that
/// attempt was already recorded (a repeated job): nothing changes then.
pub async fn record_attempt(
    tx: &mut Tx,
    id: i64,
    attempt: i64,
    record: &AttemptRecord<'_>,
) -> Result<bool> {
    let updated = with_tx!(tx, conn => sqlx::query(
        "UPDATE notifications SET status = $3, attempts = $2,
            last_error = COALESCE($4, last_error), last_attempt_at = $5,
            next_attempt_at = $6, sent_at = $7, sending_since = NULL
         WHERE id = $1 AND status = $8 AND attempts = $2 - 1")
        .bind(id)
        .bind(attempt)
        .bind(record.status)
        .bind(record.error)
        .bind(Utc::now())
        .bind(record.next_attempt_at)
        .bind(record.sent_at)
        .bind(NotificationStatus::Queued)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}

/// Claims the next attempt of queued notification `id` for sending: true for the one worker
/// that gets it; false when another holds it or recorded it already.
pub async fn claim_send(tx: &mut Tx, id: i64, attempts: i64) -> Result<bool> {
    let updated = with_tx!(tx, conn => sqlx::query(
        "UPDATE notifications SET sending_since = $3
         WHERE id = $1 AND status = $4 AND attempts = $2 AND sending_since IS NULL")
        .bind(id)
        .bind(attempts)
        .bind(Utc::now())
        .bind(NotificationStatus::Queued)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}

/// Queues a dead letter again from its first attempt, inside `tx`; false when it is not a
/// dead letter.
pub async fn requeue_dead(tx: &mut Tx, id: i64) -> Result<bool> {
    let updated = with_tx!(tx, conn => sqlx::query(
        "UPDATE notifications SET status = $2, attempts = 0, next_attempt_at = NULL,
            sending_since = NULL
         WHERE id = $1 AND status = $3")
        .bind(id)
        .bind(NotificationStatus::Queued)
        .bind(NotificationStatus::Dead)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}
