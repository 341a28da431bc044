//! Request extractors whose rejections are the service's `Error`, so every malformed
//! request gets the same JSON error shape.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::Error;

/// A JSON body; syntax errors → 400, wrong fields → 422 naming the field, too big → 413.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

/// A query string; a malformed one → 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct ApiQuery<T>(pub T);

/// Path parameters; a malformed one → 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct ApiPath<T>(pub T);

/// A request header's trimmed value; None when it is missing, empty or not text.
pub fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
