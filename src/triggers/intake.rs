//! Intake: receiving a GitHub delivery or an alert — the sender's secret and signature,
//! routing, rule defaults, the alert's dedup key — and recording it together with the task
//! it creates, in one transaction, so an accepted delivery is never lost and never makes
//! two tasks. The HTTP handlers only read headers and the body and answer what this returns.

use std::collections::HashSet;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::alerts::{self, AlertOccurrence};
use super::{Routing, github, github_payload};
use crate::config::{AlertAuth, AlertRule, AlertSource, Config};
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::{
    AlertEffect, DeliveryOutcome, DeliveryStatus, GithubDeliveryContext, NewDelivery, NewEvent,
    Source, TaskSpec, TaskStatus,
};
use crate::signing;
use crate::store::group_commit::BulkWrite;
use crate::store::{self, Store, Tx};
use crate::tasks;
use crate::teams::Teams;
use crate::vault::Vault;

/// Why a repeated delivery creates nothing.
const DUPLICATE_REASON: &str = "this delivery id was already received";

/// Why a resolved alert cancels its queued task.
const RESOLVED_REASON: &str = "the alert resolved before the task started";

/// Records a delivery and, when `task` is given, creates the task with its job, all in one
/// transaction (shared with concurrent writes by the group committer, which writes the
/// deliveries of a batch together; answered once it committed). A delivery id seen before
/// is recorded as a duplicate and creates nothing; a task whose dedup key exists is not
/// created again. Without a task, `ignored` says why.
pub async fn record_delivery(
    store: &Store,
    delivery: NewDelivery,
    task: Option<TaskSpec>,
    ignored: Option<String>,
) -> Result<DeliveryOutcome> {
    let source = delivery.source.clone();
    // Made here, beside the request: the committer writes one batch at a time.
    let kept = store.keep_payload(&delivery.payload);
    let write = DeliveryWrite {
        delivery,
        kept,
        task,
        ignored,
    };
    let outcome = store.write_grouped_bulk(write).await?;
    crate::metrics::webhook_delivery(&source, outcome.outcome.as_str());
    Ok(outcome)
}

/// A delivery to record, with the task it asks for (or why it asks for none).
struct DeliveryWrite {
    delivery: NewDelivery,
    /// Its payload as the store keeps it.
    kept: store::kept_payload::KeptPayload,
    task: Option<TaskSpec>,
    ignored: Option<String>,
}

impl BulkWrite for DeliveryWrite {
    type Output = DeliveryOutcome;

    fn write_all<'t>(
        tx: &'t mut Tx,
        writes: &'t [&'t Self],
    ) -> BoxFuture<'t, Result<Vec<Result<DeliveryOutcome>>>> {
        Box::pin(async move {
            let outcomes = write_deliveries(tx, writes).await?;
            Ok(outcomes.into_iter().map(Ok).collect())
        })
    }

    fn write_one<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<DeliveryOutcome>> {
        Box::pin(write_delivery(tx, self))
    }
}

/// The writes of one delivery, inside `tx`.
async fn write_delivery(tx: &mut Tx, write: &DeliveryWrite) -> Result<DeliveryOutcome> {
    let delivery = &write.delivery;
    let Some(id) = store::deliveries::insert_received(tx, delivery, &write.kept).await? else {
        return duplicate_delivery(tx, delivery).await;
    };
    let (outcome, reason, task_id) = match &write.task {
        Some(spec) => create_delivery_task(tx, spec).await?,
        None => (DeliveryStatus::Ignored, write.ignored.clone(), None),
    };
    store::deliveries::settle(tx, id, outcome, reason.as_deref(), task_id).await?;
    Ok(DeliveryOutcome {
        id,
        outcome,
        reason,
        task_id,
    })
}

/// The writes of many deliveries, inside `tx`, with the same outcomes as [`write_delivery`]
/// for each in turn, in a few statements for all of them: which ids came before, the tasks
/// (with jobs and events), the sticky comments, and the deliveries written once with their
/// outcomes; each repeated delivery after them.
async fn write_deliveries(tx: &mut Tx, writes: &[&DeliveryWrite]) -> Result<Vec<DeliveryOutcome>> {
    let keys: Vec<(&str, &str)> = writes
        .iter()
        .map(|write| {
            (
                write.delivery.source.as_str(),
                write.delivery.delivery_id.as_str(),
            )
        })
        .collect();
    let mut seen: HashSet<(String, String)> = store::deliveries::received_before(tx, &keys)
        .await?
        .into_iter()
        .collect();
    // The first of each new id is new; any other is a repeat.
    let new: Vec<bool> = keys
        .iter()
        .map(|(source, id)| seen.insert(((*source).to_owned(), (*id).to_owned())))
        .collect();
    let asking: Vec<(usize, &TaskSpec)> = writes
        .iter()
        .enumerate()
        .filter(|(i, _)| new[*i])
        .filter_map(|(i, write)| write.task.as_ref().map(|spec| (i, spec)))
        .collect();
    let specs: Vec<&TaskSpec> = asking.iter().map(|(_, spec)| *spec).collect();
    let mut made = vec![None; writes.len()];
    for ((i, _), task_id) in asking.iter().zip(tasks::enqueue_all_in(tx, &specs).await?) {
        made[*i] = task_id;
    }
    let mut ended = Vec::with_capacity(writes.len());
    let mut replies = Vec::new();
    for (i, write) in writes.iter().enumerate().filter(|(i, _)| new[*i]) {
        let (outcome, reason, task_id) = match (&write.task, made[i]) {
            (Some(spec), Some(task_id)) => {
                replies.extend(github_reply(task_id, spec));
                (DeliveryStatus::TaskCreated, None, Some(task_id))
            }
            (Some(spec), None) => duplicate_task(tx, spec).await?,
            (None, _) => (DeliveryStatus::Ignored, write.ignored.clone(), None),
        };
        ended.push((i, outcome, reason, task_id));
    }
    store::deliveries::insert_github_replies(tx, &replies).await?;
    let settled: Vec<store::deliveries::Settled> = ended
        .iter()
        .map(|(i, outcome, reason, task_id)| {
            let write = writes[*i];
            (
                &write.delivery,
                &write.kept,
                *outcome,
                reason.as_deref(),
                *task_id,
            )
        })
        .collect();
    let ids = store::deliveries::insert_settled_all(tx, &settled).await?;
    let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; writes.len()];
    for ((i, outcome, reason, task_id), id) in ended.into_iter().zip(ids) {
        outcomes[i] = Some(DeliveryOutcome {
            id,
            outcome,
            reason,
            task_id,
        });
    }
    // A repeat names the first delivery's task, written above when it came in this batch.
    let mut answered = Vec::with_capacity(writes.len());
    for (write, outcome) in writes.iter().zip(outcomes) {
        answered.push(match outcome {
            Some(outcome) => outcome,
            None => duplicate_delivery(tx, &write.delivery).await?,
        });
    }
    Ok(answered)
}

/// Records a repeated delivery inside `tx`: it names the first one's task and creates nothing.
async fn duplicate_delivery(tx: &mut Tx, delivery: &NewDelivery) -> Result<DeliveryOutcome> {
    let (id, original) =
        store::deliveries::insert_duplicate(tx, delivery, DUPLICATE_REASON).await?;
    Ok(DeliveryOutcome {
        id,
        outcome: DeliveryStatus::Duplicate,
        reason: Some(DUPLICATE_REASON.into()),
        task_id: original,
    })
}

/// The task of a delivery, inside its transaction; an issue's task also gets its sticky
/// comment registered. A dedup key taken already names the existing task.
async fn create_delivery_task(
    tx: &mut Tx,
    spec: &TaskSpec,
) -> Result<(DeliveryStatus, Option<String>, Option<i64>)> {
    let Some(task_id) = tasks::enqueue_in(tx, spec).await? else {
        return duplicate_task(tx, spec).await;
    };
    let reply: Vec<_> = github_reply(task_id, spec).into_iter().collect();
    store::deliveries::insert_github_replies(tx, &reply).await?;
    Ok((DeliveryStatus::TaskCreated, None, Some(task_id)))
}

/// The outcome of a delivery whose task's dedup key its project has already: it names that
/// task.
async fn duplicate_task(
    tx: &mut Tx,
    spec: &TaskSpec,
) -> Result<(DeliveryStatus, Option<String>, Option<i64>)> {
    let existing = match &spec.dedup_key {
        Some(key) => store::tasks::id_by_dedup_key(tx, spec.project_id, key).await?,
        None => None,
    };
    let reason = format!(
        "task {} already exists for {}",
        existing.unwrap_or_default(),
        spec.dedup_key.as_deref().unwrap_or("this event")
    );
    Ok((DeliveryStatus::DuplicateTask, Some(reason), existing))
}

/// The GitHub issue task `task_id` answers, when its spec comes from one: its sticky comment.
fn github_reply(task_id: i64, spec: &TaskSpec) -> Option<store::deliveries::GithubReply<'_>> {
    let issue = &spec.source_ref;
    match (
        issue["kind"].as_str(),
        issue["repo"].as_str(),
        issue["issue"].as_i64(),
    ) {
        (Some("github_issue"), Some(repo), Some(number)) => {
            Some((task_id, repo, number, issue["installation"].as_i64()))
        }
        _ => None,
    }
}

/// Applies one alert occurrence: a firing alert joins its fingerprint's open task or opens
/// a new one (`new_task`); a resolved one is recorded on the open task and, with
/// `cancel_queued`, cancels it if it has not started. Serialised per fingerprint, so a
/// storm of one fingerprint makes exactly one task.
pub async fn record_alert(
    store: &Store,
    source: &str,
    fingerprint: &str,
    firing: bool,
    new_task: &TaskSpec,
    cancel_queued: bool,
) -> Result<AlertEffect> {
    let mut tx = store.begin().await?;
    let open = store::deliveries::lock_open_alert_group(&mut tx, source, fingerprint).await?;
    let effect = match (open, firing) {
        (Some(group), true) => {
            store::deliveries::add_alert_occurrence(&mut tx, group.id).await?;
            AlertEffect::Coalesced(group.task_id)
        }
        (None, true) => {
            let task_id = tasks::enqueue_in(&mut tx, new_task)
                .await?
                .ok_or_else(|| Error::Conflict("the alert's task already exists".into()))?;
            store::deliveries::open_alert_group(&mut tx, source, fingerprint, task_id).await?;
            AlertEffect::Created(task_id)
        }
        (Some(group), false) => {
            store::deliveries::resolve_alert_group(&mut tx, group.id).await?;
            let cancel = cancel_queued && group.task_status == TaskStatus::Queued;
            if cancel {
                store::tasks::cancel_queued(&mut tx, group.task_id, RESOLVED_REASON).await?;
                let event = NewEvent::platform(
                    group.task_id,
                    new_task.project_id,
                    "status_changed",
                    serde_json::json!({
                        "from": TaskStatus::Queued, "to": TaskStatus::Cancelled,
                        "reason": RESOLVED_REASON,
                    }),
                );
                store::events::append(&mut tx, &event).await?;
            }
            AlertEffect::Resolved(group.task_id, cancel)
        }
        (None, false) => AlertEffect::NothingOpen,
    };
    tx.commit().await?;
    Ok(effect)
}

/// What intake needs of the service: the store, the vault (for the senders' secrets), the
/// configuration and the team presets.
#[derive(Clone, Copy)]
pub struct Intake<'a> {
    pub store: &'a Store,
    pub vault: &'a Vault,
    pub config: &'a Config,
    pub teams: &'a Teams,
}

/// A GitHub delivery as received: its headers and raw body.
#[derive(Debug, Clone, Copy)]
pub struct GithubRequest<'a> {
    /// `X-GitHub-Event`.
    pub event: &'a str,
    /// `X-GitHub-Delivery`.
    pub delivery_id: &'a str,
    /// `X-Hub-Signature-256`.
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// The answer to GitHub's ping.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pong {
    /// Always `pong`.
    pub outcome: DeliveryStatus,
    /// Row id of the delivery record.
    pub id: i64,
}

/// What became of a GitHub delivery.
#[derive(Debug, Clone)]
pub enum GithubReceipt {
    /// The ping GitHub sends when a hook is set up.
    Pong(Pong),
    /// Stored, with its task or the reason it made none.
    Delivered(DeliveryOutcome),
}

/// Receives a GitHub delivery: checks its signature against the repository's webhook
/// secrets (and the GitHub App's), then stores it with the task its routing asks for.
pub async fn receive_github(
    intake: Intake<'_>,
    request: GithubRequest<'_>,
) -> Result<GithubReceipt> {
    let (payload, raw) = github_payload::parse(request.body)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    let repository = payload["repository"]["full_name"]
        .as_str()
        .map(str::to_string);
    let context = github_context(intake, repository.as_deref(), &payload).await?;
    check_github_signature(intake.vault, &context, repository.as_deref(), request)?;
    let delivery = NewDelivery {
        source: Source::Github.as_str().into(),
        delivery_id: request.delivery_id.to_string(),
        event: request.event.to_string(),
        action: payload["action"].as_str().map(str::to_string),
        repository,
        payload: raw,
    };
    if request.event == "ping" {
        let outcome = record_delivery(intake.store, delivery, None, Some("ping".into())).await?;
        return Ok(GithubReceipt::Pong(Pong {
            outcome: DeliveryStatus::Pong,
            id: outcome.id,
        }));
    }
    let outcome = route_github_delivery(intake, delivery, &payload, &context).await?;
    Ok(GithubReceipt::Delivered(outcome))
}

/// What the delivery's signature check and routing need to know about `repository` and the
/// payload's sender, read in one query.
async fn github_context(
    intake: Intake<'_>,
    repository: Option<&str>,
    payload: &Value,
) -> Result<std::sync::Arc<GithubDeliveryContext>> {
    let sender = payload["sender"]["login"].as_str().unwrap_or("?");
    let app_secret = &intake.config.github.app_secret_credential;
    intake
        .store
        .github_delivery_context(repository, app_secret, sender)
        .await
}

/// Refuses a delivery unless its signature matches one of the secrets that may sign it:
/// the project's webhook secrets and the GitHub App's.
fn check_github_signature(
    vault: &Vault,
    context: &GithubDeliveryContext,
    repository: Option<&str>,
    request: GithubRequest<'_>,
) -> Result<()> {
    let secrets = credentials::reveal_sealed(vault, &context.secrets)?;
    if secrets.is_empty() {
        return Err(Error::Unauthorized(format!(
            "no webhook secret is configured for {}; store one as a webhook_secret credential",
            repository.unwrap_or("this sender")
        )));
    }
    let signed_by = |secret: &String| {
        signing::verify_sha256_signature(secret.as_bytes(), request.body, request.signature)
    };
    if !secrets.iter().any(signed_by) {
        tracing::warn!(
            delivery = request.delivery_id,
            event = request.event,
            "GitHub delivery with a wrong signature refused"
        );
        return Err(Error::Unauthorized(
            "X-Hub-Signature-256 does not match the body".into(),
        ));
    }
    Ok(())
}

/// Replays a stored GitHub delivery (e.g. after registering its repository): routed
/// again and recorded as a new delivery; a task that exists for it is not created twice.
pub async fn replay_github(intake: Intake<'_>, id: i64) -> Result<DeliveryOutcome> {
    let (original, payload) = intake.store.delivery_payload(id).await?;
    if original.source != Source::Github.as_str() || payload.is_null() {
        return Err(Error::invalid(
            "id",
            "only stored GitHub deliveries (not duplicates) can be replayed",
        ));
    }
    let context = github_context(intake, original.repository.as_deref(), &payload).await?;
    let delivery = NewDelivery {
        source: original.source.clone(),
        delivery_id: format!("{}#replay-{}", original.delivery_id, ulid::Ulid::generate()),
        event: original.event.clone(),
        action: original.action.clone(),
        repository: original.repository.clone(),
        payload: serde_json::value::to_raw_value(&payload)
            .map_err(|e| Error::Internal(anyhow::anyhow!("the delivery's payload: {e}")))?,
    };
    route_github_delivery(intake, delivery, &payload, &context).await
}

/// Routes a GitHub delivery by its parsed `payload`, the project's rules and `[github]`,
/// and stores it (with its task, if any).
async fn route_github_delivery(
    intake: Intake<'_>,
    delivery: NewDelivery,
    payload: &Value,
    context: &GithubDeliveryContext,
) -> Result<DeliveryOutcome> {
    let Some(project_id) = context.project_id else {
        let reason = format!(
            "repository {} is not registered (no project has github_repo set to it)",
            delivery.repository.as_deref().unwrap_or("(none)")
        );
        return record_delivery(intake.store, delivery, None, Some(reason)).await;
    };
    let config = intake.config;
    let defaults = github::Triggers::from_config(&config.github, &config.tasks.default_team);
    let rules: Vec<github::Triggers> = context
        .rules
        .iter()
        .map(|rule| github::Triggers::from_rule(rule, &defaults))
        .collect();
    let routing = github::route(&delivery.event, payload, &rules, &defaults, intake.teams);
    match routing {
        Routing::Ignore(reason) => {
            record_delivery(intake.store, delivery, None, Some(reason)).await
        }
        Routing::Task(request) => {
            let sender = payload["sender"]["login"].as_str().unwrap_or("?");
            let spec = TaskSpec {
                project_id,
                team: request.team,
                prompt: request.prompt,
                source: Source::Github,
                priority: request.priority,
                dedup_key: Some(request.dedup_key),
                source_ref: request.source_ref,
                created_by: format!("github:{sender}"),
                // A sender linked to a user (by `github_login`) is who asked: the audit log
                // and the project's self-approval rule know them.
                requested_by: context.sender,
            };
            record_delivery(intake.store, delivery, Some(spec), None).await
        }
    }
}

/// An alert delivery as received: its headers (for the sender's credentials) and raw body.
#[derive(Debug, Clone, Copy)]
pub struct AlertRequest<'a> {
    /// `Authorization`, for sources authenticated by a bearer token.
    pub authorization: Option<&'a str>,
    /// `X-Signature-256`, for sources authenticated by an HMAC signature.
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// What became of each alert of a delivery, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertReceipt {
    pub alerts: Vec<AlertResult>,
}

/// What became of one alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertResult {
    pub fingerprint: String,
    pub outcome: AlertOutcome,
    /// Why it was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The fingerprint's task: created, added to or resolved; null when a resolved alert
    /// had no open task; absent when ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub task_id: Option<Option<i64>>,
    /// For a resolved alert: whether its queued task was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<bool>,
}

/// What one alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    Ignored,
    TaskCreated,
    Coalesced,
    Resolved,
}

impl AlertOutcome {
    /// The name a client and the metrics see.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Ignored => "ignored",
            AlertOutcome::TaskCreated => "task_created",
            AlertOutcome::Coalesced => "coalesced",
            AlertOutcome::Resolved => "resolved",
        }
    }
}

/// Parses a source's payload into alert occurrences.
pub type AlertParser = fn(&Value) -> std::result::Result<Vec<AlertOccurrence>, String>;

/// Receives an alert delivery from the configured source `source_name`: checks the
/// sender's credentials, parses it with `parse`, and routes and records every alert.
pub async fn receive_alerts(
    intake: Intake<'_>,
    source_name: &str,
    request: AlertRequest<'_>,
    parse: AlertParser,
) -> Result<AlertReceipt> {
    let source = intake
        .config
        .alerts
        .sources
        .iter()
        .find(|s| s.name == source_name)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "alert source {source_name:?}; configure it under [[alerts.sources]]"
            ))
        })?;
    authenticate_alert_source(intake, source, request).await?;
    let payload: Value = serde_json::from_slice(request.body)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    let occurrences = parse(&payload).map_err(|e| Error::invalid("alerts", e))?;
    let rules: Vec<AlertRule> = intake
        .store
        .alert_routing_rules()
        .await?
        .iter()
        .map(|rule| rule.as_alert_rule())
        .collect();
    let mut results = Vec::with_capacity(occurrences.len());
    for alert in &occurrences {
        let result = apply_alert(intake, source_name, alert, &rules).await?;
        crate::metrics::webhook_delivery(source_name, result.outcome.as_str());
        results.push(result);
    }
    Ok(AlertReceipt { alerts: results })
}

/// Checks the sender's token or signature against its configured credential.
async fn authenticate_alert_source(
    intake: Intake<'_>,
    source: &AlertSource,
    request: AlertRequest<'_>,
) -> Result<()> {
    let secret = credentials::reveal_global(intake.store, intake.vault, &source.credential)
        .await?
        .ok_or_else(|| {
            Error::Unauthorized(format!(
                "no credential {:?} is configured for alert source {:?}; store it as a global credential",
                source.credential, source.name
            ))
        })?;
    let ok = match source.auth {
        AlertAuth::Bearer => {
            let presented = request
                .authorization
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| Error::Unauthorized("send Authorization: Bearer <token>".into()))?;
            signing::tokens_equal(presented.trim(), &secret)
        }
        AlertAuth::Hmac => {
            let signature = request
                .signature
                .ok_or_else(|| Error::Unauthorized("missing X-Signature-256 header".into()))?;
            signing::verify_sha256_signature(secret.as_bytes(), request.body, signature)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Unauthorized(format!(
            "the {} alert credentials do not match",
            source.name
        )))
    }
}

/// Routes one alert by `rules` (the stored alert rules, in order), then `[[alerts.rules]]`,
/// and records it.
async fn apply_alert(
    intake: Intake<'_>,
    source: &str,
    alert: &AlertOccurrence,
    rules: &[AlertRule],
) -> Result<AlertResult> {
    let ignored = |reason: String| AlertResult {
        fingerprint: alert.fingerprint.clone(),
        outcome: AlertOutcome::Ignored,
        reason: Some(reason),
        task_id: None,
        cancelled: None,
    };
    let fingerprint = &alert.fingerprint;
    let Some(route) = alerts::route(source, alert, rules, &intake.config.alerts) else {
        return Ok(ignored(
            "no routing rule and no [[alerts.rules]] entry matches its labels".into(),
        ));
    };
    let Some(project) = intake.store.find_project(&route.project).await? else {
        return Ok(ignored(format!(
            "rule names unknown project {:?}",
            route.project
        )));
    };
    let spec = TaskSpec {
        project_id: project.id,
        team: route.team,
        prompt: alerts::prompt(source, alert),
        source: Source::Alert,
        priority: route.priority,
        dedup_key: Some(format!(
            "alert:{source}:{fingerprint}:{}",
            ulid::Ulid::generate()
        )),
        source_ref: alerts::source_ref(source, alert),
        created_by: format!("alert:{source}"),
        requested_by: None,
    };
    let firing = alert.status == alerts::AlertStatus::Firing;
    let cancel_queued = intake.config.alerts.cancel_queued_on_resolve;
    let effect = record_alert(
        intake.store,
        source,
        fingerprint,
        firing,
        &spec,
        cancel_queued,
    )
    .await?;
    let (outcome, task_id, cancelled) = match effect {
        AlertEffect::Created(task) => (AlertOutcome::TaskCreated, Some(task), None),
        AlertEffect::Coalesced(task) => (AlertOutcome::Coalesced, Some(task), None),
        AlertEffect::Resolved(task, cancelled) => {
            (AlertOutcome::Resolved, Some(task), Some(cancelled))
        }
        AlertEffect::NothingOpen => (AlertOutcome::Resolved, None, None),
    };
    Ok(AlertResult {
        fingerprint: fingerprint.clone(),
        outcome,
        reason: None,
        task_id: Some(task_id),
        cancelled,
    })
}
