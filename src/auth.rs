//! Principals, roles and bearer tokens.
//!
//! A token is 256 random bits shown once; only its SHA-256 is stored, so a leaked database
//! does not hand out access. Authorization is by role; users and finer roles can be added
//! as more principals without changing the token scheme.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use crate::model::{ApiToken, Principal, Role};
use crate::store::Store;

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "aiops_";

/// A new random token.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a principal named `name` with `role` and a token for it; returns the token
/// (to be shown once) and its metadata.
pub async fn create_token(store: &Store, name: &str, role: Role) -> Result<(String, ApiToken)> {
    if !crate::model::is_slug(name) {
        return Err(Error::invalid(
            "name",
            "must be 1-63 lower-case letters, digits or '-'",
        ));
    }
    let token = generate_token();
    let prefix: String = token.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let meta = store
        .insert_token(name, role, &hash_token(&token), &prefix)
        .await?;
    Ok((token, meta))
}

/// The principal a bearer token belongs to; Unauthorized if it is unknown or revoked.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal> {
    store
        .principal_for_token_hash(&hash_token(token))
        .await?
        .ok_or_else(|| Error::Unauthorized("the token is unknown or revoked".into()))
}
