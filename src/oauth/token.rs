//! The token endpoint (RFC 6749 §3.2, OAuth 2.1): codes exchanged with their PKCE verifier,
//! refresh tokens rotated; and revocation (RFC 7009).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    ACCESS_PREFIX, OAuthError, OAuthResult, REFRESH_PREFIX, Site, cut, hash, is_pkce_value, random,
};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::oauth::{OAuthClient, TakenCode};

/// A token request's form; which fields matter depends on `grant_type`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// Revocation (RFC 7009): the token to revoke, and what kind it is (a hint only).
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
}

/// A successful token answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

/// Client credentials from an `Authorization: Basic` header, when sent.
pub type BasicAuth = Option<(String, String)>;

/// Answers a token request: a code exchanged, or a refresh token rotated.
pub async fn token(
    store: &Store,
    config: &Config,
    site: &Site,
    request: TokenRequest,
    basic: BasicAuth,
) -> OAuthResult<Tokens> {
    let client = authenticate_client(store, &request, basic).await?;
    match request.grant_type.as_str() {
        "authorization_code" => exchange_code(store, config, site, &client, &request).await,
        "refresh_token" => refresh(store, config, site, &client, &request).await,
        "" => Err(OAuthError::new("invalid_request", "grant_type is required")),
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!(
                "{:?} is not offered: use authorization_code or refresh_token",
                cut(other)
            ),
        )),
    }
}

/// The client a token or revocation request comes from, with its secret checked.
async fn authenticate_client(
    store: &Store,
    request: &TokenRequest,
    basic: BasicAuth,
) -> OAuthResult<OAuthClient> {
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            request.client_id.clone().unwrap_or_default(),
            request.client_secret.clone(),
        ),
    };
    let unknown = || {
        OAuthError::new(
            "invalid_client",
            "the client is unknown or its secret is wrong",
        )
    };
    let client = store.oauth_client(&id).await?.ok_or_else(unknown)?;
    match (&client.secret_hash, secret) {
        (None, _) => Ok(client),
        (Some(expected), Some(secret)) if *expected == hash(&secret) => Ok(client),
        _ => Err(unknown()),
    }
}

async fn exchange_code(
    store: &Store,
    config: &Config,
    site: &Site,
    client: &OAuthClient,
    request: &TokenRequest,
) -> OAuthResult<Tokens> {
    let invalid = |why: &str| OAuthError::new("invalid_grant", why.to_string());
    let code = request
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::new("invalid_request", "code is required"))?;
    let code = match store.take_oauth_code(&hash(code)).await? {
        TakenCode::Fresh(code) => code,
        TakenCode::Reused { grant_id } => {
            if let Some(grant) = grant_id {
                store.revoke_oauth_grant(grant, None).await?;
            }
            return Err(invalid(
                "the code was used already; the tokens it gave are revoked",
            ));
        }
        TakenCode::Unknown => return Err(invalid("the code is unknown")),
    };
    if code.client_id != client.client_id {
        return Err(invalid("the code was issued to another client"));
    }
    if code.expires_at < Utc::now() {
        return Err(invalid("the code has expired; authorize again"));
    }
    if request
        .redirect_uri
        .as_deref()
        .is_some_and(|u| u != code.redirect_uri)
    {
        return Err(invalid(
            "redirect_uri is not the one the code was issued for",
        ));
    }
    check_target(site, &code.resource, request.resource.as_deref(), "code")?;
    let verifier = request.code_verifier.as_deref().unwrap_or_default();
    if !is_pkce_value(verifier)
        || URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != code.code_challenge
    {
        return Err(invalid("code_verifier does not match the code_challenge"));
    }
    let mut tx = store.begin().await.map_err(Error::from)?;
    let grant_id = crate::store::oauth::insert_oauth_grant(&mut tx, &code).await?;
    let tokens = new_tokens(&mut tx, config, grant_id, &code.scopes).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(tokens)
}

async fn refresh(
    store: &Store,
    config: &Config,
    site: &Site,
    client: &OAuthClient,
    request: &TokenRequest,
) -> OAuthResult<Tokens> {
    let invalid = |why: &str| OAuthError::new("invalid_grant", why.to_string());
    let presented = request
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is required"))?;
    let hashed = hash(presented);
    let Some(token) = store
        .oauth_token(&hashed)
        .await?
        .filter(|t| t.kind == "refresh")
    else {
        return Err(invalid("the refresh token is unknown"));
    };
    if token.client_id != client.client_id {
        return Err(invalid("the refresh token was issued to another client"));
    }
    if token.revoked_at.is_some() {
        return Err(invalid("the grant was revoked; authorize again"));
    }
    if token.used_at.is_some() {
        store.revoke_oauth_grant(token.grant_id, None).await?;
        return Err(invalid(
            "the refresh token was used already; the grant is revoked, authorize again",
        ));
    }
    if token.expires_at < Utc::now() {
        return Err(invalid("the refresh token has expired; authorize again"));
    }
    check_target(site, &token.resource, request.resource.as_deref(), "grant")?;
    let scopes = match request.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        None => token.scopes.clone(),
        Some(asked) => narrower(asked, &token.scopes)?,
    };
    if scopes != token.scopes {
        store.narrow_oauth_grant(token.grant_id, &scopes).await?;
    }
    // Two requests racing with one refresh token: one wins, the other is a replay.
    if !store.use_oauth_refresh_token(&hashed).await? {
        store.revoke_oauth_grant(token.grant_id, None).await?;
        return Err(invalid(
            "the refresh token was used already; the grant is revoked, authorize again",
        ));
    }
    store.touch_oauth_grant(token.grant_id).await?;
    let mut tx = store.begin().await.map_err(Error::from)?;
    let tokens = new_tokens(&mut tx, config, token.grant_id, &scopes).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(tokens)
}

/// Ok when `bound`, the resource a code or grant (`what`) is for, is this site's and, when
/// the client named a resource (RFC 8707), that one; else `invalid_target`.
fn check_target(site: &Site, bound: &str, asked: Option<&str>, what: &str) -> OAuthResult<()> {
    if bound == site.resource && asked.is_none_or(|r| site.is_resource(r)) {
        Ok(())
    } else {
        Err(OAuthError::new(
            "invalid_target",
            format!("the {what} is for {bound}"),
        ))
    }
}

/// `asked` when it is within `granted` (a refresh may narrow the grant, never widen it).
fn narrower(asked: &str, granted: &str) -> OAuthResult<String> {
    let granted: Vec<&str> = granted.split_whitespace().collect();
    if asked.split_whitespace().all(|s| granted.contains(&s)) {
        Ok(asked.split_whitespace().collect::<Vec<_>>().join(" "))
    } else {
        Err(OAuthError::new(
            "invalid_scope",
            "a refresh cannot ask for more than was granted",
        ))
    }
}

async fn new_tokens(
    tx: &mut crate::store::Tx,
    config: &Config,
    grant_id: i64,
    scopes: &str,
) -> Result<Tokens> {
    let access = format!("{ACCESS_PREFIX}{}", random(32));
    let refresh = format!("{REFRESH_PREFIX}{}", random(32));
    let secs = config.mcp.access_token_secs;
    let now = Utc::now();
    let access_until = now + Duration::seconds(i64::try_from(secs).unwrap_or(3600));
    let refresh_until =
        now + Duration::days(i64::try_from(config.mcp.refresh_token_days).unwrap_or(30));
    crate::store::oauth::insert_oauth_token(tx, grant_id, "access", &hash(&access), access_until)
        .await?;
    crate::store::oauth::insert_oauth_token(
        tx,
        grant_id,
        "refresh",
        &hash(&refresh),
        refresh_until,
    )
    .await?;
    Ok(Tokens {
        access_token: access,
        token_type: "Bearer",
        expires_in: secs,
        refresh_token: refresh,
        scope: scopes.to_string(),
    })
}

/// Revokes the grant of `token` (an access or a refresh token) when it is `client`'s; an
/// unknown token is not an error (RFC 7009 §2.2).
pub async fn revoke(
    store: &Store,
    request: &TokenRequest,
    token: &str,
    basic: BasicAuth,
) -> OAuthResult<()> {
    let client = authenticate_client(store, request, basic).await?;
    if let Some(found) = store.oauth_token(&hash(token)).await?
        && found.client_id == client.client_id
    {
        store.revoke_oauth_grant(found.grant_id, None).await?;
    }
    Ok(())
}
