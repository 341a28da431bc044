//! Queries on `events`: the ordered log every live view reads, and on PostgreSQL the
//! notification that tells every node's live views that another node stored events.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{Backend, Pool, Store, Tx};
use crate::error::Result;
use crate::model::{Event, EventOrigin, NewEvent};

/// The PostgreSQL notification channel whose payload is the newest event id a commit stored.
const EVENTS_CHANNEL: &str = "aiops_events";

/// Key of the PostgreSQL advisory lock that serialises event inserts, so ids become
/// visible in commit order and a reader following `id > last` never skips one.
pub(crate) const EVENT_ORDER_LOCK: i64 = 0x6169_6f70_7365_7674;

/// Appends an event inside `tx` (announced to live streams when it commits); returns its
/// id, or None when a party event with the same session and offset is already stored, or
/// when `tx` keeps its events to write them right before its commit (`group_commit`).
pub async fn append(tx: &mut Tx, event: &NewEvent) -> Result<Option<i64>> {
    let stored = append_all(tx, std::slice::from_ref(event)).await?;
    Ok(stored.into_iter().next())
}

/// Appends `events` inside `tx` in one statement (announced to live streams when it
/// commits); the ids of those stored. A party event whose session and offset are stored
/// already is skipped. When `tx` keeps its events for the end (`group_commit`), they are
/// kept with them and none is stored yet.
pub async fn append_all(tx: &mut Tx, events: &[NewEvent]) -> Result<Vec<i64>> {
    if let Some(deferred) = &mut tx.deferred_events {
        deferred.extend_from_slice(events);
        return Ok(Vec::new());
    }
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let postgres = tx.backend() == Backend::Postgres;
    let now = chrono::Utc::now();
    let ids: Vec<i64> = with_tx!(tx, conn => {
        if postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO events (task_id, project_id, kind, origin, ts, data, party_session, source_offset, created_at) ");
        insert.push_values(events, |mut row, event| {
            let (party_session, offset) = match &event.source {
                Some((session, offset)) => (Some(session.as_str()), Some(*offset)),
                None => (None, None),
            };
            row.push_bind(event.task_id)
                .push_bind(event.project_id)
                .push_bind(&event.kind)
                .push_bind(event.origin)
                .push_bind(event.ts)
                .push_bind(sqlx::types::Json(&event.data))
                .push_bind(party_session)
                .push_bind(offset)
                .push_bind(now);
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING id");
        // One row is always the same text, worth keeping prepared; many vary with their count.
        let one = events.len() == 1;
        insert.build_query_scalar().persistent(one).fetch_all(&mut *conn).await
    })?;
    if let Some(newest) = ids.iter().copied().max() {
        tx.appended_event(newest);
    }
    Ok(ids)
}

/// Sends the newest event id of a transaction on [`EVENTS_CHANNEL`]; PostgreSQL delivers it
/// to every listening node when (and only if) the transaction commits.
pub(super) async fn notify_other_nodes(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    newest: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(newest.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Announces every event id another node (or this one) notifies, until the connection fails.
async fn listen_for_events(
    pool: &sqlx::PgPool,
    latest: &tokio::sync::watch::Sender<i64>,
) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(EVENTS_CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        if let Ok(id) = notification.payload().parse::<i64>() {
            super::announce(latest, id);
        }
    }
}

impl Store {
    /// On PostgreSQL, moves this process' newest-event watch when any node commits events,
    /// so live streams wake at once instead of at their next poll; returns when `stop` is
    /// cancelled or the pool closes (its connection would hold `close` up). The listener
    /// reconnects by itself; the streams' slow poll covers what a lost connection missed. On
    /// SQLite (one process) there is nothing to follow.
    pub async fn follow_other_nodes(self, stop: CancellationToken) {
        let Pool::Postgres(pool) = &self.pool else {
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = pool.close_event() => return,
                Err(e) = listen_for_events(pool, &self.latest_event) => {
                    tracing::warn!(error = %e, "listening for other nodes' events failed; trying again in 5 s");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// Stores events in one transaction and announces the newest; returns how many were
    /// new (party events already stored are skipped).
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut stored = 0;
        for event in events {
            stored += usize::from(append(&mut tx, event).await?.is_some());
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Events after `after_id`, oldest first, optionally of one task or project.
    pub async fn events_after(
        &self,
        after_id: i64,
        task_id: Option<i64>,
        project_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let all = crate::model::ProjectScope::All;
        self.events_after_in(after_id, task_id, project_id, &all, limit)
            .await
    }

    /// Events after `after_id` of the projects in `scope`, oldest first, optionally of one
    /// task or project.
    pub async fn events_after_in(
        &self,
        after_id: i64,
        task_id: Option<i64>,
        project_id: Option<i64>,
        scope: &crate::model::ProjectScope,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT id, task_id, project_id, kind, origin, ts, data FROM events
             WHERE id > $1 AND ($2 IS NULL OR task_id = $2) AND ($3 IS NULL OR project_id = $3){}
             ORDER BY id LIMIT $4",
            super::scope_sql("project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(after_id)
            .bind(task_id)
            .bind(project_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// How many events of each origin a task has (for checks and summaries).
    pub async fn count_events(&self, task_id: i64, origin: EventOrigin) -> Result<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE task_id = $1 AND origin = $2")
            .bind(task_id)
            .bind(origin)
            .fetch_one(pool)
            .await)?)
    }
}

impl Store {
    /// The id of the newest stored event, 0 when there is none.
    pub async fn max_event_id(&self) -> Result<i64> {
        let max: Option<i64> = with_pool!(self, pool => sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(pool)
            .await)?;
        Ok(max.unwrap_or(0))
    }
}
