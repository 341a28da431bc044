//! aiops as the OAuth 2.1 authorization server of its MCP resource (`/mcp`), so Claude's
//! custom connectors (web, desktop, phone) and other remote MCP clients act as a person who
//! signed in and consented.
//!
//! The flow: a client registers itself (RFC 7591; public with PKCE, or with a secret), sends
//! the person to `/oauth/authorize` (the pages check the request here, the person signs in
//! and consents, a code is issued), exchanges the code with its PKCE verifier for a
//! short-lived access token bound to the resource (RFC 8707) and a refresh token, and
//! rotates the refresh token at each use. A used code or a rotated refresh token that comes
//! back revokes the whole grant (OAuth 2.1 §4.1.3, §4.3.1). A grant carries at most `read`,
//! `write` and `approve`, and a token never has more rights than its person
//! (`permissions::authorize` applies both).
//!
//! `register.rs` holds client registration, `token.rs` the token endpoint and revocation.
//! Only hashes of codes, tokens and client secrets are stored. Errors carry the RFC 6749
//! error codes the HTTP layer answers with; their descriptions never hold a secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Principal, Scope, Scopes, UserStatus, Via};
use crate::store::Store;

mod register;
mod token;

use crate::store::oauth::{OAuthCode, OAuthGrantRow};
pub use register::{Registered, Registration, redirect_allowed, register};
pub use token::{BasicAuth, TokenRequest, Tokens, revoke, token};

/// Access tokens start with this (secret scanners and people recognise them).
pub const ACCESS_PREFIX: &str = "aiops_at_";
/// Refresh tokens start with this.
const REFRESH_PREFIX: &str = "aiops_rt_";
/// How long a code lasts between consent and exchange.
const CODE_SECS: i64 = 300;
/// What a grant may carry; `admin` never goes to an MCP client.
const GRANTABLE: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Approve];
/// Longest client name and redirect URI kept, and most redirect URIs per client.
const MAX_NAME_CHARS: usize = 100;
const MAX_URI_CHARS: usize = 512;
const MAX_REDIRECT_URIS: usize = 8;

/// An OAuth error: its RFC 6749 / 7591 / 8707 code, a description for the client, and the
/// HTTP status the endpoint answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
    pub status: u16,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        let status = if code == "invalid_client" { 401 } else { 400 };
        OAuthError {
            code,
            description: description.into(),
            status,
        }
    }
}

impl From<Error> for OAuthError {
    fn from(error: Error) -> Self {
        tracing::error!(error = %error, "the OAuth store failed");
        OAuthError {
            code: "server_error",
            description: "the service could not complete the request; try again".into(),
            status: 500,
        }
    }
}

type OAuthResult<T> = std::result::Result<T, OAuthError>;

/// What the authorization server publishes and checks against: its issuer (the service's
/// base URL) and the one resource it issues tokens for.
#[derive(Debug, Clone)]
pub struct Site {
    pub issuer: String,
    pub resource: String,
}

impl Site {
    /// The site as a request reaches it: `public_url`, else the request's `Host` (a service
    /// reached on loopback or by its listen address).
    pub fn for_host(config: &Config, host: Option<&str>) -> Self {
        if !config.public_url.is_empty() {
            return Site::new(&config.public_base_url());
        }
        match host.filter(|h| !h.is_empty()) {
            Some(host) => Site::new(&format!("http://{host}")),
            None => Site::new(&config.public_base_url()),
        }
    }

    /// Whether `resource`, as a client names it (a trailing slash aside), is this site's.
    pub fn is_resource(&self, resource: &str) -> bool {
        resource.trim_end_matches('/') == self.resource
    }

    pub fn new(base_url: &str) -> Self {
        let issuer = base_url.trim_end_matches('/').to_string();
        Site {
            resource: format!("{issuer}/mcp"),
            issuer,
        }
    }
}

fn random(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The query of `/oauth/authorize`, every field optional so each absence gets its own error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub code_challenge: String,
    #[serde(default)]
    pub code_challenge_method: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub resource: String,
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// The client or its redirect URI is not known: shown to the person, never redirected
    /// (RFC 6749 §4.1.2.1).
    Show(String),
    /// Sent back to the client's redirect URI with `error` and `state`.
    Redirect { uri: String, error: OAuthError },
}

/// What the person is asked to consent to.
#[derive(Debug, Clone)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub resource: String,
    pub code_challenge: String,
    pub state: String,
}

/// Checks an authorization request: the client and its exact redirect URI first (else
/// nothing is redirected), then PKCE (S256 only), the scopes and the resource.
pub async fn check_authorize(
    store: &Store,
    site: &Site,
    request: &AuthorizeRequest,
) -> std::result::Result<Consent, AuthorizeError> {
    let client = match store.oauth_client(&request.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(AuthorizeError::Show(format!(
                "no client {:?} is registered with this service; the application must register again",
                cut(&request.client_id)
            )));
        }
        Err(e) => return Err(AuthorizeError::Show(e.to_string())),
    };
    let registered: Vec<String> = serde_json::from_str(&client.redirect_uris).unwrap_or_default();
    if !registered.contains(&request.redirect_uri) {
        return Err(AuthorizeError::Show(format!(
            "the redirect URI {:?} is not one {} registered; nothing was sent to it",
            cut(&request.redirect_uri),
            client.name
        )));
    }
    let back = |code: &'static str, description: String| AuthorizeError::Redirect {
        uri: request.redirect_uri.clone(),
        error: OAuthError::new(code, description),
    };
    if request.response_type != "code" {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    if request.code_challenge_method != "S256" || !is_pkce_value(&request.code_challenge) {
        return Err(back("invalid_request", "PKCE is required: code_challenge (43 base64url characters) with code_challenge_method=S256".into()));
    }
    let scopes = parse_scopes(&request.scope).map_err(|d| back("invalid_scope", d))?;
    if !request.resource.is_empty() && !site.is_resource(&request.resource) {
        return Err(back(
            "invalid_target",
            format!("this service issues tokens only for {}", site.resource),
        ));
    }
    Ok(Consent {
        client_id: client.client_id,
        client_name: client.name,
        redirect_uri: request.redirect_uri.clone(),
        scopes,
        resource: site.resource.clone(),
        code_challenge: request.code_challenge.clone(),
        state: request.state.clone(),
    })
}

fn cut(text: &str) -> String {
    text.chars().take(100).collect()
}

fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The scopes asked for (none: every grantable one); Err names an unknown one.
fn parse_scopes(scope: &str) -> std::result::Result<Scopes, String> {
    let mut asked = Vec::new();
    for word in scope.split_whitespace() {
        match GRANTABLE.iter().find(|s| s.as_str() == word) {
            Some(s) => asked.push(*s),
            None => {
                return Err(format!(
                    "{:?} is not a scope here; ask for read, write and approve",
                    cut(word)
                ));
            }
        }
    }
    if asked.is_empty() {
        asked = GRANTABLE.to_vec();
    }
    Ok(Scopes::of(&asked))
}

/// Issues the code for `consent` by `principal`; the URL the browser goes to next.
pub async fn issue_code(
    store: &Store,
    site: &Site,
    principal: &Principal,
    consent: &Consent,
) -> Result<String> {
    let principal_id = principal
        .id
        .ok_or_else(|| Error::Forbidden("only a signed-in person can consent".into()))?;
    let code = random(32);
    store
        .insert_oauth_code(&OAuthCode {
            code_hash: hash(&code),
            client_id: consent.client_id.clone(),
            principal_id,
            redirect_uri: consent.redirect_uri.clone(),
            code_challenge: consent.code_challenge.clone(),
            scopes: consent.scopes.to_string(),
            resource: consent.resource.clone(),
            expires_at: Utc::now() + Duration::seconds(CODE_SECS),
        })
        .await?;
    Ok(redirect_with(
        &consent.redirect_uri,
        &[
            ("code", &code),
            ("state", &consent.state),
            ("iss", &site.issuer),
        ],
    ))
}

/// `uri` with `pairs` added to its query (empty values left out).
pub fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_string();
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            query.append_pair(key, value);
        }
    }
    url.to_string()
}

/// The error `error` sent back to the client of `consent`-to-be at `uri`.
pub fn error_redirect(uri: &str, error: &OAuthError, state: &str, site: &Site) -> String {
    redirect_with(
        uri,
        &[
            ("error", error.code),
            ("error_description", &error.description),
            ("state", state),
            ("iss", &site.issuer),
        ],
    )
}

// ---------------------------------------------------------------------------------------
// The resource's check, "my account"

/// The person an access token acts for, at resource `resource`; Unauthorized when the
/// token is unknown, expired, revoked, for another resource, or its person is disabled.
pub async fn authenticate(store: &Store, token: &str, resource: &str) -> Result<Principal> {
    let refused = |why: &str| Error::Unauthorized(why.to_string());
    let found = store
        .oauth_token(&hash(token))
        .await?
        .filter(|t| t.kind == "access")
        .ok_or_else(|| refused("the access token is unknown"))?;
    if found.revoked_at.is_some() {
        return Err(refused("the access token's grant was revoked"));
    }
    if found.expires_at < Utc::now() {
        return Err(refused("the access token has expired; refresh it"));
    }
    if found.resource != resource {
        return Err(refused("the access token was issued for another resource"));
    }
    let user = store.user_by_id(found.principal_id).await?;
    if user.status == UserStatus::Disabled {
        return Err(refused("the token's user is disabled"));
    }
    if Utc::now() - found.grant_used_at > Duration::minutes(1) {
        store.touch_oauth_grant(found.grant_id).await?;
    }
    let scopes = Scopes::of(
        &found
            .scopes
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect::<Vec<Scope>>(),
    );
    let via = Via::OAuth {
        grant: found.grant_id,
        client: found.client_name,
    };
    auth::principal_of(store, found.principal_id, scopes, None, false, via).await
}

/// The grants `principal` gave that are in force.
pub async fn grants_of(store: &Store, principal: &Principal) -> Result<Vec<OAuthGrantRow>> {
    match principal.id {
        Some(id) => store.oauth_grants_of(id).await,
        None => Ok(Vec::new()),
    }
}

/// Revokes grant `id` of `principal` (their own only).
pub async fn revoke_own_grant(store: &Store, principal: &Principal, id: i64) -> Result<()> {
    let owner = principal
        .id
        .ok_or_else(|| Error::Forbidden("only a person has grants".into()))?;
    if store.revoke_oauth_grant(id, Some(owner)).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("connected application {id}")))
    }
}
