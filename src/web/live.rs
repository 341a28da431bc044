//! `/live`: the pages' event stream. It says only *that* something changed (`event: change`,
//! the newest event id), for the signed-in reader's projects (and one task when asked); the
//! script then fetches the server-rendered fragments again. Streams are capped at
//! `intake.max_sse_streams` for the pages together.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::WebState;
use super::layout::PageError;
use super::viewer::Viewer;
use crate::error::Error;
use crate::model::ProjectScope;
use crate::permissions::{Permission, visible_projects};
use crate::store::Store;

/// How often the log is read when nothing woke the stream (events of other nodes).
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    task: Option<i64>,
}

pub async fn stream(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(query): Query<LiveQuery>,
) -> Response {
    match open(&state, &viewer, query.task).await {
        Ok(follower) => {
            let stream = futures::stream::unfold(follower, |mut f| async move {
                let newest = f.next_change().await;
                let event = SseEvent::default().event("change").data(newest.to_string());
                Some((Ok::<_, Infallible>(event), f))
            });
            Sse::new(stream)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
}

async fn open(state: &WebState, viewer: &Viewer, task: Option<i64>) -> crate::Result<Follower> {
    if let Some(task_id) = task {
        let project = state.store.task(task_id).await?.project;
        let project_id = state.store.project(&project).await?.id;
        viewer.require(Permission::Read, project_id)?;
    }
    let permit = Arc::clone(&state.live_streams)
        .try_acquire_owned()
        .map_err(|_| Error::TooManyRequests {
            message: "too many live pages are open; reload later".into(),
            retry_after_secs: 5,
        })?;
    Ok(Follower {
        store: state.store.clone(),
        wake: state.store.subscribe_events(),
        last: state.store.max_event_id().await?,
        task,
        scope: visible_projects(&viewer.principal),
        _permit: permit,
    })
}

struct Follower {
    store: Store,
    wake: tokio::sync::watch::Receiver<i64>,
    last: i64,
    task: Option<i64>,
    scope: ProjectScope,
    _permit: OwnedSemaphorePermit,
}

impl Follower {
    /// Waits until an event the reader may see is stored after the last one; its id.
    async fn next_change(&mut self) -> i64 {
        loop {
            self.wake.mark_unchanged();
            match self
                .store
                .events_after_in(self.last, self.task, None, &self.scope, 500)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    self.last = events.iter().map(|e| e.id).max().unwrap_or(self.last);
                    return self.last;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "a live page could not read the event log"),
            }
            tokio::select! {
                _ = self.wake.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
