//! Verifying the hash chain of the stored log, stream by stream.

use futures::{pin_mut, TryStreamExt};
use uuid::Uuid;

use crate::error::StoreError;
use crate::hashchain::{ChainFailure, ChainVerifier};
use crate::row::{decode_event, EVENT_COLUMNS};
use crate::EventStore;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub streams_checked: u64,
    pub events_checked: u64,
    pub failures: Vec<ChainFailure>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl From<ChainVerifier> for VerifyReport {
    fn from(verifier: ChainVerifier) -> Self {
        VerifyReport {
            streams_checked: verifier.streams_checked,
            events_checked: verifier.events_checked,
            failures: verifier.failures,
        }
    }
}

impl EventStore {
    /// Recomputes every hash of one stream, or of all streams, streaming the rows.
    pub async fn verify(&self, stream_id: Option<Uuid>) -> Result<VerifyReport, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE ($1::uuid IS NULL OR stream_id = $1) \
             ORDER BY stream_id, version"
        );
        let rows = client.query_raw(&sql, [stream_id]).await?;
        pin_mut!(rows);
        let mut verifier = ChainVerifier::new();
        while let Some(row) = rows.try_next().await? {
            match decode_event(&row) {
                Ok(event) => verifier.check(&event),
                Err(error) => {
                    verifier.events_checked += 1;
                    verifier.failures.push(ChainFailure {
                        stream_id: row.try_get(4)?,
                        version: row.try_get(5)?,
                        reason: error.to_string(),
                    });
                }
            }
        }
        Ok(verifier.into())
    }
}
