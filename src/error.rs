//! The one error type of the service, shared by the domain, the CLI and the HTTP layer.
//!
//! Variants name outcomes, not causes. The HTTP mapping lives in `http::error`; the
//! internal variants carry detail for the log, never for the client.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is not well-formed (unparseable JSON, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials were presented.
    #[error("authentication required: {0}")]
    Unauthorized(String),
    /// The caller is known but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request collides with the current state (duplicate name, resource in use).
    #[error("{0}")]
    Conflict(String),
    /// Over a limit on how much one client may ask for; try again after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The body is larger than allowed.
    #[error("request body is larger than the server accepts (http.max_body_bytes)")]
    PayloadTooLarge,
    /// A field has a value the service cannot accept.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A database failure.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Anything else that is not the caller's fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// Shorthand for an invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A short stable name of the outcome (`not_found`, `invalid`, …) for clients that
    /// branch on it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge => "payload_too_large",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::Invalid { .. } => "invalid",
            Error::Db(_) | Error::Internal(_) => "internal",
        }
    }

    /// An invalid field from a JSON value that does not deserialize, named by the path to
    /// it, or for a missing or unknown field by the field's own name.
    pub fn from_json_path(err: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.inner().to_string();
        // serde reports a missing field at its parent's path, an unknown one at its own.
        let named = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), named) {
            (".", Some(name)) => name.to_string(),
            (path, Some(name)) => format!("{path}.{name}"),
            (path, None) => path.to_string(),
        };
        Self::invalid(field, inner)
    }
}

/// Result with the service's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
