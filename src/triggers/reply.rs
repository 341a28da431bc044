//! The sticky GitHub comment: one comment per task on the issue it came from, created when
//! the task is queued and edited as the task moves on (never a stream of comments).
//!
//! Talks to GitHub through octocrab at `github.api_url`, as a GitHub App installation
//! (`github.app_credential`, installation tokens minted and refreshed by octocrab) or with
//! the project's (or the global) `github.token_credential`. Failures are retried on the next pass; nothing here blocks a task.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::approvals::{self, LinkSigner};
use crate::config::Config;
use crate::credentials;
use crate::model::TaskStatus;
use crate::store::Store;
use crate::store::deliveries::ReplyDue;
use crate::vault::Vault;

/// How often replies are checked when no event woke the loop.
const PASS_EVERY: Duration = Duration::from_secs(2);

/// Keeps the sticky comments of GitHub tasks up to date until `shutdown`.
pub async fn run_replies(
    store: Store,
    vault: Vault,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    let mut wake = store.subscribe_events();
    loop {
        wake.mark_unchanged();
        match store.github_replies_due().await {
            Ok(due) => {
                for reply in due {
                    if let Err(e) = update_reply(&store, &vault, &config, &reply).await {
                        tracing::warn!(task = reply.task_id, error = ?e, "could not update the GitHub comment; retrying later");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read pending GitHub replies"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = wake.changed() => {}
            () = tokio::time::sleep(PASS_EVERY) => {}
        }
    }
}

/// A GitHub App's identity, as stored in a `github_app` credential.
#[derive(serde::Deserialize)]
struct AppCredential {
    app_id: u64,
    private_key: String,
}

/// A GitHub client for a project: as the App installation that sent the task's event when an
/// App credential exists, else with the token credential; None when neither exists.
pub async fn github_client(
    store: &Store,
    vault: &Vault,
    config: &Config,
    project_id: i64,
    installation_id: Option<i64>,
) -> anyhow::Result<Option<octocrab::Octocrab>> {
    // The builder is made after each await: it is not Send.
    let builder = || octocrab::Octocrab::builder().base_uri(config.github.api_url.as_str());
    if let Some(installation) = installation_id
        && let Some(app) =
            credentials::reveal_named(store, vault, project_id, &config.github.app_credential)
                .await?
    {
        let app: AppCredential = serde_json::from_str(&app).map_err(|_| {
            anyhow::anyhow!(
                "credential {} must be JSON {{\"app_id\": …, \"private_key\": \"-----BEGIN …\"}}",
                config.github.app_credential
            )
        })?;
        let client = builder()?
            .app_from_rsa_pem(app.app_id.into(), app.private_key.as_bytes())?
            .build()?
            .installation((installation as u64).into())?;
        return Ok(Some(client));
    }
    match credentials::reveal_named(store, vault, project_id, &config.github.token_credential)
        .await?
    {
        Some(token) => Ok(Some(builder()?.personal_token(token).build()?)),
        None => Ok(None),
    }
}

async fn update_reply(
    store: &Store,
    vault: &Vault,
    config: &Config,
    reply: &ReplyDue,
) -> anyhow::Result<()> {
    let Some(github) = github_client(
        store,
        vault,
        config,
        reply.project_id,
        reply.installation_id,
    )
    .await?
    else {
        tracing::warn!(
            task = reply.task_id,
            "no GitHub App or token credential; the issue gets no comment"
        );
        store
            .mark_reply(reply.task_id, reply.comment_id, &reply.shown)
            .await?;
        return Ok(());
    };
    let (owner, repo) = reply
        .repo
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("{} is not owner/repo", reply.repo))?;
    let approval_link = match reply.approval_id {
        Some(id) => {
            let approval = store.approval(id).await?;
            Some(approvals::link_url(
                &LinkSigner::new(vault),
                config,
                &approval,
            ))
        }
        None => None,
    };
    let body = comment_body(config, reply, approval_link.as_deref());
    let issues = github.issues(owner, repo);
    let comment_id = match reply.comment_id {
        Some(id) => {
            issues.update_comment((id as u64).into(), body).await?;
            id
        }
        None => issues
            .create_comment(reply.issue_number as u64, body)
            .await?
            .id
            .into_inner() as i64,
    };
    store
        .mark_reply(reply.task_id, Some(comment_id), &reply.shown)
        .await?;
    Ok(())
}

/// The comment's text for the task's current state.
pub fn comment_body(config: &Config, reply: &ReplyDue, approval_link: Option<&str>) -> String {
    let link = format!(
        "{}/api/v1/tasks/{}",
        config.public_base_url(),
        reply.task_id
    );
    let because = reply
        .status_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let state = match reply.status {
        TaskStatus::Queued => "⏳ queued".to_string(),
        TaskStatus::Running => "🏃 running".to_string(),
        TaskStatus::AwaitingApproval => match approval_link {
            Some(link) => format!("✋ waiting for a human decision: [review and decide]({link})"),
            None => "✋ waiting for a human decision".to_string(),
        },
        TaskStatus::Done => match (&reply.pr_url, &reply.change_note) {
            (Some(pr), _) => format!("✅ done: pull request {pr}"),
            (None, Some(note)) => format!("✅ done ({note})"),
            (None, None) => "✅ done".to_string(),
        },
        TaskStatus::Failed => format!("❌ failed{because}"),
        TaskStatus::RolledBack => "↩️ rolled back".to_string(),
        TaskStatus::Cancelled => "🚫 cancelled".to_string(),
        TaskStatus::BudgetExceeded => format!("💸 stopped at its cost limit{because}"),
    };
    format!(
        "**aiops** task [#{}]({link}) ({} team): {state}\n\n<sub>This comment is updated as the task moves on.</sub>",
        reply.task_id, reply.team
    )
}
