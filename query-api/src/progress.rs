//! Read-model progress: one LISTEN session per process on the projector's
//! [`readmodel::PROGRESS_CHANNEL`], turned into a [`watch`] channel of per-projection
//! change counters that any number of tasks can wait on without touching the database.
//!
//! The projector sends the notification inside the transaction that applies a batch, so
//! a counter moves only after the change is committed and readable. When the session is
//! lost, it is opened again (after a second) and every counter moves once, since changes
//! may have been missed meanwhile: a waiter re-reads and finds out.
//!
//! Use: take a receiver with [`Progress::subscribe`] *before* reading, read, and if the
//! answer is not there yet wait for `receiver.changed()` (with a deadline) and read again.
//! Nothing is lost between the read and the wait: a change in between marks the receiver.

use std::time::Duration;

use futures::{stream, StreamExt};
use readmodel::PROGRESS_CHANNEL;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;

/// How long to wait before listening again after the session was lost.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How many times each projection has changed since this process started listening.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub products: u64,
    pub orders: u64,
    pub sales: u64,
    pub top_products: u64,
}

impl Changes {
    /// Counts a notification whose payload names `projection` (an unknown name moves
    /// every counter: better a needless re-read than a missed one).
    fn record(&mut self, projection: &str) {
        match projection {
            "products" => self.products += 1,
            "orders" => self.orders += 1,
            "sales" => self.sales += 1,
            "top_products" => self.top_products += 1,
            _ => self.record_all(),
        }
    }

    fn record_all(&mut self) {
        self.products += 1;
        self.orders += 1;
        self.sales += 1;
        self.top_products += 1;
    }
}

/// The process's view of read-model progress (cheap to clone).
#[derive(Clone)]
pub struct Progress {
    changes: watch::Receiver<Changes>,
}

impl Progress {
    /// Starts listening on `database_url` (the read-model database) in a background task,
    /// which ends once every [`Progress`] and receiver is dropped.
    pub fn listen(database_url: String) -> Progress {
        let (sender, changes) = watch::channel(Changes::default());
        tokio::spawn(async move {
            while !sender.is_closed() {
                match listen_once(&database_url, &sender).await {
                    Ok(()) => tracing::warn!("the read-model progress session closed"),
                    Err(error) => tracing::warn!(%error, "listening for read-model progress"),
                }
                tokio::select! {
                    () = sender.closed() => break,
                    () = tokio::time::sleep(RECONNECT_DELAY) => {}
                }
            }
        });
        Progress { changes }
    }

    /// A receiver marked changed by every later notification.
    pub fn subscribe(&self) -> watch::Receiver<Changes> {
        let mut receiver = self.changes.clone();
        receiver.mark_unchanged();
        receiver
    }

    /// The counters now.
    pub fn current(&self) -> Changes {
        *self.changes.borrow()
    }
}

/// One LISTEN session: until it fails or nobody listens any more.
async fn listen_once(
    database_url: &str,
    sender: &watch::Sender<Changes>,
) -> Result<(), eventstore::StoreError> {
    // Through the shared connector: the same TLS (sslmode) and timeouts as every pool.
    let (client, mut connection) = eventstore::Connector::new(database_url)?.connect().await?;
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {PROGRESS_CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    // The session's messages must be driven while LISTEN runs.
    let mut listening = false;
    loop {
        tokio::select! {
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                // Whatever happened before this session is unknown: everyone re-reads.
                sender.send_modify(Changes::record_all);
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    sender.send_modify(|changes| changes.record(note.payload()));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(()),
            },
            () = sender.closed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_move_their_projection_and_unknown_ones_move_all() {
        let mut changes = Changes::default();
        changes.record("sales");
        changes.record("sales");
        changes.record("orders");
        assert_eq!(
            changes,
            Changes {
                sales: 2,
                orders: 1,
                ..Changes::default()
            }
        );
        changes.record("something_new");
        assert_eq!((changes.products, changes.top_products), (1, 1));
        assert_eq!((changes.sales, changes.orders), (3, 2));
    }
}
