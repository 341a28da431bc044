//! Mirrors a worktree's `.party/` into the store, incrementally and idempotently.
//!
//! Reads only through `party` (which refuses symlinks, `..` and oversized files) and
//! redacts every text before it is stored. Safe to run any number of times: events are
//! keyed by party session and byte offset, findings and tickets are upserts.
//!
//! Reads only what changed: `events.ndjson` from the stored cursor (an unfinished last line
//! is looked at once per byte, an over-long one skipped without rescanning, even across a
//! restart), the other files only when their fingerprint (names, sizes, times) moved.
//!
//! Bounded: what a task's files hold past a cap (`[ingest]`: findings, their bytes, tickets,
//! approval files, events in all and per second) is skipped, with one `ingest_limited`
//! event per cap naming it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::party::{self, EventCursor, Limits};
use crate::config::IngestConfig;
use crate::error::Result;
use crate::model::{
    ApprovalRequestMirror, ApprovalStatus, EventOrigin, NewEvent, TaskExec, TicketRecord,
    TicketTimes,
};
use crate::store::Store;
use crate::vault::Redactor;

/// What the pipeline's files say about its state.
#[derive(Debug, Clone, Default)]
pub struct PipelineState {
    pub phase: Option<String>,
    /// A request the pipeline waits on: pending in its file and undecided in the store.
    pub has_pending_request: bool,
    /// `fix_loop` of `session.json`: `{attempt, max_attempts}`.
    pub fix_loop: Option<serde_json::Value>,
}

/// Incremental reader of one task's `.party/`.
pub struct Ingestor {
    store: Store,
    task_id: i64,
    project_id: i64,
    worktree: PathBuf,
    limits: Limits,
    redactor: Redactor,
    session: Option<String>,
    cursor: EventCursor,
    /// The fingerprint of the files the last snapshot read, and what it found.
    last_snapshot: Option<(u64, PipelineState)>,
    caps: IngestConfig,
    started: Instant,
    events_stored: u64,
    /// Caps already reported with an `ingest_limited` event.
    reported: BTreeSet<&'static str>,
}

impl Ingestor {
    /// Resumes from the session and events offset stored on the task.
    pub fn new(
        store: Store,
        task: &TaskExec,
        worktree: PathBuf,
        limits: Limits,
        caps: IngestConfig,
        redactor: Redactor,
    ) -> Self {
        Self {
            store,
            task_id: task.id,
            project_id: task.project_id,
            worktree,
            limits,
            redactor,
            session: task.party_session_id.clone(),
            cursor: EventCursor {
                offset: task.events_offset.max(0) as u64,
                inside_long_line: task.events_inside_line,
                scanned_to: task.events_offset.max(0) as u64,
            },
            last_snapshot: None,
            caps,
            started: Instant::now(),
            events_stored: 0,
            reported: BTreeSet::new(),
        }
    }

    /// Records once per cap that something was skipped because of it.
    async fn report_limited(&mut self, cap: &'static str) -> Result<()> {
        if !self.reported.insert(cap) {
            return Ok(());
        }
        tracing::warn!(task = self.task_id, cap, "ingestion limited");
        let data = serde_json::json!({
            "limit": format!("ingest.{cap}"),
            "message": format!("what the pipeline wrote past ingest.{cap} was not stored"),
        });
        let event = NewEvent::platform(self.task_id, self.project_id, "ingest_limited", data);
        self.store.insert_events(&[event]).await.map(drop)
    }

    /// How many more events may be stored now: under `max_events` in all and
    /// `max_events_per_second` on average since the run started (a second's worth at once).
    fn event_budget(&self) -> (u64, &'static str) {
        let total_left = self.caps.max_events.saturating_sub(self.events_stored);
        let seconds = self.started.elapsed().as_secs() + 1;
        let rate_left = (self.caps.max_events_per_second.saturating_mul(seconds))
            .saturating_sub(self.events_stored);
        if total_left <= rate_left {
            (total_left, "max_events")
        } else {
            (rate_left, "max_events_per_second")
        }
    }

    /// The worktree this ingestor reads.
    pub fn worktree(&self) -> &std::path::Path {
        &self.worktree
    }

    /// Reads what is new and stores it, every file read again; returns the pipeline's state.
    pub async fn tick(&mut self) -> Result<PipelineState> {
        self.last_snapshot = None;
        self.tick_changed().await
    }

    /// Reads what is new and stores it, skipping the files whose fingerprint did not move
    /// since the last read; returns the pipeline's state.
    pub async fn tick_changed(&mut self) -> Result<PipelineState> {
        let worktree = self.worktree.clone();
        let limits = self.limits;
        let Some(session) =
            tokio::task::spawn_blocking(move || party::active_session_id(&worktree, None, &limits))
                .await
                .map_err(anyhow::Error::from)?
        else {
            return Ok(PipelineState::default());
        };
        if self.session.as_deref() != Some(session.as_str()) {
            // A new party session (a re-run) has its own events file.
            self.session = Some(session.clone());
            self.cursor = EventCursor::default();
            self.last_snapshot = None;
            self.store
                .set_task_party_progress(self.task_id, &session, 0, false)
                .await?;
        }
        self.ingest_events(&session).await?;
        let (worktree, sid) = (self.worktree.clone(), session.clone());
        let fingerprint = tokio::task::spawn_blocking(move || party::fingerprint(&worktree, &sid))
            .await
            .map_err(anyhow::Error::from)?;
        if let Some((seen, state)) = &self.last_snapshot
            && *seen == fingerprint
        {
            return Ok(state.clone());
        }
        let state = self.ingest_snapshot(&session).await?;
        self.last_snapshot = Some((fingerprint, state.clone()));
        Ok(state)
    }

    async fn ingest_events(&mut self, session: &str) -> Result<()> {
        loop {
            let (worktree, limits, sid, cursor) = (
                self.worktree.clone(),
                self.limits,
                session.to_string(),
                self.cursor,
            );
            let batch = tokio::task::spawn_blocking(move || {
                party::read_events_at(&worktree, &sid, cursor, &limits)
            })
            .await
            .map_err(anyhow::Error::from)?;
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => {
                    tracing::warn!(task = self.task_id, error = %e, "events.ndjson skipped; retrying later");
                    return Ok(());
                }
            };
            for (offset, reason) in &batch.skipped {
                tracing::debug!(
                    task = self.task_id,
                    offset,
                    reason,
                    "skipped an events.ndjson line"
                );
            }
            let (budget, cap) = self.event_budget();
            if batch.events.len() as u64 > budget {
                self.report_limited(cap).await?;
            }
            let events: Vec<NewEvent> = batch
                .events
                .iter()
                .take(budget as usize)
                .map(|event| NewEvent {
                    task_id: self.task_id,
                    project_id: self.project_id,
                    kind: self.redactor.redact(&event.kind).into_owned(),
                    origin: EventOrigin::Party,
                    ts: event.ts.unwrap_or_else(chrono::Utc::now),
                    data: self.redactor.redact_json(&event.raw),
                    source: Some((session.to_string(), event.offset as i64)),
                })
                .collect();
            self.store.insert_events(&events).await?;
            self.events_stored += events.len() as u64;
            let before = self.cursor;
            self.cursor = batch.cursor();
            let progressed = self.cursor.offset != before.offset;
            if progressed || self.cursor.inside_long_line != before.inside_long_line {
                self.store
                    .set_task_party_progress(
                        self.task_id,
                        session,
                        self.cursor.offset as i64,
                        self.cursor.inside_long_line,
                    )
                    .await?;
            }
            if !progressed || batch.events.is_empty() && batch.skipped.is_empty() {
                return Ok(());
            }
        }
    }

    /// Stores a ticket's latest state (its texts redacted) with the times its file gives.
    async fn store_ticket(&self, ticket: &party::Ticket) -> Result<()> {
        let redact =
            |v: &Option<String>| v.as_deref().map(|s| self.redactor.redact(s).into_owned());
        let upsert = TicketRecord {
            ticket_id: ticket.id.clone(),
            kind: ticket.kind.clone(),
            title: redact(&ticket.title),
            status: ticket.status.clone(),
            phase: ticket.phase.clone(),
            assignee: ticket.assignee.clone(),
            parent_id: ticket.parent_id.clone(),
            body: self.redactor.redact_json(&ticket.raw),
            updated_at: chrono::Utc::now(),
        };
        let times = TicketTimes {
            created_at: ticket.created_at,
            completed_at: ticket.completed_at,
        };
        self.store.upsert_ticket(self.task_id, &upsert, times).await
    }

    /// Records the team that ran and the board of `session` (its grants redacted).
    async fn store_board(&self, session: &party::SessionState) -> Result<()> {
        let mut board = session.board.clone();
        for grant in &mut board.approval_grants {
            *grant = self.redactor.redact_json(grant);
        }
        self.store
            .set_task_board(self.task_id, session.team.as_deref(), &board)
            .await
    }

    async fn ingest_snapshot(&mut self, session: &str) -> Result<PipelineState> {
        let (worktree, limits, sid) = (self.worktree.clone(), self.limits, session.to_string());
        let snapshot =
            tokio::task::spawn_blocking(move || party::read_snapshot(&worktree, &sid, &limits))
                .await
                .map_err(anyhow::Error::from)?;
        for (path, reason) in &snapshot.skipped {
            tracing::debug!(task = self.task_id, path = %path.display(), reason, "skipped a .party file");
        }
        for cap in &snapshot.limited {
            self.report_limited(cap).await?;
        }
        for finding in &snapshot.findings {
            let content = self.redactor.redact(&finding.content);
            let digest = hex::encode(Sha256::digest(content.as_bytes()));
            self.store
                .upsert_finding(
                    self.task_id,
                    &finding.name,
                    &content,
                    &digest,
                    finding.modified,
                )
                .await?;
        }
        for ticket in &snapshot.tickets {
            self.store_ticket(ticket).await?;
        }
        for approval in &snapshot.approvals {
            let upsert = ApprovalRequestMirror {
                request_id: approval.request_id.clone(),
                kind: approval.kind,
                risk_level: approval.risk_level.clone(),
                tool_name: approval.tool_name.clone(),
                tool_input: approval
                    .tool_input
                    .as_ref()
                    .map(|v| self.redactor.redact_json(v)),
                summary: approval
                    .summary
                    .as_deref()
                    .map(|s| self.redactor.redact(s).into_owned()),
                diff_stat: approval.diff_stat.clone(),
                file_status: approval.status.clone(),
                file_decision: approval.decision.clone(),
                requested_at: approval.requested_at.unwrap_or_else(chrono::Utc::now),
            };
            self.store.upsert_approval(self.task_id, &upsert).await?;
        }
        // Waiting means the file says pending and nobody decided it in aiops yet.
        let undecided = self.store.pending_request_ids(self.task_id).await?;
        let has_pending_request = snapshot.approvals.iter().any(|approval| {
            approval.status == ApprovalStatus::Pending.as_str()
                && undecided.contains(&approval.request_id)
        });
        let session = snapshot.session.as_ref();
        if let Some(session) = session {
            self.store_board(session).await?;
        }
        Ok(PipelineState {
            phase: session.and_then(|s| s.phase.clone()),
            has_pending_request,
            fix_loop: session.and_then(|s| s.raw.get("fix_loop").cloned()),
        })
    }
}
