//! What Agora's tests share (a dev-only crate: only tests, benchmarks and the `testing`
//! feature of `eventstore` use it):
//!
//! - [`env`]: where the test services are (`AGORA_TEST_*`, else the scripts' ports);
//! - [`free_port`]: a port nobody listens on;
//! - [`eventually`], [`eventually_some`] and [`try_eventually`]: polling with a deadline,
//!   never sleeping to synchronize;
//! - [`ScratchDatabase`]: a database made for one test and dropped when the test is done, so
//!   the test cluster does not accumulate `agora_test_*` databases.

pub mod database;
pub mod env;
pub mod smtp;

pub use database::{with_database, ScratchDatabase};

use std::future::Future;
use std::time::{Duration, Instant};

/// A local TCP port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `condition` every 20 ms until it holds, panicking with `what` once `deadline`
/// passed.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(what, deadline, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `probe` every 20 ms until it gives a value, and returns it; panics with `what` once
/// `deadline` passed.
pub async fn eventually_some<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the fallible `condition` every 20 ms until it holds; returns its first error at
/// once, and panics with `what` once `deadline` passed.
pub async fn try_eventually<E, F, Fut>(
    what: &str,
    deadline: Duration,
    mut condition: F,
) -> Result<(), E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    let until = Instant::now() + deadline;
    loop {
        if condition().await? {
            return Ok(());
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_once_the_condition_holds() {
        let mut calls = 0;
        let value = eventually_some("the third call", Duration::from_secs(5), || {
            calls += 1;
            let now = calls;
            async move { (now >= 3).then_some(now) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after")]
    async fn eventually_panics_after_the_deadline() {
        eventually("never", Duration::from_millis(50), || async { false }).await;
    }

    #[tokio::test]
    async fn try_eventually_returns_the_conditions_error() {
        let outcome: Result<(), &str> =
            try_eventually("an error", Duration::from_secs(5), || async {
                Err("broken")
            })
            .await;
        assert_eq!(outcome, Err("broken"));
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().expect("a port");
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("still free");
    }
}
