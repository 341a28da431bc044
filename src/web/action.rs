//! A posted button or form that changes one thing: the session's CSRF token and this site's
//! `Origin` are checked, then the work (which checks its own permission with
//! `permissions::authorize`), then one audit entry with channel `dashboard`; the answer is
//! the page it came from, or the error page with the refusal's status.

use std::future::Future;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebState;
use super::layout::PageError;
use super::task_list::status_of;
use super::viewer::Viewer;
use crate::error::Result;

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
    /// Runs `work` once the form is checked, audits it as `action` on `target` and answers
    /// with a redirect to `back`, or the error page.
    pub async fn act(
        self,
        action: &str,
        target: &str,
        back: &str,
        work: impl Future<Output = Result<()>>,
    ) -> Response {
        let outcome = match self.viewer.check_form(self.headers, self.csrf) {
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
