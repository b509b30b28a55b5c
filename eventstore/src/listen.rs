//! Waking log followers when events commit.
//!
//! [`LogListener`]: a dedicated session that LISTENs for `agora_events`, so followers (the
//! relay, projectors on the log) wake at once instead of poll-sleeping; the same session
//! can hold session-level advisory locks (leadership) and write checkpoints.
//!
//! [`AppendNotifier`]: appenders signal *after* their commit, coalesced: however many
//! appends commit while one `pg_notify` is on its way, the next one covers them all. (A
//! NOTIFY inside the appending transaction would take PostgreSQL's cluster-wide
//! notification lock across every commit's WAL flush and serialize all appends.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use futures::{stream, StreamExt};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client};

use crate::error::StoreError;

/// The channel the events table's trigger notifies.
pub const EVENTS_CHANNEL: &str = "agora_events";

/// A session listening on [`EVENTS_CHANNEL`].
pub struct LogListener {
    client: Client,
    notified: Arc<Notify>,
}

impl LogListener {
    /// Opens the session and starts listening.
    pub async fn connect(database_url: &str) -> Result<LogListener, StoreError> {
        let (client, mut connection) = crate::connect::Connector::new(database_url)?
            .connect()
            .await?;
        let notified = Arc::new(Notify::new());
        let wake = notified.clone();
        tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "listening session failed");
                        break;
                    }
                }
            }
            // Wake the waiter so it notices the closed session.
            wake.notify_one();
        });
        client
            .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))
            .await?;
        Ok(LogListener { client, notified })
    }

    /// Waits for a notification (one that arrived since the last wait counts), at most
    /// `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notified.notified()).await;
    }

    /// The session, for advisory locks and checkpoints.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// True once the session is gone (its locks with it).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Tells followers that events were appended, at most one `pg_notify` in flight.
#[derive(Clone)]
pub struct AppendNotifier {
    pending: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl AppendNotifier {
    /// Starts the background task that sends the notifications over `pool`.
    pub fn spawn(pool: Pool) -> AppendNotifier {
        let notifier = AppendNotifier {
            pending: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
        };
        let task = notifier.clone();
        tokio::spawn(async move {
            loop {
                task.wake.notified().await;
                while task.pending.swap(false, Ordering::AcqRel) {
                    let sent = match pool.get().await {
                        // Nothing here needs to be durable: do not wait for a WAL flush
                        // while holding the server's notification lock.
                        Ok(client) => client
                            .batch_execute(&format!(
                                "BEGIN; SET LOCAL synchronous_commit TO off; \
                                 SELECT pg_notify('{EVENTS_CHANNEL}', ''); COMMIT"
                            ))
                            .await
                            .map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    };
                    if let Err(error) = sent {
                        // Followers also poll; a lost wake-up only costs latency.
                        tracing::debug!(%error, "cannot notify log followers");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        notifier
    }

    /// Records that an append committed; returns at once.
    pub fn appended(&self) {
        self.pending.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}
