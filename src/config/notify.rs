//! `[notify]`: how notifications reach Slack, KakaoWork and webhooks, and how their buttons'
//! clicks come back.

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};
use crate::model::Language;

/// How notifications reach Slack, KakaoWork and webhooks (`src/notify/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub workers: usize,
    pub slack_api_url: String,
    pub kakaowork_api_url: String,
    pub slack_signing_secret_credential: String,
    /// The global credential holding the secret path segment of KakaoWork's callback URL
    /// (`/webhooks/kakaowork/{secret}`); KakaoWork signs no request, so the URL is the secret.
    pub kakaowork_callback_secret_credential: String,
    /// The language of KakaoWork's buttons and of what aiops answers a click there.
    pub kakaowork_language: Language,
    pub max_attempts: i64,
    pub backoff_ms: u64,
    pub request_timeout_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            slack_api_url: "https://slack.com/api".into(),
            kakaowork_api_url: "https://api.kakaowork.com".into(),
            slack_signing_secret_credential: "slack-signing-secret".into(),
            kakaowork_callback_secret_credential: "kakaowork-callback-secret".into(),
            kakaowork_language: Language::Ko,
            max_attempts: 8,
            backoff_ms: 10_000,
            request_timeout_secs: 10,
        }
    }
}

impl NotifyConfig {
    /// The services' URLs and the retry bounds.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("notify.slack_api_url", &self.slack_api_url),
            ("notify.kakaowork_api_url", &self.kakaowork_api_url),
        ] {
            if !matches!(url::Url::parse(value), Ok(u) if ["http", "https"].contains(&u.scheme())) {
                return bad(
                    key,
                    format!("{value:?} is not an http(s) URL; use e.g. the service's default"),
                );
            }
        }
        if self.max_attempts < 1 || self.request_timeout_secs == 0 || self.backoff_ms == 0 {
            return bad(
                "notify.max_attempts / request_timeout_secs / backoff_ms",
                "must be at least 1".into(),
            );
        }
        Ok(())
    }
}
