//! Sending: the notification workers take a `NotifyJob`, render its message, send it to its
//! channel, and record the attempt: sent, tried again later (network error, HTTP 5xx or
//! 429) with a doubling delay, or dead once `notify.max_attempts` are used up or the
//! channel refused it for good.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::BoxDynError;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::message::Message;
use super::post::{SendError, post};
use super::{ChannelKind, kakaowork, slack, webhook};
use crate::approvals::LinkSigner;
use crate::config::Config;
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::{NewJob, NotificationStatus};
use crate::queue::{self, JobHandler, NotifyJob, WorkerSettings};
use crate::store::notifications::{AttemptRecord, NotificationDue};
use crate::store::{self, Store};
use crate::vault::Vault;

/// How one attempt to send a notification went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Failed; a new job tries again after the delay.
    Retry {
        error: String,
        after: Duration,
    },
    /// Failed for good: the notification becomes a dead letter.
    Dead {
        error: String,
    },
}

impl Attempt {
    /// `sent`, `retry` or `dead`, as the metrics count it.
    pub fn label(&self) -> &'static str {
        match self {
            Attempt::Sent => "sent",
            Attempt::Retry { .. } => "retry",
            Attempt::Dead { .. } => "dead",
        }
    }
}

/// Records attempt number `attempt` of a queued notification and, for a retry, pushes the
/// job that makes it, in one transaction. False when that attempt was already recorded (a
/// repeated job): nothing changes then.
pub async fn record_attempt(
    store: &Store,
    id: i64,
    attempt: i64,
    outcome: &Attempt,
) -> Result<bool> {
    let now = chrono::Utc::now();
    let record = match outcome {
        Attempt::Sent => AttemptRecord {
            status: NotificationStatus::Sent,
            error: None,
            next_attempt_at: None,
            sent_at: Some(now),
        },
        Attempt::Retry { error, after } => AttemptRecord {
            status: NotificationStatus::Queued,
            error: Some(error),
            next_attempt_at: Some(now + chrono::Duration::from_std(*after).unwrap_or_default()),
            sent_at: None,
        },
        Attempt::Dead { error } => AttemptRecord {
            status: NotificationStatus::Dead,
            error: Some(error),
            next_attempt_at: None,
            sent_at: None,
        },
    };
    let mut tx = store.begin().await?;
    let recorded = store::notifications::record_attempt(&mut tx, id, attempt, &record).await?;
    if recorded && let Attempt::Retry { after, .. } = outcome {
        store::queue::push(&mut tx, &NewJob::notify(id, *after)).await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// The delay before retry number `attempt` (1 after the first failure): doubling from
/// `notify.backoff_ms`, at most an hour.
pub fn backoff(config: &Config, attempt: i64) -> Duration {
    let doublings = (attempt - 1).clamp(0, 20) as u32;
    let delay = config.notify.backoff_ms.saturating_mul(1u64 << doublings);
    Duration::from_millis(delay.min(3_600_000))
}

/// Times the outcome of a send is tried to be recorded before the job gives up (the claim
/// then keeps it from being sent twice).
const RECORD_TRIES: usize = 6;

/// Sends notifications and answers Slack's and KakaoWork's buttons; shared by the workers
/// and the HTTP layer.
pub struct Notifier {
    store: Store,
    vault: Vault,
    config: Arc<Config>,
    http: reqwest::Client,
    /// For the targets people name (webhook channels): public addresses only, no redirects.
    targets: reqwest::Client,
    signer: LinkSigner,
}

impl Notifier {
    /// A notifier of this process.
    pub fn new(store: Store, vault: Vault, config: Arc<Config>) -> Arc<Self> {
        let timeout = Duration::from_secs(config.notify.request_timeout_secs);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("aiops/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        let targets = super::outbound::client(timeout, config.inputs.allow_private_targets);
        Arc::new(Self {
            targets,
            signer: LinkSigner::new(&vault),
            store,
            vault,
            config,
            http,
        })
    }

    /// The signer of approval links and button tokens.
    pub fn link_signer(&self) -> &LinkSigner {
        &self.signer
    }

    /// Sends notification `id` once and records how it went; a notification already sent,
    /// dead or removed is left alone (a repeated job).
    pub async fn deliver(&self, id: i64) -> Result<()> {
        let Some(due) = self.store.notification_due(id).await? else {
            return Ok(());
        };
        let attempt = due.attempts + 1;
        if let Some(since) = due.sending_since {
            return self.settle_interrupted(id, attempt, since).await;
        }
        let mut claim = self.store.begin().await?;
        let claimed = store::notifications::claim_send(&mut claim, id, due.attempts).await?;
        claim.commit().await?;
        if !claimed {
            return Ok(());
        }
        let outcome = match self.send(&due).await {
            Ok(()) => Attempt::Sent,
            Err(e) if e.retryable && attempt < self.config.notify.max_attempts => Attempt::Retry {
                error: e.reason,
                after: backoff(&self.config, attempt),
            },
            Err(e) => Attempt::Dead { error: e.reason },
        };
        crate::metrics::notification_attempt(due.channel_kind, outcome.label());
        match &outcome {
            Attempt::Sent => {
                tracing::info!(
                    notification = id,
                    channel = due.channel_id,
                    attempt,
                    "notification sent"
                );
            }
            Attempt::Retry { error, after } => {
                tracing::warn!(notification = id, channel = due.channel_id, attempt, error = %error, retry_in_ms = after.as_millis() as u64, "notification not sent; trying again later");
            }
            Attempt::Dead { error } => {
                tracing::warn!(notification = id, channel = due.channel_id, attempt, error = %error, "notification given up (dead letter)");
            }
        }
        if !self.record_sent(id, attempt, &outcome).await? {
            tracing::info!(
                notification = id,
                "another worker recorded this attempt first"
            );
        }
        Ok(())
    }

    /// Records the outcome of a send that happened: a busy database ("database is locked"
    /// while the service stops) is tried again here, because the send must not be.
    async fn record_sent(&self, id: i64, attempt: i64, outcome: &Attempt) -> Result<bool> {
        let mut delay = Duration::from_millis(50);
        for _ in 0..RECORD_TRIES - 1 {
            match record_attempt(&self.store, id, attempt, outcome).await {
                Ok(recorded) => return Ok(recorded),
                Err(e) => {
                    tracing::warn!(notification = id, error = %e, "cannot record the send yet; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        record_attempt(&self.store, id, attempt, outcome).await
    }

    /// A send claimed at `since` whose outcome nobody recorded: its worker may still be
    /// sending (look again when it would have timed out) or died mid-send. Then the channel
    /// may have it already, so it is not sent again: it becomes a dead letter saying so,
    /// which a person can send again on purpose.
    async fn settle_interrupted(
        &self,
        id: i64,
        attempt: i64,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let patience = Duration::from_secs(self.config.notify.request_timeout_secs + 5);
        let age = (chrono::Utc::now() - since).to_std().unwrap_or_default();
        if age < patience {
            let mut tx = self.store.begin().await?;
            store::queue::push(&mut tx, &NewJob::notify(id, patience - age)).await?;
            tx.commit().await?;
            return Ok(());
        }
        let error = format!(
            "the send started at {} was interrupted before its outcome was recorded; it is not sent again, so nobody gets it twice (send it again with POST /api/v1/notifications/{id}/retry)",
            since.format("%Y-%m-%d %H:%M:%S UTC")
        );
        tracing::warn!(notification = id, "{error}");
        record_attempt(&self.store, id, attempt, &Attempt::Dead { error }).await?;
        Ok(())
    }

    async fn send(&self, due: &NotificationDue) -> Result<(), SendError> {
        let (kind, event) = (due.channel_kind, due.event);
        let message = Message::render(
            &self.store,
            &self.signer,
            &self.config,
            event,
            due.task_id,
            due.approval_id,
        )
        .await
        .map_err(|e| match e {
            Error::NotFound(what) => SendError::permanent(format!("{what} no longer exists")),
            e => SendError::retry(format!("cannot read the notification's content: {e}")),
        })?;
        let secret = credentials::reveal_named(
            &self.store,
            &self.vault,
            due.project_id,
            &due.credential,
        )
        .await
        .map_err(|e| SendError::retry(format!("cannot read the credential: {e}")))?
        .ok_or_else(|| {
            SendError::permanent(format!(
                "no credential {:?} for the project or global; store it with `aiops secret set`",
                due.credential
            ))
        })?;
        let notify = &self.config.notify;
        let target = due.target.as_deref();
        match (kind, target) {
            (ChannelKind::Slack, channel) => {
                slack::send(
                    &self.http,
                    &notify.slack_api_url,
                    channel,
                    &secret,
                    &message,
                )
                .await
            }
            (ChannelKind::Kakaowork, Some(conversation)) => {
                let message = message.in_language(notify.kakaowork_language);
                kakaowork::send(
                    &self.http,
                    &notify.kakaowork_api_url,
                    conversation,
                    &secret,
                    &message,
                )
                .await
            }
            (ChannelKind::Webhook, Some(url)) => {
                webhook::send(&self.targets, url, &secret, due.id, &message).await
            }
            (_, None) => Err(SendError::permanent("the channel has no target")),
        }
    }

    /// Posts `answer` to a Slack `response_url` in the background, so Slack gets its 200 at
    /// once; a failure is logged (without the URL, which is a capability).
    pub fn answer_in_slack(self: &Arc<Self>, response_url: String, answer: Value) {
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            let request = notifier.http.post(response_url.as_str()).json(&answer);
            if let Err(e) = post(request, "Slack's response_url").await {
                tracing::warn!(error = %e.reason, "could not update the Slack message");
            }
        });
    }
}

impl Notifier {
    /// Tells a KakaoWork click's outcome in the background, so KakaoWork gets its 200 at
    /// once: as the bot of the clicked conversation (its channel's app key, that of the
    /// approval's project first), to the conversation or to the clicker alone. A failure is
    /// logged, never the key.
    pub fn answer_in_kakaowork(
        self: &Arc<Self>,
        click: kakaowork::Click,
        answer: kakaowork::Answer,
    ) {
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = notifier.tell_in_kakaowork(&click, &answer).await {
                tracing::warn!(error = %e.reason, "could not answer a KakaoWork click");
            }
        });
    }

    async fn tell_in_kakaowork(
        &self,
        click: &kakaowork::Click,
        answer: &kakaowork::Answer,
    ) -> Result<(), SendError> {
        let unreadable = |e: Error| SendError::retry(format!("cannot read the store: {e}"));
        let project_id = match answer.approval_id {
            Some(id) => match self.store.approval(id).await {
                Ok(approval) => Some(
                    self.store
                        .task_exec(approval.task_id)
                        .await
                        .map_err(unreadable)?
                        .project_id,
                ),
                Err(_) => None,
            },
            None => None,
        };
        let (project_id, credential) = self
            .store
            .kakaowork_bot(&click.conversation_id, project_id)
            .await
            .map_err(unreadable)?
            .ok_or_else(|| {
                SendError::permanent(
                    "no enabled KakaoWork channel posts to the clicked conversation",
                )
            })?;
        let app_key = credentials::reveal_named(&self.store, &self.vault, project_id, &credential)
            .await
            .map_err(unreadable)?
            .ok_or_else(|| SendError::permanent(format!("no credential {credential:?}")))?;
        let api_url = &self.config.notify.kakaowork_api_url;
        kakaowork::send_text(&self.http, api_url, &app_key, &answer.to, &answer.text).await
    }
}

impl JobHandler<NotifyJob> for Notifier {
    async fn handle(self: Arc<Self>, job: NotifyJob) -> Result<(), BoxDynError> {
        self.deliver(job.notification_id).await.map_err(|e| {
            tracing::error!(notification = job.notification_id, error = %e, "could not handle a notification; the queue retries it");
            Box::new(e) as BoxDynError
        })
    }
}

/// Runs `notify.workers` concurrent senders until `shutdown` fires.
pub async fn run_workers(notifier: Arc<Notifier>, holder: &str, shutdown: CancellationToken) {
    let config = &notifier.config;
    let settings = WorkerSettings {
        name_prefix: format!("{holder}-n"),
        concurrency: config.notify.workers,
        poll: Duration::from_millis(config.engine.queue_poll_ms),
        heartbeat: Duration::from_secs(config.engine.heartbeat_secs),
    };
    queue::run_workers::<NotifyJob, Notifier>(notifier.store.clone(), notifier, settings, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_configured_delay() {
        let mut config = Config::default();
        config.notify.backoff_ms = 100;
        assert_eq!(backoff(&config, 1), Duration::from_millis(100));
        assert_eq!(backoff(&config, 2), Duration::from_millis(200));
        assert_eq!(backoff(&config, 4), Duration::from_millis(800));
        assert_eq!(backoff(&config, 60), Duration::from_secs(3600));
    }
}
