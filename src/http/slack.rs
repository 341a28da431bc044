//! `POST /webhooks/slack/interactions`: clicks on the buttons of aiops' Slack messages.
//! Authenticated by Slack's signature over the raw body (not by an API token); answered
//! 200 at once, the outcome goes to the click's `response_url`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;

use super::AppState;
use super::extract::header;
use crate::credentials;
use crate::error::{Error, Result};
use crate::notify::slack;

/// The Slack endpoints; outside `/api/v1` and its token check.
pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/slack/interactions", post(interaction))
}

async fn interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<StatusCode> {
    let body = body?;
    let credential = &state.config.notify.slack_signing_secret_credential;
    let secret = credentials::reveal_global(&state.store, &state.vault, credential)
        .await?
        .ok_or_else(|| {
            Error::Unauthorized(format!(
                "no Slack signing secret is configured; store it as the global credential {credential:?}"
            ))
        })?;
    let now = Utc::now();
    slack::verify_request(
        secret.as_bytes(),
        header(&headers, "x-slack-request-timestamp"),
        header(&headers, "x-slack-signature"),
        &body,
        now,
    )?;
    if let Some(click) = slack::parse_interaction(&body)? {
        let notifier = &state.notifier;
        let signer = notifier.link_signer();
        let answer = slack::decide_click(&state.store, signer, &state.config, &click, now).await;
        match click.response_url {
            Some(url) if slack::response_url_allowed(&url, &state.config.notify.slack_api_url) => {
                notifier.answer_in_slack(url, answer);
            }
            Some(_) => tracing::warn!(
                "a Slack click's response_url is not on Slack's hosts; no answer was posted"
            ),
            None => {}
        }
    }
    Ok(StatusCode::OK)
}
