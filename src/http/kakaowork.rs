//! `POST /webhooks/kakaowork/{secret}`: the `submit_action` callbacks KakaoWork posts when a
//! button of aiops' messages is clicked. KakaoWork signs no request, so the Callback URL's
//! last segment is a secret (a global credential, compared in constant time); a wrong one
//! is 404 and leaves at most a bounded audit line. Answered 200 at once; the bot tells the
//! outcome in KakaoWork.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use serde_json::json;

use super::AppState;
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::{Channel, NewAuditEntry};
use crate::notify::kakaowork;
use crate::signing;

/// The KakaoWork endpoints; outside `/api/v1` and its token check.
pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/kakaowork/{secret}", post(callback))
}

async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(secret): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<StatusCode> {
    check_secret(&state, &secret, peer).await?;
    let Some(click) = kakaowork::parse_callback(&body?)? else {
        return Ok(StatusCode::OK);
    };
    let notifier = &state.notifier;
    let signer = notifier.link_signer();
    let answer =
        kakaowork::decide_click(&state.store, signer, &state.config, &click, Utc::now()).await;
    notifier.answer_in_kakaowork(click, answer);
    Ok(StatusCode::OK)
}

/// Ok when `presented` is the configured callback secret; else NotFound (so the endpoint
/// gives nothing away), with an audit line (without what was presented) at most
/// `intake.refusals_audited_per_minute` times a minute per address.
async fn check_secret(state: &AppState, presented: &str, peer: SocketAddr) -> Result<()> {
    let credential = &state.config.notify.kakaowork_callback_secret_credential;
    let secret = credentials::reveal_global(&state.store, &state.vault, credential).await?;
    if secret.is_some_and(|secret| signing::tokens_equal(presented, &secret)) {
        return Ok(());
    }
    if state.guards.audit_refusal(peer.ip()) {
        let entry = NewAuditEntry {
            principal: None,
            action: "kakaowork callback".into(),
            target: "webhooks/kakaowork/{secret}".into(),
            source: peer.ip().to_string(),
            outcome: "refused".into(),
            detail: json!({"channel": Channel::Kakaowork, "reason": "not the callback secret"}),
        };
        if let Err(e) = state.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not write the audit entry of a refused KakaoWork callback");
        }
    }
    tracing::warn!(client = %peer.ip(), "a KakaoWork callback with a wrong or no secret was refused");
    Err(Error::NotFound("no such endpoint".into()))
}
