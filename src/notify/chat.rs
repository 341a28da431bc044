//! A click on a decision button in chat, whichever service it came from (Slack, KakaoWork):
//! the one step that decides it (`decide_button`, through `identities::decide_from_chat`)
//! and what to tell about it, in English or Korean. Each service checks where the click
//! came from and what its button carried before, and lays the answer out after.

use crate::approvals::{ApprovalStatus, Decision, LinkSigner, PolicyRefusal};
use crate::config::Config;
use crate::identities::{self, ChatClick, ChatRefusal, LINK_TTL_MINUTES};
use crate::model::{ApprovalRecord, ChatProvider, Language};
use crate::signing::LinkError;
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
    Refused(ChatRefusal),
}

/// A click on a decision button whose signed value `verified` (the approval and decision it
/// names, or why it did not verify): decided as the aiops user the chat account
/// `external_id` is linked to (`identities::decide_from_chat`: the same permission check as
/// the API, the project's approval policy, every refusal audited), or refused and audited
/// when the value did not verify. Returns what it did and the language to tell it in: the
/// one the linked user chose for their pages, else the chat's own (`fallback`).
pub async fn decide_button(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    (provider, external_id): (ChatProvider, &str),
    verified: Result<(i64, Decision), LinkError>,
    fallback: Language,
) -> (ClickOutcome, Language) {
    let outcome = match verified {
        Ok((approval_id, decision)) => {
            let click = ChatClick {
                provider,
                external_id,
                approval_id,
                decision,
            };
            decide_click(store, signer, config, &click).await
        }
        Err(e) => {
            ClickOutcome::Refused(identities::refuse_button(store, provider, external_id, &e).await)
        }
    };
    let language = identities::chosen_language(store, provider, external_id)
        .await
        .unwrap_or(fallback);
    (outcome, language)
}

async fn decide_click(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    click: &ChatClick<'_>,
) -> ClickOutcome {
    match identities::decide_from_chat(store, signer, config, click).await {
        Ok(Ok(approval)) if approval.status == ApprovalStatus::Pending => {
            ClickOutcome::Counted(approval)
        }
        Ok(Ok(approval)) => ClickOutcome::Decided(approval, click.decision),
        Ok(Err(ChatRefusal::Other(why)))
            if still_pending(store, click.approval_id).await == Some(false) =>
        {
            ClickOutcome::Stale(why)
        }
        Ok(Err(refusal)) => ClickOutcome::Refused(refusal),
        Err(e) => {
            tracing::error!(approval = click.approval_id, provider = %click.provider, error = %e, "could not record a decision from chat");
            ClickOutcome::Refused(ChatRefusal::Failed)
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
            ClickOutcome::Decided(approval, decision) => decided_text(approval, *decision, ko),
            ClickOutcome::Stale(why) if ko => {
                format!("결정되지 않았습니다: 이미 끝난 요청입니다 ({why}).")
            }
            ClickOutcome::Stale(why) => format!("Nothing was decided: {why}."),
            ClickOutcome::Refused(refusal) if ko => {
                format!("결정되지 않았습니다: {}.", refusal_ko(refusal))
            }
            ClickOutcome::Refused(refusal) => {
                format!("Nothing was decided: {}.", refusal_en(refusal))
            }
        }
    }
}

fn decided_text(approval: &ApprovalRecord, decision: Decision, ko: bool) -> String {
    let who = approval.decided_by.as_deref().unwrap_or("?");
    let (id, task) = (approval.id, approval.task_id);
    match (decision, ko) {
        (Decision::Approve, false) => format!("Approved by {who} (approval {id} of task {task})."),
        (Decision::Reject, false) => format!("Rejected by {who} (approval {id} of task {task})."),
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

fn refusal_en(refusal: &ChatRefusal) -> String {
    match refusal {
        ChatRefusal::Unlinked { url } => format!(
            "your chat account is not linked to an aiops user. Sign in to aiops and open {url} within {LINK_TTL_MINUTES} minutes to link it, then click again"
        ),
        ChatRefusal::Disabled { login } => format!("aiops user {login} is disabled"),
        ChatRefusal::Role { needed } => format!(
            "deciding approvals of this project needs the {needed} role, which your aiops user does not hold"
        ),
        ChatRefusal::Policy(refusal) => refusal.to_string(),
        ChatRefusal::Other(why) => why.clone(),
        ChatRefusal::Tampered => {
            "this button is not valid: its value was changed or cut short".into()
        }
        ChatRefusal::Expired { at } => format!(
            "this button expired at {}; use the approval page",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        ChatRefusal::Failed => {
            "aiops could not record the decision; try again or use the approval page".into()
        }
    }
}

fn refusal_ko(refusal: &ChatRefusal) -> String {
    match refusal {
        ChatRefusal::Unlinked { url } => format!(
            "채팅 계정이 aiops 사용자와 연결되어 있지 않습니다. aiops에 로그인한 뒤 {LINK_TTL_MINUTES}분 안에 {url} 을 열어 연결하고 다시 누르세요"
        ),
        ChatRefusal::Disabled { login } => {
            format!("aiops 사용자 {login} 은(는) 비활성화되어 있습니다")
        }
        ChatRefusal::Role { needed } => format!(
            "이 프로젝트의 승인을 결정하려면 {needed} 역할이 필요한데, 연결된 aiops 사용자에게 그 역할이 없습니다"
        ),
        ChatRefusal::Policy(PolicyRefusal::Role { who, needed }) => format!(
            "{who} 님은 이 프로젝트의 승인을 결정할 수 없습니다. 승인 정책상 {needed} 역할이 필요합니다"
        ),
        ChatRefusal::Policy(PolicyRefusal::SelfApproval { who, task_id }) => format!(
            "{who} 님이 요청한 작업 {task_id}은(는) 본인이 승인할 수 없습니다 (이 프로젝트는 자기 승인을 허용하지 않습니다). 다른 승인자가 결정해야 합니다"
        ),
        ChatRefusal::Other(why) => format!("지금은 결정할 수 없는 요청입니다 ({why})"),
        ChatRefusal::Tampered => "유효하지 않은 버튼입니다: 값이 바뀌었거나 잘렸습니다".into(),
        ChatRefusal::Expired { at } => format!(
            "이 버튼은 {} 에 만료되었습니다. 승인 페이지를 이용하세요",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        ChatRefusal::Failed => {
            "aiops가 결정을 기록하지 못했습니다. 다시 시도하거나 승인 페이지를 이용하세요".into()
        }
    }
}
