//! Credentials: bearer tokens (hash, create, authenticate) and password hashing.
//!
//! A token is 256 random bits shown once; only its SHA-256 is stored, so a leaked database
//! does not hand out access. A token belongs to a user or service account and carries
//! scopes; what it may do is decided by `permissions::authorize`, from the owner's roles and
//! the token's scopes together, so a token never has more rights than its owner. Passwords
//! are stored only as argon2id hashes. Nothing here logs or returns a secret it was given.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use crate::model::{ApiToken, Principal, Role};
use crate::model::{GlobalRole, PrincipalKind, ProjectRole, Scopes, UserStatus, Via, summary_role};
use crate::store::Store;
use crate::store::tokens::NewToken;
use crate::store::users::NewUser;

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "aiops_";

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

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

fn token_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// Creates a service account named `name` holding the old `role` (admin: a global admin;
/// operator: maintainer of every project; viewer: viewer of every project) and a service
/// token of the same name with that role's scopes; returns the token (to be shown once)
/// and its metadata.
pub async fn create_token(store: &Store, name: &str, role: Role) -> Result<(String, ApiToken)> {
    check_name(name)?;
    let token = generate_token();
    let mut tx = store.begin().await?;
    let global_role = if role == Role::Admin {
        GlobalRole::Admin
    } else {
        GlobalRole::Member
    };
    let user = NewUser {
        kind: PrincipalKind::Service,
        login: name,
        display_name: name,
        email: None,
        github_login: None,
        global_role,
        password_hash: None,
    };
    let principal_id = crate::store::users::insert(&mut tx, &user).await?;
    if role != Role::Admin {
        let every = if role == Role::Operator {
            ProjectRole::Maintainer
        } else {
            ProjectRole::Viewer
        };
        crate::store::users::grant(&mut tx, principal_id, None, every).await?;
    }
    let id = crate::store::tokens::insert(
        &mut tx,
        &NewToken {
            principal_id,
            name,
            scopes: Scopes::of_role(role),
            project_id: None,
            expires_at: None,
            service: true,
            token_hash: &hash_token(&token),
            prefix: &token_prefix(&token),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((token, store.token(id).await?))
}

/// What a new token of an existing principal carries.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub name: String,
    pub scopes: Scopes,
    pub project_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub service: bool,
}

/// Creates a token for principal `principal_id`; returns it (to be shown once) and its
/// metadata.
pub async fn create_token_for(
    store: &Store,
    principal_id: i64,
    grant: &TokenGrant,
) -> Result<(String, ApiToken)> {
    check_name(&grant.name)?;
    if grant.scopes == Scopes::default() {
        return Err(Error::invalid(
            "scopes",
            "name at least one of read, write, approve, admin",
        ));
    }
    if grant.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Error::invalid("expires_at", "must be in the future"));
    }
    let token = generate_token();
    let mut tx = store.begin().await?;
    let id = crate::store::tokens::insert(
        &mut tx,
        &NewToken {
            principal_id,
            name: &grant.name,
            scopes: grant.scopes,
            project_id: grant.project_id,
            expires_at: grant.expires_at,
            service: grant.service,
            token_hash: &hash_token(&token),
            prefix: &token_prefix(&token),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((token, store.token(id).await?))
}

fn check_name(name: &str) -> Result<()> {
    if crate::model::is_slug(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1-63 lower-case letters, digits or '-'",
        ))
    }
}

/// The principal a bearer token belongs to; Unauthorized if the token is unknown, revoked
/// or expired, or its owner is disabled.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal> {
    let owner = store
        .token_owner_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| Error::Unauthorized("the token is unknown, revoked or expired".into()))?;
    if owner.status == UserStatus::Disabled {
        return Err(Error::Unauthorized(format!(
            "user {} is disabled; an admin can enable it with `aiops user enable`",
            owner.login
        )));
    }
    let via = Via::Token {
        id: owner.token_id,
        name: owner.token_name,
    };
    principal_of(
        store,
        owner.principal_id,
        owner.scopes,
        owner.project_id,
        owner.service,
        via,
    )
    .await
}

/// Principal `id` acting with `scopes` (restricted to `project_id` when given) through `via`.
pub async fn principal_of(
    store: &Store,
    id: i64,
    scopes: Scopes,
    project_id: Option<i64>,
    service: bool,
    via: Via,
) -> Result<Principal> {
    let user = store.user_by_id(id).await?;
    let memberships = store.memberships(id).await?;
    let admin = user.global_role == GlobalRole::Admin;
    Ok(Principal {
        id: Some(id),
        role: summary_role(admin, &memberships, scopes),
        name: user.login,
        admin,
        memberships,
        scopes,
        project_id,
        service: service || user.kind == PrincipalKind::Service,
        via,
    })
}

/// Revokes token `name` for `by` (a principal id), which must own it unless `admin`; another's
/// token is NotFound to anyone else, so names tell nothing. It stops working at once.
pub async fn revoke_token(store: &Store, by: Option<i64>, admin: bool, name: &str) -> Result<()> {
    let owner = store.token_owner(name).await?;
    if owner.is_none() || (owner != by && !admin) {
        return Err(Error::NotFound(format!("active token {name:?}")));
    }
    store.revoke_token(name).await
}

/// Refuses a password that is too weak to set, naming the rule.
pub fn check_password_policy(password: &str, login: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.to_lowercase().contains(&login.to_lowercase()) {
        return Err(Error::invalid("password", "must not contain the login"));
    }
    Ok(())
}

/// The argon2id hash (PHC string, with its own random salt) of `password`.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::Internal(anyhow::anyhow!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

/// Whether `password` matches the stored argon2id `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        parsed.algorithm == argon2::ARGON2ID_IDENT
            && Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
    })
}

/// A random password for a first sign-in: 20 characters of base64url.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 15];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_stored_as_argon2id_hashes_that_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert_ne!(
            hash,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
        assert!(!verify_password(
            "correct horse battery",
            "correct horse battery"
        ));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_password_policy("short", "ann").is_err());
        assert!(check_password_policy("ann-is-my-password", "ann").is_err());
        assert!(check_password_policy("a long enough phrase", "ann").is_ok());
        assert_eq!(generate_password().len(), 20);
    }
}
