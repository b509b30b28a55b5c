//! The email reactor.
//!
//! 1. **Ledger**, a [`eventstore::follower`]: for each `OrderPlaced`, `OrderPaid`,
//!    `OrderShipped`, `Refunded` and expiry (`OrderCancelled` by the payment timeout), one
//!    row in `emails` keyed by (template, event id), written in the same transaction as the
//!    follower's checkpoint: a restart, a second instance, a projection rebuild or a replay of
//!    the log adds nothing twice (rebuilds and replays do not even pass here).
//! 2. **Sender**, on the active instance only: takes due rows with a lease committed before
//!    the SMTP conversation, composes each ([`super::compose`]), sends it, and records the
//!    outcome: `sent`; `skipped` (erased, no address, switched off); retried after an
//!    exponential backoff with jitter; `failed` after `AGORA_EMAIL_MAX_ATTEMPTS` or at once
//!    on a permanent (5xx) refusal. An admin may retry a failed one.
//!
//! **At most once, except one window.** A row is sent only under its lease, and `sent` is
//! final. If the process dies after the SMTP server accepted a message and before `sent` is
//! recorded, the lease expires and the row is sent again: the one case of a duplicate, with
//! the same `Message-ID` (`<template.event-id@domain>`), so the receiving server or the
//! reader can tell it for what it is. Losing the SMTP server's answer is the same case.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::{CancelReason, OrderEvent};
use eventstore::follower::{BatchHandler, FollowerState, FollowerStatus};
use eventstore::{EventStore, RecordedEvent, ShopEvent};
use futures::StreamExt;
use platform::pii::Vault;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio_postgres::Client;
use uuid::Uuid;

use super::compose::compose;
use super::ledger::{self, Due, NewEmail, Outcome};
use super::mailer::Mailer;
use super::EmailSettings;

/// Messages in flight at once, and so the rows one round takes: a sender that dies holds
/// no more rows than it was sending.
const IN_FLIGHT: usize = 8;
/// How long a taken row is this sender's (then another may take it). Only the active
/// instance sends, so a lease matters when it dies: its rows are taken up again after this.
pub const LEASE: Duration = Duration::from_secs(30);

/// The template of `event`, if it sends one, with its non-personal details.
pub fn template_of(event: &OrderEvent) -> Option<(&'static str, serde_json::Value)> {
    match event {
        OrderEvent::OrderPlaced(_) => Some(("order_placed", json!({}))),
        OrderEvent::OrderPaid(_) => Some(("order_paid", json!({}))),
        OrderEvent::OrderShipped(_) => Some(("order_shipped", json!({}))),
        OrderEvent::Refunded(refunded) => Some((
            "refunded",
            json!({"amount_cents": refunded.amount_cents, "currency": refunded.currency}),
        )),
        OrderEvent::OrderCancelled(cancelled)
            if cancelled.reason.as_str() == CancelReason::PAYMENT_TIMEOUT =>
        {
            Some(("order_expired", json!({})))
        }
        _ => None,
    }
}

/// The ledger writer: the log follower's batch handler.
pub struct Ledger {
    pub wake: Arc<Notify>,
}

impl BatchHandler for Ledger {
    async fn handle<'a>(
        &'a mut self,
        session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> Result<(), String> {
        let mut wanted: Vec<(&RecordedEvent, &'static str, serde_json::Value)> = Vec::new();
        let mut customers: std::collections::HashMap<Uuid, String> = Default::default();
        for event in events {
            if event.stream_type != domain::order::STREAM_TYPE {
                continue;
            }
            let Ok(ShopEvent::Order(decoded)) = eventstore::decode(event) else {
                continue;
            };
            if let OrderEvent::OrderPlaced(placed) = &decoded {
                customers.insert(event.stream_id, placed.customer_id.as_str().to_owned());
            }
            if let Some((template, details)) = template_of(&decoded) {
                wanted.push((event, template, details));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // Whose orders the others are (their OrderPlaced is in an earlier batch).
        let unknown: Vec<Uuid> = wanted
            .iter()
            .map(|(e, _, _)| e.stream_id)
            .filter(|id| !customers.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            let rows = session
                .query(
                    "SELECT stream_id, payload->>'customer_id' FROM events \
                     WHERE stream_id = ANY($1) AND version = 1 AND event_type = 'OrderPlaced'",
                    &[&unknown],
                )
                .await
                .map_err(|e| e.to_string())?;
            for row in rows {
                let id: Uuid = row.try_get(0).map_err(|e| e.to_string())?;
                let customer: Option<String> = row.try_get(1).map_err(|e| e.to_string())?;
                if let Some(customer) = customer {
                    customers.insert(id, customer);
                }
            }
        }
        let emails: Vec<NewEmail> = wanted
            .into_iter()
            .filter_map(|(event, template, details)| {
                Some(NewEmail {
                    template,
                    event_id: event.event_id,
                    position: event.position,
                    order_id: event.stream_id,
                    customer_id: customers.get(&event.stream_id)?.clone(),
                    details,
                })
            })
            .collect();
        let added = ledger::enqueue(session, &emails)
            .await
            .map_err(|e| e.to_string())?;
        metrics::counter!("emails_enqueued_total").increment(added);
        Ok(())
    }

    fn committed(&mut self) {
        self.wake.notify_waiters();
    }
}

/// What the sender needs.
#[derive(Clone)]
pub struct Sender {
    pub store: EventStore,
    pub vault: Vault,
    pub mailer: Mailer,
    pub settings: EmailSettings,
}

/// Sends due emails while this instance's email follower is the active one.
pub async fn run_sender(
    sender: Sender,
    status: FollowerStatus,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(to = %sender.mailer.describe(), "email sender started");
    while !*shutdown.borrow() {
        let mut worked = false;
        if status.get() == FollowerState::Active {
            match ledger::claim(sender.store.pool(), IN_FLIGHT as i64, LEASE).await {
                Ok(due) => {
                    worked = !due.is_empty();
                    futures::stream::iter(due)
                        .for_each_concurrent(IN_FLIGHT, |due| {
                            let sender = sender.clone();
                            async move { attempt(&sender, due).await }
                        })
                        .await;
                }
                Err(error) => tracing::warn!(%error, "cannot take due emails"),
            }
            if let Ok(pending) = ledger::pending_count(sender.store.pool()).await {
                metrics::gauge!("emails_pending").set(pending as f64);
            }
        }
        if !worked {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// One attempt at `due`: compose, send, record.
async fn attempt(sender: &Sender, due: Due) {
    let outcome = match compose(&sender.store, &sender.vault, &sender.settings, &due).await {
        Ok(Err(skip)) => Outcome::Skipped(skip.reason()),
        Ok(Ok(message)) => match sender.mailer.send(message).await {
            Ok(()) => Outcome::Sent,
            Err(error) if error.permanent => Outcome::Failed(error.reason),
            Err(error) => again(sender, &due, error.reason),
        },
        Err(error) => again(sender, &due, error),
    };
    let label = match &outcome {
        Outcome::Sent => "sent",
        Outcome::Skipped(_) => "skipped",
        Outcome::RetryAt(..) => "retry",
        Outcome::Failed(_) => "failed",
    };
    if let Outcome::RetryAt(_, reason) | Outcome::Failed(reason) = &outcome {
        tracing::warn!(email = %due.id, template = %due.template, attempts = due.attempts, %reason, "an email was not sent");
    }
    metrics::counter!("emails_total", "outcome" => label).increment(1);
    match ledger::record(sender.store.pool(), &due, &outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(email = %due.id, "another sender took this email meanwhile"),
        Err(error) => {
            tracing::warn!(email = %due.id, %error, "cannot record an email's outcome; its lease will expire and it is tried again")
        }
    }
}

fn again(sender: &Sender, due: &Due, reason: String) -> Outcome {
    if due.attempts as u32 >= sender.settings.email_max_attempts.max(1) {
        Outcome::Failed(reason)
    } else {
        let wait =
            crate::reactors::backoff::backoff(sender.settings.email_retry_base, due.attempts);
        Outcome::RetryAt(Utc::now() + wait, reason)
    }
}
