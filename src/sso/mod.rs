//! Signing in through a provider: a GitHub OAuth App (`github.rs`) or an OpenID Connect
//! provider (`oidc.rs`), each an authorization-code flow with `state` and PKCE (and a nonce
//! and a signed ID token for OpenID Connect), ending in the same server-side session a
//! password gives.
//!
//! `begin` stores the flow (PKCE verifier, nonce, where to go next) under the SHA-256 of a
//! random `state`, which goes to the provider in the authorize URL and to the browser in a
//! cookie; `finish` takes the flow once, only when the callback brings back the same state
//! in both. Who may sign in (organisations, teams, creating users) is decided here.
//! Boundary: no HTTP server types (the pages pass the callback's parameters in); nothing
//! here logs, stores or returns a code, an access token, a client secret or an ID token;
//! every sign-in and every refusal is audited.

mod accounts;
pub mod github;
pub mod oidc;

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::NewAuditEntry;
use crate::config::ClientSecretSource;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Actor, SessionMethod};
use crate::sessions::{Client, SignedIn};
use crate::store::Store;
use crate::store::sign_in_flows::SignInFlow;
use crate::vault::Vault;

/// How long a started sign-in may take at the provider.
const FLOW_SECS: i64 = 600;

/// The cookie that carries a flow's `state` from `begin` to the callback.
pub const STATE_COOKIE: &str = "aiops_sign_in_state";

/// A sign-in provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Github,
    Oidc,
}

impl Provider {
    /// The provider's name in paths, flows and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Oidc => "oidc",
        }
    }

    /// Whether `[auth.github]` / `[auth.oidc]` configures it.
    pub fn configured(self, config: &Config) -> bool {
        match self {
            Provider::Github => config.auth.github.is_some(),
            Provider::Oidc => config.auth.oidc.is_some(),
        }
    }

    fn method(self) -> SessionMethod {
        match self {
            Provider::Github => SessionMethod::Github,
            Provider::Oidc => SessionMethod::Oidc,
        }
    }
}

/// What a sign-in through a provider reaches.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    pub vault: &'a Vault,
}

/// A started sign-in: the provider's authorize URL, and the state for the browser's cookie.
pub struct Started {
    pub authorize_url: String,
    pub state: String,
}

/// What a provider's authorize step produced.
struct Authorize {
    url: String,
    state: String,
    pkce_verifier: String,
    nonce: Option<String>,
}

/// The parameters of a provider's redirect back, and the state the browser's cookie holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Callback<'a> {
    pub state: &'a str,
    pub code: Option<&'a str>,
    /// The provider's `error` parameter (the person declined, or the provider refused).
    pub error: Option<&'a str>,
    pub cookie_state: Option<&'a str>,
}

/// A refused sign-in: the reason (audited, and shown as a code) and what the person is told.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// What a refusal is about, for how a page answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The flow is broken or stale (state, expiry): start again.
    Flow,
    /// Too many sign-ins started from one address this minute.
    TooMany,
    /// The account may not sign in here (policy, disabled, no account).
    Policy,
    /// The provider failed or answered wrongly (including an ID token failing a check).
    Provider,
    /// This service failed (or is not fully set up).
    Internal,
}

impl Refusal {
    /// What the refusal is about.
    pub fn kind(&self) -> RefusalKind {
        match self.reason {
            "state_mismatch" | "flow_expired" => RefusalKind::Flow,
            "rate_limited" => RefusalKind::TooMany,
            "internal" | "not_configured" => RefusalKind::Internal,
            "provider_error" | "provider_unavailable" | "token_exchange_failed" => {
                RefusalKind::Provider
            }
            reason if reason.starts_with("id_token") => RefusalKind::Provider,
            _ => RefusalKind::Policy,
        }
    }

    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
        }
    }

    /// An internal failure: logged by kind, told as "try again later".
    fn internal(error: &Error) -> Self {
        tracing::error!(error = %error, "a provider sign-in failed");
        Refusal::new(
            "internal",
            "Signing in failed here; please try again later.",
        )
    }
}

/// A finished sign-in: the new session and the same-site path to go to.
pub struct Finished {
    pub signed_in: SignedIn,
    pub next: String,
}

/// Starts a sign-in with `provider`: stores the flow and returns where to send the browser.
/// `base_url` is the address the browser reaches this service at (the callback's base);
/// `next` a same-site path checked by the caller.
pub async fn begin(
    deps: Deps<'_>,
    provider: Provider,
    base_url: &str,
    next: &str,
    client: Client<'_>,
) -> std::result::Result<Started, Refusal> {
    // Each start stores a flow: it counts as a sign-in attempt of the address, like a password.
    let now = Utc::now().timestamp();
    let attempts = deps
        .store
        .count_sign_in_attempt(client.addr, now.div_euclid(60))
        .await
        .map_err(|e| Refusal::internal(&e))?;
    let limit = i64::from(deps.config.auth.sign_in_per_minute);
    let outcome = if attempts > limit {
        Err(Refusal::new(
            "rate_limited",
            "Too many sign-in attempts from this address; please try again in a minute.",
        ))
    } else {
        start_flow(deps, provider, base_url, next).await
    };
    // A refused start is audited; past the rate only once per address and minute, so a
    // flood of starts writes one row.
    if let Err(refusal) = &outcome
        && (refusal.reason != "rate_limited" || attempts == limit + 1)
    {
        let detail =
            json!({ "method": provider.as_str(), "stage": "start", "reason": refusal.reason });
        audit(
            deps.store,
            None,
            "sign_in/start".into(),
            client,
            "refused",
            detail,
        )
        .await;
    }
    outcome
}

/// The provider's authorization URL for a new flow, stored under its state's hash.
async fn start_flow(
    deps: Deps<'_>,
    provider: Provider,
    base_url: &str,
    next: &str,
) -> std::result::Result<Started, Refusal> {
    let internal = |e: Error| Refusal::internal(&e);
    let redirect = callback_url(base_url, provider);
    let authorize = match provider {
        Provider::Github => {
            let config = github_config(deps.config).map_err(internal)?;
            github::authorize(config, &redirect).map_err(internal)?
        }
        Provider::Oidc => {
            let config = oidc_config(deps.config).map_err(internal)?;
            oidc::authorize(config, &redirect).await?
        }
    };
    let flow = SignInFlow {
        provider: provider.as_str().into(),
        pkce_verifier: authorize.pkce_verifier,
        nonce: authorize.nonce,
        next_path: next.into(),
        expires_at: Utc::now() + chrono::Duration::seconds(FLOW_SECS),
    };
    deps.store
        .insert_sign_in_flow(&hash_state(&authorize.state), &flow)
        .await
        .map_err(internal)?;
    Ok(Started {
        authorize_url: authorize.url,
        state: authorize.state,
    })
}

/// Finishes a sign-in from the provider's redirect: the state (against the cookie and the
/// stored flow), the provider's answer, who the account is and whether it may sign in, then
/// a session. Every outcome is audited.
pub async fn finish(
    deps: Deps<'_>,
    provider: Provider,
    base_url: &str,
    callback: Callback<'_>,
    client: Client<'_>,
) -> std::result::Result<Finished, Refusal> {
    let outcome = match identify(deps, provider, base_url, callback).await {
        Ok((principal_id, next)) => accounts::start_session(deps, provider, principal_id, client)
            .await
            .map(|signed_in| Finished { signed_in, next })
            .map_err(|refusal| (Some(principal_id), refusal)),
        Err(refusal) => Err((None, refusal)),
    };
    match outcome {
        Ok(finished) => {
            let principal = &finished.signed_in.principal;
            let actor = Some(Actor::from(principal.clone()));
            let target = format!("sessions/{}", finished.signed_in.info.id);
            let detail = json!({ "method": provider.as_str(), "via": principal.via.to_string() });
            audit(deps.store, actor, target, client, "ok", detail).await;
            Ok(finished)
        }
        Err((principal_id, refusal)) => {
            let actor = match principal_id {
                Some(id) => deps.store.user_by_id(id).await.ok().map(|u| Actor {
                    id: Some(u.id),
                    name: u.login,
                }),
                None => None,
            };
            let target = actor
                .as_ref()
                .map_or_else(|| "users".into(), |a| format!("users/{}", a.name));
            let detail = json!({ "method": provider.as_str(), "reason": refusal.reason });
            audit(deps.store, actor, target, client, "refused", detail).await;
            Err(refusal)
        }
    }
}

/// The user the callback's account is (found, or created by policy) and the path to go to.
async fn identify(
    deps: Deps<'_>,
    provider: Provider,
    base_url: &str,
    callback: Callback<'_>,
) -> std::result::Result<(i64, String), Refusal> {
    let same_state = callback
        .cookie_state
        .is_some_and(|c| !c.is_empty() && crate::signing::tokens_equal(c, callback.state));
    if !same_state {
        return Err(Refusal::new(
            "state_mismatch",
            "This sign-in was not started in this browser (its state does not match). Please start again.",
        ));
    }
    let flow = deps
        .store
        .take_sign_in_flow(&hash_state(callback.state))
        .await
        .map_err(|e| Refusal::internal(&e))?;
    let flow = flow
        .filter(|f| f.provider == provider.as_str() && f.expires_at > Utc::now())
        .ok_or_else(|| {
            Refusal::new(
                "flow_expired",
                "This sign-in has expired or was already used. Please start again.",
            )
        })?;
    if let Some(error) = callback.error {
        return Err(Refusal::new(
            "provider_error",
            format!("The provider did not sign you in ({}).", short(error)),
        ));
    }
    let code = callback.code.filter(|c| !c.is_empty()).ok_or_else(|| {
        Refusal::new("provider_error", "The provider sent no authorization code.")
    })?;
    let redirect = callback_url(base_url, provider);
    let id = match provider {
        Provider::Github => {
            let config = github_config(deps.config).map_err(|e| Refusal::internal(&e))?;
            let secret = client_secret(deps, &config.secret).await?;
            let account =
                github::account(config, &secret, &redirect, code, &flow.pkce_verifier).await?;
            accounts::github_user(deps, config, &account).await?
        }
        Provider::Oidc => {
            let config = oidc_config(deps.config).map_err(|e| Refusal::internal(&e))?;
            let secret = client_secret(deps, &config.secret).await?;
            let nonce = flow.nonce.as_deref().unwrap_or_default();
            let account =
                oidc::account(config, &secret, &redirect, code, &flow.pkce_verifier, nonce).await?;
            accounts::oidc_user(deps, config, &account).await?
        }
    };
    Ok((id, flow.next_path))
}

/// The provider's client secret: its environment variable, else its global credential.
async fn client_secret(
    deps: Deps<'_>,
    source: &ClientSecretSource,
) -> std::result::Result<String, Refusal> {
    let from_env = (!source.client_secret_env.is_empty())
        .then(|| std::env::var(&source.client_secret_env).ok())
        .flatten()
        .filter(|v| !v.is_empty());
    if let Some(secret) = from_env {
        return Ok(secret);
    }
    let name = &source.client_secret_credential;
    match crate::credentials::reveal_global(deps.store, deps.vault, name).await {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => {
            tracing::error!(
                credential = %name,
                env = %source.client_secret_env,
                "no client secret for the sign-in provider; set the variable or store the global credential"
            );
            Err(Refusal::new(
                "not_configured",
                "This sign-in provider is not fully set up here (no client secret); tell an admin.",
            ))
        }
        Err(e) => Err(Refusal::internal(&e)),
    }
}

fn github_config(config: &Config) -> Result<&crate::config::GithubSignIn> {
    config.auth.github.as_ref().ok_or_else(|| {
        Error::NotFound("sign-in with GitHub is not configured ([auth.github])".into())
    })
}

fn oidc_config(config: &Config) -> Result<&crate::config::OidcSignIn> {
    config.auth.oidc.as_ref().ok_or_else(|| {
        Error::NotFound("sign-in with OpenID Connect is not configured ([auth.oidc])".into())
    })
}

/// Where the provider sends the browser back to.
fn callback_url(base_url: &str, provider: Provider) -> String {
    format!(
        "{}/sign-in/{}/callback",
        base_url.trim_end_matches('/'),
        provider.as_str()
    )
}

fn hash_state(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// A provider-given text cut short and limited to plain characters, fit to show and audit.
fn short(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
        .take(64)
        .collect()
}

/// A refused or failed code exchange, told without the provider's answer body.
fn token_refusal<RE, T>(error: &oauth2::RequestTokenError<RE, T>) -> Refusal
where
    RE: std::error::Error + 'static,
    T: oauth2::ErrorResponse + 'static,
{
    use oauth2::RequestTokenError as E;
    let why = match error {
        E::ServerResponse(response) => serde_json::to_value(response)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(short))
            .unwrap_or_else(|| "refused".into()),
        E::Request(_) => "the provider could not be reached".into(),
        E::Parse(..) => "its answer was not understood".into(),
        E::Other(_) => "an unexpected answer".into(),
    };
    tracing::warn!(why = %why, "a provider did not exchange a sign-in code");
    Refusal::new(
        "token_exchange_failed",
        format!("The provider did not accept this sign-in ({why}). Please start again."),
    )
}

/// The client providers are reached with: no redirects followed (a provider's answer is
/// never a redirect to somewhere else), a timeout.
fn http() -> &'static reqwest::Client {
    static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent("aiops")
            .build()
            .unwrap_or_default()
    });
    &CLIENT
}

async fn audit(
    store: &Store,
    principal: Option<Actor>,
    target: String,
    client: Client<'_>,
    outcome: &str,
    detail: serde_json::Value,
) {
    let entry = NewAuditEntry {
        principal,
        action: "sign_in".into(),
        target,
        source: client.addr.to_string(),
        outcome: outcome.into(),
        detail,
    };
    if let Err(e) = store.append_audit(&entry).await {
        tracing::error!(error = %e, "could not write the audit log");
    }
}
