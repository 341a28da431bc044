//! How people sign in (`[auth]`): how long a session lasts, and what slows down guessing
//! passwords.

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};

/// Sessions and sign-in limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session unused this long ends.
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, however much it is used.
    pub session_absolute_secs: u64,
    /// Consecutive wrong passwords after which an account is locked.
    pub lockout_after_failures: u32,
    /// The first lock's length; each further failure doubles it, up to `lockout_max_secs`.
    pub lockout_base_secs: u64,
    pub lockout_max_secs: u64,
    /// Sign-in attempts each client address may make per minute; past it: 429.
    pub sign_in_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 8 * 3600,
            session_absolute_secs: 7 * 24 * 3600,
            lockout_after_failures: 5,
            lockout_base_secs: 60,
            lockout_max_secs: 3600,
            sign_in_per_minute: 20,
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle_secs == 0 || self.session_absolute_secs < self.session_idle_secs {
            return bad(
                "auth.session_idle_secs / session_absolute_secs",
                "the idle time must be at least 1 and the absolute lifetime at least the idle time"
                    .into(),
            );
        }
        if self.lockout_after_failures == 0
            || self.lockout_base_secs == 0
            || self.lockout_max_secs < self.lockout_base_secs
        {
            return bad(
                "auth.lockout_after_failures / lockout_base_secs / lockout_max_secs",
                "must be at least 1, and the longest lock at least the first".into(),
            );
        }
        if self.sign_in_per_minute == 0 {
            return bad("auth.sign_in_per_minute", "must be at least 1".into());
        }
        Ok(())
    }
}
