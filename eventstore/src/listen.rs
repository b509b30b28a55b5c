//! A dedicated session that LISTENs for `agora_events` notifications, so log followers
//! wake when events commit instead of poll-sleeping. The same session can hold
//! session-level advisory locks (leadership) and write checkpoints.

use std::sync::Arc;
use std::time::Duration;

use futures::{stream, StreamExt};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

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
        let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await?;
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
