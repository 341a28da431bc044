//! `/api/v1/events/stream`: Server-Sent Events of the event log, resumable with
//! `Last-Event-ID` without gaps or duplicates.
//!
//! The stream reads the log by id (`id > last sent`), woken by new events: this process'
//! own, and on PostgreSQL other nodes' through the store's notification; a one-second poll
//! is the safety net for a notification lost with its connection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::extract::ApiQuery;
use super::guard::StreamPermit;
use crate::error::{Error, Result};
use crate::model::{Event, ProjectScope};
use crate::store::Store;

/// Events fetched per read of the log.
const PAGE: i64 = 200;
/// How often the log is read when nothing woke the stream (a lost notification).
const POLL: Duration = Duration::from_secs(1);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    /// Only this project's events.
    project: Option<String>,
    /// Only this task's events.
    task: Option<i64>,
    /// Start after this event id (same as the Last-Event-ID header, which wins).
    after: Option<i64>,
}

/// Live events as Server-Sent Events. Each has `id` (resume with `Last-Event-ID`),
/// `event` (its kind) and JSON `data`. Without a starting point a task's stream begins
/// with the task's first event and an unfiltered stream with the next new event. Past
/// `intake.max_sse_streams` open streams, or `intake.max_sse_streams_per_token` of one
/// token, the answer is 429 with Retry-After.
#[utoipa::path(get, path = "/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, description = "text/event-stream of events", content_type = "text/event-stream"),
        (status = 429, description = "too many event streams open")))]
async fn stream_events(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let principal = &access.principal;
    let token = principal
        .id
        .map_or_else(|| principal.name.clone(), |id| id.to_string());
    let permit = state.guards.open_stream(&token)?;
    let project_id = crate::projects::filter_id(&state.store, query.project.as_deref()).await?;
    if let Some(task_id) = query.task {
        access.on_task(&state.store, task_id).await?;
    }
    if let Some(name) = query.project.as_deref() {
        access.on_project_named(&state.store, name).await?;
    }
    let header_start = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| Error::BadRequest("Last-Event-ID must be an event id".into()))
        })
        .transpose()?;
    let start = match header_start.or(query.after) {
        Some(id) => id,
        None if query.task.is_some() => 0,
        None => state.store.max_event_id().await?,
    };
    let follower = Follower {
        store: state.store.clone(),
        wake: state.store.subscribe_events(),
        last: start,
        task: query.task,
        project: project_id,
        scope: access.visible(),
        buffer: VecDeque::new(),
        _permit: permit,
    };
    let stream = futures::stream::unfold(follower, |mut f| async move {
        let event = f.next().await;
        Some((Ok(to_sse(&event)), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Follower {
    store: Store,
    wake: tokio::sync::watch::Receiver<i64>,
    last: i64,
    task: Option<i64>,
    project: Option<i64>,
    /// The projects the reader may see, fixed when the stream opens.
    scope: ProjectScope,
    buffer: VecDeque<Event>,
    /// Held while the stream is open.
    _permit: StreamPermit,
}

impl Follower {
    /// The next event after the last one sent, waiting for it as long as needed.
    async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.last = event.id;
                return event;
            }
            // Marked before reading, so an event stored during the read still wakes us.
            self.wake.mark_unchanged();
            match self
                .store
                .events_after_in(self.last, self.task, self.project, &self.scope, PAGE)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    self.buffer.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "event stream could not read the log; retrying")
                }
            }
            tokio::select! {
                _ = self.wake.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.clone())
        .json_data(event)
        .unwrap_or_else(|_| {
            SseEvent::default()
                .id(event.id.to_string())
                .comment("unserializable event")
        })
}
