//! `/oauth/authorize`: where an MCP client (Claude's custom connector, another remote
//! client) sends a person to let it act as them. Signed out, the person signs in first (the
//! reader redirect keeps the request in `next`). The page names the client, where it sends
//! the answer and what it may do; allowing issues a one-time code sent to the client's
//! registered redirect URI, denying sends `access_denied`. The request is checked again
//! when the form comes back (`oauth::check_authorize`), never trusted from hidden fields.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::layout::{Nav, Page, PageError};
use super::viewer::{Viewer, site_of};
use crate::error::Error;
use crate::model::Scope;
use crate::oauth::{self, AuthorizeError, AuthorizeRequest, Consent, OAuthError, Site};

/// The consent form: the request again, the CSRF token and the choice.
#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    decision: String,
    #[serde(flatten)]
    request: AuthorizeRequest,
}

/// `GET /oauth/authorize`: the consent page, or the answer sent back to the client when the
/// request is wrong in a way it may hear of.
pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(request): Query<AuthorizeRequest>,
) -> Response {
    let site = site_of(&state, &headers);
    match oauth::check_authorize(&state.store, &site, &request).await {
        Ok(consent) => page(&viewer, &request, &consent),
        Err(refused) => refusal(&viewer, &site, &request, refused),
    }
}

/// `POST /oauth/authorize`: the person's choice. Allowing issues the code; either way the
/// browser goes back to the client.
pub async fn decide(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let site = site_of(&state, &headers);
    if let Err(e) = viewer.check_declared_form(&headers, form.csrf.as_deref()) {
        viewer.audit(&state, "oauth consent", "oauth", "403").await;
        return PageError(e).into_page(&viewer.locale);
    }
    let consent = match oauth::check_authorize(&state.store, &site, &form.request).await {
        Ok(consent) => consent,
        Err(refused) => return refusal(&viewer, &site, &form.request, refused),
    };
    let target = format!("oauth/clients/{}", consent.client_id);
    if form.decision != "allow" {
        viewer
            .audit(&state, "oauth consent denied", &target, "200")
            .await;
        let denied = OAuthError {
            code: "access_denied",
            description: "the person declined".into(),
            status: 400,
        };
        let uri = oauth::error_redirect(&consent.redirect_uri, &denied, &consent.state, &site);
        return Redirect::to(&uri).into_response();
    }
    match oauth::issue_code(&state.store, &site, &viewer.principal, &consent).await {
        Ok(uri) => {
            viewer
                .audit(&state, "oauth consent allowed", &target, "200")
                .await;
            Redirect::to(&uri).into_response()
        }
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
}

fn refusal(
    viewer: &Viewer,
    site: &Site,
    request: &AuthorizeRequest,
    refused: AuthorizeError,
) -> Response {
    match refused {
        AuthorizeError::Show(message) => {
            PageError(Error::BadRequest(message)).into_page(&viewer.locale)
        }
        AuthorizeError::Redirect { uri, error } => {
            Redirect::to(&oauth::error_redirect(&uri, &error, &request.state, site)).into_response()
        }
    }
}

fn scope_key(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "oauth.scope_read",
        Scope::Write => "oauth.scope_write",
        Scope::Approve => "oauth.scope_approve",
        Scope::Admin => "oauth.scope_admin",
    }
}

/// The consent page; its CSP lets the form's answer go on to the client's redirect URI.
fn page(viewer: &Viewer, request: &AuthorizeRequest, consent: &Consent) -> Response {
    let locale = &viewer.locale;
    let redirect = url::Url::parse(&consent.redirect_uri).ok();
    let host = redirect
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or_default()
        .to_string();
    let hidden = [
        ("response_type", request.response_type.as_str()),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("state", &request.state),
        ("scope", &request.scope),
        ("resource", &request.resource),
    ];
    let body = html! {
        h1 { (locale.tf("oauth.title", &[("client", &consent.client_name)])) }
        p { (locale.t("oauth.intro")) " " strong #consent-user { (viewer.principal.name) } }
        h2 { (locale.t("oauth.may")) }
        ul #consent-scopes {
            @for scope in consent.scopes.to_vec() {
                li data-scope=(scope.as_str()) { (locale.t(scope_key(scope))) }
            }
        }
        p { (locale.t("oauth.limits")) }
        dl.facts {
            dt { (locale.t("oauth.sends_to")) } dd { code { (host) } }
            dt { (locale.t("oauth.resource")) } dd { code { (consent.resource) } }
        }
        form.stack method="post" action="/oauth/authorize" #consent-form {
            input type="hidden" name="csrf" value=(viewer.csrf());
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            div.actions {
                button.primary #consent-allow type="submit" name="decision" value="allow" { (locale.t("oauth.allow")) }
                button #consent-deny type="submit" name="decision" value="deny" { (locale.t("oauth.deny")) }
            }
        }
        p.hint { (locale.t("oauth.revoke_hint")) }
    };
    let mut response = Page {
        title: locale.tf("oauth.title", &[("client", &consent.client_name)]),
        nav: Nav::None,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(StatusCode::OK, body);
    if let Some(origin) = redirect.map(|u| u.origin().ascii_serialization())
        && let Ok(csp) = HeaderValue::from_str(&super::layout::CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        ))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}
