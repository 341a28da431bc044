//! The dashboard's own stylesheet and script, compiled into the binary and served under
//! `/static/` with a content hash in the URL, so browsers keep them until they change.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const STYLESHEET: &str = include_str!("static/app.css");
const SCRIPT: &str = include_str!("static/app.js");

/// The first 12 hex digits of the SHA-256 of both files: part of their URLs.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    hash.update(STYLESHEET);
    hash.update(SCRIPT);
    hex::encode(hash.finalize())[..12].to_string()
});

/// The stylesheet's URL.
pub fn stylesheet_url() -> String {
    format!("/static/{}/app.css", *VERSION)
}

/// The script's URL.
pub fn script_url() -> String {
    format!("/static/{}/app.js", *VERSION)
}

/// `GET /static/{version}/{file}`: a file of this build, cached for a year (its URL changes
/// with its content); any other version or name is a 404.
pub async fn serve(Path((version, file)): Path<(String, String)>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if version != *VERSION {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
