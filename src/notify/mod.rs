//! Notifications: tell people about approval requests and ended tasks on each channel of
//! the task's project (Slack, KakaoWork, a generic webhook), as durable queue jobs.
//!
//! Durable how: `enqueue` writes one `notifications` row per channel and pushes its
//! `NotifyJob` on the apalis queue in the same transaction, exactly as a task and its
//! `RunJob` are written. The apalis queue rather than an outbox of our own, because it
//! already has what an outbox would need to be built with: prompt claims (SQLite update
//! hook, PostgreSQL LISTEN/NOTIFY), one claimer per job across nodes, and the job of a dead
//! worker handed back after missed heartbeats. The row is the notification's record:
//! attempts, last error, and, once `notify.max_attempts` are used up, the dead letter. A
//! retry is a new job with a delay, pushed in the transaction that records the failed
//! attempt (apalis' own retry runs again at once).
//!
//! Delivery is at least once: a worker that dies after the channel took a message but
//! before the attempt is recorded sends it again.
//!
//! Messages are rendered from the store when they are sent (`message`). Channel secrets are
//! vault credentials, revealed right before a send; neither they nor a full webhook URL are
//! ever logged or stored in an error.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::InputsConfig;
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::target::refused_host;
pub use crate::model::{
    ChannelKind, ChannelSpec, Notice, NoticeKind, Notification, NotificationChannel,
    NotificationStatus,
};
use crate::model::{NewJob, Role};
use crate::store::{self, Store};
use std::time::Duration;

pub mod chat;
mod deliver;
pub mod kakaowork;
pub mod message;
mod outbound;
mod post;
pub mod slack;
pub mod webhook;

pub use deliver::{Attempt, Notifier, record_attempt, run_workers};

/// Queues one delivery of `notice` per enabled channel of the task's project that wants it:
/// each a `notifications` row and its queue job, all in one transaction.
pub async fn enqueue(store: &Store, notice: &Notice) -> Result<()> {
    let mut tx = store.begin().await?;
    let mut queued = Vec::new();
    for (channel_id, events) in
        store::notifications::channels_of_task(&mut tx, notice.task_id).await?
    {
        if events.contains(&notice.kind) || notice.kind.is_budget() {
            let id = store::notifications::insert_queued(&mut tx, channel_id, notice).await?;
            store::queue::push(&mut tx, &NewJob::notify(id, Duration::ZERO)).await?;
            queued.push(id);
        }
    }
    tx.commit().await?;
    if !queued.is_empty() {
        tracing::debug!(task = notice.task_id, kind = notice.kind.as_str(), notifications = ?queued, "notifications queued");
    }
    Ok(())
}

/// Sends a dead letter again from its first attempt: queued again with its job, in one
/// transaction. Anything but a dead letter is a conflict.
pub async fn requeue_dead(store: &Store, id: i64) -> Result<Notification> {
    let mut tx = store.begin().await?;
    let requeued = store::notifications::requeue_dead(&mut tx, id).await?;
    if requeued {
        store::queue::push(&mut tx, &NewJob::notify(id, Duration::ZERO)).await?;
    }
    tx.commit().await?;
    let notification = store.notification(id).await?;
    if !requeued {
        return Err(Error::Conflict(format!(
            "notification {id} is {}, not a dead letter; only dead letters are sent again",
            notification.status
        )));
    }
    Ok(notification)
}

/// Body of a channel creation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    pub kind: ChannelKind,
    /// slack: the channel id to post to with a bot token; omit it when the credential is an
    /// incoming-webhook URL. kakaowork: the conversation id. webhook: the http(s) URL.
    pub target: Option<String>,
    /// Name of the credential (the project's, else the global one) holding the secret: the
    /// Slack incoming-webhook URL or bot token, the KakaoWork bot app key, or the webhook's
    /// HMAC key.
    pub credential: String,
    /// Events to send; all when omitted.
    pub events: Option<Vec<NoticeKind>>,
    /// Defaults to true.
    pub enabled: Option<bool>,
}

impl NewChannel {
    /// Checks the target against the kind and what `inputs` allows, the credential name
    /// and the events.
    pub fn into_spec(self, inputs: &InputsConfig) -> Result<ChannelSpec> {
        let target = self
            .target
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        match (self.kind, target.as_deref()) {
            (ChannelKind::Slack, Some(channel))
                if channel.len() > 80
                    || !channel
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "#-_.".contains(c)) =>
            {
                return Err(Error::invalid(
                    "target",
                    "must be a Slack channel id such as C07OPS00001 (or omitted for an incoming webhook)",
                ));
            }
            (ChannelKind::Kakaowork, id)
                if !id
                    .is_some_and(|id| id.len() <= 20 && id.chars().all(|c| c.is_ascii_digit())) =>
            {
                return Err(Error::invalid(
                    "target",
                    "a kakaowork channel needs the conversation id (digits) to send to",
                ));
            }
            (ChannelKind::Webhook, url) => {
                check_webhook_target(url, inputs.allow_private_targets)?;
            }
            _ => {}
        }
        let credential = self.credential.trim().to_string();
        if !credentials::valid_credential_name(&credential) {
            return Err(Error::invalid(
                "credential",
                "must name a credential: 1-63 letters, digits, '-' or '_'",
            ));
        }
        let mut events = Vec::new();
        for event in self.events.unwrap_or_else(|| NoticeKind::ALL.to_vec()) {
            if !events.contains(&event) {
                events.push(event);
            }
        }
        if events.is_empty() {
            return Err(Error::invalid(
                "events",
                "name at least one of approval_requested, task_failed, task_done",
            ));
        }
        Ok(ChannelSpec {
            kind: self.kind,
            target,
            credential,
            events,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// A webhook channel posts to an https URL without credentials in it, outside the
/// service's own networks; plain http only where private targets are allowed.
fn check_webhook_target(url: Option<&str>, allow_private: bool) -> Result<()> {
    let invalid = |why: String| Err(Error::invalid("target", why));
    let Some(Ok(url)) = url.map(url::Url::parse) else {
        return invalid("a webhook channel needs the https URL to post to".into());
    };
    let http_allowed = allow_private && url.scheme() == "http";
    if url.scheme() != "https" && !http_allowed {
        return invalid(format!(
            "scheme {:?} is not accepted; a webhook channel posts to an https URL",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return invalid(
            "must not carry credentials; the channel's credential signs what it sends".into(),
        );
    }
    match refused_host(&url, allow_private) {
        Some(why) => invalid(why),
        None => Ok(()),
    }
}

/// A channel as a principal with `role` sees it: below operator, a webhook URL shows only its
/// scheme and host (its path or query may hold a token).
pub fn shown_to(mut channel: NotificationChannel, role: Role) -> NotificationChannel {
    if role < Role::Operator
        && channel.kind == ChannelKind::Webhook
        && let Some(target) = &channel.target
    {
        channel.target = Some(match url::Url::parse(target) {
            Ok(url) => format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("")),
            Err(_) => "…".into(),
        });
    }
    channel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(kind: ChannelKind, target: Option<&str>) -> NewChannel {
        NewChannel {
            kind,
            target: target.map(str::to_owned),
            credential: "chat-secret".into(),
            events: None,
            enabled: None,
        }
    }

    fn field_of(result: Result<ChannelSpec>) -> String {
        match result {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn targets_must_fit_the_kind() {
        assert!(
            channel(ChannelKind::Slack, None)
                .into_spec(&InputsConfig::default())
                .is_ok()
        );
        assert!(
            channel(ChannelKind::Slack, Some("C07OPS00001"))
                .into_spec(&InputsConfig::default())
                .is_ok()
        );
        assert_eq!(
            field_of(
                channel(ChannelKind::Slack, Some("two words")).into_spec(&InputsConfig::default())
            ),
            "target"
        );
        assert_eq!(
            field_of(channel(ChannelKind::Kakaowork, None).into_spec(&InputsConfig::default())),
            "target"
        );
        assert!(
            channel(ChannelKind::Kakaowork, Some("12345"))
                .into_spec(&InputsConfig::default())
                .is_ok()
        );
        assert_eq!(
            field_of(
                channel(ChannelKind::Webhook, Some("ftp://x")).into_spec(&InputsConfig::default())
            ),
            "target"
        );
        let spec = channel(ChannelKind::Webhook, Some(" https://hooks.example/x "))
            .into_spec(&InputsConfig::default())
            .unwrap();
        assert_eq!(spec.target.as_deref(), Some("https://hooks.example/x"));
        assert_eq!(spec.events, NoticeKind::ALL.to_vec());
        assert!(spec.enabled);
    }

    #[test]
    fn webhook_targets_follow_the_outbound_rules() {
        let strict = InputsConfig::default();
        let lan = InputsConfig {
            allow_private_targets: true,
            ..InputsConfig::default()
        };
        let field = |url: &str, inputs: &InputsConfig| {
            channel(ChannelKind::Webhook, Some(url))
                .into_spec(inputs)
                .err()
                .map(|_| "target")
        };
        for refused in [
            "http://hooks.example/x",
            "https://user:pw@hooks.example/x",
            "https://127.0.0.1:9/x",
            "https://169.254.169.254/latest",
            "https://localhost/x",
            "https://[::1]/x",
        ] {
            assert_eq!(field(refused, &strict), Some("target"), "{refused}");
        }
        assert_eq!(field("http://127.0.0.1:9/x", &lan), None);
        assert_eq!(field("https://user:pw@127.0.0.1/x", &lan), Some("target"));
    }

    #[test]
    fn viewers_see_no_webhook_path() {
        let spec = channel(
            ChannelKind::Webhook,
            Some("https://hooks.example/T0/secret?k=v"),
        )
        .into_spec(&InputsConfig::default())
        .unwrap();
        let stored = NotificationChannel {
            id: 1,
            project: "p".into(),
            kind: spec.kind,
            target: spec.target,
            credential: spec.credential,
            events: spec.events,
            enabled: true,
            created_at: chrono::Utc::now(),
        };
        let seen = shown_to(stored.clone(), Role::Viewer);
        assert_eq!(seen.target.as_deref(), Some("https://hooks.example/…"));
        assert_eq!(
            shown_to(stored.clone(), Role::Operator).target,
            stored.target
        );
    }

    #[test]
    fn events_and_credential_are_checked() {
        let mut none = channel(ChannelKind::Slack, None);
        none.events = Some(Vec::new());
        assert_eq!(field_of(none.into_spec(&InputsConfig::default())), "events");
        let mut twice = channel(ChannelKind::Slack, None);
        twice.events = Some(vec![NoticeKind::TaskDone, NoticeKind::TaskDone]);
        assert_eq!(
            twice.into_spec(&InputsConfig::default()).unwrap().events,
            vec![NoticeKind::TaskDone]
        );
        let mut bad = channel(ChannelKind::Slack, None);
        bad.credential = "no spaces please".into();
        assert_eq!(
            field_of(bad.into_spec(&InputsConfig::default())),
            "credential"
        );
    }
}
