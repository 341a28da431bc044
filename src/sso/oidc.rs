//! Sign-in with an OpenID Connect provider: discovery (`<issuer>/.well-known/openid-configuration`
//! and its JWKS, fetched at each step so rotated keys are seen), the authorize URL (state,
//! PKCE S256, nonce), the code exchange (client secret by HTTP Basic), and the ID token
//! checked by `openidconnect`: signature against the JWKS, issuer, audience, expiry, nonce.
//! Its claims are read only after that check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope,
};

use super::{Authorize, Refusal, http, token_refusal};
use crate::config::OidcSignIn;

/// The client a discovery document gives: authorize and token endpoints from the document.
type Discovered = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Who signed in, from a verified ID token.
#[derive(Debug, Clone)]
pub struct OidcAccount {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: Option<String>,
    pub name: Option<String>,
    /// Every claim of the verified token, for `[auth.oidc] roles`.
    pub claims: serde_json::Value,
}

/// The authorize URL from the provider's discovery document, and the flow's secrets.
pub(super) async fn authorize(
    config: &OidcSignIn,
    redirect: &str,
) -> std::result::Result<Authorize, Refusal> {
    let client = discover(config, None, redirect).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    Ok(Authorize {
        url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        nonce: Some(nonce.secret().clone()),
    })
}

/// Exchanges `code` (with the flow's PKCE verifier) and verifies the ID token it brings
/// (signature, issuer, audience, expiry, the flow's `nonce`).
pub(super) async fn account(
    config: &OidcSignIn,
    secret: &str,
    redirect: &str,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> std::result::Result<OidcAccount, Refusal> {
    let client = discover(config, Some(secret), redirect).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.into()))
        .map_err(|_| {
            Refusal::new(
                "provider_error",
                "The provider's discovery document names no token endpoint.",
            )
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.into()))
        .request_async(http())
        .await
        .map_err(|e| token_refusal(&e))?;
    let id_token = response
        .extra_fields()
        .id_token()
        .ok_or_else(|| Refusal::new("id_token_invalid", "The provider sent no ID token."))?;
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &Nonce::new(nonce.into()))
        .map_err(|e| id_token_refusal(&e))?;
    let all = id_token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    Ok(OidcAccount {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        username: claims.preferred_username().map(|u| u.to_string()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        claims: all,
    })
}

/// The provider's client from its discovery document (with `secret` for the token endpoint).
async fn discover(
    config: &OidcSignIn,
    secret: Option<&str>,
    redirect: &str,
) -> std::result::Result<Discovered, Refusal> {
    let unavailable = |what: &str| {
        tracing::warn!(issuer = %config.issuer_url, what, "OpenID Connect discovery failed");
        Refusal::new(
            "provider_unavailable",
            format!(
                "{} could not be reached or did not describe itself; please try again later.",
                config.name
            ),
        )
    };
    let issuer =
        IssuerUrl::new(config.issuer_url.clone()).map_err(|_| unavailable("issuer URL"))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http())
        .await
        .map_err(|e| unavailable(&e.to_string()))?;
    let redirect = RedirectUrl::new(redirect.into()).map_err(|_| unavailable("redirect URL"))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(config.client_id.clone()),
        secret.map(|s| ClientSecret::new(s.into())),
    )
    .set_redirect_uri(redirect))
}

/// An ID token that failed a check: which check, never the token.
fn id_token_refusal(error: &ClaimsVerificationError) -> Refusal {
    let (reason, check) = match error {
        ClaimsVerificationError::InvalidNonce(_) => ("id_token_nonce", "nonce"),
        ClaimsVerificationError::SignatureVerification(_) => ("id_token_signature", "signature"),
        ClaimsVerificationError::Expired(_) => ("id_token_expired", "expiry"),
        ClaimsVerificationError::InvalidAudience(_) => ("id_token_audience", "audience"),
        ClaimsVerificationError::InvalidIssuer(_) => ("id_token_issuer", "issuer"),
        _ => ("id_token_invalid", "claims"),
    };
    tracing::warn!(check, "an ID token failed verification");
    Refusal::new(
        reason,
        format!("The provider's ID token failed the {check} check; this sign-in is refused."),
    )
}
