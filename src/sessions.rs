//! TEMPORARY stand-in, replaced by the `sessions` branch's module of the same interface
//! (`COOKIE`, `resolve`, `SessionInfo`, `check_csrf`) when it is merged: here the session
//! cookie carries an API token, so the dashboard can be built and tested before cookie
//! sessions exist. Never merged to main on its own.

use crate::auth;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Principal;
use crate::store::Store;

/// The session cookie's name.
pub const COOKIE: &str = "aiops_session";

/// A resolved session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: i64,
    pub csrf_token: String,
}

/// The principal of a session cookie's value; None when it names no live session.
pub async fn resolve(
    store: &Store,
    _config: &Config,
    cookie_value: &str,
) -> Result<Option<(Principal, SessionInfo)>> {
    match auth::authenticate(store, cookie_value).await {
        Ok(principal) => Ok(Some((
            principal,
            SessionInfo {
                id: 0,
                csrf_token: auth::hash_token(&format!("csrf:{cookie_value}")),
            },
        ))),
        Err(Error::Unauthorized(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ok when `presented` is the session's CSRF token.
pub fn check_csrf(info: &SessionInfo, presented: Option<&str>) -> Result<()> {
    match presented {
        Some(token) if crate::signing::tokens_equal(token, &info.csrf_token) => Ok(()),
        _ => Err(Error::Forbidden(
            "this form's security token does not match your session; reload the page and try again"
                .into(),
        )),
    }
}
