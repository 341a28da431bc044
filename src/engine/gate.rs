//! The engine's side of the approval gate: handing a recorded decision to the pipeline
//! (applying it to `.party/` first when the plugin's hook would ignore it), showing new
//! approval requests (their diff and findings, then the notifications), and what becomes of
//! the work once the pipeline ends: a pull request for approved changes, nothing left behind
//! for rejected ones.

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{Engine, party};
use crate::approvals;
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::{ApprovalSnapshot, Decision, FindingText, NewEvent, TaskExec, TaskStatus};
use crate::notify::{self, Notice, NoticeKind};
use crate::projects::Project;
use crate::vault::Redactor;

impl Engine {
    /// The prompt that hands the decision of `approval_id` to the pipeline, or None when a
    /// finished run already did (a duplicate job). A decision the plugin's hook would ignore
    /// (the session is over 4 hours old, or none is active) is applied to the files first,
    /// exactly as the hook would.
    pub(super) async fn prepare_resume(
        &self,
        approval_id: i64,
        task: &TaskExec,
        worktree: &Path,
        interrupted: bool,
    ) -> Result<Option<String>> {
        let approval = self.store.approval(approval_id).await?;
        if approval.task_id != task.id || approval.decision.is_none() {
            return Err(Error::Conflict(format!(
                "approval {approval_id} is not a decided approval of task {}",
                task.id
            )));
        }
        if !self.store.mark_approval_resumed(approval_id).await? && !interrupted {
            tracing::info!(
                task = task.id,
                approval = approval_id,
                "decision already handed to the pipeline"
            );
            return Ok(None);
        }
        let session = task.party_session_id.clone().unwrap_or_default();
        let limits = self.party_limits();
        if !session.is_empty() && party::hook_ignores(worktree, &session, Utc::now(), &limits) {
            let (root, session_id) = (worktree.to_path_buf(), session.clone());
            let (request_id, decision) = (
                approval.request_id.clone(),
                approval.decision.map(Decision::as_str).unwrap_or_default(),
            );
            let comment = approval.comment.clone();
            let decided_by = approval.decided_by.clone().unwrap_or_default();
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
            let data = match &applied {
                Ok(()) => json!({"approval_id": approval_id, "applied_by": "aiops",
                    "reason": "the plugin's hook ignores this session (over 4 hours old or not active)"}),
                Err(e) => json!({"approval_id": approval_id, "error": e.to_string()}),
            };
            if let Err(e) = &applied {
                tracing::warn!(task = task.id, approval = approval_id, error = %e, "could not apply the decision to .party/; resuming anyway");
            }
            self.store
                .insert_events(&[NewEvent::platform(
                    task.id,
                    task.project_id,
                    "decision_applied",
                    data,
                )])
                .await?;
        }
        approvals::decision_prompt(&approval, &session).map(Some)
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
            .findings(task.id)
            .await?
            .into_iter()
            .map(|f| FindingText {
                name: f.name,
                content: f.content,
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
            Ok(Some((url, number))) => (Some((url, number)), None, false),
            Ok(None) => (
                None,
                Some(
                    "no changes: the approved work changed no file, so there is no pull request"
                        .to_string(),
                ),
                false,
            ),
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

    /// Commits and pushes the task branch, then opens the pull request; None when there was
    /// nothing to commit.
    async fn open_pull_request(
        &self,
        task: &TaskExec,
        project: &Project,
    ) -> anyhow::Result<Option<(String, i64)>> {
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
        if pushed.is_none() {
            return Ok(None);
        }
        let Some(repo) = project.github_repo.as_deref() else {
            anyhow::bail!(
                "pushed branch {branch}, but project {} has no github_repo to open a pull request on",
                project.name
            );
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
        Ok(Some((url, pr.number as i64)))
    }

    async fn pull_request_body(&self, task: &TaskExec, issue: Option<i64>) -> Result<String> {
        let findings = self.store.findings(task.id).await?;
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
            TaskStatus::Failed => NoticeKind::TaskFailed,
            _ => return,
        };
        let notice = Notice {
            kind,
            task_id,
            approval_id: None,
        };
        if let Err(e) = notify::enqueue(&self.store, &notice).await {
            tracing::warn!(task = task_id, error = %e, "could not queue the task's notifications");
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
