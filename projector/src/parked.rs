//! Parked streams: a projection never applies a stream past an event it could not apply.
//!
//! The batch path ([`crate::apply`]) parks a stream at such an event (`read_model.
//! parked_streams`, one row per projection version and stream) and holds it and every later
//! event of the stream its source delivers (`read_model.held_events`: which events, in stream
//! order; their content stays in the event store). Every other stream goes on.
//!
//! This module also drains them: [`run`] carries out the admins' requests recorded by the
//! query API (`read_model.parked_actions`: retry, or skip the event the stream is parked at),
//! retries every parked stream once when the projector starts (the cause may have been fixed,
//! or a new version deployed), and keeps the gauges `projection_parked_streams` and
//! `projection_parked_oldest_seconds`. A retry reads the held events from the event store and
//! applies them in order, each under a savepoint: if all apply, the stream is unparked; else it
//! stays parked at the first that fails, with its error. The parked row is locked for the
//! whole retry, and the batch path locks the rows it reads (`FOR SHARE`), so an event the
//! source delivers meanwhile is either held before the retry reads the held events or applied
//! after the stream is unparked, never lost between the two.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use eventstore::EventStore;
use tokio::sync::watch;
use uuid::Uuid;

use crate::apply::{apply_isolated, record_poison, ApplyError, BatchItem, Target};
use crate::event::decode;
use crate::projections;

/// How often pending requests are looked for and the gauges refreshed.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The streams of `streams` that `target` has parked, locked (shared) until the batch ends.
pub async fn parked_among(
    tx: &Transaction<'_>,
    target: &Target,
    streams: &[Uuid],
) -> Result<HashSet<Uuid>, ApplyError> {
    if streams.is_empty() {
        return Ok(HashSet::new());
    }
    let statement = tx
        .prepare_cached(
            "SELECT stream_id FROM read_model.parked_streams \
             WHERE projection = $1 AND version = $2 AND stream_id = ANY($3) FOR SHARE",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[&target.projection.name(), &target.version, &streams],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(ApplyError::from)
}

/// Parks `item`'s stream at it, for `error` (kept as it is when the stream is parked
/// already).
pub async fn park(
    tx: &Transaction<'_>,
    target: &Target,
    item: &BatchItem,
    error: &str,
) -> Result<(), ApplyError> {
    let facts = &item.facts;
    tracing::error!(
        projection = target.projection.name(),
        stream_id = %facts.stream_id,
        version = facts.version,
        event_id = %facts.event_id,
        %error,
        "stream parked: its later events wait until it is retried or the event skipped"
    );
    tx.execute(
        "INSERT INTO read_model.parked_streams \
         (projection, version, stream_id, event_id, stream_version, event_type, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &target.projection.name(),
            &target.version,
            &facts.stream_id,
            &facts.event_id,
            &facts.version,
            &facts.event_type,
            &error,
        ],
    )
    .await?;
    Ok(())
}

/// Records `item` as held (once, however often its source delivers it).
pub async fn hold(
    tx: &Transaction<'_>,
    target: &Target,
    item: &BatchItem,
) -> Result<(), ApplyError> {
    let facts = &item.facts;
    let statement = tx
        .prepare_cached(
            "INSERT INTO read_model.held_events \
             (projection, version, stream_id, stream_version, event_id, event_type, \
              source_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &target.projection.name(),
            &target.version,
            &facts.stream_id,
            &facts.version,
            &facts.event_id,
            &facts.event_type,
            &item.position.to_string(),
        ],
    )
    .await?;
    Ok(())
}

/// What a retry of a parked stream came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Every held event applied (after the skipped one, for a skip): the stream goes on.
    Drained { applied: usize },
    /// Parked again at the event of `version`, for `error`.
    ParkedAgain { version: i64, error: String },
    /// The stream is not parked (any more).
    NotParked,
}

impl std::fmt::Display for Retried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retried::Drained { applied } => write!(f, "drained: {applied} held events applied"),
            Retried::ParkedAgain { version, error } => {
                write!(f, "parked again at version {version}: {error}")
            }
            Retried::NotParked => write!(f, "not parked"),
        }
    }
}

/// Retries the parked `stream_id` of `target` inside `tx` (the caller commits): applies its
/// held events in order (without the first one when `skip`). Returns what came of it and
/// the event skipped.
async fn retry_in(
    tx: &Transaction<'_>,
    store: &EventStore,
    target: &Target,
    stream_id: Uuid,
    skip: bool,
) -> Result<(Retried, Option<Uuid>), ApplyError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&crate::apply::SWITCH_LOCK_KEY],
    )
    .await?;
    let name = target.projection.name();
    let Some(parked) = tx
        .query_opt(
            "SELECT event_id, stream_version FROM read_model.parked_streams \
             WHERE projection = $1 AND version = $2 AND stream_id = $3 FOR UPDATE",
            &[&name, &target.version, &stream_id],
        )
        .await?
    else {
        return Ok((Retried::NotParked, None));
    };
    let (parked_event, parked_version): (Uuid, i64) = (parked.try_get(0)?, parked.try_get(1)?);
    let held: Vec<(i64, String)> = tx
        .query(
            "SELECT stream_version, source_position FROM read_model.held_events \
             WHERE projection = $1 AND version = $2 AND stream_id = $3 ORDER BY stream_version",
            &[&name, &target.version, &stream_id],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let last_held = held.last().map_or(parked_version, |(version, _)| *version);
    let stream = store
        .load_stream(stream_id)
        .await
        .map_err(|error| ApplyError::Conflict(format!("cannot read the event store: {error}")))?;
    let mut applied = 0;
    let mut skipped = None;
    for event in stream
        .events
        .iter()
        .filter(|e| e.version >= parked_version && e.version <= last_held)
    {
        if skip && event.version == parked_version {
            skipped = Some(event.event_id);
            tracing::warn!(projection = name, %stream_id, version = event.version,
                           event_id = %event.event_id, "parked event skipped");
            continue;
        }
        let outcome = match decode(event) {
            Ok(projected) => apply_isolated(tx, target, &projected).await?,
            Err(reason) => Err(reason),
        };
        if let Err(error) = outcome {
            // Applied so far stays applied; the stream now waits at this event.
            let item = crate::source_log::batch_item(event);
            record_poison(tx, target, &item, &error).await?;
            tx.execute(
                "UPDATE read_model.parked_streams SET event_id = $4, stream_version = $5, \
                 event_type = $6, error = $7, retried_at = now() \
                 WHERE projection = $1 AND version = $2 AND stream_id = $3",
                &[
                    &name,
                    &target.version,
                    &stream_id,
                    &event.event_id,
                    &event.version,
                    &event.event_type,
                    &error,
                ],
            )
            .await?;
            tx.execute(
                "DELETE FROM read_model.held_events \
                 WHERE projection = $1 AND version = $2 AND stream_id = $3 AND stream_version < $4",
                &[&name, &target.version, &stream_id, &event.version],
            )
            .await?;
            return Ok((
                Retried::ParkedAgain {
                    version: event.version,
                    error,
                },
                skipped,
            ));
        }
        applied += 1;
    }
    if skip && skipped.is_none() {
        // The event is not in the store (it cannot be read back): skipping it is still what
        // was asked, by its id.
        skipped = Some(parked_event);
    }
    for sql in [
        "DELETE FROM read_model.held_events WHERE projection = $1 AND version = $2 AND stream_id = $3",
        "DELETE FROM read_model.parked_streams WHERE projection = $1 AND version = $2 AND stream_id = $3",
    ] {
        tx.execute(sql, &[&name, &target.version, &stream_id]).await?;
    }
    readmodel::notify_progress(tx, name).await?;
    tracing::info!(projection = name, %stream_id, applied, "parked stream drained");
    Ok((Retried::Drained { applied }, skipped))
}

/// The projection called `name` at its active version, if there is one.
async fn active_target(tx: &Transaction<'_>, name: &str) -> Result<Option<Target>, ApplyError> {
    let Some(projection) = projections::all().into_iter().find(|p| p.name() == name) else {
        return Ok(None);
    };
    let row = tx
        .query_opt(
            "SELECT active_version FROM read_model.projections WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row
        .map(|row| row.try_get(0))
        .transpose()?
        .map(|version| Target {
            projection,
            version,
        }))
}

/// Carries out the oldest pending request, if any; false when there was none.
pub async fn carry_out_one(read_pool: &Pool, store: &EventStore) -> Result<bool, ApplyError> {
    let mut client = read_pool.get().await?;
    let tx = client.transaction().await?;
    let Some(request) = tx
        .query_opt(
            "SELECT id, projection, stream_id, action FROM read_model.parked_actions \
             WHERE done_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?
    else {
        return Ok(false);
    };
    let (id, name, stream_id, action): (i64, String, Uuid, String) = (
        request.try_get(0)?,
        request.try_get(1)?,
        request.try_get(2)?,
        request.try_get(3)?,
    );
    let (outcome, version, skipped) = match active_target(&tx, &name).await? {
        Some(target) => {
            let (outcome, skipped) =
                retry_in(&tx, store, &target, stream_id, action == "skip").await?;
            (outcome, Some(target.version), skipped)
        }
        None => (Retried::NotParked, None, None),
    };
    tx.execute(
        "UPDATE read_model.parked_actions SET done_at = now(), outcome = $2, version = $3, \
         skipped_event_id = $4 WHERE id = $1",
        &[&id, &outcome.to_string(), &version, &skipped],
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(projection = %name, %stream_id, action, %outcome, "parked stream: request carried out");
    Ok(true)
}

/// Retries every parked stream of the live projections once (no request needed: at start,
/// the cause may be gone).
pub async fn retry_all(read_pool: &Pool, store: &EventStore) -> Result<(), ApplyError> {
    let parked: Vec<(String, Uuid)> = read_pool
        .get()
        .await?
        .query(
            "SELECT s.projection, s.stream_id FROM read_model.parked_streams s \
             JOIN read_model.projections p ON p.name = s.projection AND p.active_version = s.version",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    for (name, stream_id) in parked {
        let mut client = read_pool.get().await?;
        let tx = client.transaction().await?;
        let Some(target) = active_target(&tx, &name).await? else {
            continue;
        };
        let (outcome, _) = retry_in(&tx, store, &target, stream_id, false).await?;
        tx.commit().await?;
        tracing::info!(projection = %name, %stream_id, %outcome, "parked stream retried at start");
    }
    Ok(())
}

/// Sets the gauges of parked streams per live projection.
async fn refresh_gauges(read_pool: &Pool) -> Result<(), ApplyError> {
    let rows = read_pool
        .get()
        .await?
        .query(
            "SELECT p.name, count(s.stream_id), \
                    COALESCE(extract(epoch FROM now() - min(s.parked_at)), 0)::float8 \
             FROM read_model.projections p \
             LEFT JOIN read_model.parked_streams s \
               ON s.projection = p.name AND s.version = p.active_version \
             GROUP BY p.name",
            &[],
        )
        .await?;
    for row in rows {
        let name: String = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        let oldest: f64 = row.try_get(2)?;
        metrics::gauge!("projection_parked_streams", "projection" => name.clone())
            .set(count as f64);
        metrics::gauge!("projection_parked_oldest_seconds", "projection" => name).set(oldest);
    }
    Ok(())
}

/// Retries every parked stream once, then carries out requests as they come and keeps the
/// gauges, until `shutdown`.
pub async fn run(read_pool: Pool, store: EventStore, mut shutdown: watch::Receiver<bool>) {
    if let Err(error) = retry_all(&read_pool, &store).await {
        tracing::warn!(%error, "retrying the parked streams at start failed");
    }
    loop {
        loop {
            match carry_out_one(&read_pool, &store).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(%error, "carrying out a parked-stream request failed; retrying");
                    break;
                }
            }
        }
        if let Err(error) = refresh_gauges(&read_pool).await {
            tracing::debug!(%error, "refreshing the parked-stream gauges failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
