//! Bounds on what clients can make the service hold: concurrent event streams (in total and
//! per token), and per client address the rate of webhook requests and of audited refusals.
//! Over a bound the answer is 429 with Retry-After (a refusal past its rate is answered but
//! not written to the audit log).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use crate::config::IntakeConfig;
use crate::error::{Error, Result};

/// Client addresses a rate limiter remembers before it forgets the idle ones.
const REMEMBERED_CLIENTS: usize = 10_000;

/// Seconds a client refused for too many streams is told to wait.
const STREAM_RETRY_AFTER_SECS: u64 = 5;

/// The service's bounds on clients; one per process.
pub struct Guards {
    streams: Mutex<StreamCounts>,
    max_streams: usize,
    max_streams_per_token: usize,
    webhooks: DefaultKeyedRateLimiter<IpAddr>,
    refusals: DefaultKeyedRateLimiter<IpAddr>,
}

#[derive(Default)]
struct StreamCounts {
    total: usize,
    per_token: HashMap<String, usize>,
}

/// An open event stream's place; dropping it frees the place.
pub struct StreamPermit {
    guards: Arc<Guards>,
    token: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut counts = self.guards.streams.lock().expect("stream counts");
        counts.total -= 1;
        if let Some(n) = counts.per_token.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                counts.per_token.remove(&self.token);
            }
        }
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl Guards {
    pub fn new(config: &IntakeConfig) -> Arc<Self> {
        let webhooks = Quota::per_second(nonzero(config.webhook_per_second))
            .allow_burst(nonzero(config.webhook_burst));
        let refusals = Quota::per_minute(nonzero(config.refusals_audited_per_minute));
        Arc::new(Self {
            streams: Mutex::default(),
            max_streams: config.max_sse_streams,
            max_streams_per_token: config.max_sse_streams_per_token,
            webhooks: RateLimiter::keyed(webhooks),
            refusals: RateLimiter::keyed(refusals),
        })
    }

    /// A place for one more event stream of `token`, or 429 past either bound.
    pub fn open_stream(self: &Arc<Self>, token: &str) -> Result<StreamPermit> {
        let mut counts = self.streams.lock().expect("stream counts");
        let of_token = counts.per_token.get(token).copied().unwrap_or(0);
        let refused = if counts.total >= self.max_streams {
            Some(format!(
                "the service has {} event streams open, its limit (intake.max_sse_streams)",
                counts.total
            ))
        } else if of_token >= self.max_streams_per_token {
            Some(format!(
                "this token has {of_token} event streams open, its limit (intake.max_sse_streams_per_token); close one first"
            ))
        } else {
            None
        };
        if let Some(message) = refused {
            return Err(Error::TooManyRequests {
                message,
                retry_after_secs: STREAM_RETRY_AFTER_SECS,
            });
        }
        counts.total += 1;
        *counts.per_token.entry(token.to_string()).or_default() += 1;
        Ok(StreamPermit {
            guards: self.clone(),
            token: token.to_string(),
        })
    }

    /// Whether a refused request from `client` is written to the audit log (at most
    /// `intake.refusals_audited_per_minute` per client).
    pub fn audit_refusal(&self, client: IpAddr) -> bool {
        check(&self.refusals, client).is_ok()
    }
}

/// Checks `client` against `limiter`: Err(seconds to wait) when over its rate.
fn check(limiter: &DefaultKeyedRateLimiter<IpAddr>, client: IpAddr) -> Result<(), u64> {
    if limiter.len() > REMEMBERED_CLIENTS {
        limiter.retain_recent();
    }
    limiter.check_key(&client).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    })
}

/// Middleware of `/webhooks/*`: at most `intake.webhook_per_second` requests per second
/// per client address (bursts of `intake.webhook_burst`), else 429 with Retry-After.
pub async fn limit_webhooks(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match check(&state.guards.webhooks, peer.ip()) {
        Ok(()) => next.run(request).await,
        Err(retry_after_secs) => Error::TooManyRequests {
            message: "too many webhook requests from this address (intake.webhook_per_second); retry after the delay in Retry-After".into(),
            retry_after_secs,
        }
        .into_response(),
    }
}
