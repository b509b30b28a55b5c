//! Timed closed-loop runs: every client sends its next command as soon as the previous one
//! finished, for a warm-up and then a measured window; only the commands that both started
//! and finished inside the window are counted. Shared by `append-bench` and `peers-bench`.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::LatencySummary;

/// The command-line options of a timed run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TimedArgs {
    /// Concurrent clients (each with its own connection).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Unmeasured warm-up seconds before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
}

impl TimedArgs {
    /// The window these options ask for, starting now.
    pub fn window(&self) -> Window {
        Window::starting_now(
            Duration::from_secs(self.warmup),
            Duration::from_secs(self.seconds),
        )
    }
}

/// One benchmark client: it owns its streams (clients never share one, so they never race)
/// and knows how to run one command on the next of them.
pub trait CommandClient: Send + 'static {
    /// Runs one command to completion; returns how many lost races it retried.
    fn command(&mut self) -> impl Future<Output = Result<u64>> + Send;
}

/// When the measurement starts and ends.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub until: Instant,
}

impl Window {
    /// `warmup` unmeasured, then `measured`, starting now.
    pub fn starting_now(warmup: Duration, measured: Duration) -> Window {
        let start = Instant::now();
        Window {
            measure_from: start + warmup,
            until: start + warmup + measured,
        }
    }

    /// The measured duration.
    pub fn measured(&self) -> Duration {
        self.until.duration_since(self.measure_from)
    }
}

/// What one client measured.
#[derive(Debug, Default)]
pub struct ClientReport {
    pub commands: u64,
    pub conflicts: u64,
    pub latencies: Vec<Duration>,
}

/// Runs `client` until the window ends.
pub async fn drive<C: CommandClient>(mut client: C, window: Window) -> Result<ClientReport> {
    let mut report = ClientReport {
        latencies: Vec::with_capacity(1 << 16),
        ..ClientReport::default()
    };
    loop {
        let started = Instant::now();
        if started >= window.until {
            return Ok(report);
        }
        let conflicts = client.command().await?;
        let finished = Instant::now();
        if started >= window.measure_from && finished <= window.until {
            report.commands += 1;
            report.conflicts += conflicts;
            report.latencies.push(finished - started);
        }
    }
}

/// Runs every client concurrently (one task each) through the same window.
pub async fn run_clients<C: CommandClient>(
    clients: Vec<C>,
    window: Window,
) -> Result<Vec<ClientReport>> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(drive(client, window)))
        .collect();
    let mut reports = Vec::with_capacity(tasks.len());
    for task in futures::future::join_all(tasks).await {
        reports.push(task.context("a client panicked")??);
    }
    Ok(reports)
}

/// The clients' reports added up.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub commands: u64,
    pub conflicts: u64,
    pub seconds: f64,
    pub latency: Option<LatencySummary>,
}

impl Totals {
    /// Adds up `reports` measured over `window`.
    pub fn of(reports: Vec<ClientReport>, window: &Window) -> Totals {
        let commands = reports.iter().map(|r| r.commands).sum();
        let conflicts = reports.iter().map(|r| r.conflicts).sum();
        let mut latencies: Vec<Duration> = reports.into_iter().flat_map(|r| r.latencies).collect();
        Totals {
            commands,
            conflicts,
            seconds: window.measured().as_secs_f64(),
            latency: LatencySummary::from_samples(&mut latencies),
        }
    }

    /// Commands per second over the measured window.
    pub fn rate(&self) -> f64 {
        self.commands as f64 / self.seconds.max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleepy(Duration);

    impl CommandClient for Sleepy {
        async fn command(&mut self) -> Result<u64> {
            tokio::time::sleep(self.0).await;
            Ok(1)
        }
    }

    #[tokio::test]
    async fn counts_only_commands_inside_the_window() {
        let window = Window::starting_now(Duration::from_millis(20), Duration::from_millis(100));
        let clients = vec![
            Sleepy(Duration::from_millis(5)),
            Sleepy(Duration::from_millis(5)),
        ];
        let totals = Totals::of(run_clients(clients, window).await.unwrap(), &window);
        // About 20 per client fit in 100 ms; the ones straddling an edge are not counted.
        assert!((10..=42).contains(&totals.commands), "{totals:?}");
        assert_eq!(totals.conflicts, totals.commands);
        assert_eq!(totals.latency.unwrap().samples as u64, totals.commands);
        assert!((totals.seconds - 0.1).abs() < 1e-6);
    }
}
