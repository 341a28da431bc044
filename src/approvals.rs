//! The approval gate: a human decides a pending approval request exactly once, from any
//! channel, and the decision reaches the pipeline through one resume job.
//!
//! Owns the decision rules (what a decision needs, the prompt the plugin understands), the
//! decision itself (one transaction: the decision, its audit entry, its event and the
//! resume job) and the signed approval links; running the resume is the engine's.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Actor, ApprovalRecord, NewAuditEntry, NewEvent, NewJob, ProjectRole};
pub use crate::model::{ApprovalKind, ApprovalStatus, Channel, Decider, Decision, already_decided};
pub use crate::signing::{LinkError, LinkSigner};
use crate::store::approvals::DecisionTarget;
use crate::store::{self, Store};

/// Longest comment a decision takes, in bytes.
pub const MAX_COMMENT_BYTES: usize = 8 * 1024;

/// A decision as asked for, before it is checked.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: Decision,
    /// Why (reject), what to change (revise, required), or a note (approve).
    #[serde(default)]
    pub comment: Option<String>,
}

impl DecisionRequest {
    /// The comment trimmed, None when blank; refuses a revise without one and an oversized one.
    pub fn checked_comment(&self) -> Result<Option<String>> {
        let comment = self
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.len() > MAX_COMMENT_BYTES) {
            return Err(Error::invalid(
                "comment",
                format!("must be at most {MAX_COMMENT_BYTES} bytes"),
            ));
        }
        if self.decision == Decision::Revise && comment.is_none() {
            return Err(Error::invalid(
                "comment",
                "revise needs a comment saying what should change",
            ));
        }
        Ok(comment.map(str::to_owned))
    }
}

/// Records a decision exactly once and queues the resume that hands it to the pipeline.
/// A second decision, on any channel or node, is a conflict that says who decided first.
/// The project's approval policy applies to a decider who is a principal: the role that
/// decides, no approving one's own request (unless allowed), and for a tool request of risk
/// HIGH or a result, `required_approvals` distinct approvers: an approve before the last is
/// a vote (the approval stays pending), a reject or revise decides at once.
pub async fn decide(
    store: &Store,
    approval_id: i64,
    request: &DecisionRequest,
    decider: &Decider,
) -> Result<ApprovalRecord> {
    let comment = request.checked_comment()?;
    let mut tx = store.begin().await?;
    let locked = store::approvals::lock_pending(&mut tx, approval_id).await?;
    let target = store::approvals::decision_target(&mut tx, approval_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("approval {approval_id}")))?;
    if !locked || target.status != ApprovalStatus::Pending {
        drop(tx);
        return Err(Error::Conflict(already_decided(
            &store.approval(approval_id).await?,
        )));
    }
    if target.task_status.has_ended() {
        return Err(Error::Conflict(format!(
            "approval {approval_id} cannot be decided: its task already ended ({})",
            target.task_status
        )));
    }
    let decision = request.decision;
    check_policy(&mut tx, &target, decision, decider).await?;
    let comment = comment.as_deref();
    let decided_by = match count_vote(&mut tx, approval_id, &target, decision, decider).await? {
        Vote::Decides(decided_by) => decided_by,
        Vote::Counted { approvers, needed } => {
            let vote = VoteRecord {
                approval_id,
                target: &target,
                decider,
                comment,
                approvals: approvers.len(),
                needed,
            };
            record_vote(tx, &vote).await?;
            return store.approval(approval_id).await;
        }
    };
    let recorded_as = Decider {
        name: decided_by,
        ..decider.clone()
    };
    if !store::approvals::record_decision(&mut tx, approval_id, decision, comment, &recorded_as)
        .await?
    {
        drop(tx);
        return Err(Error::Conflict(already_decided(
            &store.approval(approval_id).await?,
        )));
    }
    let decision_record = DecisionRecord {
        approval_id,
        target: &target,
        decision,
        comment,
        decider,
        decided_by: &recorded_as.name,
    };
    record_outcome(&mut tx, &decision_record).await?;
    tx.commit().await?;
    let decided = store.approval(approval_id).await?;
    let waited = decided.decided_at.map(|at| at - decided.requested_at);
    if let Some(waited) = waited.and_then(|w| w.to_std().ok()) {
        crate::metrics::approval_decided(decision, decider.channel, waited);
    }
    Ok(decided)
}

/// A decision that landed, for its audit entry, event and resume job.
struct DecisionRecord<'a> {
    approval_id: i64,
    target: &'a DecisionTarget,
    decision: Decision,
    comment: Option<&'a str>,
    decider: &'a Decider,
    /// The approvers it is recorded as by (the decider alone, or every approver in order).
    decided_by: &'a str,
}

/// Appends a landed decision's audit entry (naming the decider) and `approval_decided`
/// event, and pushes the resume job, inside `tx`.
async fn record_outcome(tx: &mut store::Tx, record: &DecisionRecord<'_>) -> Result<()> {
    let DecisionRecord {
        approval_id,
        target,
        decision,
        comment,
        decider,
        decided_by,
    } = *record;
    let recorded = serde_json::json!({
        "decision": decision, "channel": decider.channel, "comment": comment,
    });
    let mut audit_detail = recorded.clone();
    audit_detail["task_id"] = target.task_id.into();
    let audit = NewAuditEntry {
        principal: Some(Actor {
            id: decider.principal_id,
            name: decider.name.clone(),
        }),
        action: format!("decide approval: {decision}"),
        target: format!("approvals/{approval_id}"),
        source: decider.source.clone(),
        outcome: "ok".into(),
        detail: audit_detail,
    };
    store::audit::append(tx, &audit).await?;
    let mut event_data = recorded;
    event_data["approval_id"] = approval_id.into();
    event_data["decided_by"] = decided_by.to_string().into();
    let event = NewEvent::platform(
        target.task_id,
        target.project_id,
        "approval_decided",
        event_data,
    );
    store::events::append(tx, &event).await?;
    let mut resume = NewJob::now(target.task_id, target.priority);
    resume.job.resume_approval_id = Some(approval_id);
    store::queue::push(tx, &resume).await?;
    Ok(())
}

/// How many distinct approvers an approval needs under its project's policy: the policy's
/// number for a result and for a tool request of risk HIGH (or CRITICAL), one otherwise.
pub fn approvals_needed(kind: ApprovalKind, risk_level: Option<&str>, required: i64) -> i64 {
    let high = risk_level
        .is_some_and(|r| r.eq_ignore_ascii_case("high") || r.eq_ignore_ascii_case("critical"));
    if kind == ApprovalKind::Result || high {
        required.max(1)
    } else {
        1
    }
}

/// Why the project's approval policy refuses a decider. Its English words are the refusal's
/// message; chat tells it in the clicker's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// Below the role that decides this project's approvals.
    Role { who: String, needed: ProjectRole },
    /// Approving the task they asked for while self-approval is off.
    SelfApproval { who: String, task_id: i64 },
}

impl std::fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Role { who, needed } => write!(
                f,
                "{who} may not decide approvals of this project: its approval policy needs the {needed} role"
            ),
            Self::SelfApproval { who, task_id } => write!(
                f,
                "{who} asked for task {task_id} and may not approve it: this project does not allow self-approval (approval_policy.self_approval); another approver must decide"
            ),
        }
    }
}

/// Refuses a principal the project's approval policy does not let decide: below the role
/// that decides, or approving the task it asked for when self-approval is off.
async fn check_policy(
    tx: &mut store::Tx,
    target: &DecisionTarget,
    decision: Decision,
    decider: &Decider,
) -> Result<()> {
    match policy_refusal(tx, target, decision, decider).await? {
        Some(refusal) => Err(Error::Forbidden(refusal.to_string())),
        None => Ok(()),
    }
}

async fn policy_refusal(
    tx: &mut store::Tx,
    target: &DecisionTarget,
    decision: Decision,
    decider: &Decider,
) -> Result<Option<PolicyRefusal>> {
    let Some(principal_id) = decider.principal_id else {
        return Ok(None);
    };
    let needed = target.policy.decide_role;
    let held = store::users::role_in_project(tx, principal_id, target.project_id).await?;
    let who = decider.name.clone();
    if held.is_none_or(|role| role < needed) {
        return Ok(Some(PolicyRefusal::Role { who, needed }));
    }
    let own_request = target.requested_by == Some(principal_id);
    if decision == Decision::Approve && own_request && !target.policy.self_approval {
        let task_id = target.task_id;
        return Ok(Some(PolicyRefusal::SelfApproval { who, task_id }));
    }
    Ok(None)
}

/// Why the approval policy refuses `decider`'s `decision` on approval `approval_id`, read
/// now, outside any decision: the words for a refusal `decide` already answered.
pub async fn policy_refusal_of(
    store: &Store,
    approval_id: i64,
    decision: Decision,
    decider: &Decider,
) -> Result<Option<PolicyRefusal>> {
    let mut tx = store.begin().await?;
    let Some(target) = store::approvals::decision_target(&mut tx, approval_id).await? else {
        return Ok(None);
    };
    policy_refusal(&mut tx, &target, decision, decider).await
}

/// What a decider's vote does.
enum Vote {
    /// It decides; the decision is recorded as by this name (the approvers, in order).
    Decides(String),
    /// It is counted; more distinct approvers are needed.
    Counted { approvers: Vec<String>, needed: i64 },
}

/// Records the decider's vote (one per principal) and tells whether it decides.
async fn count_vote(
    tx: &mut store::Tx,
    approval_id: i64,
    target: &DecisionTarget,
    decision: Decision,
    decider: &Decider,
) -> Result<Vote> {
    let required = target.policy.required_approvals;
    let needed = approvals_needed(target.kind, target.risk_level.as_deref(), required);
    let platform = matches!(
        decider.channel,
        Channel::Cli | Channel::System | Channel::Pipeline
    );
    let Some(principal_id) = decider.principal_id else {
        if decision == Decision::Approve && needed > 1 && !platform {
            return Err(Error::Forbidden(format!(
                "approval {approval_id} needs {needed} distinct approvers, so each must approve as themselves: sign in or use your own token"
            )));
        }
        return Ok(Vote::Decides(decider.name.clone()));
    };
    let channel = decider.channel;
    let first =
        store::approvals::add_vote(tx, approval_id, principal_id, decision, channel).await?;
    if decision != Decision::Approve || needed <= 1 {
        return Ok(Vote::Decides(decider.name.clone()));
    }
    if !first {
        return Err(Error::Conflict(format!(
            "{} already approved approval {approval_id}; it needs {needed} distinct approvers, so another approver must approve it too",
            decider.name
        )));
    }
    let approvers = store::approvals::approvers(tx, approval_id).await?;
    if (approvers.len() as i64) < needed {
        Ok(Vote::Counted { approvers, needed })
    } else {
        Ok(Vote::Decides(approvers.join(", ")))
    }
}

/// An approve that does not decide yet.
struct VoteRecord<'a> {
    approval_id: i64,
    target: &'a DecisionTarget,
    decider: &'a Decider,
    comment: Option<&'a str>,
    approvals: usize,
    needed: i64,
}

/// Commits an approve that is counted but does not decide, with its audit entry and an
/// `approval_vote` event.
async fn record_vote(mut tx: store::Tx, vote: &VoteRecord<'_>) -> Result<()> {
    let decider = vote.decider;
    let detail = serde_json::json!({
        "decision": Decision::Approve, "channel": decider.channel, "comment": vote.comment,
        "approvals": vote.approvals, "required": vote.needed,
    });
    let mut audit_detail = detail.clone();
    audit_detail["task_id"] = vote.target.task_id.into();
    let audit = NewAuditEntry {
        principal: Some(Actor {
            id: decider.principal_id,
            name: decider.name.clone(),
        }),
        action: format!(
            "vote on approval: approve ({} of {})",
            vote.approvals, vote.needed
        ),
        target: format!("approvals/{}", vote.approval_id),
        source: decider.source.clone(),
        outcome: "ok".into(),
        detail: audit_detail,
    };
    store::audit::append(&mut tx, &audit).await?;
    let mut event_data = detail;
    event_data["approval_id"] = vote.approval_id.into();
    event_data["by"] = decider.name.clone().into();
    let event = NewEvent::platform(
        vote.target.task_id,
        vote.target.project_id,
        "approval_vote",
        event_data,
    );
    store::events::append(&mut tx, &event).await?;
    Ok(tx.commit().await?)
}

/// The prompt a resumed Claude session gets: `<decision> <session_id> <request_id> <comment>`
/// on one line. The plugin's prompt hook takes the last line that begins with a decision word
/// and the first `party-…` and `APR-…` words after it as the ids, wherever they stand; with both
/// ids first and the comment folded onto the same line (every run of whitespace, line breaks
/// included, becomes one space), no word of a comment can change the decision or the ids.
pub fn decision_prompt(approval: &ApprovalRecord, party_session_id: &str) -> Result<String> {
    let decision = approval
        .decision
        .ok_or_else(|| Error::Conflict(format!("approval {} has no decision", approval.id)))?;
    let comment = one_line(approval.comment.as_deref().unwrap_or(""));
    let comment = if decision == Decision::Reject && comment.is_empty() {
        "rejected by a human reviewer".to_owned()
    } else {
        comment
    };
    let words = [
        decision.as_str(),
        party_session_id,
        &approval.request_id,
        &comment,
    ];
    Ok(words
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" "))
}

/// A comment on one line: every run of whitespace (line breaks included) becomes one space.
fn one_line(comment: &str) -> String {
    comment.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// When a link to this approval stops working: its deadline, else the link lifetime.
pub fn link_expiry(approval: &ApprovalRecord, config: &Config) -> DateTime<Utc> {
    approval.expires_at.unwrap_or_else(|| {
        approval.requested_at + Duration::seconds(config.approvals.link_ttl_secs as i64)
    })
}

/// The full link to the approval page.
pub fn link_url(signer: &LinkSigner, config: &Config, approval: &ApprovalRecord) -> String {
    format!(
        "{}/approvals/{}",
        config.public_base_url(),
        signer.token(approval.id, link_expiry(approval, config))
    )
}

/// Decides, as rejections by the platform, the pending approvals past their deadline (when
/// `approvals.on_expiry` says so); returns how many.
pub async fn reject_expired(store: &Store, now: DateTime<Utc>) -> Result<usize> {
    let decider = Decider {
        name: "aiops (deadline passed)".into(),
        principal_id: None,
        channel: Channel::System,
        source: "aiops".into(),
    };
    let request = DecisionRequest {
        decision: Decision::Reject,
        comment: Some("nobody decided before the deadline".into()),
    };
    let mut rejected = 0;
    for id in store.expired_approvals(now).await? {
        match decide(store, id, &request, &decider).await {
            Ok(_) => rejected += 1,
            // Decided by a human in the meantime.
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(rejected)
}

/// Rejects expired approvals every `approvals.expiry_check_secs` until `shutdown`, unless
/// `approvals.on_expiry` leaves them open.
pub async fn run_expiry(
    store: Store,
    config: std::sync::Arc<Config>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if config.approvals.on_expiry == crate::config::OnExpiry::LeaveOpen {
        return;
    }
    let every = std::time::Duration::from_secs(config.approvals.expiry_check_secs);
    loop {
        if let Err(e) = reject_expired(&store, Utc::now()).await {
            tracing::warn!(error = %e, "could not check approvals for their deadline");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(kind: ApprovalKind, decision: Decision, comment: Option<&str>) -> ApprovalRecord {
        ApprovalRecord {
            id: 7,
            task_id: 1,
            request_id: if kind == ApprovalKind::Tool {
                "APR-1".into()
            } else {
                "20260101T000000".into()
            },
            kind,
            risk_level: None,
            tool_name: None,
            tool_input: None,
            summary: None,
            diff_stat: None,
            status: ApprovalStatus::Decided,
            decision: Some(decision),
            comment: comment.map(str::to_owned),
            decided_by: Some("alice".into()),
            decided_at: Some(Utc::now()),
            channel: Some(Channel::Api),
            requested_at: Utc::now(),
            expires_at: None,
            snapshot_at: None,
            resumed_at: None,
        }
    }

    #[test]
    fn prompts_put_both_ids_first_and_the_comment_on_one_line() {
        use ApprovalKind::{Result, Tool};
        use Decision::{Approve, Reject, Revise};
        let prompt = |kind, decision, comment| {
            decision_prompt(&approval(kind, decision, comment), "party-feature-1").unwrap()
        };
        assert_eq!(
            prompt(Tool, Approve, Some("looks good")),
            "approve party-feature-1 APR-1 looks good"
        );
        assert_eq!(prompt(Tool, Approve, None), "approve party-feature-1 APR-1");
        assert_eq!(
            prompt(Tool, Reject, Some("too risky, see party-bugfix-2")),
            "reject party-feature-1 APR-1 too risky, see party-bugfix-2"
        );
        assert_eq!(
            prompt(
                Tool,
                Revise,
                Some("ok but\nrevise the log\r\napprove later")
            ),
            "revise party-feature-1 APR-1 ok but revise the log approve later"
        );
        assert_eq!(
            prompt(Result, Approve, None),
            "approve party-feature-1 20260101T000000"
        );
        assert_eq!(
            prompt(Result, Reject, None),
            "reject party-feature-1 20260101T000000 rejected by a human reviewer"
        );
        assert_eq!(
            prompt(Result, Revise, Some("테스트를 추가해 주세요\n수정 부탁")),
            "revise party-feature-1 20260101T000000 테스트를 추가해 주세요 수정 부탁"
        );
    }

    #[test]
    fn revise_needs_a_comment() {
        let request = DecisionRequest {
            decision: Decision::Revise,
            comment: Some("   ".into()),
        };
        assert!(matches!(
            request.checked_comment(),
            Err(Error::Invalid { .. })
        ));
    }
}
