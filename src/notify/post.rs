//! One HTTP send to a notification channel, and why it failed: what every channel sender
//! (Slack, KakaoWork, the generic webhook) uses and what the deliverer records.

/// Why a send failed, and whether trying again may help. Never holds a secret or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub retryable: bool,
    pub reason: String,
}

impl SendError {
    /// A failure that may pass: the network, the service's own trouble, a rate limit.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            retryable: true,
            reason: reason.into(),
        }
    }

    /// A failure that will not pass by itself: a refusal, a missing or wrong credential.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            retryable: false,
            reason: reason.into(),
        }
    }
}

/// Sends `request` to `service`; its answer's body when it is a 2xx.
pub(super) async fn post(
    request: reqwest::RequestBuilder,
    service: &str,
) -> Result<String, SendError> {
    let response = request
        .send()
        .await
        .map_err(|e| SendError::retry(format!("{service}: {}", without_url(e))))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(text);
    }
    // The remote's answer is not kept: the error is shown to viewers, and a target could
    // answer with anything it likes (or what an internal service said).
    let reason = format!("{service} answered HTTP {}", status.as_u16());
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(SendError::retry(reason))
    } else {
        Err(SendError::permanent(reason))
    }
}

/// What went wrong, with its causes (a refused address, a refused connection), without the
/// URL: reqwest's errors name it, and it may be a secret (a webhook URL).
fn without_url(error: reqwest::Error) -> String {
    with_causes(&error.without_url())
}

/// `error` and each of its sources, joined by ": ".
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusing receiver's answer never reaches the error viewers read.
    #[tokio::test]
    async fn a_refusal_keeps_no_remote_body() {
        let receiver = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                "internal: db password is hunter2",
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        let error = post(reqwest::Client::new().post(url), "the webhook")
            .await
            .unwrap_err();
        assert_eq!(error, SendError::permanent("the webhook answered HTTP 400"));
    }
}
