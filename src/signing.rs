//! HMAC signing and verification, for every signature aiops makes or checks: GitHub's and
//! the generic webhooks' `sha256=` signatures, Slack's `v0=` request signatures, and the
//! approval links. Comparisons are in constant time.
//!
//! Boundary: this module only computes and compares; it stores nothing and talks to no
//! network. The approval links' key is derived from the vault's master key.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::vault::Vault;

type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 of `parts` (concatenated) keyed by `key`.
fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
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
    mac(secret, &[message]).verify_slice(&expected).is_ok()
}

/// The `sha256=<hex>` signature of `body`, as senders compute it.
pub fn sign_sha256(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, &[body]).finalize().into_bytes())
    )
}

/// Constant-time equality of a presented token and the expected one.
pub fn tokens_equal(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Slack's `v0=<hex>` signature of a request sent at `timestamp` with `body`.
pub fn slack_signature(signing_secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let digest = mac(
        signing_secret,
        &[format!("v0:{timestamp}:").as_bytes(), body],
    )
    .finalize();
    format!("v0={}", hex::encode(digest.into_bytes()))
}

/// True when `signature` is Slack's `v0=` signature of `body` sent at `timestamp`,
/// compared in constant time.
pub fn verify_slack_signature(
    signing_secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Some(Ok(expected)) = signature.strip_prefix("v0=").map(hex::decode) else {
        return false;
    };
    mac(
        signing_secret,
        &[format!("v0:{timestamp}:").as_bytes(), body],
    )
    .verify_slice(&expected)
    .is_ok()
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this approval link is not valid: it was changed or cut short")]
    Tampered,
    /// The signature holds, so the approval it named is known.
    #[error("this approval link expired at {at}")]
    Expired { approval_id: i64, at: DateTime<Utc> },
}

impl LinkError {
    /// The approval the link named, when its signature held.
    pub fn approval_id(&self) -> Option<i64> {
        match self {
            Self::Tampered => None,
            Self::Expired { approval_id, .. } => Some(*approval_id),
        }
    }
}

/// Signs and checks approval links. The key is derived from the vault's master key, so
/// every node of one store accepts the links of the others, and a key rotation retires them.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// The signer of this vault.
    pub fn new(vault: &Vault) -> Self {
        Self {
            key: vault.derived_key("approval-links"),
        }
    }

    fn mac(&self, approval_id: i64, expires: i64) -> HmacSha256 {
        mac(
            &self.key,
            &[format!("approval:{approval_id}:{expires}").as_bytes()],
        )
    }

    /// The token of a link opening `approval_id` until `expires`.
    pub fn token(&self, approval_id: i64, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let signature = hex::encode(self.mac(approval_id, expires).finalize().into_bytes());
        format!("{approval_id}.{expires}.{signature}")
    }

    /// The approval id a token opens, if its signature holds and it has not expired.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<i64, LinkError> {
        let mut parts = token.splitn(3, '.');
        let (Some(id), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Tampered);
        };
        let (Ok(id), Ok(expires), Ok(signature)) =
            (id.parse(), expires.parse(), hex::decode(signature))
        else {
            return Err(LinkError::Tampered);
        };
        self.mac(id, expires)
            .verify_slice(&signature)
            .map_err(|_| LinkError::Tampered)?;
        unexpired(id, expires, now)?;
        Ok(id)
    }

    fn decision_mac(&self, approval_id: i64, decision: &str, expires: i64) -> HmacSha256 {
        mac(
            &self.key,
            &[format!("decision:{approval_id}:{decision}:{expires}").as_bytes()],
        )
    }

    /// The value of a chat button that takes `decision` on `approval_id` until `expires`:
    /// the three and their signature, so neither the approval, the decision nor the expiry
    /// can be changed (a chat service that signs no request, such as KakaoWork, carries it).
    pub fn decision_token(
        &self,
        approval_id: i64,
        decision: &str,
        expires: DateTime<Utc>,
    ) -> String {
        let expires = expires.timestamp();
        let signature = self.decision_mac(approval_id, decision, expires).finalize();
        format!(
            "{approval_id}.{decision}.{expires}.{}",
            hex::encode(signature.into_bytes())
        )
    }

    /// The approval id and decision a button value takes, if its signature holds and it has
    /// not expired.
    pub fn verify_decision_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(i64, String), LinkError> {
        let parts: Vec<&str> = token.splitn(4, '.').collect();
        let [id, decision, expires, signature] = parts[..] else {
            return Err(LinkError::Tampered);
        };
        let (Ok(id), Ok(expires), Ok(signature)) =
            (id.parse(), expires.parse(), hex::decode(signature))
        else {
            return Err(LinkError::Tampered);
        };
        self.decision_mac(id, decision, expires)
            .verify_slice(&signature)
            .map_err(|_| LinkError::Tampered)?;
        unexpired(id, expires, now)?;
        Ok((id, decision.to_string()))
    }
}

/// Refuses a signed approval token past its expiry (a Unix time).
fn unexpired(approval_id: i64, expires: i64, now: DateTime<Utc>) -> Result<(), LinkError> {
    let at = DateTime::from_timestamp(expires, 0).ok_or(LinkError::Tampered)?;
    if at <= now {
        return Err(LinkError::Expired { approval_id, at });
    }
    Ok(())
}

/// Why an identity link token was refused before the store was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityLinkError {
    #[error("this link is not valid: it was changed or cut short")]
    Tampered,
    #[error("this link expired at {0}; click the button in chat again for a new one")]
    Expired(DateTime<Utc>),
}

impl LinkSigner {
    fn identity_mac(&self, nonce: &str, expires: i64) -> HmacSha256 {
        mac(
            &self.key,
            &[format!("identity-link:{nonce}:{expires}").as_bytes()],
        )
    }

    /// A one-time identity link token valid until `expires`: `nonce` (random hex, which makes
    /// each token unique), the expiry and their signature.
    pub fn identity_token(&self, nonce: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let signature = hex::encode(self.identity_mac(nonce, expires).finalize().into_bytes());
        format!("{nonce}.{expires}.{signature}")
    }

    /// Checks an identity link token's signature and expiry (its single use is the store's).
    pub fn verify_identity_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), IdentityLinkError> {
        let mut parts = token.splitn(3, '.');
        let (Some(nonce), Some(expires), Some(signature)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentityLinkError::Tampered);
        };
        let (Ok(expires), Ok(signature)) = (expires.parse::<i64>(), hex::decode(signature)) else {
            return Err(IdentityLinkError::Tampered);
        };
        self.identity_mac(nonce, expires)
            .verify_slice(&signature)
            .map_err(|_| IdentityLinkError::Tampered)?;
        let at = DateTime::from_timestamp(expires, 0).ok_or(IdentityLinkError::Tampered)?;
        if at <= now {
            return Err(IdentityLinkError::Expired(at));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

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

    #[test]
    fn links_open_one_approval_until_they_expire() {
        let signer = LinkSigner { key: [7; 32] };
        let now = Utc::now();
        let token = signer.token(42, now + Duration::hours(1));
        assert_eq!(signer.verify(&token, now), Ok(42));
        assert!(matches!(
            signer.verify(&token, now + Duration::hours(2)),
            Err(LinkError::Expired {
                approval_id: 42,
                ..
            })
        ));
        let other_id = token.replacen("42.", "43.", 1);
        assert_eq!(signer.verify(&other_id, now), Err(LinkError::Tampered));
        let longer = {
            let (head, _) = token.rsplit_once('.').unwrap();
            let (id, _) = head.split_once('.').unwrap();
            format!(
                "{id}.{}.{}",
                (now + Duration::days(365)).timestamp(),
                token.rsplit_once('.').unwrap().1
            )
        };
        assert_eq!(signer.verify(&longer, now), Err(LinkError::Tampered));
        let other_key = LinkSigner { key: [8; 32] };
        assert_eq!(other_key.verify(&token, now), Err(LinkError::Tampered));
        assert_eq!(signer.verify("garbage", now), Err(LinkError::Tampered));
    }

    #[test]
    fn decision_values_take_one_decision_on_one_approval_until_they_expire() {
        let signer = LinkSigner { key: [7; 32] };
        let now = Utc::now();
        let value = signer.decision_token(42, "approve", now + Duration::hours(1));
        assert_eq!(
            signer.verify_decision_token(&value, now),
            Ok((42, "approve".to_string()))
        );
        assert!(matches!(
            signer.verify_decision_token(&value, now + Duration::hours(2)),
            Err(LinkError::Expired {
                approval_id: 42,
                ..
            })
        ));
        for changed in [
            value.replacen("approve", "reject", 1),
            value.replacen("42.", "43.", 1),
            format!("{value}0"),
            "garbage".to_string(),
        ] {
            assert_eq!(
                signer.verify_decision_token(&changed, now),
                Err(LinkError::Tampered),
                "{changed}"
            );
        }
        // A link's token is not a button's value, nor the other way round.
        let link = signer.token(42, now + Duration::hours(1));
        assert_eq!(
            signer.verify_decision_token(&link, now),
            Err(LinkError::Tampered)
        );
        assert_eq!(signer.verify(&value, now), Err(LinkError::Tampered));
    }

    #[test]
    fn identity_tokens_verify_until_they_expire_and_only_as_signed() {
        let signer = LinkSigner { key: [7; 32] };
        let now = Utc::now();
        let token = signer.identity_token("ab12", now + Duration::minutes(15));
        assert_eq!(signer.verify_identity_token(&token, now), Ok(()));
        assert!(matches!(
            signer.verify_identity_token(&token, now + Duration::minutes(16)),
            Err(IdentityLinkError::Expired(_))
        ));
        let other_nonce = token.replacen("ab12", "ab13", 1);
        assert_eq!(
            signer.verify_identity_token(&other_nonce, now),
            Err(IdentityLinkError::Tampered)
        );
        // An approval link's signature does not make an identity link.
        let approval = signer.token(1, now + Duration::minutes(15));
        assert_eq!(
            signer.verify_identity_token(&approval, now),
            Err(IdentityLinkError::Tampered)
        );
    }

    #[test]
    fn slack_signatures_verify_only_with_the_right_secret_timestamp_and_body() {
        let signature = slack_signature(b"secret", "1700000000", b"payload=x");
        assert!(verify_slack_signature(
            b"secret",
            "1700000000",
            b"payload=x",
            &signature
        ));
        assert!(!verify_slack_signature(
            b"other",
            "1700000000",
            b"payload=x",
            &signature
        ));
        assert!(!verify_slack_signature(
            b"secret",
            "1700000001",
            b"payload=x",
            &signature
        ));
        assert!(!verify_slack_signature(
            b"secret",
            "1700000000",
            b"payload=y",
            &signature
        ));
        assert!(!verify_slack_signature(
            b"secret",
            "1700000000",
            b"payload=x",
            "v0=zz"
        ));
    }
}
