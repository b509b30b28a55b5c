//! What the soak run (`soak` binary, `scripts/soak.sh`) measures per window, and its leak
//! verdict: a resource that grows steadily across the windows after the warm-up.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::support::Percentiles;

/// One route's answers within a window.
#[derive(Debug, Default, Clone)]
pub struct RouteWindow {
    pub latencies: Vec<Duration>,
    /// 5xx answers and requests that got no answer.
    pub failures: u64,
    /// The first few failures: status and body, or the transport error.
    pub failure_samples: Vec<String>,
}

/// Latencies and failures per route, taken window by window.
#[derive(Default)]
pub struct Recorder {
    routes: Mutex<BTreeMap<&'static str, RouteWindow>>,
}

impl Recorder {
    /// Records one request to `route`: its latency, and why it failed (5xx or no answer).
    pub fn record(&self, route: &'static str, latency: Duration, failure: Option<String>) {
        if let Ok(mut routes) = self.routes.lock() {
            let window = routes.entry(route).or_default();
            window.latencies.push(latency);
            if let Some(failure) = failure {
                window.failures += 1;
                if window.failure_samples.len() < 3 {
                    window.failure_samples.push(failure);
                }
            }
        }
    }

    /// The window so far; starts the next one.
    pub fn take(&self) -> BTreeMap<&'static str, RouteWindow> {
        self.routes
            .lock()
            .map(|mut routes| std::mem::take(&mut *routes))
            .unwrap_or_default()
    }
}

/// The p99 of a route's window, in milliseconds.
pub fn p99_ms(window: &RouteWindow) -> Option<f64> {
    let mut samples = window.latencies.clone();
    Percentiles::of(&mut samples).map(|p| p.p99.as_secs_f64() * 1000.0)
}

/// Whether `series` (one value per window) grows steadily after its first `warmup` values:
/// at least three windows to judge, at least 3 in 4 steps upward (or flat), and the last
/// value above the first judged one by more than `absolute` and more than `relative` times
/// it. Returns why it is a leak, or None.
pub fn steady_growth(
    series: &[f64],
    warmup: usize,
    absolute: f64,
    relative: f64,
) -> Option<String> {
    let judged = series.get(warmup..)?;
    if judged.len() < 3 {
        return None;
    }
    let steps = judged.len() - 1;
    let upward = judged.windows(2).filter(|pair| pair[1] >= pair[0]).count();
    let (first, last) = (judged[0], judged[judged.len() - 1]);
    let growth = last - first;
    let steady = upward * 4 >= steps * 3;
    (steady && growth > absolute && growth > relative * first).then(|| {
        format!(
            "grew from {first:.1} to {last:.1} across {} windows ({upward} of {steps} steps upward)",
            judged.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plateau_after_warmup_is_no_leak() {
        let rss = [40.0, 80.0, 96.0, 97.0, 96.5, 97.2, 96.8, 97.0];
        assert_eq!(steady_growth(&rss, 2, 16.0, 0.25), None);
    }

    #[test]
    fn steady_growth_is_a_leak() {
        let rss = [40.0, 80.0, 96.0, 110.0, 121.0, 130.0, 142.0, 150.0];
        let verdict = steady_growth(&rss, 2, 16.0, 0.25);
        assert!(verdict.is_some_and(|why| why.contains("96.0 to 150.0")));
    }

    #[test]
    fn noise_and_small_growth_are_no_leak() {
        let connections = [10.0, 12.0, 11.0, 13.0, 12.0, 14.0];
        assert_eq!(steady_growth(&connections, 1, 4.0, 0.0), None);
        let too_short = [10.0, 50.0, 90.0];
        assert_eq!(steady_growth(&too_short, 1, 4.0, 0.0), None);
    }

    #[test]
    fn the_recorder_starts_a_new_window_on_take() {
        let recorder = Recorder::default();
        recorder.record("GET x", Duration::from_millis(3), None);
        recorder.record("GET x", Duration::from_millis(5), Some("503".into()));
        let window = recorder.take();
        assert_eq!(window["GET x"].latencies.len(), 2);
        assert_eq!(window["GET x"].failures, 1);
        assert!(recorder.take().is_empty());
    }
}
