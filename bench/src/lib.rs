//! Agora's benchmarks and small developer tools.
//!
//! - `append-bench`: single-event (or N-event) commands per second through
//!   [`eventstore::EventStore::append`], without HTTP. See BENCHMARKS.md.
//! - `peers-bench`: Agora's write path next to its peers (raw INSERT, Message DB,
//!   cqrs-es + postgres-es) on the same server, the stream-length curve and the memory check
//!   of the command API ([`peers`]; driven by `scripts/bench-peers.sh`).
//! - `mint-token`: a signed development JWT (until `agora token` exists).
//! - `projector-bench`, `latency-bench`, `http-bench`, `audit-bench`: the read-side budgets
//!   (projector catch-up and rebuild, command accepted to visible, HTTP rates, audit
//!   export). See BENCHMARKS.md and `scripts/bench-read.sh`.
//!
//! This library holds what the binaries share and what is worth unit-testing: the latency
//! summary, timed closed-loop runs ([`drive`]) and the append-path client ([`appender`]),
//! scratch databases ([`scratch`]), process figures ([`procfs`]), the shop history the
//! read-side benchmarks fill the store with ([`shop`]), and their scaffolding ([`stack`]:
//! the services in-process; [`support`]).

pub mod appender;
pub mod drive;
pub mod peers;
pub mod procfs;
pub mod scratch;
pub mod shop;
pub mod soak;
pub mod stack;
pub mod support;

use std::time::Duration;

/// Latency percentiles of a run, from every recorded sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub samples: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LatencySummary {
    /// Summarizes `samples` (sorted in place). `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<LatencySummary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let count = samples.len();
        Some(LatencySummary {
            samples: count,
            mean: total / count as u32,
            p50: percentile(samples, 50.0),
            p99: percentile(samples, 99.0),
            max: samples[count - 1],
        })
    }
}

/// The nearest-rank percentile of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    let count = sorted.len();
    let rank = ((pct / 100.0) * count as f64).ceil() as usize;
    sorted[rank.clamp(1, count) - 1]
}

/// Milliseconds with a fractional part, for printing.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let summary = LatencySummary::from_samples(&mut samples).unwrap();
        assert_eq!(summary.samples, 100);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(summary.mean, Duration::from_micros(50_500));
    }

    #[test]
    fn single_sample_and_empty() {
        let mut one = vec![Duration::from_millis(7)];
        let summary = LatencySummary::from_samples(&mut one).unwrap();
        assert_eq!(summary.p50, Duration::from_millis(7));
        assert_eq!(summary.p99, Duration::from_millis(7));
        assert!(LatencySummary::from_samples(&mut []).is_none());
    }
}
