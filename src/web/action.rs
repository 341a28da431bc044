//! A posted button or form that changes one thing. Every form is declared in
//! `permissions::FORMS` ([`admit_declared_forms`] refuses one that is not, and hands the
//! handler its guard); the session's CSRF token and this site's `Origin` are checked, then
//! the work (which checks the declared guard on its project with `Viewer::require_form`),
//! then one audit entry with channel `dashboard`; the answer is the page it came from, or
//! the error page with the refusal's status.

use std::future::Future;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebState;
use super::i18n::Locale;
use super::layout::PageError;
use super::task_list::status_of;
use super::viewer::{MaybeViewer, Viewer};
use crate::error::{Error, Result};
use crate::permissions;

/// Refuses (403, in the reader's language: their chosen one when signed in, else their
/// browser's) a request that changes something on a route `permissions::FORMS` does not
/// declare; a declared one goes on with its `FormGuard` in the request's extensions, for
/// [`Viewer::require_form`].
pub async fn admit_declared_forms(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned());
    match route.as_deref().and_then(permissions::declared_form) {
        Some(guard) => {
            request.extensions_mut().insert(guard);
            next.run(request).await
        }
        None => {
            tracing::error!(route = ?route, "a dashboard form is not declared in permissions::FORMS");
            let (mut parts, _) = request.into_parts();
            let locale = match MaybeViewer::from_request_parts(&mut parts, &state).await {
                Ok(MaybeViewer(_, locale)) => locale,
                Err(_) => Locale::choose(None, &parts.headers),
            };
            PageError(Error::Forbidden(locale.t("error.undeclared_form"))).into_page(&locale)
        }
    }
}

/// A form that is only a button: its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct ButtonForm {
    #[serde(default)]
    pub csrf: Option<String>,
}

/// Who posted what: the request around a form.
pub struct Posted<'a> {
    pub state: &'a WebState,
    pub viewer: &'a Viewer,
    pub headers: &'a HeaderMap,
    pub csrf: Option<&'a str>,
}

impl Posted<'_> {
    /// Runs `work` once the form is checked (its token, its origin, and its declared guard in
    /// some project; `work` checks the guard on the project it touches), audits it as
    /// `action` on `target` and answers with a redirect to `back`, or the error page.
    pub async fn act(
        self,
        action: &str,
        target: &str,
        back: &str,
        work: impl Future<Output = Result<()>>,
    ) -> Response {
        let checked = self.viewer.check_declared_form(self.headers, self.csrf);
        let outcome = match checked {
            Ok(()) => work.await,
            Err(e) => Err(e),
        };
        let status = match &outcome {
            Ok(()) => "200".to_string(),
            Err(e) => status_of(e),
        };
        self.viewer.audit(self.state, action, target, &status).await;
        match outcome {
            Ok(()) => Redirect::to(back).into_response(),
            Err(e) => PageError(e).into_page(&self.viewer.locale),
        }
    }
}
