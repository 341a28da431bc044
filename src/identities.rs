//! Chat identities: which aiops user a Slack or KakaoWork account is, and what a click in
//! chat may decide.
//!
//! An account is linked by an admin (`aiops user link`, `PATCH /api/v1/users/{login}`) or by
//! its owner: a chat user nobody knows is offered a one-time link (signed, expiring, single
//! use, stored only as its hash) that they confirm while signed in. A click decides only as
//! the linked user, through the same permission check as the API; every other click changes
//! nothing, is told why, and leaves one audit entry.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::Serialize;
use utoipa::ToSchema;

use crate::approvals::{self, Decider, Decision, DecisionRequest, LinkSigner, PolicyRefusal};
use crate::auth;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{
    Actor, ApprovalRecord, Channel, ChatProvider, Language, NewAuditEntry, Principal, ProjectRole,
    Scopes, UserStatus, Via,
};
use crate::permissions::{self, On, Permission};
use crate::signing::LinkError;
use crate::store::{self, Store};

/// How long a link offered in chat stays usable.
pub const LINK_TTL_MINUTES: i64 = 15;

/// Longest chat user id kept in a refusal's audit entry.
const MAX_AUDITED_ID_CHARS: usize = 64;

/// Refuses a chat user id that is not shaped like the service's ids (Slack: `U…`/`W…`;
/// KakaoWork: digits).
pub fn check_external_id(provider: ChatProvider, id: &str) -> Result<()> {
    let ok = match provider {
        ChatProvider::Slack => {
            id.len() <= 32
                && id.starts_with(['U', 'W'])
                && id.len() > 2
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        ChatProvider::Kakaowork => {
            !id.is_empty() && id.len() <= 20 && id.chars().all(|c| c.is_ascii_digit())
        }
    };
    if ok {
        Ok(())
    } else {
        let shape = match provider {
            ChatProvider::Slack => "a Slack user id such as U04ABCD1234",
            ChatProvider::Kakaowork => "a KakaoWork user id (digits)",
        };
        Err(Error::invalid(
            provider.as_str(),
            format!("must be {shape}"),
        ))
    }
}

/// Links `external_id` of `provider` to user `login` (an admin's mapping), replacing the
/// user's earlier account of that service.
pub async fn link(
    store: &Store,
    login: &str,
    provider: ChatProvider,
    external_id: &str,
) -> Result<()> {
    check_external_id(provider, external_id)?;
    let user = store.user(login).await?;
    let mut tx = store.begin().await?;
    store::identities::link(&mut tx, provider, external_id, user.id).await?;
    Ok(tx.commit().await?)
}

/// Unlinks user `login`'s account of `provider`; NotFound when it had none.
pub async fn unlink(store: &Store, login: &str, provider: ChatProvider) -> Result<()> {
    let user = store.user(login).await?;
    if store.unlink_chat(user.id, provider).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!(
            "{provider} account linked to {login}"
        )))
    }
}

/// Offers chat user `external_id` a one-time link to their account; returns its URL (the
/// dashboard's `/account/link`, whose form confirms it, as `POST
/// /api/v1/me/identity-links/{token}` does). The token travels in the fragment, so no server
/// or proxy log sees it.
pub async fn offer_link(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    provider: ChatProvider,
    external_id: &str,
) -> Result<String> {
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let expires_at = Utc::now() + Duration::minutes(LINK_TTL_MINUTES);
    let token = signer.identity_token(&hex::encode(nonce), expires_at);
    let mut tx = store.begin().await?;
    let hash = auth::hash_token(&token);
    store::identities::offer_link(&mut tx, &hash, provider, external_id, expires_at).await?;
    tx.commit().await?;
    Ok(format!("{}/account/link#{token}", config.public_base_url()))
}

/// A chat account just linked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedAccount {
    pub provider: ChatProvider,
    pub external_id: String,
    /// The login it is now linked to.
    pub login: String,
}

/// Binds the chat account a link was offered to to `principal` (the signed-in user who
/// confirms it). A changed or unknown link is NotFound, an expired one Invalid, a used one a
/// Conflict.
pub async fn confirm_link(
    store: &Store,
    signer: &LinkSigner,
    token: &str,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<LinkedAccount> {
    match signer.verify_identity_token(token, now) {
        Ok(()) => {}
        Err(crate::signing::IdentityLinkError::Tampered) => {
            return Err(Error::NotFound("identity link".into()));
        }
        Err(e) => return Err(Error::invalid("token", e.to_string())),
    }
    let Some(principal_id) = principal.id.filter(|_| !principal.service) else {
        return Err(Error::Forbidden(
            "only a user (not a service account or the local CLI) links a chat account to themselves".into(),
        ));
    };
    let hash = auth::hash_token(token);
    let mut tx = store.begin().await?;
    let Some((provider, external_id)) =
        store::identities::use_link(&mut tx, &hash, principal_id, now).await?
    else {
        drop(tx);
        return Err(match store.identity_link_used(&hash).await? {
            Some(true) => Error::Conflict(
                "this link was already used; click the button in chat again for a new one".into(),
            ),
            Some(false) => Error::invalid("token", "this link expired; click again in chat"),
            None => Error::NotFound("identity link".into()),
        });
    };
    store::identities::link(&mut tx, provider, &external_id, principal_id).await?;
    tx.commit().await?;
    Ok(LinkedAccount {
        provider,
        external_id,
        login: principal.name.clone(),
    })
}

/// Who a chat account is.
enum ChatUser {
    Unlinked,
    Disabled(String),
    Linked(Principal),
}

async fn chat_user(store: &Store, provider: ChatProvider, external_id: &str) -> Result<ChatUser> {
    let Some(id) = store.principal_by_chat(provider, external_id).await? else {
        return Ok(ChatUser::Unlinked);
    };
    let user = store.user_by_id(id).await?;
    if user.status == UserStatus::Disabled {
        return Ok(ChatUser::Disabled(user.login));
    }
    let via = Via::Chat {
        provider,
        user_id: external_id.to_string(),
    };
    // A click is the person at the keyboard, like a session: every scope, their roles.
    let principal = auth::principal_of(store, id, Scopes::ALL, None, false, via).await?;
    Ok(ChatUser::Linked(principal))
}

/// A click in chat on a decision button.
#[derive(Debug, Clone)]
pub struct ChatClick<'a> {
    pub provider: ChatProvider,
    /// The chat service's id of the user who clicked.
    pub external_id: &'a str,
    pub approval_id: i64,
    pub decision: Decision,
}

/// Why a click in chat decided nothing, to be told to the clicker in their language.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatRefusal {
    /// The chat account is linked to no aiops user: `url` links it, for
    /// [`LINK_TTL_MINUTES`].
    Unlinked { url: String },
    /// The linked aiops user is disabled.
    Disabled { login: String },
    /// The linked user lacks the project role deciding needs (the API's check).
    Role { needed: ProjectRole },
    /// The project's approval policy refused.
    Policy(PolicyRefusal),
    /// The button's signed value was changed or cut short.
    Tampered,
    /// The button's signed value expired at this time.
    Expired { at: DateTime<Utc> },
    /// The approval cannot be decided now (decided before, its task ended, unknown); its
    /// words.
    Other(String),
    /// aiops could not record the decision.
    Failed,
}

/// Decides `click.approval_id` as the user linked to the chat account, if that user may
/// decide for the task's project (the same check as the API) and the project's approval
/// policy lets them. Otherwise nothing changes and the refusal is returned (the inner
/// error); refusals of who clicked (unlinked, disabled, role, policy) are audited. The outer
/// error is the store failing.
pub async fn decide_from_chat(
    store: &Store,
    signer: &LinkSigner,
    config: &Config,
    click: &ChatClick<'_>,
) -> Result<std::result::Result<ApprovalRecord, ChatRefusal>> {
    let approval = match store.approval(click.approval_id).await {
        Err(Error::NotFound(what)) => return Ok(Err(ChatRefusal::Other(format!("no {what}")))),
        found => found?,
    };
    let project_id = store.task_exec(approval.task_id).await?.project_id;
    let provider = click.provider;
    let principal = match chat_user(store, provider, click.external_id).await? {
        ChatUser::Linked(principal) => principal,
        ChatUser::Unlinked => {
            let url = offer_link(store, signer, config, provider, click.external_id).await?;
            let reason = format!("{provider} account is not linked to a user");
            audit_refusal(store, click, None, &reason).await;
            return Ok(Err(ChatRefusal::Unlinked { url }));
        }
        ChatUser::Disabled(login) => {
            let reason = format!("aiops user {login} is disabled");
            audit_refusal(store, click, None, &reason).await;
            return Ok(Err(ChatRefusal::Disabled { login }));
        }
    };
    let actor = Some(Actor::from(principal.clone()));
    if let Err(Error::Forbidden(why)) =
        permissions::authorize(&principal, Permission::Decide, On::Project(project_id))
    {
        audit_refusal(store, click, actor, &why).await;
        let needed = Permission::Decide
            .project_role()
            .unwrap_or(ProjectRole::Approver);
        return Ok(Err(ChatRefusal::Role { needed }));
    }
    let decider = Decider {
        name: principal.name.clone(),
        principal_id: principal.id,
        channel: chat_channel(provider),
        source: format!("{provider}:{}", capped(click.external_id)),
    };
    let request = DecisionRequest {
        decision: click.decision,
        comment: None,
    };
    match approvals::decide(store, click.approval_id, &request, &decider).await {
        Ok(approval) => Ok(Ok(approval)),
        Err(Error::Forbidden(why)) => {
            audit_refusal(store, click, actor, &why).await;
            let policy =
                approvals::policy_refusal_of(store, click.approval_id, click.decision, &decider)
                    .await?;
            Ok(Err(
                policy.map_or(ChatRefusal::Other(why), ChatRefusal::Policy)
            ))
        }
        Err(e @ (Error::Conflict(_) | Error::NotFound(_) | Error::Invalid { .. })) => {
            Ok(Err(ChatRefusal::Other(e.to_string())))
        }
        Err(e) => Err(e),
    }
}

/// Audits a click whose button value did not verify (changed, cut short or expired):
/// nothing is decided, and the entry names the chat account and, when the signature held,
/// the approval.
pub async fn refuse_button(
    store: &Store,
    provider: ChatProvider,
    external_id: &str,
    error: &LinkError,
) -> ChatRefusal {
    let (target, refusal) = match error {
        LinkError::Tampered => ("approvals".to_string(), ChatRefusal::Tampered),
        LinkError::Expired { approval_id, at } => (
            format!("approvals/{approval_id}"),
            ChatRefusal::Expired { at: *at },
        ),
    };
    let entry = NewAuditEntry {
        principal: None,
        action: "decide approval".into(),
        target,
        source: format!("{provider}:{}", capped(external_id)),
        outcome: "refused".into(),
        detail: serde_json::json!({
            "channel": chat_channel(provider), "reason": error.to_string(),
        }),
    };
    append_refusal(store, &entry).await;
    refusal
}

/// The language the user linked to a chat account chose for their pages, if any.
pub async fn chosen_language(
    store: &Store,
    provider: ChatProvider,
    external_id: &str,
) -> Option<Language> {
    let id = store
        .principal_by_chat(provider, external_id)
        .await
        .ok()??;
    let preferences = store.preferences(id).await.ok()?;
    preferences.language?.parse().ok()
}

fn chat_channel(provider: ChatProvider) -> Channel {
    match provider {
        ChatProvider::Slack => Channel::Slack,
        ChatProvider::Kakaowork => Channel::Kakaowork,
    }
}

fn capped(id: &str) -> String {
    id.chars().take(MAX_AUDITED_ID_CHARS).collect()
}

/// Records a refused chat decision (bounded: our own reason, the chat id cut short).
async fn audit_refusal(store: &Store, click: &ChatClick<'_>, actor: Option<Actor>, reason: &str) {
    let entry = NewAuditEntry {
        principal: actor,
        action: format!("decide approval: {}", click.decision),
        target: format!("approvals/{}", click.approval_id),
        source: format!("{}:{}", click.provider, capped(click.external_id)),
        outcome: "refused".into(),
        detail: serde_json::json!({
            "channel": chat_channel(click.provider), "reason": reason,
        }),
    };
    append_refusal(store, &entry).await;
}

async fn append_refusal(store: &Store, entry: &NewAuditEntry) {
    if let Err(e) = store.append_audit(entry).await {
        tracing::error!(error = %e, "could not write the audit entry of a refused chat decision");
    }
}
