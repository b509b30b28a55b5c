//! The customers' data keys as stored (table `pii_keys`, migration `V24`): wrapped under a
//! master key that never enters the database, or a tombstone once the customer is erased.
//! Wrapping and sealing are `platform::pii`'s; this module only reads and writes rows.

use deadpool_postgres::Pool;

use crate::error::StoreError;

/// What the table holds for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredDataKey {
    /// No key was made yet (the customer never gave personal data).
    Absent,
    /// The key, wrapped by the master key `master_key_id`.
    Live {
        master_key_id: String,
        wrapped: Vec<u8>,
    },
    /// Destroyed: the customer was erased.
    Erased,
}

/// A live key with its customer, as listed for re-wrapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub customer_id: String,
    pub master_key_id: String,
    pub wrapped: Vec<u8>,
}

fn stored(row: Option<tokio_postgres::Row>) -> Result<StoredDataKey, StoreError> {
    let Some(row) = row else {
        return Ok(StoredDataKey::Absent);
    };
    let master_key_id: Option<String> = row.try_get(0)?;
    let wrapped: Option<Vec<u8>> = row.try_get(1)?;
    Ok(match (master_key_id, wrapped) {
        (Some(master_key_id), Some(wrapped)) => StoredDataKey::Live {
            master_key_id,
            wrapped,
        },
        _ => StoredDataKey::Erased,
    })
}

/// The key row of `customer`.
pub async fn read(pool: &Pool, customer: &str) -> Result<StoredDataKey, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT master_key_id, wrapped_key FROM pii_keys WHERE customer_id = $1")
        .await?;
    stored(client.query_opt(&statement, &[&customer]).await?)
}

/// Stores `wrapped` as the key of `customer` unless the customer already has a row, and
/// returns what the table holds afterwards: this key, another one a concurrent writer stored
/// first, or a tombstone.
pub async fn insert(
    pool: &Pool,
    customer: &str,
    master_key_id: &str,
    wrapped: &[u8],
) -> Result<StoredDataKey, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "WITH inserted AS (
                 INSERT INTO pii_keys (customer_id, master_key_id, wrapped_key)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (customer_id) DO NOTHING
                 RETURNING master_key_id, wrapped_key
             )
             SELECT master_key_id, wrapped_key FROM inserted
             UNION ALL
             SELECT master_key_id, wrapped_key FROM pii_keys WHERE customer_id = $1
             LIMIT 1",
        )
        .await?;
    stored(
        client
            .query_opt(&statement, &[&customer, &master_key_id, &wrapped])
            .await?,
    )
}

/// Destroys the key of `customer`, leaving a tombstone (also for a customer who never had a
/// key, so none is made later). Idempotent; returns whether key material was destroyed now.
pub async fn destroy(pool: &Pool, customer: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "WITH before AS (
                 SELECT wrapped_key IS NOT NULL AS live FROM pii_keys WHERE customer_id = $1
             ), upsert AS (
                 INSERT INTO pii_keys (customer_id, master_key_id, wrapped_key, erased_at)
                 VALUES ($1, NULL, NULL, now())
                 ON CONFLICT (customer_id) DO UPDATE
                     SET master_key_id = NULL, wrapped_key = NULL,
                         erased_at = coalesce(pii_keys.erased_at, now())
             )
             SELECT coalesce((SELECT live FROM before), false)",
        )
        .await?;
    let row = client.query_one(&statement, &[&customer]).await?;
    Ok(row.try_get(0)?)
}

/// Every live key wrapped by a master key other than `master_key_id`.
pub async fn wrapped_by_others(
    pool: &Pool,
    master_key_id: &str,
) -> Result<Vec<WrappedKey>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT customer_id, master_key_id, wrapped_key FROM pii_keys
             WHERE wrapped_key IS NOT NULL AND master_key_id <> $1 ORDER BY customer_id",
            &[&master_key_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(WrappedKey {
                customer_id: row.try_get(0)?,
                master_key_id: row.try_get(1)?,
                wrapped: row.try_get(2)?,
            })
        })
        .collect()
}

/// Replaces the wrapping of a live key (`old`, as read) by `master_key_id`'s; `false` when
/// the row changed since (erased, or re-wrapped by someone else).
pub async fn rewrap(
    pool: &Pool,
    old: &WrappedKey,
    master_key_id: &str,
    wrapped: &[u8],
) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE pii_keys SET master_key_id = $3, wrapped_key = $4
             WHERE customer_id = $1 AND wrapped_key = $2",
            &[&old.customer_id, &old.wrapped, &master_key_id, &wrapped],
        )
        .await?;
    Ok(updated == 1)
}

/// The customers whose erasure the log records (`CustomerErased` events), for re-applying
/// erasures to a key table restored from a backup.
pub async fn erased_in_log(pool: &Pool) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT DISTINCT payload->>'customer_id' FROM events
             WHERE stream_type = $1 AND event_type = 'CustomerErased'",
            &[&domain::customer::STREAM_TYPE],
        )
        .await?;
    rows.iter()
        .map(|row| {
            row.try_get::<_, Option<String>>(0)
                .map_err(StoreError::from)
        })
        .filter_map(Result::transpose)
        .collect()
}
