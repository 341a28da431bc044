//! The engine's side of the approval gate: handing a recorded decision to the pipeline
//! (applying it to `.party/` first when the plugin's hook would ignore it), showing new
//! approval requests (their diff and findings, then the notifications), and what becomes of
//! the work once the pipeline ends: a pull request for approved changes, nothing left behind
//! for rejected ones.

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::ingest::{Ingestor, PipelineState};
use super::{Engine, party};
use crate::approvals;
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::{
    ApprovalKind, ApprovalRecord, ApprovalSnapshot, ApprovalStatus, Decision, FindingText,
    NewEvent, NewJob, TaskExec, TaskStatus,
};
use crate::notify::{self, Notice, NoticeKind};
use crate::projects::Project;
use crate::tasks;
use crate::vault::Redactor;

impl Engine {
    /// What hands the decision of `approval_id` to the pipeline, or None when there is
    /// nothing to run: a finished run already did (a duplicate job), or it is a result
    /// decision that waits for a pending tool request (the task says which). A result decision
    /// is recorded in its approval file by aiops (no plugin code does); a decision the
    /// plugin's hooks would ignore (the session is over 4 hours old, or none is active) is
    /// applied to the files first, exactly as the hook would, and the session made current
    /// again so the hooks move its phases on.
    pub(super) async fn prepare_resume(
        &self,
        approval_id: i64,
        task: &TaskExec,
        worktree: &Path,
        interrupted: bool,
    ) -> Result<Option<Resume>> {
        let approval = self.store.approval(approval_id).await?;
        if approval.task_id != task.id || approval.decision.is_none() {
            return Err(Error::Conflict(format!(
                "approval {approval_id} is not a decided approval of task {}",
                task.id
            )));
        }
        let session = task.party_session_id.clone().unwrap_or_default();
        let snapshot = self.read_session(worktree, &session).await?;
        if approval.kind == ApprovalKind::Result
            && let Some(tool) = pending_tool_request(&snapshot)
        {
            self.hold_result_decision(task, approval_id, &tool).await?;
            return Ok(None);
        }
        if !self.store.mark_approval_resumed(approval_id).await? && !interrupted {
            tracing::info!(
                task = task.id,
                approval = approval_id,
                "decision already handed to the pipeline"
            );
            return Ok(None);
        }
        let limits = self.party_limits();
        let late =
            !session.is_empty() && party::hook_ignores(worktree, &session, Utc::now(), &limits);
        let mut note = None;
        if late {
            note = Some(self.make_current(task, worktree, &session).await?);
        }
        if !session.is_empty() && (late || approval.kind == ApprovalKind::Result) {
            self.apply_decision(task, &approval, worktree, &session, late)
                .await?;
        }
        let phase = self
            .read_session(worktree, &session)
            .await?
            .session
            .and_then(|s| s.phase);
        Ok(Some(Resume {
            prompt: approvals::decision_prompt(&approval, &session)?,
            approval_id,
            phase,
            note,
        }))
    }

    /// A session's files as they are now (nothing when there is no session).
    async fn read_session(&self, worktree: &Path, session: &str) -> Result<party::Snapshot> {
        if session.is_empty() {
            return Ok(party::Snapshot::default());
        }
        let (root, session_id, limits) = (
            worktree.to_path_buf(),
            session.to_owned(),
            self.party_limits(),
        );
        tokio::task::spawn_blocking(move || party::read_snapshot(&root, &session_id, &limits))
            .await
            .map_err(|e| Error::Internal(e.into()))
    }

    /// Keeps a result decision back while a tool request is pending: sent now, the plugin's
    /// hook would read it as deciding that tool request. It goes once the pipeline waits in
    /// AWAITING_APPROVAL again (see `release_waiting_decision`).
    async fn hold_result_decision(
        &self,
        task: &TaskExec,
        approval_id: i64,
        tool_request: &str,
    ) -> Result<()> {
        let reason = format!(
            "the decision on approval {approval_id} waits: tool request {tool_request} is pending; \
             decide it first (GET /api/v1/approvals?task={}&status=pending), then the decision is \
             handed to the pipeline",
            task.id
        );
        let data =
            json!({"approval_id": approval_id, "waiting_for": tool_request, "reason": reason});
        let event = NewEvent::platform(task.id, task.project_id, "decision_waiting", data);
        self.store.insert_events(&[event]).await?;
        tasks::set_status(
            &self.store,
            task.id,
            TaskStatus::AwaitingApproval,
            Some(&reason),
            None,
        )
        .await?;
        Ok(())
    }

    /// Makes a stale session current again; returns what the task says about it.
    async fn make_current(
        &self,
        task: &TaskExec,
        worktree: &Path,
        session: &str,
    ) -> Result<String> {
        let (root, session_id, limits) = (
            worktree.to_path_buf(),
            session.to_owned(),
            self.party_limits(),
        );
        let renewed = tokio::task::spawn_blocking(move || {
            party::make_current(&root, &session_id, Utc::now(), &limits)
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?;
        let note = match &renewed {
            Ok(true) => "the session was created over 4 hours ago, so aiops made it current again (active-session.json, created_at) for the plugin's hooks".to_owned(),
            Ok(false) => "no session was active, so aiops made it the active one for the plugin's hooks".to_owned(),
            Err(e) => format!("aiops could not make the stale session current again ({e}); the plugin's hooks ignore it"),
        };
        let data = json!({"session": session, "note": note});
        let event = NewEvent::platform(task.id, task.project_id, "session_made_current", data);
        self.store.insert_events(&[event]).await?;
        Ok(note)
    }

    /// Writes a recorded decision into the approval file and the session, as the hook would.
    async fn apply_decision(
        &self,
        task: &TaskExec,
        approval: &ApprovalRecord,
        worktree: &Path,
        session: &str,
        late: bool,
    ) -> Result<()> {
        let (root, session_id) = (worktree.to_path_buf(), session.to_owned());
        let (request_id, decision) = (
            approval.request_id.clone(),
            approval.decision.map(Decision::as_str).unwrap_or_default(),
        );
        let comment = approval.comment.clone();
        let decided_by = approval.decided_by.clone().unwrap_or_default();
        let limits = self.party_limits();
        let applied = tokio::task::spawn_blocking(move || {
            party::apply_decision(
                &root,
                &session_id,
                &request_id,
                decision,
                comment.as_deref(),
                &decided_by,
                &limits,
            )
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?;
        let reason = if late {
            "the plugin's hook ignores this session (over 4 hours old or not active)"
        } else {
            "no plugin code decides a result approval; aiops records it"
        };
        let data = match &applied {
            Ok(()) => json!({"approval_id": approval.id, "applied_by": "aiops", "reason": reason}),
            Err(e) => json!({"approval_id": approval.id, "error": e.to_string()}),
        };
        if let Err(e) = &applied {
            tracing::warn!(task = task.id, approval = approval.id, error = %e, "could not apply the decision to .party/; resuming anyway");
        }
        let event = NewEvent::platform(task.id, task.project_id, "decision_applied", data);
        self.store.insert_events(&[event]).await?;
        Ok(())
    }

    /// After a run that stopped in AWAITING_APPROVAL with nothing pending: hands over a result
    /// decision that waited for a tool request, or else files the result approval request the
    /// agent did not write. Returns the status reason when a decision was handed over.
    pub(super) async fn settle_result_approval(
        &self,
        task: &TaskExec,
        worktree: &Path,
        ingestor: &mut Ingestor,
        state: PipelineState,
    ) -> (PipelineState, Option<String>) {
        if state.phase.as_deref() != Some("AWAITING_APPROVAL") || state.has_pending_request {
            return (state, None);
        }
        match self.release_waiting_decision(task).await {
            Ok(Some(reason)) => return (state, Some(reason)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "could not hand over a waiting decision");
                return (state, None);
            }
        }
        if let Err(e) = self.file_result_request(task, worktree).await {
            tracing::warn!(task = task.id, error = %e, "could not file the result approval request");
            return (state, None);
        }
        match ingestor.tick().await {
            Ok(state) => (state, None),
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "could not read the filed request back");
                (state, None)
            }
        }
    }

    /// Queues the resume of a result decision that waited; the reason the task shows, if any.
    async fn release_waiting_decision(&self, task: &TaskExec) -> Result<Option<String>> {
        let Some(approval_id) = self.store.waiting_result_decision(task.id).await? else {
            return Ok(None);
        };
        let mut resume = NewJob::now(task.id, task.priority);
        resume.job.resume_approval_id = Some(approval_id);
        tasks::push_job(&self.store, &resume).await?;
        let reason = format!(
            "the tool request is decided; the decision on approval {approval_id} that waited for it goes to the pipeline now"
        );
        let data = json!({"approval_id": approval_id, "reason": reason});
        let event = NewEvent::platform(task.id, task.project_id, "decision_released", data);
        self.store.insert_events(&[event]).await?;
        Ok(Some(reason))
    }

    /// Writes the result approval request from the findings and the diff, as the agent should.
    async fn file_result_request(&self, task: &TaskExec, worktree: &Path) -> Result<()> {
        let exec = self.store.task_exec(task.id).await?;
        let Some(session) = exec.party_session_id.clone() else {
            return Err(Error::Conflict("the task has no party session".into()));
        };
        let stat = match exec.base_ref.as_deref() {
            Some(base) => self
                .worktrees
                .diff(worktree, base, self.config.approvals.max_diff_bytes)
                .await
                .map(|d| d.stat)
                .unwrap_or_default(),
            None => String::new(),
        };
        let findings = self.store.finding_previews(task.id, 0).await?;
        let names: Vec<&str> = findings.iter().map(|f| f.name.as_str()).collect();
        let summary = format!(
            "{} team stopped in AWAITING_APPROVAL without filing a result approval; aiops filed it. Findings: {}.",
            task.team,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        let root = worktree.to_path_buf();
        let (sid, text, diff) = (session.clone(), summary.clone(), stat.clone());
        let stem = tokio::task::spawn_blocking(move || {
            party::request_result_approval(&root, &sid, &text, &diff, Utc::now())
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(|e| Error::Internal(e.into()))?;
        let data = json!({"request_id": stem, "summary": summary, "filed_by": "aiops"});
        let event = NewEvent::platform(task.id, task.project_id, "result_approval_filed", data);
        self.store.insert_events(&[event]).await?;
        Ok(())
    }

    /// Takes the diff and findings of each new pending request of a task, sets its deadline
    /// and announces it.
    pub(super) async fn show_new_approvals(
        &self,
        task: &TaskExec,
        worktree: &Path,
        redactor: &Redactor,
    ) -> Result<()> {
        let pending = self.store.approvals_without_snapshot(task.id).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let exec = self.store.task_exec(task.id).await?;
        let diff = match exec.base_ref.as_deref() {
            Some(base) => self
                .worktrees
                .diff(worktree, base, self.config.approvals.max_diff_bytes)
                .await
                .map_err(|e| tracing::warn!(task = task.id, error = %e, "could not diff the worktree for an approval"))
                .ok(),
            None => None,
        };
        let findings: Vec<FindingText> = self
            .store
            .finding_previews(task.id, crate::tasks::FINDING_PREVIEW_CHARS)
            .await?
            .into_iter()
            .map(|f| FindingText {
                name: f.name,
                content: f.content,
                truncated: f.truncated,
            })
            .collect();
        let snapshot = ApprovalSnapshot {
            diff_files: diff.as_ref().map(|d| d.files.clone()),
            diff_patch: diff
                .as_ref()
                .map(|d| redactor.redact(&d.patch).into_owned()),
            diff_truncated: diff.as_ref().is_some_and(|d| d.truncated),
            findings: Some(findings),
        };
        let expires_at = (self.config.approvals.expires_after_secs > 0).then(|| {
            Utc::now() + chrono::Duration::seconds(self.config.approvals.expires_after_secs as i64)
        });
        for approval in pending {
            if self
                .store
                .record_approval_snapshot(
                    approval.id,
                    &snapshot,
                    diff.as_ref().map(|d| d.stat.as_str()),
                    expires_at,
                )
                .await?
            {
                let notice = Notice {
                    kind: NoticeKind::ApprovalRequested,
                    task_id: task.id,
                    approval_id: Some(approval.id),
                };
                notify::enqueue(&self.store, &notice).await?;
            }
        }
        Ok(())
    }

    /// What becomes of a task's work once its pipeline ended with `status`: approved
    /// changes are committed, pushed and proposed as a pull request. Failures are recorded
    /// on the task, never lost silently: true when approved work could not be delivered (its
    /// worktree is then kept for `deliver_again`).
    pub(super) async fn conclude_change(
        &self,
        task: &TaskExec,
        project: &Project,
        status: TaskStatus,
    ) -> bool {
        if status != TaskStatus::Done || !self.config.pull_requests.enabled {
            return false;
        }
        match self.store.last_result_decision(task.id).await {
            Ok(Some(Decision::Approve)) => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "could not read the task's decision");
                return false;
            }
        }
        let (pr, note, undelivered) = match self.open_pull_request(task, project).await {
            Ok(Delivered::PullRequest(url, number)) => (Some((url, number)), None, false),
            Ok(Delivered::NoChanges) => (
                None,
                Some(
                    "no changes: the approved work changed no file, so there is no pull request"
                        .to_string(),
                ),
                false,
            ),
            Ok(Delivered::Branch(note)) => (None, Some(note), false),
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "could not deliver the approved change");
                (
                    None,
                    Some(format!(
                        "the approved change could not be delivered: {e}; the worktree is kept: fix the cause, then POST /api/v1/tasks/{}/deliver",
                        task.id
                    )),
                    true,
                )
            }
        };
        let event = match (&pr, &note) {
            (Some((url, number)), _) => NewEvent::platform(
                task.id,
                task.project_id,
                "pull_request_opened",
                json!({"url": url, "number": number}),
            ),
            (None, note) => NewEvent::platform(
                task.id,
                task.project_id,
                "change_not_delivered",
                json!({"reason": note}),
            ),
        };
        let recorded = self
            .store
            .set_task_change(
                task.id,
                pr.as_ref().map(|(url, number)| (url.as_str(), *number)),
                note.as_deref(),
            )
            .await;
        if let Err(e) = recorded.and(self.store.insert_events(&[event]).await.map(drop)) {
            tracing::warn!(task = task.id, error = %e, "could not record what became of the change");
        }
        undelivered
    }

    /// Tries again to deliver a done task's approved work whose delivery failed (its
    /// worktree was kept); on success the worktree goes as usual.
    pub async fn deliver_again(&self, task_id: i64) -> Result<()> {
        let task = self.store.task_exec(task_id).await?;
        let record = self.store.task(task_id).await?;
        let approved = self.store.last_result_decision(task_id).await? == Some(Decision::Approve);
        let kept = task
            .worktree_path
            .as_deref()
            .is_some_and(|p| Path::new(p).is_dir());
        if task.status != TaskStatus::Done || !approved || record.pr_url.is_some() || !kept {
            return Err(Error::Conflict(format!(
                "task {task_id} has no undelivered approved work (it must be done, approved, without a pull request, with its worktree kept)"
            )));
        }
        let project = self.store.project_by_id(task.project_id).await?;
        if self
            .conclude_change(&task, &project, TaskStatus::Done)
            .await
        {
            let note = self
                .store
                .task(task_id)
                .await?
                .change_note
                .unwrap_or_default();
            return Err(Error::Conflict(note));
        }
        self.clean_up(&task, TaskStatus::Done).await;
        Ok(())
    }

    /// Commits and pushes the task branch, then opens the pull request; where there is no
    /// remote or no GitHub repository, the branch is the delivery.
    async fn open_pull_request(
        &self,
        task: &TaskExec,
        project: &Project,
    ) -> anyhow::Result<Delivered> {
        let exec = self.store.task_exec(task.id).await?;
        let (Some(worktree), Some(base), Some(branch)) =
            (exec.worktree_path, exec.base_ref, exec.branch)
        else {
            anyhow::bail!("the task has no worktree to take the change from");
        };
        let title = pull_request_title(task);
        let pr_config = &self.config.pull_requests;
        let token = credentials::reveal_named(
            &self.store,
            &self.vault,
            project.id,
            &pr_config.push_credential,
        )
        .await?;
        let pushed = self
            .worktrees
            .commit_and_push(
                Path::new(&worktree),
                &base,
                &branch,
                &format!("{title}\n\nApproved in aiops, task {}.", task.id),
                (&pr_config.author_name, &pr_config.author_email),
                token.as_deref(),
            )
            .await?;
        drop(token);
        let Some(published) = pushed else {
            return Ok(Delivered::NoChanges);
        };
        let repo = match (published.pushed, project.github_repo.as_deref()) {
            (true, Some(repo)) => repo,
            (pushed, _) => return Ok(Delivered::branch(&published.commit, &branch, pushed)),
        };
        let (owner, name) = repo
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("github_repo {repo:?} is not owner/repo"))?;
        let issue = self.store.github_issue_of(task.id).await?;
        let github = crate::triggers::reply::github_client(
            &self.store,
            &self.vault,
            &self.config,
            project.id,
            issue.as_ref().and_then(|(_, _, installation)| *installation),
        )
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "pushed branch {branch}, but there is no GitHub credential ({}) to open the pull request",
                self.config.github.token_credential
            )
        })?;
        let body = self
            .pull_request_body(task, issue.as_ref().map(|(_, n, _)| *n))
            .await?;
        let pr = github
            .pulls(owner, name)
            .create(&title, &branch, &project.default_branch)
            .body(body)
            .draft(pr_config.draft)
            .send()
            .await?;
        let url = pr
            .html_url
            .map(|u| u.to_string())
            .unwrap_or_else(|| format!("https://github.com/{repo}/pull/{}", pr.number));
        Ok(Delivered::PullRequest(url, pr.number as i64))
    }

    async fn pull_request_body(&self, task: &TaskExec, issue: Option<i64>) -> Result<String> {
        let findings = self
            .store
            .finding_previews(task.id, crate::tasks::FINDING_PREVIEW_CHARS)
            .await?;
        let mut body = format!(
            "Work of the **{}** team, approved by a human in aiops: [task {}]({}/api/v1/tasks/{}).\n",
            task.team,
            task.id,
            self.config.public_base_url(),
            task.id
        );
        if let Some(number) = issue {
            body.push_str(&format!("\nCloses #{number}.\n"));
        }
        if !findings.is_empty() {
            body.push_str("\n### Findings\n");
            for finding in &findings {
                let summary = finding
                    .content
                    .lines()
                    .find(|line| !line.trim().is_empty() && !line.starts_with('#'))
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect::<String>();
                body.push_str(&format!("- **{}**: {summary}\n", finding.name));
            }
        }
        Ok(body)
    }

    /// Announces a task that ended done or failed.
    pub(super) async fn announce_end(&self, task_id: i64, status: TaskStatus) {
        let kind = match status {
            TaskStatus::Done => NoticeKind::TaskDone,
            TaskStatus::Failed | TaskStatus::BudgetExceeded => NoticeKind::TaskFailed,
            _ => return,
        };
        let notice = Notice {
            kind,
            task_id,
            approval_id: None,
        };
        self.announce(task_id, &[notice]).await;
    }

    /// Queues `notices` about task `task_id`; a failure is logged (the task goes on).
    pub(super) async fn announce(&self, task_id: i64, notices: &[Notice]) {
        for notice in notices {
            if let Err(e) = notify::enqueue(&self.store, notice).await {
                tracing::warn!(task = task_id, error = %e, "could not queue the task's notifications");
            }
        }
    }
}

/// "aiops: <first line of the prompt>", at most 72 characters.
fn pull_request_title(task: &TaskExec) -> String {
    let first = task.prompt.lines().next().unwrap_or("").trim();
    let mut title = format!("aiops: {first}");
    if title.chars().count() > 72 {
        title = title.chars().take(71).collect::<String>() + "…";
    }
    title
}

/// A decision on its way to the pipeline, and what the run that carries it must show.
pub(super) struct Resume {
    /// The decision prompt.
    pub prompt: String,
    pub approval_id: i64,
    /// The session's phase once the decision is in the files; the run must move on from it.
    pub phase: Option<String>,
    /// What aiops did so the plugin's hooks act on the session, when it had to.
    pub note: Option<String>,
}

impl Resume {
    /// Why a resumed run failed, when its phase never moved on from where the decision left it.
    pub(super) fn explain_stall(&self, final_phase: Option<&str>, reason: &str) -> Option<String> {
        let phase = self.phase.as_deref()?;
        (final_phase == Some(phase)).then(|| {
            let note = self.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            format!(
                "the decision on approval {} reached the pipeline, but its phase stayed {phase}{note}: \
                 the plugin's hooks did not move it on; {reason}",
                self.approval_id
            )
        })
    }
}

/// The request id of a pending tool request in the session's files.
fn pending_tool_request(snapshot: &party::Snapshot) -> Option<String> {
    snapshot
        .approvals
        .iter()
        .find(|a| a.kind == ApprovalKind::Tool && a.status == ApprovalStatus::Pending.as_str())
        .map(|a| a.request_id.clone())
}

/// How approved work left the worktree.
enum Delivered {
    /// A pull request (its URL and number).
    PullRequest(String, i64),
    /// The work changed no file.
    NoChanges,
    /// The work is on its branch (pushed or not), as the note says; no pull request.
    Branch(String),
}

impl Delivered {
    /// Work committed on `branch` and, with `pushed`, pushed to origin, but no pull request.
    fn branch(commit: &str, branch: &str, pushed: bool) -> Self {
        let short = &commit[..commit.len().min(12)];
        Delivered::Branch(if pushed {
            format!(
                "pushed branch {branch} ({short}) to origin; the project has no github_repo, so no pull request was opened"
            )
        } else {
            format!(
                "committed on branch {branch} ({short}); this project has no remote, so nothing was pushed and there is no pull request"
            )
        })
    }
}
