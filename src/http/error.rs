//! How errors become HTTP responses: one JSON shape, `{"error":{"code","message","details"}}`.
//!
//! Internal failures are logged with their detail and answered with a generic message.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::error::Error;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Extra facts, e.g. `{"field": "name"}`.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Db(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        let (message, details) = match &self {
            Error::Db(e) => {
                tracing::error!(error = %e, "database error");
                (
                    "internal error; the server log has the detail".to_string(),
                    json!({}),
                )
            }
            Error::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (
                    "internal error; the server log has the detail".to_string(),
                    json!({}),
                )
            }
            Error::Invalid { field, .. } => (self.to_string(), json!({ "field": field })),
            _ => (self.to_string(), json!({})),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Error::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                match find_source::<serde_path_to_error::Error<serde_json::Error>>(&e) {
                    Some(err) => Error::from_json_path(err),
                    None => Error::invalid("", e.body_text()),
                }
            }
            JsonRejection::JsonSyntaxError(e) => Error::BadRequest(format!(
                "malformed JSON: {}",
                find_source::<serde_json::Error>(&e)
                    .map_or_else(|| e.body_text(), |s| s.to_string())
            )),
            JsonRejection::MissingJsonContentType(_) => {
                Error::BadRequest("expected a body with Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(e) => e.into(),
            other => Error::BadRequest(other.body_text()),
        }
    }
}

impl From<BytesRejection> for Error {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge
        } else {
            Error::BadRequest(rejection.body_text())
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadRequest(format!("bad query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::BadRequest(format!("bad path: {}", rejection.body_text()))
    }
}

fn find_source<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
