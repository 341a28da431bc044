//! Mirrors a worktree's `.party/` into the store, incrementally and idempotently.
//!
//! Reads only through `party` (which refuses symlinks, `..` and oversized files) and
//! redacts every text before it is stored. Safe to run any number of times: events are
//! keyed by party session and byte offset, findings and tickets are upserts.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::party::{self, Limits};
use crate::error::Result;
use crate::model::{
    ApprovalRequestMirror, ApprovalStatus, EventOrigin, NewEvent, TaskExec, TicketRecord,
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
    offset: u64,
}

impl Ingestor {
    /// Resumes from the session and events offset stored on the task.
    pub fn new(
        store: Store,
        task: &TaskExec,
        worktree: PathBuf,
        limits: Limits,
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
            offset: task.events_offset.max(0) as u64,
        }
    }

    /// Reads what is new and stores it; returns the pipeline's state.
    pub async fn tick(&mut self) -> Result<PipelineState> {
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
            self.offset = 0;
        }
        self.ingest_events(&session).await?;
        self.ingest_snapshot(&session).await
    }

    async fn ingest_events(&mut self, session: &str) -> Result<()> {
        loop {
            let (worktree, limits, sid, from) = (
                self.worktree.clone(),
                self.limits,
                session.to_string(),
                self.offset,
            );
            let batch = tokio::task::spawn_blocking(move || {
                party::read_events(&worktree, &sid, from, &limits)
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
            let events: Vec<NewEvent> = batch
                .events
                .iter()
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
            let progressed = batch.next_offset != self.offset;
            self.offset = batch.next_offset;
            self.store
                .set_task_party_progress(self.task_id, session, self.offset as i64)
                .await?;
            if !progressed || batch.events.is_empty() && batch.skipped.is_empty() {
                return Ok(());
            }
        }
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
            self.store.upsert_ticket(self.task_id, &upsert).await?;
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
        Ok(PipelineState {
            phase: session.and_then(|s| s.phase.clone()),
            has_pending_request,
            fix_loop: session.and_then(|s| s.raw.get("fix_loop").cloned()),
        })
    }
}
