//! Read-your-writes: `?min_version=N` on an entity waits until the read model reflects at
//! least version N of its stream.
//!
//! A waiting request reads the row again each time the projector reports progress (its
//! NOTIFY after a batch commits, through [`Progress`]), and at least every second, until
//! the row is there at version N or more, or until `AGORA_CONSISTENCY_WAIT_MS` has passed:
//! then 503 `not_yet_consistent` with `Retry-After: 1`. A row that does not exist yet is
//! waited for the same way. While it waits the request holds no connection and sends no
//! query. (Without a progress feed, as in unit tests, it polls: 2 ms, backing off to 20 ms.)
//!
//! At most `AGORA_CONSISTENCY_MAX_WAITERS` requests of a process wait at once: one more is
//! answered 503 `not_yet_consistent` at once, so waits for versions that never come (ids
//! that do not exist) cannot pile up and take the read model's connections from everyone.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::Problem;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};
use utoipa::IntoParams;

use crate::progress::{Changes, Progress};
use crate::shares::SubjectShares;

/// The first pause between two polls.
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(2);
/// The longest pause between two polls.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The longest a waiter sleeps without a progress report (a lost notification costs at
/// most this).
const PROGRESS_FALLBACK_INTERVAL: Duration = Duration::from_secs(1);
/// `Retry-After` of a `not_yet_consistent` answer, in seconds.
const RETRY_AFTER_SECONDS: u64 = 1;

/// A read-model row that reflects a version of its stream.
pub trait Versioned {
    fn version(&self) -> i64;
}

/// The query string an entity accepts.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntityQuery {
    /// Read-your-writes: wait (up to `AGORA_CONSISTENCY_WAIT_MS`, default 5000 ms) until the
    /// entity reflects at least this version of its stream (the `version` a command
    /// answered), else 503 `not_yet_consistent` with `Retry-After`. A row that does not
    /// exist yet is waited for the same way.
    #[param(minimum = 1, example = 3)]
    pub min_version: Option<i64>,
}

impl EntityQuery {
    /// `min_version`, which must be a positive integer when given.
    pub fn min_version(&self) -> Result<Option<i64>, Problem> {
        match self.min_version {
            Some(version) if version < 1 => Err(Problem::invalid_request(format!(
                "min_version must be at least 1, got {version}"
            ))),
            other => Ok(other),
        }
    }
}

/// Read-your-writes waits of one process: how long each may last, and how many may be
/// open at once. Cheap to clone (the HTTP workers share the count).
#[derive(Clone)]
pub struct Consistency {
    wait: Duration,
    waiters: Arc<Semaphore>,
    /// One subject's share of the waiters: an eighth of them (at least one).
    shares: SubjectShares,
    progress: Option<Progress>,
}

impl Consistency {
    /// Waits of at most `wait`, at most `max_waiters` at once, woken by `progress` (or
    /// polling without it).
    pub fn new(wait: Duration, max_waiters: usize, progress: Option<Progress>) -> Consistency {
        Consistency {
            wait,
            waiters: Arc::new(Semaphore::new(max_waiters)),
            shares: SubjectShares::new(max_waiters / 8),
            progress,
        }
    }

    /// Fetches an entity with `fetch` (which yields `None` for a row that does not exist
    /// or that the caller may not see).
    ///
    /// Without `min_version`: one fetch, and a missing row is 404 `not_found` (`what`
    /// names it in the detail). With it: the row if it already reflects `min_version`;
    /// else, when a waiter's place is free, the row once it does, polling for at most the
    /// wait; else 503 `not_yet_consistent`. A `subject` already waiting with its share of
    /// the places (an eighth) gets 429 `rate_limited` instead: one caller cannot take them
    /// all.
    pub async fn fetch<T, F, Fut>(
        &self,
        what: &str,
        subject: &str,
        min_version: Option<i64>,
        mut fetch: F,
    ) -> Result<T, Problem>
    where
        T: Versioned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Problem>>,
    {
        let Some(min_version) = min_version else {
            return fetch()
                .await?
                .ok_or_else(|| Problem::not_found(format!("no such {what}")));
        };
        // Taken before the first read: progress made after it wakes the waiter.
        let changes = self.progress.as_ref().map(Progress::subscribe);
        let first = fetch().await?;
        if let Some(row) = first.filter(|row| row.version() >= min_version) {
            return Ok(row);
        }
        let Some(_share) = self.shares.take(subject) else {
            metrics::counter!("query_consistency_waiters_share_full_total").increment(1);
            return Err(Problem::rate_limited(
                format!(
                    "this caller already has {} requests waiting for versions; retry after \
                     the Retry-After seconds",
                    self.shares.per_subject()
                ),
                RETRY_AFTER_SECONDS,
            ));
        };
        let Ok(_place) = self.waiters.try_acquire() else {
            metrics::counter!("query_consistency_waiters_full_total").increment(1);
            return Err(Problem::unavailable(
                "not_yet_consistent",
                format!(
                    "the {what} has not reached version {min_version} yet and too many \
                     requests are waiting already; retry shortly"
                ),
                RETRY_AFTER_SECONDS,
            ));
        };
        wait_until_consistent(what, min_version, self.wait, changes, fetch).await
    }
}

/// Polls `fetch` until its row reflects `min_version`, for at most `wait`.
async fn wait_until_consistent<T, F, Fut>(
    what: &str,
    min_version: i64,
    wait: Duration,
    mut changes: Option<watch::Receiver<Changes>>,
    mut fetch: F,
) -> Result<T, Problem>
where
    T: Versioned,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Problem>>,
{
    let started = Instant::now();
    let deadline = started + wait;
    let mut interval = FIRST_POLL_INTERVAL;
    loop {
        let seen = match fetch().await? {
            Some(row) if row.version() >= min_version => {
                let waited = started.elapsed();
                if !waited.is_zero() {
                    metrics::histogram!("query_consistency_wait_seconds")
                        .record(waited.as_secs_f64());
                }
                return Ok(row);
            }
            Some(row) => Some(row.version()),
            None => None,
        };
        let now = Instant::now();
        if now >= deadline {
            metrics::counter!("query_consistency_timeouts_total").increment(1);
            let detail = match seen {
                Some(version) => format!(
                    "the {what} is at version {version}, not yet at version {min_version}; retry shortly"
                ),
                None => format!("the {what} has not reached version {min_version} yet; retry shortly"),
            };
            return Err(Problem::unavailable(
                "not_yet_consistent",
                detail,
                RETRY_AFTER_SECONDS,
            ));
        }
        match changes.as_mut() {
            // The next progress report (or the fallback interval, or the deadline).
            Some(changes) => {
                let pause = PROGRESS_FALLBACK_INTERVAL.min(deadline - now);
                let _ = tokio::time::timeout(pause, changes.changed()).await;
            }
            None => {
                tokio::time::sleep(interval.min(deadline - now)).await;
                interval = (interval * 2).min(MAX_POLL_INTERVAL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(i64);
    impl Versioned for Row {
        fn version(&self) -> i64 {
            self.0
        }
    }

    /// A row whose version grows by one on every fetch (0: missing).
    fn growing() -> impl FnMut() -> std::future::Ready<Result<Option<Row>, Problem>> {
        let mut fetches = 0;
        move || {
            let version = fetches;
            fetches += 1;
            std::future::ready(Ok((version > 0).then_some(Row(version))))
        }
    }

    #[tokio::test]
    async fn without_min_version_a_missing_row_is_not_found() {
        let problem = Consistency::new(Duration::from_secs(5), 4, None)
            .fetch("thing", "tester", None, growing())
            .await
            .err()
            .unwrap();
        assert_eq!(problem.code, "not_found");
    }

    #[tokio::test]
    async fn min_version_polls_until_the_row_reaches_it() {
        let row = Consistency::new(Duration::from_secs(5), 4, None)
            .fetch("thing", "tester", Some(3), growing())
            .await
            .ok()
            .unwrap();
        assert_eq!(row.version(), 3);
    }

    #[tokio::test]
    async fn min_version_gives_up_after_the_wait() {
        let started = Instant::now();
        let problem = Consistency::new(Duration::from_millis(50), 4, None)
            .fetch("thing", "tester", Some(1_000_000), growing())
            .await
            .err()
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(problem.code, "not_yet_consistent");
        assert_eq!(problem.retry_after_seconds, Some(1));
    }

    #[tokio::test]
    async fn waiters_beyond_the_cap_are_refused_at_once() {
        let consistency = Consistency::new(Duration::from_secs(30), 2, None);
        let _held = (
            consistency.waiters.clone().try_acquire_owned().unwrap(),
            consistency.waiters.clone().try_acquire_owned().unwrap(),
        );
        let started = Instant::now();
        let problem = consistency
            .fetch("thing", "tester", Some(1_000_000), growing())
            .await
            .err()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(problem.code, "not_yet_consistent");
        // A row already at the version needs no place.
        let present = || std::future::ready(Ok(Some(Row(1))));
        let row = consistency
            .fetch("thing", "tester", Some(1), present)
            .await
            .ok()
            .unwrap();
        assert_eq!(row.version(), 1);
    }

    #[tokio::test]
    async fn one_subject_waits_with_its_share_and_others_still_wait() {
        // 16 places: a subject's share is 2.
        let consistency = Consistency::new(Duration::from_secs(30), 16, None);
        let flood = || {
            let consistency = consistency.clone();
            tokio::spawn(async move {
                consistency
                    .fetch("thing", "flood", Some(1_000_000), growing())
                    .await
                    .err()
                    .map(|p| p.code)
            })
        };
        let _waiting = (flood(), flood());
        wait_until(|| consistency.waiters.available_permits() == 14).await;
        let refused = consistency
            .fetch("thing", "flood", Some(1_000_000), growing())
            .await
            .err()
            .unwrap();
        assert_eq!(refused.code, "rate_limited");
        assert!(refused.retry_after_seconds.is_some());
        // Someone else still gets a place (and their row).
        let row = consistency
            .fetch("thing", "someone else", Some(2), growing())
            .await
            .ok()
            .unwrap();
        assert_eq!(row.version(), 2);
    }

    /// Polls `holds` for up to 10 s.
    async fn wait_until(holds: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !holds() {
            assert!(Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn min_version_must_be_positive() {
        assert!(EntityQuery {
            min_version: Some(0)
        }
        .min_version()
        .is_err());
        assert!(EntityQuery {
            min_version: Some(-4)
        }
        .min_version()
        .is_err());
        assert_eq!(
            EntityQuery {
                min_version: Some(1)
            }
            .min_version()
            .unwrap(),
            Some(1)
        );
        assert_eq!(EntityQuery::default().min_version().unwrap(), None);
    }
}
