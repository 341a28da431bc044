//! Dynamic client registration (RFC 7591): open, each redirect URI allowed by `[mcp]`.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{
    MAX_NAME_CHARS, MAX_REDIRECT_URIS, MAX_URI_CHARS, OAuthError, OAuthResult, hash, random,
};
use crate::config::Config;
use crate::store::Store;
use crate::store::oauth::OAuthClient;

/// A client's registration request; unknown fields are ignored, as RFC 7591 asks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Registration {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub client_name: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
}

/// The registered client, as RFC 7591 §3.2.1 answers; the secret is shown only here.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub client_id_issued_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<&'static str>,
    pub response_types: Vec<&'static str>,
}

/// Registers a client whose redirect URIs `[mcp]` allows.
pub async fn register(
    store: &Store,
    config: &Config,
    request: Registration,
) -> OAuthResult<Registered> {
    let method = request
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_post" | "client_secret_basic"
    ) {
        return Err(OAuthError::new(
            "invalid_client_metadata",
            format!(
                "token_endpoint_auth_method {method:?} is not supported: use none, client_secret_post or client_secret_basic"
            ),
        ));
    }
    let asks = |list: &Option<Vec<String>>, allowed: &[&str]| {
        list.iter().flatten().all(|v| allowed.contains(&v.as_str()))
    };
    if !asks(
        &request.grant_types,
        &["authorization_code", "refresh_token"],
    ) || !asks(&request.response_types, &["code"])
    {
        return Err(OAuthError::new(
            "invalid_client_metadata",
            "only the authorization_code and refresh_token grants and the code response are offered",
        ));
    }
    check_redirect_uris(config, &request.redirect_uris)?;
    let name: String = request
        .client_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "MCP client".into())
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let secret = (method != "none").then(|| random(32));
    let client = OAuthClient {
        client_id: format!("aiops-client-{}", random(16)),
        secret_hash: secret.as_deref().map(hash),
        auth_method: method.clone(),
        name: name.clone(),
        redirect_uris: serde_json::to_string(&request.redirect_uris).unwrap_or_default(),
        created_at: Utc::now(),
    };
    if !store
        .insert_oauth_client(&client, i64::from(config.mcp.max_clients))
        .await?
    {
        return Err(OAuthError {
            code: "temporarily_unavailable",
            description: "too many clients are registered; try again tomorrow or ask an admin to raise mcp.max_clients".into(),
            status: 503,
        });
    }
    Ok(Registered {
        client_id: client.client_id,
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: client.created_at.timestamp(),
        client_name: name,
        redirect_uris: request.redirect_uris,
        token_endpoint_auth_method: method,
        grant_types: vec!["authorization_code", "refresh_token"],
        response_types: vec!["code"],
    })
}

fn check_redirect_uris(config: &Config, uris: &[String]) -> OAuthResult<()> {
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            "invalid_redirect_uri",
            format!("give 1 to {MAX_REDIRECT_URIS} redirect_uris"),
        ));
    }
    for uri in uris {
        if let Err(why) = redirect_allowed(config, uri) {
            return Err(OAuthError::new(
                "invalid_redirect_uri",
                format!("{}: {why}", uri.chars().take(100).collect::<String>()),
            ));
        }
    }
    Ok(())
}

/// Whether `uri` may receive codes: https to a host in `mcp.redirect_hosts`, or http to the
/// loopback interface when `mcp.loopback_redirects` (RFC 8252 §7.3); never a fragment or
/// credentials.
pub fn redirect_allowed(config: &Config, uri: &str) -> std::result::Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| "not an absolute URL".to_string())?;
    if uri.len() > MAX_URI_CHARS
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "must be at most {MAX_URI_CHARS} characters, with no fragment and no credentials"
        ));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let loopback = matches!(host.as_str(), "127.0.0.1" | "[::1]" | "localhost");
    match url.scheme() {
        "https"
            if config
                .mcp
                .redirect_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host)) =>
        {
            Ok(())
        }
        "http" | "https" if loopback && config.mcp.loopback_redirects => Ok(()),
        "https" => Err(format!(
            "{host} is not among the hosts this service sends codes to (mcp.redirect_hosts)"
        )),
        _ => Err("must be https (or http to 127.0.0.1, [::1] or localhost)".into()),
    }
}
