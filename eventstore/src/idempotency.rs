//! Stored responses of commands sent with an `Idempotency-Key` (written by
//! [`crate::EventStore::append`], read here).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::EventStore;

/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

/// The first response to a command with a given key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub request_hash: Vec<u8>,
    pub status_code: i16,
    pub resource_id: Uuid,
    pub resource_version: i64,
    pub position: i64,
    pub created_at: DateTime<Utc>,
}

impl EventStore {
    /// The remembered response for `(caller, key)`, if it is younger than the window.
    /// An expired record is deleted so the key can be used again.
    pub async fn find_idempotent_response(
        &self,
        caller: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT request_hash, status_code, resource_id, resource_version, position, \
                        created_at, created_at < now() - make_interval(hours => $3::int) \
                 FROM idempotency_keys WHERE caller = $1 AND key = $2",
            )
            .await?;
        let window = IDEMPOTENCY_WINDOW_HOURS as i32;
        let Some(row) = client
            .query_opt(&statement, &[&caller, &key, &window])
            .await?
        else {
            return Ok(None);
        };
        let expired: bool = row.try_get(6)?;
        if expired {
            client
                .execute(
                    "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2 \
                     AND created_at < now() - make_interval(hours => $3::int)",
                    &[&caller, &key, &window],
                )
                .await?;
            return Ok(None);
        }
        Ok(Some(StoredResponse {
            request_hash: row.try_get(0)?,
            status_code: row.try_get(1)?,
            resource_id: row.try_get(2)?,
            resource_version: row.try_get(3)?,
            position: row.try_get(4)?,
            created_at: row.try_get(5)?,
        }))
    }
}
