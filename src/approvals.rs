//! The approval gate: a human decides a pending approval request exactly once, from any
//! channel, and the decision reaches the pipeline through one resume job.
//!
//! Owns the decision rules (what a decision needs, the prompt the plugin understands) and
//! the signed approval links. Recording is the store's (one transaction: the decision, its
//! audit entry, its event and the resume job); running the resume is the engine's.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::records::ApprovalRecord;
use crate::store::Store;
use crate::vault::Vault;

/// Longest comment a decision takes, in bytes.
pub const MAX_COMMENT_BYTES: usize = 8 * 1024;

/// What a human decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
    Revise,
}

impl Decision {
    /// The stored name, also the word the plugin expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Revise => "revise",
        }
    }
}

impl FromStr for Decision {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            "revise" => Ok(Self::Revise),
            other => Err(Error::invalid(
                "decision",
                format!("{other:?} is not a decision; use approve, reject or revise"),
            )),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Web,
    Slack,
    Kakaowork,
    Api,
    Cli,
    /// The platform itself: an approval that expired.
    System,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Slack => "slack",
            Self::Kakaowork => "kakaowork",
            Self::Api => "api",
            Self::Cli => "cli",
            Self::System => "system",
        }
    }
}

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

/// Who decides, through which channel, from where.
#[derive(Debug, Clone)]
pub struct Decider {
    /// The person or principal, as shown to others.
    pub name: String,
    /// The API principal, when the decision came with a token.
    pub principal_id: Option<i64>,
    pub channel: Channel,
    /// Client address, or `cli`.
    pub source: String,
}

/// Records a decision exactly once and queues the resume that hands it to the pipeline.
/// A second decision, on any channel or node, is a conflict that says who decided first.
pub async fn decide(
    store: &Store,
    approval_id: i64,
    request: &DecisionRequest,
    decider: &Decider,
) -> Result<ApprovalRecord> {
    let comment = request.checked_comment()?;
    store
        .decide_approval(approval_id, request.decision, comment.as_deref(), decider)
        .await
}

/// The prompt a resumed Claude session gets, in the shapes of the plugin's hook.
pub fn decision_prompt(approval: &ApprovalRecord, party_session_id: &str) -> Result<String> {
    let decision: Decision = approval
        .decision
        .as_deref()
        .ok_or_else(|| Error::Conflict(format!("approval {} has no decision", approval.id)))?
        .parse()?;
    let comment = approval.comment.as_deref().unwrap_or("").trim();
    let words: Vec<&str> = match (approval.kind.as_str(), decision) {
        ("tool", Decision::Approve) => {
            vec!["approve", party_session_id, &approval.request_id, comment]
        }
        ("tool", _) => vec![decision.as_str(), &approval.request_id, comment],
        (_, Decision::Approve) => vec!["approve", comment],
        (_, _) => vec![decision.as_str(), comment],
    };
    let mut prompt = words
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if decision == Decision::Reject && comment.is_empty() {
        prompt.push_str(" rejected by a human reviewer");
    }
    Ok(prompt)
}

/// When a link to this approval stops working: its deadline, else the link lifetime.
pub fn link_expiry(approval: &ApprovalRecord, config: &Config) -> DateTime<Utc> {
    approval.expires_at.unwrap_or_else(|| {
        approval.requested_at + Duration::seconds(config.approvals.link_ttl_secs as i64)
    })
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this approval link is not valid: it was changed or cut short")]
    Tampered,
    /// The signature holds, so the approval it named is known.
    #[error("this approval link expired at {at}")]
    Expired { approval_id: i64, at: DateTime<Utc> },
}

/// Signs and checks approval links. The key is derived from the vault's master key, so
/// every node of one store accepts the links of the others, and a key rotation retires them.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// The signer of this vault.
    pub fn new(vault: &Vault) -> Self {
        Self {
            key: vault.derived_key("approval-links"),
        }
    }

    fn mac(&self, approval_id: i64, expires: i64) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("approval:{approval_id}:{expires}").as_bytes());
        mac
    }

    /// The token of a link opening `approval_id` until `expires`.
    pub fn token(&self, approval_id: i64, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let signature = hex::encode(self.mac(approval_id, expires).finalize().into_bytes());
        format!("{approval_id}.{expires}.{signature}")
    }

    /// The approval id a token opens, if its signature holds and it has not expired.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<i64, LinkError> {
        let mut parts = token.splitn(3, '.');
        let (Some(id), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Tampered);
        };
        let (Ok(id), Ok(expires), Ok(signature)) =
            (id.parse(), expires.parse(), hex::decode(signature))
        else {
            return Err(LinkError::Tampered);
        };
        self.mac(id, expires)
            .verify_slice(&signature)
            .map_err(|_| LinkError::Tampered)?;
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(LinkError::Tampered)?;
        if expires_at <= now {
            return Err(LinkError::Expired {
                approval_id: id,
                at: expires_at,
            });
        }
        Ok(id)
    }

    /// The full link to the approval page.
    pub fn url(&self, config: &Config, approval: &ApprovalRecord) -> String {
        format!(
            "{}/approvals/{}",
            config.public_base_url(),
            self.token(approval.id, link_expiry(approval, config))
        )
    }
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

    fn approval(kind: &str, decision: &str, comment: Option<&str>) -> ApprovalRecord {
        ApprovalRecord {
            id: 7,
            task_id: 1,
            request_id: if kind == "tool" {
                "APR-1".into()
            } else {
                "20260101T000000".into()
            },
            kind: kind.into(),
            risk_level: None,
            tool_name: None,
            tool_input: None,
            summary: None,
            diff_stat: None,
            status: "decided".into(),
            decision: Some(decision.into()),
            comment: comment.map(str::to_owned),
            decided_by: Some("alice".into()),
            decided_at: Some(Utc::now()),
            channel: Some("api".into()),
            requested_at: Utc::now(),
            expires_at: None,
            snapshot_at: None,
            resumed_at: None,
        }
    }

    #[test]
    fn prompts_follow_the_plugin_shapes() {
        let prompt = |kind, decision, comment| {
            decision_prompt(&approval(kind, decision, comment), "party-feature-1").unwrap()
        };
        assert_eq!(
            prompt("tool", "approve", Some("looks good")),
            "approve party-feature-1 APR-1 looks good"
        );
        assert_eq!(
            prompt("tool", "approve", None),
            "approve party-feature-1 APR-1"
        );
        assert_eq!(
            prompt("tool", "reject", Some("too risky")),
            "reject APR-1 too risky"
        );
        assert_eq!(
            prompt("tool", "revise", Some("use a flag")),
            "revise APR-1 use a flag"
        );
        assert_eq!(prompt("result", "approve", None), "approve");
        assert_eq!(
            prompt("result", "reject", None),
            "reject rejected by a human reviewer"
        );
        assert_eq!(
            prompt("result", "revise", Some("add tests")),
            "revise add tests"
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

    #[test]
    fn links_open_one_approval_until_they_expire() {
        let signer = LinkSigner { key: [7; 32] };
        let now = Utc::now();
        let token = signer.token(42, now + Duration::hours(1));
        assert_eq!(signer.verify(&token, now), Ok(42));
        assert!(matches!(
            signer.verify(&token, now + Duration::hours(2)),
            Err(LinkError::Expired {
                approval_id: 42,
                ..
            })
        ));
        let other_id = token.replacen("42.", "43.", 1);
        assert_eq!(signer.verify(&other_id, now), Err(LinkError::Tampered));
        let longer = {
            let (head, _) = token.rsplit_once('.').unwrap();
            let (id, _) = head.split_once('.').unwrap();
            format!(
                "{id}.{}.{}",
                (now + Duration::days(365)).timestamp(),
                token.rsplit_once('.').unwrap().1
            )
        };
        assert_eq!(signer.verify(&longer, now), Err(LinkError::Tampered));
        let other_key = LinkSigner { key: [8; 32] };
        assert_eq!(other_key.verify(&token, now), Err(LinkError::Tampered));
        assert_eq!(signer.verify("garbage", now), Err(LinkError::Tampered));
    }
}
