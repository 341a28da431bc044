//! `/sign-in/github`, `/sign-in/oidc` and their callbacks: the pages' side of signing in
//! through a provider (`sso`). Starting sets the flow's state in an HttpOnly cookie scoped to
//! `/sign-in` and sends the browser to the provider; the callback hands the provider's
//! parameters and that cookie to `sso::finish`, then sets the same session cookie a password
//! sign-in sets. A refusal is a page saying why (and `sso` audits it); no code, token or
//! secret is ever shown or logged here.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::i18n::Locale;
use super::sign_in::{cookie, layout, respond, safe_next, see_other, texts_for};
use super::viewer::site_of;
use crate::sessions::{self, Client};
use crate::sso::{self, Callback, Deps, Provider, Refusal, RefusalKind, STATE_COOKIE};

pub fn router() -> axum::Router<WebState> {
    axum::Router::new()
        .route("/sign-in/{provider}", get(start))
        .route("/sign-in/{provider}/callback", get(callback))
}

fn provider(state: &WebState, name: &str) -> Option<Provider> {
    let provider = match name {
        "github" => Provider::Github,
        "oidc" => Provider::Oidc,
        _ => return None,
    };
    provider.configured(&state.config).then_some(provider)
}

fn deps(state: &WebState) -> Deps<'_> {
    Deps {
        store: &state.store,
        config: &state.config,
        vault: &state.vault,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartQuery {
    next: String,
}

async fn start(
    State(state): State<WebState>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<StartQuery>,
) -> Response {
    let Some(provider) = provider(&state, &name) else {
        return refused(
            &headers,
            StatusCode::NOT_FOUND,
            "This sign-in provider is not configured here.",
        );
    };
    let next = safe_next(&query.next).unwrap_or("");
    let base = site_of(&state, &headers).issuer;
    let addr = peer.ip().to_string();
    let client = Client {
        addr: &addr,
        user_agent: None,
    };
    match sso::begin(deps(&state), provider, &base, next, client).await {
        Ok(started) => {
            let cookie = state_cookie(&state, &started.state, 600);
            see_other(&started.authorize_url, vec![cookie])
        }
        Err(refusal) => refusal_page(&headers, &refusal),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CallbackQuery {
    state: String,
    code: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(state): State<WebState>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(provider) = provider(&state, &name) else {
        return refused(
            &headers,
            StatusCode::NOT_FOUND,
            "This sign-in provider is not configured here.",
        );
    };
    let addr = peer.ip().to_string();
    let client = Client {
        addr: &addr,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    let callback = Callback {
        state: &query.state,
        code: query.code.as_deref(),
        error: query.error.as_deref(),
        cookie_state: cookie(&headers, STATE_COOKIE),
    };
    let base = site_of(&state, &headers).issuer;
    match sso::finish(deps(&state), provider, &base, callback, client).await {
        Ok(finished) => {
            let cookies = vec![
                sessions::set_cookie(&state.config, &finished.signed_in.secret),
                state_cookie(&state, "", 0),
            ];
            let next = safe_next(&finished.next).unwrap_or("/");
            see_other(next, cookies)
        }
        Err(refusal) => {
            let mut response = refusal_page(&headers, &refusal);
            if let Ok(value) = state_cookie(&state, "", 0).parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
    }
}

fn state_cookie(state: &WebState, value: &str, max_age: u32) -> String {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{STATE_COOKIE}={value}; Path=/sign-in; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    )
}

/// The page of a refused sign-in: 400 for a broken or stale flow, 429 past the address's
/// rate, 403 for a policy refusal, 502 when the provider failed, 500 for our own failure.
fn refusal_page(headers: &HeaderMap, refusal: &Refusal) -> Response {
    let status = match refusal.kind() {
        RefusalKind::Flow => StatusCode::BAD_REQUEST,
        RefusalKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        RefusalKind::Policy => StatusCode::FORBIDDEN,
        RefusalKind::Provider => StatusCode::BAD_GATEWAY,
        RefusalKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refused(headers, status, &refusal.message)
}

fn refused(headers: &HeaderMap, status: StatusCode, message: &str) -> Response {
    let texts = texts_for(headers);
    let locale = Locale::choose(None, headers);
    let page = layout(
        texts,
        html! {
            h2 { (locale.t("sign_in_providers.refused_title")) }
            p class="error" role="alert" id="sign-in-error" { (message) }
            p { a id="start-again" href="/sign-in" { (locale.t("sign_in_providers.start_again")) } }
        },
    );
    respond(status, page, Vec::new())
}
