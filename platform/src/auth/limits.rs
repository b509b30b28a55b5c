//! Fair shares: requests per second per token subject (`AGORA_RATE_LIMIT_PER_SUBJECT`) and
//! per client address (`AGORA_RATE_LIMIT_PER_ADDRESS`), checked where a request's caller is
//! established (every `/v1` route), with a burst of one second's worth. Over either: 429
//! `rate_limited` with `Retry-After`. 0 turns a limit off. The defaults are far above what a
//! person at a storefront sends (a page load is a few requests); a script or a stolen token
//! flooding the API is held to its share while everyone else is served.
//!
//! The address is the TCP peer's: behind the compose stack's load balancers that is the
//! balancer's, so the per-address limit is off by default there and nginx limits per client
//! address instead (deploy/nginx).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::Problem;

/// How often (in checks) the limiters forget keys that are back at full allowance.
const RETAIN_EVERY: u64 = 4096;

/// The limits of one service.
pub struct RateLimits {
    per_subject: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_subject", &self.per_subject.is_some())
            .field("per_address", &self.per_address.is_some())
            .finish()
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_second).map(|rate| RateLimiter::keyed(Quota::per_second(rate)))
}

impl RateLimits {
    /// Limits of `per_subject` and `per_address` requests per second (0: off).
    pub fn new(per_subject: u32, per_address: u32) -> Self {
        RateLimits {
            per_subject: limiter(per_subject),
            per_address: limiter(per_address),
            checks: AtomicU64::new(0),
        }
    }

    /// No limits.
    pub fn off() -> Self {
        Self::new(0, 0)
    }

    /// One request from `address`.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Problem> {
        self.forget_now_and_then();
        match &self.per_address {
            Some(limiter) => limiter
                .check_key(&address)
                .map_err(|not_until| limited("this client address", not_until)),
            None => Ok(()),
        }
    }

    /// One request by `subject` (a token's `sub`).
    pub fn check_subject(&self, subject: &str) -> Result<(), Problem> {
        match &self.per_subject {
            Some(limiter) => limiter
                .check_key(&subject.to_owned())
                .map_err(|not_until| limited("this caller", not_until)),
            None => Ok(()),
        }
    }

    fn forget_now_and_then(&self) {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RETAIN_EVERY)
        {
            if let Some(limiter) = &self.per_address {
                limiter.retain_recent();
            }
            if let Some(limiter) = &self.per_subject {
                limiter.retain_recent();
            }
        }
    }
}

/// 429 `rate_limited`, with `Retry-After` in whole seconds (at least 1).
fn limited(who: &str, not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Problem {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    Problem::rate_limited(
        format!("{who} sends more requests than its share; retry after the Retry-After seconds"),
        wait.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_subject_over_its_share_is_refused_and_others_are_served() {
        let limits = RateLimits::new(5, 0);
        for _ in 0..5 {
            assert!(limits.check_subject("flood").is_ok());
        }
        let refused = limits.check_subject("flood").expect_err("over the share");
        assert_eq!(refused.status.as_u16(), 429);
        assert_eq!(refused.code, "rate_limited");
        assert!(refused.retry_after_seconds.is_some_and(|s| s >= 1));
        assert!(limits.check_subject("alice").is_ok());
        // Off: never refused.
        let off = RateLimits::off();
        for _ in 0..10_000 {
            assert!(off.check_subject("flood").is_ok());
            assert!(off.check_address(IpAddr::from([127, 0, 0, 1])).is_ok());
        }
    }

    #[test]
    fn addresses_have_their_own_share() {
        let limits = RateLimits::new(0, 3);
        let flood = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..3 {
            assert!(limits.check_address(flood).is_ok());
        }
        assert!(limits.check_address(flood).is_err());
        assert!(limits.check_address(IpAddr::from([192, 0, 2, 2])).is_ok());
    }
}
