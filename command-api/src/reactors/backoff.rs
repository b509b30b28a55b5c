//! The retry schedule of the reactors that reach the outside (webhooks, email): exponential,
//! capped, jittered.

use std::time::Duration;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The wait before attempt `attempts + 1`: `base * 2^(attempts - 1)`, at most an hour,
/// times a random factor in [0.5, 1] (so retries of many deliveries spread out).
pub fn backoff(base: Duration, attempts: i32) -> chrono::TimeDelta {
    let exponent = (attempts.max(1) - 1).min(30) as u32;
    let full = base
        .saturating_mul(1u32 << exponent.min(20))
        .min(MAX_BACKOFF);
    let jittered = full.mul_f64(rand::random_range(0.5..=1.0));
    chrono::TimeDelta::from_std(jittered).unwrap_or(chrono::TimeDelta::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for attempts in 1..=5 {
            let full = 2_000i64 << (attempts - 1);
            let wait = backoff(base, attempts).num_milliseconds();
            assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait}");
        }
        assert!(backoff(base, 40).num_seconds() <= 3600);
    }
}
