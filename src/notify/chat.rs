//! A click on a decision button in chat, whichever service it came from (Slack, KakaoWork):
//! the one step that decides it (`decide_click`, through `identities::decide_from_chat`)
//! and what to tell about it, in English or Korean. Each service checks where the click
//! came from and what its button carried before, and lays the answer out after.

use crate::approvals::{ApprovalStatus, Decision, LinkSigner};
use crate::config::Config;
use crate::error::Error;
use crate::identities::{self, ChatClick};
use crate::model::{ApprovalRecord, Language};
use crate::store::Store;

/// What a click did.
#[derive(Debug, Clone)]
pub enum ClickOutcome {
    /// The approve counted; the approval needs more approvers before it is decided.
    Counted(ApprovalRecord),
    /// The click decided the approval.
    Decided(ApprovalRecord, Decision),
    /// Nothing changed because the approval was decided before (or its task ended): the
    /// message's buttons are stale for everyone.
    Stale(String),
    /// Nothing changed; why, for the clicker only (an unknown account gets a link to link it).
    Refused(String),
}

/// Decides `click` as the aiops user its chat account is linked to
/// (`identities::decide_from_chat`: the same permission check as the API, the project's
/// approval policy, every refusal audited), and says how it went.
pub async fn decide_click(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    click: &ChatClick<'_>,
) -> ClickOutcome {
    match identities::decide_from_chat(store, signer, config, click).await {
        Ok(approval) if approval.status == ApprovalStatus::Pending => {
            ClickOutcome::Counted(approval)
        }
        Ok(approval) => ClickOutcome::Decided(approval, click.decision),
        Err(Error::Conflict(why))
            if still_pending(store, click.approval_id).await == Some(false) =>
        {
            ClickOutcome::Stale(why)
        }
        Err(
            e @ (Error::Conflict(_)
            | Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::Invalid { .. }),
        ) => ClickOutcome::Refused(e.to_string()),
        Err(e) => {
            tracing::error!(approval = click.approval_id, provider = %click.provider, error = %e, "could not record a decision from chat");
            ClickOutcome::Refused(
                "aiops could not record the decision; try again or use the approval page".into(),
            )
        }
    }
}

async fn still_pending(store: &Store, approval_id: i64) -> Option<bool> {
    let approval = store.approval(approval_id).await.ok()?;
    Some(approval.status == ApprovalStatus::Pending)
}

impl ClickOutcome {
    /// Whether only the clicker should be told (nothing about the approval changed for the
    /// others who see the message).
    pub fn for_clicker_only(&self) -> bool {
        matches!(self, ClickOutcome::Counted(_) | ClickOutcome::Refused(_))
    }

    /// What to tell, in `language`.
    pub fn text(&self, language: Language) -> String {
        let ko = language == Language::Ko;
        match self {
            ClickOutcome::Counted(approval) if ko => format!(
                "승인이 반영되었습니다 (작업 {}의 승인 요청 {}). 결정되려면 승인자가 더 필요합니다.",
                approval.task_id, approval.id
            ),
            ClickOutcome::Counted(approval) => format!(
                "Your approve is counted (approval {} of task {}); it needs more approvers before it is decided.",
                approval.id, approval.task_id
            ),
            ClickOutcome::Decided(approval, decision) => {
                let who = approval.decided_by.as_deref().unwrap_or("?");
                let (id, task) = (approval.id, approval.task_id);
                match (decision, ko) {
                    (Decision::Approve, false) => {
                        format!("Approved by {who} (approval {id} of task {task}).")
                    }
                    (Decision::Reject, false) => {
                        format!("Rejected by {who} (approval {id} of task {task}).")
                    }
                    (Decision::Revise, false) => {
                        format!("Sent back for revision by {who} (approval {id} of task {task}).")
                    }
                    (Decision::Approve, true) => {
                        format!("{who} 님이 승인했습니다 (작업 {task}의 승인 요청 {id}).")
                    }
                    (Decision::Reject, true) => {
                        format!("{who} 님이 반려했습니다 (작업 {task}의 승인 요청 {id}).")
                    }
                    (Decision::Revise, true) => {
                        format!("{who} 님이 수정을 요청했습니다 (작업 {task}의 승인 요청 {id}).")
                    }
                }
            }
            ClickOutcome::Stale(why) | ClickOutcome::Refused(why) if ko => {
                format!("결정되지 않았습니다: {why}.")
            }
            ClickOutcome::Stale(why) | ClickOutcome::Refused(why) => {
                format!("Nothing was decided: {why}.")
            }
        }
    }
}
