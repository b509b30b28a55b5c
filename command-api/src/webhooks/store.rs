//! Webhook subscriptions and the delivery log in PostgreSQL (tables of migration
//! `V20__reactors.sql`). Creating and deleting a subscription appends its event to the log
//! (stream type `webhook`) in the same transaction: no subscription exists, or stops, without
//! the log saying who did it.

use chrono::{DateTime, Utc};
use domain::webhook::{WebhookSubscribed, WebhookUnsubscribed};
use domain::{ActorId, WebhookEvent};
use eventstore::{
    AppendError, AppendRequest, EventMetadata, EventStore, Pool, StoreError, StreamWrite,
};
use serde::Serialize;
use uuid::Uuid;

use crate::streams::event_rows;

use super::secrets::Sealed;

/// A subscription as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A subscription with its sealed secret, for delivering.
#[derive(Debug, Clone)]
pub struct Target {
    pub subscription: Subscription,
    pub sealed: Sealed,
}

/// One row of the delivery log as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub event_id: Uuid,
    pub attempts: i32,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A delivery that is due: the head of its stream for its subscription.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub event_id: Uuid,
    pub position: i64,
    pub attempts: i32,
}

fn subscription(row: &tokio_postgres::Row) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        event_types: row.try_get("event_types")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The most subscriptions there may be: each has its own delivery worker and a delivery
/// row per matching event, so an admin token may not multiply them without bound.
pub const MAX_SUBSCRIPTIONS: i64 = 100;

/// Why a change of subscriptions was not made (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl From<tokio_postgres::Error> for ChangeError {
    fn from(error: tokio_postgres::Error) -> Self {
        ChangeError::Store(error.into())
    }
}

/// Who changes a subscription, for its event: the admin and the request's metadata.
pub struct ChangedBy {
    pub actor: ActorId,
    pub metadata: EventMetadata,
}

/// The append of `event` on the stream of subscription `id` at `loaded`'s version.
fn logged(
    id: Uuid,
    expected_version: i64,
    prev_hash: eventstore::Hash,
    event: WebhookEvent,
    metadata: EventMetadata,
) -> AppendRequest {
    AppendRequest {
        streams: vec![StreamWrite {
            stream_type: domain::webhook::STREAM_TYPE.to_owned(),
            stream_id: id,
            expected_version,
            prev_hash,
            events: event_rows(&[event]),
        }],
        metadata,
        occurred_at: Utc::now(),
        claims: Vec::new(),
        idempotency: None,
    }
}

/// Records a new subscription and its `WebhookSubscribed` event; `None` (and nothing
/// stored) when there are already [`MAX_SUBSCRIPTIONS`]. Count and insert run in one
/// transaction holding a lock that conflicts with itself (and with writes to the table), so
/// concurrent creations are serialized and cannot pass the cap together.
pub async fn create(
    store: &EventStore,
    id: Uuid,
    url: &str,
    event_types: &[String],
    sealed: &Sealed,
    by: ChangedBy,
) -> Result<Option<Subscription>, ChangeError> {
    let mut client = store.pool().get().await.map_err(StoreError::from)?;
    let transaction = client.transaction().await?;
    transaction
        .batch_execute("LOCK TABLE webhook_subscriptions IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let row = transaction
        .query_opt(
            "INSERT INTO webhook_subscriptions (id, url, event_types, secret_nonce, secret_sealed) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE (SELECT count(*) FROM webhook_subscriptions) < $6 \
             RETURNING id, url, event_types, created_at",
            &[
                &id,
                &url,
                &event_types,
                &sealed.nonce,
                &sealed.ciphertext,
                &MAX_SUBSCRIPTIONS,
            ],
        )
        .await?;
    let Some(created) = row.as_ref().map(subscription).transpose()? else {
        return Ok(None);
    };
    let event = WebhookSubscribed {
        subscription_id: id,
        url: url.to_owned(),
        event_types: event_types.to_vec(),
        subscribed_by: by.actor,
    };
    let request = logged(id, 0, eventstore::Hash::GENESIS, event.into(), by.metadata);
    store.append_in(&transaction, request).await?;
    transaction.commit().await.map_err(StoreError::from)?;
    store.committed_elsewhere();
    Ok(Some(created))
}

/// Every subscription, oldest first.
pub async fn list(pool: &Pool) -> Result<Vec<Subscription>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, url, event_types, created_at FROM webhook_subscriptions \
             ORDER BY created_at, id",
            &[],
        )
        .await?;
    rows.iter().map(subscription).collect()
}

/// One subscription with its sealed secret.
pub async fn target(pool: &Pool, id: Uuid) -> Result<Option<Target>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, url, event_types, created_at, secret_nonce, secret_sealed \
             FROM webhook_subscriptions WHERE id = $1",
            &[&id],
        )
        .await?;
    row.map(|row| {
        Ok(Target {
            subscription: subscription(&row)?,
            sealed: Sealed {
                nonce: row.try_get("secret_nonce")?,
                ciphertext: row.try_get("secret_sealed")?,
            },
        })
    })
    .transpose()
}

/// Deletes a subscription and its delivery log, and appends its `WebhookUnsubscribed`;
/// false (nothing appended) when there was none. The deleted row stays locked until the
/// event is written, so a concurrent deletion waits and then finds nothing to delete.
pub async fn delete(store: &EventStore, id: Uuid, by: ChangedBy) -> Result<bool, ChangeError> {
    let mut client = store.pool().get().await.map_err(StoreError::from)?;
    let transaction = client.transaction().await.map_err(StoreError::from)?;
    let deleted = transaction
        .execute("DELETE FROM webhook_subscriptions WHERE id = $1", &[&id])
        .await
        .map_err(StoreError::from)?;
    if deleted == 0 {
        return Ok(false);
    }
    // A subscription made before its changes were logged has no stream yet: the event
    // starts one.
    let stream = store.load_stream(id).await?;
    let event = WebhookUnsubscribed {
        subscription_id: id,
        unsubscribed_by: by.actor,
    };
    let request = logged(
        id,
        stream.version,
        stream.last_hash,
        event.into(),
        by.metadata,
    );
    store.append_in(&transaction, request).await?;
    transaction.commit().await.map_err(StoreError::from)?;
    store.committed_elsewhere();
    Ok(true)
}

/// A page of a subscription's delivery log, newest first, after `cursor` (a row id).
pub async fn deliveries(
    pool: &Pool,
    subscription_id: Uuid,
    status: Option<&str>,
    cursor: Option<i64>,
    limit: i64,
) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, event_id, attempts, status, last_status_code, last_error, next_attempt_at \
             FROM webhook_deliveries \
             WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2) \
               AND ($3::int8 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
            &[&subscription_id, &status, &cursor, &(limit + 1)],
        )
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    let mut last_id = None;
    for row in rows.iter().take(limit as usize) {
        let status: String = row.try_get("status")?;
        items.push(Delivery {
            event_id: row.try_get("event_id")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: if status == "pending" {
                row.try_get("next_attempt_at")?
            } else {
                None
            },
            status,
            last_status_code: row.try_get("last_status_code")?,
            last_error: row.try_get("last_error")?,
        });
        last_id = Some(row.try_get::<_, i64>("id")?);
    }
    let next = if rows.len() as i64 > limit {
        last_id
    } else {
        None
    };
    Ok((items, next))
}

/// Makes a delivery pending again, due now, with a fresh attempt count; false when the
/// subscription has no delivery of that event.
pub async fn retry(pool: &Pool, subscription_id: Uuid, event_id: Uuid) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
                    next_attempt_at = now(), delivered_at = NULL \
             WHERE subscription_id = $1 AND event_id = $2",
            &[&subscription_id, &event_id],
        )
        .await?;
    Ok(updated > 0)
}

/// Up to `limit` due deliveries of a subscription: each the oldest pending delivery of
/// its stream (so a stream's events go out in log order), in log order.
pub async fn due(pool: &Pool, subscription_id: Uuid, limit: i64) -> Result<Vec<Due>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, event_id, position, attempts FROM ( \
                 SELECT DISTINCT ON (stream_id) id, event_id, position, attempts, \
                        next_attempt_at \
                 FROM webhook_deliveries \
                 WHERE subscription_id = $1 AND status = 'pending' \
                 ORDER BY stream_id, id) heads \
             WHERE next_attempt_at <= now() ORDER BY id LIMIT $2",
        )
        .await?;
    let rows = client
        .query(&statement, &[&subscription_id, &limit])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Due {
                id: row.try_get(0)?,
                event_id: row.try_get(1)?,
                position: row.try_get(2)?,
                attempts: row.try_get(3)?,
            })
        })
        .collect()
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered {
        status_code: i32,
    },
    Failed {
        status_code: Option<i32>,
        error: String,
        /// When to try again; `None`: the failure limit is reached (`failed`).
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Records attempts, one `(delivery id, attempt)` each, in one statement.
pub async fn record(pool: &Pool, attempts: &[(i64, Attempt)]) -> Result<(), StoreError> {
    let mut ids = Vec::with_capacity(attempts.len());
    let mut statuses = Vec::with_capacity(attempts.len());
    let mut codes = Vec::with_capacity(attempts.len());
    let mut errors = Vec::with_capacity(attempts.len());
    let mut retries = Vec::with_capacity(attempts.len());
    for (id, attempt) in attempts {
        ids.push(*id);
        match attempt {
            Attempt::Delivered { status_code } => {
                statuses.push("delivered");
                codes.push(Some(*status_code));
                errors.push(None);
                retries.push(None);
            }
            Attempt::Failed {
                status_code,
                error,
                retry_at,
            } => {
                statuses.push(if retry_at.is_some() {
                    "pending"
                } else {
                    "failed"
                });
                codes.push(*status_code);
                errors.push(Some(error.as_str()));
                retries.push(*retry_at);
            }
        }
    }
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE webhook_deliveries d SET status = u.status, attempts = d.attempts + 1, \
                    last_status_code = u.code, last_error = u.error, \
                    next_attempt_at = COALESCE(u.retry_at, d.next_attempt_at), \
                    delivered_at = CASE WHEN u.status = 'delivered' THEN now() END \
             FROM unnest($1::int8[], $2::text[], $3::int4[], $4::text[], $5::timestamptz[]) \
                  AS u(id, status, code, error, retry_at) \
             WHERE d.id = u.id",
        )
        .await?;
    client
        .execute(&statement, &[&ids, &statuses, &codes, &errors, &retries])
        .await?;
    Ok(())
}

/// How many deliveries are pending, over all subscriptions.
pub async fn pending_count(pool: &Pool) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}
