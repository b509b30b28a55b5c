//! The gap-free global log reader.
//!
//! Positions come from a sequence taken at insert but become visible at commit, so a reader
//! that remembers only the last position skips events that commit late. Instead the log is
//! read in `(transaction_id, position)` order, only up to the oldest transaction still
//! running (`pg_snapshot_xmin`), and readers checkpoint the pair.

use futures::{pin_mut, TryStreamExt};
use postgres_types::ToSql;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::row::{decode_event, EVENT_COLUMNS};
use crate::xid8::Xid8;
use crate::EventStore;

/// A place in log order: the last event a reader has seen.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LogCheckpoint {
    pub transaction_id: u64,
    pub position: i64,
}

impl LogCheckpoint {
    /// Before the first event.
    pub const START: LogCheckpoint = LogCheckpoint {
        transaction_id: 0,
        position: 0,
    };

    /// The checkpoint just after `event`.
    pub fn after(event: &RecordedEvent) -> Self {
        LogCheckpoint {
            transaction_id: event.transaction_id,
            position: event.position,
        }
    }
}

impl EventStore {
    /// Up to `limit` events after `after`, in log order, from finished transactions only.
    /// Every committed event is returned exactly once across successive calls that pass the
    /// checkpoint of the last event returned.
    pub async fn read_log(
        &self,
        after: LogCheckpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events \
                 WHERE (transaction_id, position) > ($1, $2) \
                   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY transaction_id, position LIMIT $3"
            ))
            .await?;
        let params: [&(dyn ToSql + Sync); 3] =
            [&Xid8(after.transaction_id), &after.position, &limit];
        // Each row is decoded as it arrives, while the server still sends the next ones.
        let rows = client.query_raw(&statement, params).await?;
        pin_mut!(rows);
        let mut events = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(10_000));
        while let Some(row) = rows.try_next().await? {
            events.push(decode_event(&row)?);
        }
        Ok(events)
    }

    /// The events at `positions` (those that exist), in position order.
    pub async fn events_at(&self, positions: &[i64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY($1) ORDER BY position"
            ))
            .await?;
        let rows = client.query(&statement, &[&positions]).await?;
        rows.iter().map(decode_event).collect()
    }

    /// The checkpoint of the event at `position`, if there is one: where a reader resumes
    /// when a client pages with `after=<position>`.
    pub async fn checkpoint_of(&self, position: i64) -> Result<Option<LogCheckpoint>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT transaction_id FROM events WHERE position = $1")
            .await?;
        let row = client.query_opt(&statement, &[&position]).await?;
        row.map(|row| {
            let transaction_id: Xid8 = row.try_get(0)?;
            Ok(LogCheckpoint {
                transaction_id: transaction_id.0,
                position,
            })
        })
        .transpose()
    }

    /// Seconds the oldest running transaction has been open (0 when none): it holds every
    /// log reader back, so it is worth watching.
    pub async fn oldest_open_transaction_age(&self) -> Result<f64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(EXTRACT(EPOCH FROM max(now() - xact_start)), 0)::float8 \
                 FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
}
