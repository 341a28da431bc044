//! Triggers: turn inbound events (GitHub webhooks, monitoring alerts) into task requests.
//!
//! This module only decides: it verifies signatures and maps a payload to a task request
//! or a reason to ignore it. Storing the delivery and the task (in one transaction) is the
//! store's; answering HTTP is `http::webhooks`'.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::tasks::Priority;

pub mod alerts;
pub mod github;
pub mod reply;

/// What an inbound event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// Create this task (unless one with the same dedup key exists).
    Task(TaskRequest),
    /// Do nothing, for this reason (recorded on the delivery).
    Ignore(String),
}

/// A task an event asks for, before it is bound to a project.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub team: String,
    pub prompt: String,
    pub priority: Priority,
    /// One task per issue, comment or workflow run.
    pub dedup_key: String,
    /// Where it came from (issue URL, alert fingerprint …), kept on the task.
    pub source_ref: Value,
}

/// True when `signature` is `sha256=<hex HMAC-SHA256 of body keyed by secret>`, compared
/// in constant time.
pub fn verify_sha256_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    signature
        .trim()
        .strip_prefix("sha256=")
        .is_some_and(|hex_digest| hmac_sha256_matches(secret, body, hex_digest))
}

/// True when `hex_digest` is the hex HMAC-SHA256 of `message` keyed by `secret`, compared
/// in constant time.
pub fn hmac_sha256_matches(secret: &[u8], message: &[u8], hex_digest: &str) -> bool {
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    mac.verify_slice(&expected).is_ok()
}

/// The `sha256=<hex>` signature of `body`, as senders compute it.
pub fn sign_sha256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time equality of a presented token and the expected one.
pub fn tokens_equal(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_secret_and_body() {
        let signature = sign_sha256(b"secret", b"{\"a\":1}");
        assert!(verify_sha256_signature(b"secret", b"{\"a\":1}", &signature));
        assert!(!verify_sha256_signature(b"other", b"{\"a\":1}", &signature));
        assert!(!verify_sha256_signature(
            b"secret",
            b"{\"a\":2}",
            &signature
        ));
        assert!(!verify_sha256_signature(
            b"secret",
            b"{\"a\":1}",
            "sha1=abc"
        ));
        assert!(!verify_sha256_signature(
            b"secret",
            b"{\"a\":1}",
            "sha256=zz"
        ));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
    }
}
