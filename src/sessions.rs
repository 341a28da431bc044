//! Sign-in sessions: password sign-in (with lockout and a per-address rate), the session
//! cookie, resolving it to the same `Principal` a bearer token gives, CSRF, sign-out,
//! listing and revoking.
//!
//! A session is a server-side row; the browser holds only a random 256-bit secret in the
//! `aiops_session` cookie, and the row keeps its SHA-256, so neither the database nor a log
//! can open a session. The CSRF token is derived from the secret (a second SHA-256 with its
//! own label), so it is stored nowhere and a stolen row hash does not give it. A session
//! carries every scope of its user; what it may do is `permissions::authorize`'s to decide.
//! Boundary: no HTTP here (the pages and the API pass the cookie's value and the client's
//! address in); nothing here logs or returns a password, a hash or a session secret.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::NewAuditEntry;
use crate::auth;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{
    Actor, Principal, PrincipalKind, Scopes, SessionMethod, SessionView, StoredSession, UserStatus,
    Via,
};
use crate::permissions::{self, On, Permission};
use crate::store::Store;
use crate::store::sessions::{NewSession, SignInAccount};

/// The name of the session cookie.
pub const COOKIE: &str = "aiops_session";

/// The header a cookie-authenticated state-changing API request carries its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// `last_seen_at` is written at most this often (or a quarter of the idle time, if less).
const TOUCH_GRANULARITY_SECS: u64 = 60;

/// Longest user agent kept with a session.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Longest cookie value looked up; a session secret is 43 characters.
const MAX_SECRET_CHARS: usize = 64;

/// The message of every refused password, so a refusal tells nothing about the account.
const WRONG_CREDENTIALS: &str = "the login or password is wrong";

/// A live session: what a page or handler may know about it (never its secret).
#[derive(Clone)]
pub struct SessionInfo {
    /// The row id (shown, revoked by), never the secret.
    pub id: i64,
    /// The token a state-changing request of this session must present.
    pub csrf_token: String,
    pub method: SessionMethod,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless used again before.
    pub idle_expires_at: DateTime<Utc>,
    /// When the session ends at the latest.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's address, for the rate limit, the audit log and "my sessions".
    pub addr: &'a str,
    pub user_agent: Option<&'a str>,
}

/// A new session: the cookie's secret (to be set once, never shown or logged), the principal
/// and the session.
pub struct SignedIn {
    pub secret: String,
    pub principal: Principal,
    pub info: SessionInfo,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("principal", &self.principal.name)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The principal and session a cookie's value stands for; None for an unknown, expired or
/// revoked session and for one whose user is disabled. Refreshes the idle expiry (writing
/// at most once a minute).
pub async fn resolve(
    store: &Store,
    config: &Config,
    cookie_value: &str,
) -> Result<Option<(Principal, SessionInfo)>> {
    if cookie_value.is_empty() || cookie_value.len() > MAX_SECRET_CHARS {
        return Ok(None);
    }
    let Some(row) = store.session_by_hash(&hash_secret(cookie_value)).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let idle = secs(config.auth.session_idle_secs);
    if now >= row.expires_at || now >= row.last_seen_at + idle {
        return Ok(None);
    }
    if row.status == UserStatus::Disabled {
        return Ok(None);
    }
    let granularity = secs(TOUCH_GRANULARITY_SECS.min(config.auth.session_idle_secs / 4));
    let last_seen_at = if now - row.last_seen_at >= granularity {
        store.touch_session(row.id, row.principal_id, now).await?;
        now
    } else {
        row.last_seen_at
    };
    let principal = principal_of_session(store, &row).await?;
    let info = SessionInfo {
        id: row.id,
        csrf_token: csrf_token_of(cookie_value),
        method: row.method,
        created_at: row.created_at,
        last_seen_at,
        idle_expires_at: (last_seen_at + idle).min(row.expires_at),
        expires_at: row.expires_at,
    };
    Ok(Some((principal, info)))
}

/// Ok when `presented` is the session's CSRF token (compared in constant time); Forbidden
/// otherwise.
pub fn check_csrf(info: &SessionInfo, presented: Option<&str>) -> Result<()> {
    match presented {
        Some(token) if crate::signing::tokens_equal(token, &info.csrf_token) => Ok(()),
        _ => Err(Error::Forbidden(format!(
            "a request signed in by cookie must carry the session's CSRF token (header {CSRF_HEADER}, or the form's csrf field)"
        ))),
    }
}

/// The `Set-Cookie` value that stores the session `secret` in the browser: HttpOnly,
/// SameSite=Lax, Path=/, Secure when the public URL is https, kept as long as the
/// session's absolute lifetime.
pub fn set_cookie(config: &Config, secret: &str) -> String {
    cookie_header(config, secret, config.auth.session_absolute_secs)
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(config: &Config) -> String {
    cookie_header(config, "", 0)
}

fn cookie_header(config: &Config, value: &str, max_age: u64) -> String {
    let secure = if config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The value of cookie `name` among a request's `Cookie` header values.
pub fn cookie_in<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Signs in with a login and password. Refused with 429 when `client` has tried too often
/// this minute or the account is locked after failures (even for the right password), and
/// with 401 naming nothing for a wrong login or password. Every outcome is audited.
pub async fn sign_in_with_password(
    store: &Store,
    config: &Config,
    login: &str,
    password: &str,
    client: Client<'_>,
) -> Result<SignedIn> {
    match password_outcome(store, config, login, password, client).await {
        Ok(signed_in) => {
            let via = signed_in.principal.via.to_string();
            let detail = json!({ "method": "password", "via": via });
            let actor = Actor::from(signed_in.principal.clone());
            let target = format!("sessions/{}", signed_in.info.id);
            audit(store, Some(actor), "sign_in", target, client, "ok", detail).await;
            Ok(signed_in)
        }
        Err((actor, refusal)) => {
            if let Some(reason) = refusal.reason {
                let target = actor
                    .as_ref()
                    .map_or_else(|| "users".into(), |a| format!("users/{}", a.name));
                let detail = json!({ "method": "password", "reason": reason });
                audit(store, actor, "sign_in", target, client, "refused", detail).await;
            }
            Err(refusal.error)
        }
    }
}

/// Why a password sign-in was refused: the error to answer, and the reason to audit (None:
/// not audited again, for a client already over its rate this minute).
struct Refusal {
    error: Error,
    reason: Option<&'static str>,
}

impl Refusal {
    fn wrong(reason: &'static str) -> Self {
        Refusal {
            error: Error::Unauthorized(WRONG_CREDENTIALS.into()),
            reason: Some(reason),
        }
    }
}

async fn password_outcome(
    store: &Store,
    config: &Config,
    login: &str,
    password: &str,
    client: Client<'_>,
) -> std::result::Result<SignedIn, (Option<Actor>, Refusal)> {
    let internal = |e: Error| {
        (
            None,
            Refusal {
                error: e,
                reason: None,
            },
        )
    };
    client_rate(store, config, client.addr)
        .await
        .map_err(|refusal| (None, refusal))?;
    let account = store.sign_in_account(login).await.map_err(internal)?;
    let Some(account) = account.filter(|a| a.kind == PrincipalKind::User) else {
        verify_in_background(password.to_string(), DUMMY_HASH.clone()).await;
        return Err((None, Refusal::wrong("unknown_login")));
    };
    let actor = Some(Actor {
        id: Some(account.id),
        name: login.to_string(),
    });
    let with_actor = |refusal| (actor.clone(), refusal);
    let now = Utc::now();
    if let Some(until) = account.locked_until.filter(|until| *until > now) {
        return Err(with_actor(locked(until - now)));
    }
    let hash = account
        .password_hash
        .clone()
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let matches = verify_in_background(password.to_string(), hash).await;
    if !matches || account.password_hash.is_none() {
        let refusal = count_failure(store, config, &account).await;
        return Err(with_actor(refusal));
    }
    if account.status == UserStatus::Disabled {
        let error = Error::Unauthorized(format!(
            "user {login} is disabled; an admin can enable it with `aiops user enable`"
        ));
        let reason = Some("disabled");
        return Err(with_actor(Refusal { error, reason }));
    }
    store
        .clear_sign_in_failures(account.id)
        .await
        .map_err(internal)?;
    start(store, config, account.id, SessionMethod::Password, client)
        .await
        .map_err(internal)
}

/// Counts a wrong password and locks the account once the failures reach the threshold,
/// for twice as long with each further failure.
async fn count_failure(store: &Store, config: &Config, account: &SignInAccount) -> Refusal {
    let failures = match store.count_sign_in_failure(account.id).await {
        Ok(failures) => failures,
        Err(error) => {
            return Refusal {
                error,
                reason: None,
            };
        }
    };
    let over = failures - i64::from(config.auth.lockout_after_failures);
    if over < 0 {
        return Refusal::wrong("wrong_password");
    }
    let lock = config
        .auth
        .lockout_base_secs
        .saturating_mul(1u64 << over.min(32))
        .min(config.auth.lockout_max_secs);
    if let Err(error) = store
        .lock_sign_in(account.id, Utc::now() + secs(lock))
        .await
    {
        return Refusal {
            error,
            reason: None,
        };
    }
    Refusal {
        reason: Some("wrong_password_locked"),
        ..locked(secs(lock))
    }
}

fn locked(remaining: Duration) -> Refusal {
    let retry_after_secs = remaining.num_seconds().max(1).unsigned_abs();
    Refusal {
        error: Error::TooManyRequests {
            message: format!(
                "too many wrong passwords for this account; it is locked, try again in {retry_after_secs} seconds"
            ),
            retry_after_secs,
        },
        reason: Some("locked"),
    }
}

/// Counts an attempt from `addr` in this minute's window; refused past the configured rate
/// (audited once per window, when the rate is first passed).
async fn client_rate(
    store: &Store,
    config: &Config,
    addr: &str,
) -> std::result::Result<(), Refusal> {
    let now = Utc::now().timestamp();
    let attempts = store
        .count_sign_in_attempt(addr, now.div_euclid(60))
        .await
        .map_err(|error| Refusal {
            error,
            reason: None,
        })?;
    let limit = i64::from(config.auth.sign_in_per_minute);
    if attempts <= limit {
        return Ok(());
    }
    let retry_after_secs = (60 - now.rem_euclid(60)).unsigned_abs();
    Err(Refusal {
        error: Error::TooManyRequests {
            message: format!(
                "too many sign-in attempts from this address; try again in {retry_after_secs} seconds"
            ),
            retry_after_secs,
        },
        reason: (attempts == limit + 1).then_some("rate_limited"),
    })
}

/// A random argon2id hash verified against for logins that do not exist, so a refusal takes
/// as long whether or not the login exists.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| auth::hash_password(&auth::generate_password()).unwrap_or_default());

/// `auth::verify_password` off the async threads (argon2 is slow on purpose).
async fn verify_in_background(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Starts a session for principal `principal_id`, signed in by `method` from `client`.
pub async fn start(
    store: &Store,
    config: &Config,
    principal_id: i64,
    method: SessionMethod,
    client: Client<'_>,
) -> Result<SignedIn> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let now = Utc::now();
    let user_agent: String = client
        .user_agent
        .unwrap_or("")
        .chars()
        .take(MAX_USER_AGENT_CHARS)
        .collect();
    let id = store
        .insert_session(&NewSession {
            principal_id,
            secret_hash: &hash_secret(&secret),
            method,
            at: now,
            expires_at: now + secs(config.auth.session_absolute_secs),
            client_addr: client.addr,
            user_agent: &user_agent,
        })
        .await?;
    let (principal, info) = resolve(store, config, &secret)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("session {id} ended as it was started")))?;
    Ok(SignedIn {
        secret,
        principal,
        info,
    })
}

/// Ends the caller's own session `info` (sign-out), audited.
pub async fn sign_out(
    store: &Store,
    principal: &Principal,
    info: &SessionInfo,
    client: Client<'_>,
) -> Result<()> {
    store.revoke_session(info.id).await?;
    let target = format!("sessions/{}", info.id);
    let actor = Some(Actor::from(principal.clone()));
    audit(store, actor, "sign_out", target, client, "ok", json!({})).await;
    Ok(())
}

/// The live sessions of `principal`, newest first; `current` marks the one asking.
pub async fn list(
    store: &Store,
    config: &Config,
    principal: &Principal,
    current: Option<i64>,
) -> Result<Vec<SessionView>> {
    let Some(id) = principal.id else {
        return Ok(Vec::new());
    };
    let now = Utc::now();
    let idle = secs(config.auth.session_idle_secs);
    let rows = store.live_sessions_of(id, now, now - idle).await?;
    Ok(rows
        .into_iter()
        .map(|row| SessionView {
            current: Some(row.id) == current,
            idle_expires_at: (row.last_seen_at + idle).min(row.expires_at),
            id: row.id,
            user: row.login,
            method: row.method,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            client_addr: row.client_addr,
            user_agent: row.user_agent,
        })
        .collect())
}

/// Ends session `id`, which must be the caller's own unless the caller is an admin; another
/// user's session is NotFound to anyone else, so ids tell nothing.
pub async fn revoke(store: &Store, by: &Principal, id: i64) -> Result<()> {
    let admin = permissions::authorize(by, Permission::Admin, On::AnyProject).is_ok();
    let row = store.live_session(id).await?;
    match row {
        Some(row) if admin || Some(row.principal_id) == by.id => {
            store.revoke_session(id).await?;
            Ok(())
        }
        _ => Err(Error::NotFound(format!("live session {id}"))),
    }
}

/// Ends every session of user `login` (an admin's act; the caller authorizes); returns how
/// many were live.
pub async fn end_all_of(store: &Store, login: &str) -> Result<u64> {
    let user = store.user(login).await?;
    store.revoke_sessions_of(user.id).await
}

async fn principal_of_session(store: &Store, row: &StoredSession) -> Result<Principal> {
    let via = Via::Session { id: row.id };
    auth::principal_of(store, row.principal_id, Scopes::ALL, None, false, via).await
}

/// The stored form of a session secret.
fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The CSRF token of the session with `secret`: derived, never stored.
fn csrf_token_of(secret: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"aiops-session-csrf\0");
    digest.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

fn secs(n: u64) -> Duration {
    Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

async fn audit(
    store: &Store,
    principal: Option<Actor>,
    action: &str,
    target: String,
    client: Client<'_>,
    outcome: &str,
    detail: serde_json::Value,
) {
    let entry = NewAuditEntry {
        principal,
        action: action.into(),
        target,
        source: client.addr.to_string(),
        outcome: outcome.into(),
        detail,
    };
    if let Err(e) = store.append_audit(&entry).await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_only_over_https() {
        let mut config = Config::default();
        let plain = set_cookie(&config, "s3cret");
        assert!(plain.starts_with("aiops_session=s3cret; Path=/; HttpOnly; SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        config.public_url = "https://aiops.example.com".into();
        assert!(set_cookie(&config, "s3cret").ends_with("; Secure"));
        assert!(clear_cookie(&config).contains("Max-Age=0"));
    }

    #[test]
    fn the_csrf_token_is_derived_and_compared_whole() {
        let token = csrf_token_of("secret");
        assert_ne!(token, hash_secret("secret"));
        let info = SessionInfo {
            id: 1,
            csrf_token: token.clone(),
            method: SessionMethod::Password,
            created_at: Utc::now(),
            last_seen_at: Utc::now(),
            idle_expires_at: Utc::now(),
            expires_at: Utc::now(),
        };
        assert!(check_csrf(&info, Some(&token)).is_ok());
        assert!(check_csrf(&info, Some(&token[1..])).is_err());
        assert!(check_csrf(&info, None).is_err());
        assert!(!format!("{info:?}").contains(&token), "Debug hides it");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let headers = ["a=1; aiops_session=xyz", "b=2"];
        assert_eq!(cookie_in(headers, COOKIE), Some("xyz"));
        assert_eq!(cookie_in(["aiops_session_x=1"], COOKIE), None);
    }
}
