//! Who reads a page: the signed-in person from the session cookie (a page without one
//! redirects to `/sign-in`), their CSRF token for the forms, and their language and clock.
//! Every state-changing form is checked with [`Viewer::check_form`]: the session's CSRF
//! token and, when the browser sends one, an `Origin` of this site; and with
//! [`Viewer::require_form`]: the guard `permissions::FORMS` declares for it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::WebState;
use super::i18n::Locale;
use super::layout::{PageError, SignedIn};
use crate::error::{Error, Result};
use crate::model::{Actor, NewAuditEntry, Principal};
use crate::permissions::{self, FormGuard, On, Permission};
use crate::sessions::{self, SessionInfo};

/// The signed-in reader of a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub session: SessionInfo,
    pub locale: Locale,
    /// The client's address, for the audit log.
    pub source: String,
    /// The guard `permissions::FORMS` declares for the form this request posts, if it posts
    /// one (set by `action::admit_declared_forms`).
    pub form: Option<FormGuard>,
}

impl Viewer {
    /// Ok when the reader has `permission` on project `project_id`.
    pub fn may(&self, permission: Permission, project_id: i64) -> bool {
        permissions::authorize(&self.principal, permission, On::Project(project_id)).is_ok()
    }

    /// Ok when the reader has `permission` on project `project_id`; Forbidden otherwise.
    pub fn require(&self, permission: Permission, project_id: i64) -> Result<()> {
        permissions::authorize(&self.principal, permission, On::Project(project_id))
    }

    /// A posted form's checks before its work: [`Viewer::check_form`], then its declared
    /// guard in some project (the work checks it again on the project it touches).
    pub fn check_declared_form(&self, headers: &HeaderMap, presented: Option<&str>) -> Result<()> {
        self.check_form(headers, presented)?;
        self.require_form(On::AnyProject)
    }

    /// Ok when the reader may post this request's form `on` the project(s) it touches, as
    /// its declaration in `permissions::FORMS` says; Forbidden for a form declared nowhere.
    pub fn require_form(&self, on: On) -> Result<()> {
        let guard = self.form.ok_or_else(|| {
            Error::Forbidden("this form is not declared, so it is refused".into())
        })?;
        permissions::admit_form(guard, Some(&self.principal), on)
    }

    /// Whether the reader may post the form declared for `route` `on` the project(s) it
    /// touches: whether the page shows its control.
    pub fn may_post(&self, route: &str, on: On) -> bool {
        permissions::declared_form(route)
            .is_some_and(|guard| permissions::admit_form(guard, Some(&self.principal), on).is_ok())
    }

    /// The session's CSRF token, for the hidden field of every form.
    pub fn csrf(&self) -> &str {
        &self.session.csrf_token
    }

    /// What the page header shows of the reader.
    pub fn signed_in(&self) -> SignedIn<'_> {
        SignedIn {
            login: &self.principal.name,
            admin: self.principal.admin,
            csrf: self.csrf(),
        }
    }

    /// Refuses a posted form whose CSRF token is not the session's, or that a browser sent
    /// from another site.
    pub fn check_form(&self, headers: &HeaderMap, presented: Option<&str>) -> Result<()> {
        same_origin(headers)?;
        sessions::check_csrf(&self.session, presented)
    }

    /// One audit entry for a change made from a page.
    pub async fn audit(&self, state: &WebState, action: &str, target: &str, outcome: &str) {
        let entry = NewAuditEntry {
            principal: Some(Actor::from(self.principal.clone())),
            action: format!("dashboard {action}"),
            target: target.to_string(),
            source: self.source.clone(),
            outcome: outcome.to_string(),
            detail: serde_json::json!({ "via": self.principal.via.to_string(), "channel": "dashboard" }),
        };
        if let Err(e) = state.store.append_audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "could not write the audit log");
        }
    }
}

/// Refuses a request whose `Origin` names another site than the one it was sent to; a
/// request without `Origin` (an old browser, a form posted by a non-browser) passes on to
/// the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> Result<()> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "this form was sent from {origin}, not from this site"
        )))
    }
}

/// The session's principal, if the request carries a valid session cookie.
pub async fn resolve(state: &WebState, parts: &Parts) -> Result<Option<(Principal, SessionInfo)>> {
    let Some(value) = cookie(&parts.headers, sessions::COOKIE) else {
        return Ok(None);
    };
    sessions::resolve(&state.store, &state.config, &value).await
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The reader's language and clock: their settings, then the browser's.
pub async fn locale_of(
    state: &WebState,
    principal: Option<&Principal>,
    headers: &HeaderMap,
) -> Locale {
    let preferences = match principal.and_then(|p| p.id) {
        Some(id) => state.store.preferences(id).await.ok(),
        None => None,
    };
    Locale::choose(preferences.as_ref(), headers)
}

fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".into(), |info| info.0.ip().to_string())
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> std::result::Result<Self, Response> {
        let resolved = resolve(state, parts).await.map_err(|e| {
            let locale = Locale::choose(None, &parts.headers);
            PageError::from(e).into_page(&locale)
        })?;
        let Some((principal, session)) = resolved else {
            let next = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let target = format!("/sign-in?next={}", urlencode(&next));
            return Err(Redirect::to(&target).into_response());
        };
        let locale = locale_of(state, Some(&principal), &parts.headers).await;
        Ok(Viewer {
            principal,
            session,
            locale,
            source: client_address(parts),
            form: parts.extensions.get::<FormGuard>().copied(),
        })
    }
}

/// The reader of a page open to anyone who has its link (the approval page): signed in or
/// not.
pub struct MaybeViewer(pub Option<Viewer>, pub Locale);

impl FromRequestParts<WebState> for MaybeViewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> std::result::Result<Self, Response> {
        let resolved = resolve(state, parts).await.ok().flatten();
        let principal = resolved.as_ref().map(|(p, _)| p);
        let locale = locale_of(state, principal, &parts.headers).await;
        let form = parts.extensions.get::<FormGuard>().copied();
        let viewer = resolved.map(|(principal, session)| Viewer {
            principal,
            session,
            locale,
            source: client_address(parts),
            form,
        });
        Ok(MaybeViewer(viewer, locale))
    }
}

/// `text` as a URL query value.
pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The address the reader reached this service at, and its OAuth issuer and resource:
/// `public_url`, else the request's `Host` (the provider callbacks' base, the consent page's).
pub fn site_of(state: &WebState, headers: &HeaderMap) -> crate::oauth::Site {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    crate::oauth::Site::for_host(&state.config, host)
}
