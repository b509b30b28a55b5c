//! Reservation expiry: an order still `placed` `AGORA_ORDER_PAYMENT_TTL` after it was
//! placed is cancelled by the system (actor `system`, reason `payment_timeout`) and its
//! stock released, through the same command path as any cancel
//! ([`crate::routes::orders::run_expiry`]).
//!
//! - **Tracking**, a [`eventstore::follower`]: `order_expiries` holds every open order and
//!   when it was placed (OrderPlaced inserts; OrderPaid and OrderCancelled delete), written
//!   in the same transaction as the follower's checkpoint.
//! - **Expiring**, on the active instance only: every tick, the rows older than the TTL are
//!   expired, then deleted. The domain refuses to expire anything but a `placed` order, so
//!   a crash between the cancel and the delete (the next leader expires again: refused),
//!   a payment that won the race (refused), or two instances at once all end with exactly
//!   one outcome per order.

use std::sync::Arc;
use std::time::Duration;

use eventstore::follower::{BatchHandler, FollowerState, FollowerStatus};
use eventstore::RecordedEvent;
use tokio::sync::watch;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::execution::Engine;
use crate::payments::Payments;
use crate::routes::orders::run_expiry;

/// Orders expired per tick, at most.
const BATCH: i64 = 500;

/// The tracking half: the log follower's batch handler.
pub struct Tracker;

impl BatchHandler for Tracker {
    async fn handle<'a>(
        &'a mut self,
        session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> Result<(), String> {
        let (mut placed, mut placed_at, mut closed) = (Vec::new(), Vec::new(), Vec::new());
        for event in events {
            if event.stream_type != domain::order::STREAM_TYPE {
                continue;
            }
            match event.event_type.as_str() {
                "OrderPlaced" => {
                    placed.push(event.stream_id);
                    placed_at.push(event.occurred_at);
                }
                "OrderPaid" | "OrderCancelled" => closed.push(event.stream_id),
                _ => {}
            }
        }
        if !placed.is_empty() {
            session
                .execute(
                    "INSERT INTO order_expiries (order_id, placed_at) \
                     SELECT * FROM unnest($1::uuid[], $2::timestamptz[]) \
                     ON CONFLICT (order_id) DO NOTHING",
                    &[&placed, &placed_at],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        if !closed.is_empty() {
            session
                .execute(
                    "DELETE FROM order_expiries WHERE order_id = ANY($1)",
                    &[&closed],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The expiring half: runs while the tracker's `status` is active, until `shutdown`.
pub async fn run_expirer(
    engine: Arc<Engine>,
    payments: Arc<Payments>,
    ttl: Duration,
    status: FollowerStatus,
    mut shutdown: watch::Receiver<bool>,
) {
    let tick = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    while !*shutdown.borrow() {
        if status.get() == FollowerState::Active {
            if let Err(error) = expire_due(&engine, &payments, ttl).await {
                tracing::warn!(%error, "reservation expiry round failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Expires every tracked order older than `ttl` (up to [`BATCH`]), and withdraws its open
/// payment at the provider (a buyer paying after that is refused by the provider; a success
/// that still arrives is recorded as needing review, never as paid).
async fn expire_due(engine: &Engine, payments: &Payments, ttl: Duration) -> Result<(), String> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let client = engine.store.pool().get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT order_id FROM order_expiries \
             WHERE placed_at <= now() - make_interval(secs => $1::float8 / 1000) \
             ORDER BY placed_at LIMIT $2",
            &[&(ttl_ms as f64), &BATCH],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let due: Vec<Uuid> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut settled = Vec::with_capacity(due.len());
    for id in due {
        let open = engine.streams.peek(id).await.ok().and_then(|state| {
            state
                .order()
                .payments()
                .open()
                .map(|p| p.payment_id.clone())
        });
        match run_expiry(engine, id).await {
            Ok(_) => {
                metrics::counter!("orders_expired_total").increment(1);
                settled.push(id);
                if let Some(payment) = open {
                    if let Err(error) = payments.provider.cancel_payment(payment.as_str()).await {
                        tracing::warn!(order = %id, %payment, %error, "cannot withdraw an expired order's payment at the provider");
                    }
                }
            }
            // Paid, cancelled or expired already (or gone): nothing to do.
            Err(problem) if problem.status.is_client_error() => {
                metrics::counter!("order_expiries_skipped_total").increment(1);
                settled.push(id);
            }
            Err(problem) => {
                tracing::warn!(order = %id, detail = %problem.detail, "cannot expire an order yet");
            }
        }
    }
    if !settled.is_empty() {
        let client = engine.store.pool().get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "DELETE FROM order_expiries WHERE order_id = ANY($1)",
                &[&settled],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
