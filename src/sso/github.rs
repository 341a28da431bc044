//! Sign-in with a GitHub OAuth App: the authorize URL (state, PKCE S256), the code exchanged
//! for a user access token (client secret in the request body, as GitHub documents), and the
//! account read from GitHub's API: `/user`, and `/user/orgs` or `/user/teams` when
//! `[auth.github]` restricts who may sign in. The access token lives only for this call.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use super::{Authorize, Refusal, http, token_refusal};
use crate::config::GithubSignIn;
use crate::error::{Error, Result};

/// Who signed in, as GitHub's API says.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubAccount {
    /// GitHub's numeric user id: stable, unlike the login.
    pub id: i64,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Org {
    login: String,
}

#[derive(Debug, Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

/// The authorize URL for `config`'s app, and the flow's secrets.
pub(super) fn authorize(config: &GithubSignIn, redirect: &str) -> Result<Authorize> {
    let client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(url(AuthUrl::new(endpoint(
            &config.web_url,
            "/login/oauth/authorize",
        )))?)
        .set_redirect_uri(url(RedirectUrl::new(redirect.into()))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:user".into()))
        .add_scope(Scope::new("user:email".into()))
        .set_pkce_challenge(challenge);
    if !config.allowed_orgs.is_empty() || !config.allowed_teams.is_empty() {
        request = request.add_scope(Scope::new("read:org".into()));
    }
    let (url, state) = request.url();
    Ok(Authorize {
        url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        nonce: None,
    })
}

/// Exchanges `code` (with the flow's PKCE verifier) and reads the account; refused when
/// GitHub refuses or the account is outside the allowed organisations and teams.
pub(super) async fn account(
    config: &GithubSignIn,
    secret: &str,
    redirect: &str,
    code: &str,
    pkce_verifier: &str,
) -> std::result::Result<GithubAccount, Refusal> {
    let internal = |e: Error| Refusal::internal(&e);
    let client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(
            url(TokenUrl::new(endpoint(
                &config.web_url,
                "/login/oauth/access_token",
            )))
            .map_err(internal)?,
        )
        .set_redirect_uri(url(RedirectUrl::new(redirect.into())).map_err(internal)?);
    let token = client
        .exchange_code(AuthorizationCode::new(code.into()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.into()))
        .request_async(http())
        .await
        .map_err(|e| token_refusal(&e))?;
    let access = token.access_token().secret();
    let account: GithubAccount = api_get(config, access, "/user").await?;
    if !config.allowed_orgs.is_empty() {
        let orgs: Vec<Org> = api_get(config, access, "/user/orgs?per_page=100").await?;
        let member = orgs.iter().any(|org| {
            let allowed = &config.allowed_orgs;
            allowed.iter().any(|a| a.eq_ignore_ascii_case(&org.login))
        });
        if !member {
            return Err(Refusal::new(
                "not_in_allowed_org",
                format!(
                    "GitHub user {} is not a member of an organisation allowed to sign in here ({}).",
                    account.login,
                    config.allowed_orgs.join(", ")
                ),
            ));
        }
    }
    if !config.allowed_teams.is_empty() {
        let teams: Vec<Team> = api_get(config, access, "/user/teams?per_page=100").await?;
        let member = teams.iter().any(|team| {
            let name = format!("{}/{}", team.organization.login, team.slug);
            config
                .allowed_teams
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&name))
        });
        if !member {
            return Err(Refusal::new(
                "not_in_allowed_team",
                format!(
                    "GitHub user {} is not in a team allowed to sign in here ({}).",
                    account.login,
                    config.allowed_teams.join(", ")
                ),
            ));
        }
    }
    Ok(account)
}

/// GET `path` of GitHub's API with the user's access token, as JSON.
async fn api_get<T: serde::de::DeserializeOwned>(
    config: &GithubSignIn,
    access_token: &str,
    path: &str,
) -> std::result::Result<T, Refusal> {
    let unreadable = |what: &str| {
        tracing::warn!(path, what, "GitHub's API answered a sign-in unexpectedly");
        Refusal::new(
            "provider_error",
            "GitHub did not answer as expected; please try again later.",
        )
    };
    let response = http()
        .get(endpoint(&config.api_url, path))
        .bearer_auth(access_token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|_| unreadable("no answer"))?;
    if !response.status().is_success() {
        return Err(unreadable(response.status().as_str()));
    }
    response
        .json()
        .await
        .map_err(|_| unreadable("not the JSON expected"))
}

fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

fn url<T>(parsed: std::result::Result<T, oauth2::url::ParseError>) -> Result<T> {
    parsed.map_err(|e| Error::Internal(anyhow::anyhow!("a sign-in URL does not parse: {e}")))
}
