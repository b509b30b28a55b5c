//! The history checker: compares a [`History`](crate::history::History) with the event store
//! and the read models, independently of the code under test (it folds the stored events'
//! JSON itself).
//!
//! Checked: every acknowledged command's events are in the store exactly once (one
//! `command_id` per correlation id), at its acknowledged version and position; every refused
//! command left nothing; an unknown outcome was applied at most once; each stream's versions
//! are 1, 2, 3, … without gaps; no product's stock is negative at any version; every
//! `OrderPaid` names the provider event that reported it or the reason of an admin's offline
//! payment (but version 1, which predates both), and no order is paid twice; and, once the
//! read models caught up, each product and order in the query API (an order's status,
//! payment reference, refunded amount, payments and refunds) equals the fold of its events.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use uuid::Uuid;

use crate::history::{Entry, Outcome};

/// One stored event, as the checker reads it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub stream_id: Uuid,
    pub stream_type: String,
    pub version: i64,
    pub position: i64,
    pub event_type: String,
    /// The version of the event type's schema the payload was recorded with.
    pub schema_version: i32,
    pub payload: Value,
    pub correlation_id: String,
    pub command_id: String,
}

/// What the checker found. `violations` names every broken rule; empty means the history
/// is consistent with the store (and the read models, when they were compared).
#[derive(Debug, Default)]
pub struct Report {
    pub commands: usize,
    pub acknowledged: usize,
    pub refused: usize,
    /// Commands whose first attempt had no definite answer.
    pub unknown: usize,
    /// Of those, how many ended acknowledged (applied by the first attempt, whose answer was
    /// lost, or by the repeat; either way once).
    pub unknown_then_acknowledged: usize,
    /// The first attempts without an answer, by reason (cut short).
    pub unknown_reasons: BTreeMap<String, usize>,
    /// The refusals by status and code.
    pub refusals: BTreeMap<String, usize>,
    /// Acknowledged commands whose events are missing.
    pub lost: usize,
    /// Commands applied more than once.
    pub duplicates: usize,
    pub events: usize,
    pub streams: usize,
    pub violations: Vec<String>,
}

impl Report {
    /// Fails with every violation when there is one.
    pub fn assert_clean(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.violations.is_empty() && self.lost == 0 && self.duplicates == 0,
            "history check failed ({} violations, {} lost, {} duplicates):\n{}",
            self.violations.len(),
            self.lost,
            self.duplicates,
            self.violations.join("\n")
        );
        Ok(())
    }
}

/// Every event of the store at `database_url`, in stream and version order.
pub async fn load_events(database_url: &str) -> anyhow::Result<Vec<StoredEvent>> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT stream_id, stream_type, version, position, event_type, schema_version, \
                    payload, coalesce(metadata->>'correlation_id', ''), \
                    coalesce(metadata->>'command_id', '') \
             FROM events ORDER BY stream_id, version",
            &[],
        )
        .await?;
    drop(client);
    let _ = driver.await;
    rows.iter()
        .map(|row| {
            Ok(StoredEvent {
                stream_id: row.try_get(0)?,
                stream_type: row.try_get(1)?,
                version: row.try_get(2)?,
                position: row.try_get(3)?,
                event_type: row.try_get(4)?,
                schema_version: row.try_get(5)?,
                payload: row.try_get(6)?,
                correlation_id: row.try_get(7)?,
                command_id: row.try_get(8)?,
            })
        })
        .collect()
}

/// The highest position in the store at `database_url` (0 when empty).
pub async fn max_position(database_url: &str) -> anyhow::Result<i64> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let row = client
        .query_one("SELECT coalesce(max(position), 0) FROM events", &[])
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(row.try_get(0)?)
}

/// A product folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFold {
    pub version: i64,
    pub price_cents: i64,
    pub on_hand: i64,
    pub reserved: i64,
    pub discontinued: bool,
}

/// An order folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFold {
    pub version: i64,
    pub status: String,
    /// The payment that paid the order.
    pub payment_ref: Option<String>,
    /// The refunds the provider confirmed, or what a cancellation recorded before refunds
    /// went through the provider; `None` while neither happened.
    pub refunded_cents: Option<i64>,
    /// Payments (by `payment_id`), oldest first.
    pub payments: Vec<Money>,
    /// Refunds (by `refund_id`), oldest first.
    pub refunds: Vec<Money>,
}

/// One payment or refund of an order: its id, status and amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub id: String,
    pub status: String,
    pub amount_cents: i64,
}

impl OrderFold {
    /// Sets the status and amount of payment `id`, listing it when it is new.
    fn set_payment(&mut self, id: &str, status: &str, amount_cents: i64) {
        match self.payments.iter_mut().find(|p| p.id == id) {
            Some(payment) => {
                payment.status = status.to_owned();
                payment.amount_cents = amount_cents;
            }
            None => self.payments.push(Money {
                id: id.to_owned(),
                status: status.to_owned(),
                amount_cents,
            }),
        }
    }

    /// Sets the status of refund `id` (one never requested is left alone).
    fn set_refund(&mut self, id: &str, status: &str) {
        if let Some(refund) = self.refunds.iter_mut().find(|r| r.id == id) {
            refund.status = status.to_owned();
        }
    }

    fn refunds_confirmed(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status == "succeeded")
            .map(|r| r.amount_cents)
            .sum()
    }
}

/// The folds of every stream, by id.
#[derive(Debug, Default)]
pub struct Folds {
    pub products: BTreeMap<Uuid, ProductFold>,
    pub orders: BTreeMap<Uuid, OrderFold>,
}

/// Checks the history against the stored events (not the read models: see
/// [`compare_read_models`]).
pub fn check_store(entries: &[Entry], events: &[StoredEvent]) -> (Report, Folds) {
    let mut report = Report {
        commands: entries.len(),
        events: events.len(),
        ..Report::default()
    };
    let folds = check_streams(events, &mut report);

    let mut by_correlation: HashMap<&str, Vec<&StoredEvent>> = HashMap::new();
    for event in events {
        by_correlation
            .entry(event.correlation_id.as_str())
            .or_default()
            .push(event);
    }
    let mut seen_correlations = HashSet::new();
    for entry in entries {
        let correlation = entry.command.correlation_id.as_str();
        if !seen_correlations.insert(correlation) {
            report
                .violations
                .push(format!("the history reuses correlation id {correlation}"));
        }
        let applied = by_correlation.get(correlation).cloned().unwrap_or_default();
        let commands: HashSet<&str> = applied.iter().map(|e| e.command_id.as_str()).collect();
        if commands.len() > 1 {
            report.duplicates += 1;
            report.violations.push(format!(
                "{} {correlation} applied {} times",
                entry.command.path,
                commands.len()
            ));
        }
        if let Outcome::Unknown { reason } = &entry.first {
            report.unknown += 1;
            let reason: String = reason.chars().take(90).collect();
            *report.unknown_reasons.entry(reason).or_default() += 1;
        }
        match entry.outcome() {
            Outcome::Acknowledged {
                id,
                version,
                position,
                ..
            } => {
                report.acknowledged += 1;
                if entry.first.is_unknown() {
                    report.unknown_then_acknowledged += 1;
                }
                if applied.is_empty() {
                    report.lost += 1;
                    report.violations.push(format!(
                        "{} {correlation} was acknowledged ({id} v{version} @{position}) but appended nothing",
                        entry.command.path
                    ));
                    continue;
                }
                let last = applied.iter().map(|e| e.position).max().unwrap_or_default();
                if last != *position {
                    report.violations.push(format!(
                        "{} {correlation} was acknowledged at position {position}, its last event is at {last}",
                        entry.command.path
                    ));
                }
                if !applied
                    .iter()
                    .any(|e| e.stream_id == *id && e.version == *version)
                {
                    report.violations.push(format!(
                        "{} {correlation} was acknowledged as {id} v{version}, which it did not append",
                        entry.command.path
                    ));
                }
            }
            Outcome::Refused { status, code } => {
                report.refused += 1;
                *report
                    .refusals
                    .entry(format!("{status} {code}"))
                    .or_default() += 1;
                if !applied.is_empty() {
                    report.violations.push(format!(
                        "{} {correlation} was refused ({status} {code}) but appended {} events",
                        entry.command.path,
                        applied.len()
                    ));
                }
            }
            Outcome::Unknown { .. } => {}
        }
    }
    (report, folds)
}

/// Versions without gaps, stock never negative; returns the folds.
fn check_streams(events: &[StoredEvent], report: &mut Report) -> Folds {
    let mut folds = Folds::default();
    let mut expected: HashMap<Uuid, i64> = HashMap::new();
    for event in events {
        let next = expected.entry(event.stream_id).or_insert(1);
        if event.version != *next {
            report.violations.push(format!(
                "stream {} has version {} where {} was due",
                event.stream_id, event.version, next
            ));
        }
        *next = event.version + 1;
        match event.stream_type.as_str() {
            "product" => {
                let fold = folds.products.entry(event.stream_id).or_default();
                apply_product(fold, event);
                if fold.on_hand < 0 || fold.reserved < 0 || fold.on_hand < fold.reserved {
                    report.violations.push(format!(
                        "product {} has negative stock at version {}: {fold:?}",
                        event.stream_id, event.version
                    ));
                }
            }
            "order" => {
                let fold = folds.orders.entry(event.stream_id).or_default();
                apply_order(fold, event, report);
            }
            // Customers' profiles and webhook subscriptions hold no stock and no order.
            "customer" | "webhook" => {}
            other => report
                .violations
                .push(format!("unknown stream type {other}")),
        }
    }
    report.streams = expected.len();
    folds
}

/// Folds one order event (its JSON as stored) and checks what the payment rules say of it:
/// an `OrderPaid` after version 1 names the provider event that reported it or the reason
/// of an admin's offline payment, and an order is paid at most once.
fn apply_order(fold: &mut OrderFold, event: &StoredEvent, report: &mut Report) {
    let text = |field: &str| event.payload[field].as_str().unwrap_or_default().to_owned();
    let named = |field: &str| {
        event.payload[field]
            .as_str()
            .is_some_and(|value| !value.trim().is_empty())
    };
    let amount = event.payload["amount_cents"].as_i64().unwrap_or_default();
    let at = || format!("order {} version {}", event.stream_id, event.version);
    fold.version = event.version;
    match event.event_type.as_str() {
        "OrderPlaced" => fold.status = "placed".into(),
        "OrderPaid" => {
            if event.schema_version >= 2 && !named("provider_event") && !named("reason") {
                report.violations.push(format!(
                    "{}: OrderPaid names neither a provider event nor an offline payment's \
                     reason: {}",
                    at(),
                    event.payload
                ));
            }
            if let Some(earlier) = &fold.payment_ref {
                report.violations.push(format!(
                    "{}: the order is paid twice ({earlier}, then {})",
                    at(),
                    text("payment_ref")
                ));
            }
            fold.status = "paid".into();
            fold.payment_ref = Some(text("payment_ref"));
            fold.set_payment(&text("payment_ref"), "succeeded", amount);
        }
        "PaymentRequested" => {
            let id = text("payment_id");
            if !fold.payments.iter().any(|p| p.id == id) {
                fold.set_payment(&id, "requested", amount);
            }
        }
        "PaymentFailed" => {
            let id = text("payment_id");
            let asked = fold.payments.iter().find(|p| p.id == id);
            let asked = asked.map_or(0, |p| p.amount_cents);
            fold.set_payment(&id, "failed", asked);
        }
        "PaymentNeedsReview" => fold.set_payment(&text("payment_id"), "needs_review", amount),
        "RefundRequested" => fold.refunds.push(Money {
            id: text("refund_id"),
            status: "requested".into(),
            amount_cents: amount,
        }),
        "Refunded" => {
            fold.set_refund(&text("refund_id"), "succeeded");
            fold.refunded_cents = Some(fold.refunds_confirmed());
        }
        "RefundFailed" => fold.set_refund(&text("refund_id"), "failed"),
        "OrderShipped" => fold.status = "shipped".into(),
        "OrderCancelled" => {
            fold.status = "cancelled".into();
            for payment in &mut fold.payments {
                if payment.status == "requested" {
                    payment.status = "canceled".into();
                }
            }
            // Before refunds went through the provider, cancelling recorded the refund.
            let recorded = event.payload["refunded_cents"].as_i64().unwrap_or_default();
            fold.refunded_cents = Some(recorded.max(fold.refunds_confirmed()));
        }
        other => report
            .violations
            .push(format!("{}: unknown order event {other}", at())),
    }
}

fn apply_product(fold: &mut ProductFold, event: &StoredEvent) {
    let number = |field: &str| event.payload[field].as_i64().unwrap_or_default();
    fold.version = event.version;
    match event.event_type.as_str() {
        "ProductCreated" => {
            fold.price_cents = number("price_cents");
            fold.on_hand = number("initial_stock");
        }
        "PriceChanged" => fold.price_cents = number("price_cents"),
        "StockAdded" => fold.on_hand += number("quantity"),
        "StockReserved" => fold.reserved += number("quantity"),
        "StockReleased" => fold.reserved -= number("quantity"),
        "StockShipped" => {
            fold.reserved -= number("quantity");
            fold.on_hand -= number("quantity");
        }
        "ProductDiscontinued" => fold.discontinued = true,
        _ => {}
    }
}

/// Compares every product and order of the query API at `query_url` with its fold, waiting
/// for each to reach its last version: `min_version` makes the query API wait a little, and
/// a `503 not_yet_consistent` is asked again until `catch_up` has passed since the first
/// read (the projectors may still be working through a backlog, e.g. after the broker came
/// back). Adds a violation per difference.
pub async fn compare_read_models(
    folds: &Folds,
    query_url: &str,
    token: &str,
    catch_up: std::time::Duration,
    report: &mut Report,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let until = std::time::Instant::now() + catch_up;
    let read = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", query_url.trim_end_matches('/'));
        let token = token.to_owned();
        async move {
            loop {
                let response = http.get(&url).bearer_auth(&token).send().await?;
                let status = response.status();
                let body: Value = response.json().await?;
                if status.is_success() {
                    return Ok::<Value, anyhow::Error>(body);
                }
                let behind = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                    && body["code"] == "not_yet_consistent";
                anyhow::ensure!(
                    behind && std::time::Instant::now() < until,
                    "{path}: {status} {body} (read models given {catch_up:?} to catch up)"
                );
            }
        }
    };
    for (id, fold) in &folds.products {
        let body = read(format!("/v1/products/{id}?min_version={}", fold.version)).await?;
        let seen = ProductFold {
            version: body["version"].as_i64().unwrap_or(-1),
            price_cents: body["price_cents"].as_i64().unwrap_or(-1),
            on_hand: body["on_hand"].as_i64().unwrap_or(-1),
            reserved: body["reserved"].as_i64().unwrap_or(-1),
            discontinued: body["discontinued"].as_bool().unwrap_or(false),
        };
        if &seen != fold {
            report.violations.push(format!(
                "read model of product {id} is {seen:?}, the log folds to {fold:?}"
            ));
        }
        if body["available"].as_i64() != Some(fold.on_hand - fold.reserved) {
            report.violations.push(format!(
                "product {id} shows available {}, the log folds to {}",
                body["available"],
                fold.on_hand - fold.reserved
            ));
        }
    }
    for (id, fold) in &folds.orders {
        let body = read(format!("/v1/orders/{id}?min_version={}", fold.version)).await?;
        let money = |list: &str, id: &str| -> Vec<Money> {
            body[list]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| Money {
                    id: item[id].as_str().unwrap_or_default().to_owned(),
                    status: item["status"].as_str().unwrap_or_default().to_owned(),
                    amount_cents: item["amount_cents"].as_i64().unwrap_or(-1),
                })
                .collect()
        };
        let seen = OrderFold {
            version: body["version"].as_i64().unwrap_or(-1),
            status: body["status"].as_str().unwrap_or_default().to_owned(),
            payment_ref: body["payment_ref"].as_str().map(str::to_owned),
            refunded_cents: body["refunded_cents"].as_i64(),
            payments: money("payments", "payment_id"),
            refunds: money("refunds", "refund_id"),
        };
        if &seen != fold {
            report.violations.push(format!(
                "read model of order {id} is {seen:?}, the log folds to {fold:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Command;
    use serde_json::json;
    use std::time::Instant;

    fn event(stream: Uuid, version: i64, position: i64, kind: &str, payload: Value) -> StoredEvent {
        StoredEvent {
            stream_id: stream,
            stream_type: "product".into(),
            version,
            position,
            event_type: kind.into(),
            schema_version: 1,
            payload,
            correlation_id: format!("c{position}"),
            command_id: format!("k{position}"),
        }
    }

    fn acked(id: Uuid, version: i64, position: i64) -> Outcome {
        Outcome::Acknowledged {
            status: 201,
            id,
            version,
            position,
        }
    }

    fn entry(correlation: &str, first: Outcome) -> Entry {
        let mut command = Command::new("/v1/x", "t", json!({}));
        command.correlation_id = correlation.into();
        Entry {
            command,
            first,
            resolved: None,
            sent_at: Instant::now(),
        }
    }

    #[test]
    fn finds_lost_refused_duplicate_gaps_and_negative_stock() {
        let p = Uuid::new_v4();
        let mut events = vec![
            event(
                p,
                1,
                1,
                "ProductCreated",
                json!({"price_cents": 5, "initial_stock": 1}),
            ),
            event(p, 2, 2, "StockReserved", json!({"quantity": 2})),
            event(p, 4, 3, "StockAdded", json!({"quantity": 9})),
        ];
        events[1].correlation_id = "c1".into();
        events[2].correlation_id = "c2".into();
        let entries = vec![
            entry("c1", acked(p, 1, 1)),
            entry(
                "c2",
                Outcome::Refused {
                    status: 422,
                    code: "x".into(),
                },
            ),
            entry(
                "lost",
                Outcome::Acknowledged {
                    status: 200,
                    id: p,
                    version: 9,
                    position: 9,
                },
            ),
        ];
        let (report, _) = check_store(&entries, &events);
        assert_eq!(report.lost, 1);
        assert_eq!(report.duplicates, 1, "{:?}", report.violations);
        let all = report.violations.join("\n");
        assert!(all.contains("refused"), "{all}");
        assert!(all.contains("version 4 where 3"), "{all}");
        assert!(all.contains("negative stock"), "{all}");
        assert!(report.assert_clean().is_err());
    }

    #[test]
    fn a_clean_history_passes() {
        let p = Uuid::new_v4();
        let events = vec![
            event(
                p,
                1,
                1,
                "ProductCreated",
                json!({"price_cents": 5, "initial_stock": 1}),
            ),
            event(p, 2, 2, "StockAdded", json!({"quantity": 3})),
        ];
        let entries = vec![
            entry("c1", acked(p, 1, 1)),
            entry(
                "c2",
                Outcome::Unknown {
                    reason: "cut".into(),
                },
            ),
            entry(
                "c3",
                Outcome::Refused {
                    status: 422,
                    code: "x".into(),
                },
            ),
        ];
        let (report, folds) = check_store(&entries, &events);
        report.assert_clean().unwrap();
        assert_eq!(folds.products[&p].on_hand, 4);
        assert_eq!(report.unknown, 1);
    }

    /// The events of one order, versions from 1, each `(type, schema version, payload)`.
    fn order_events(order: Uuid, events: &[(&str, i32, Value)]) -> Vec<StoredEvent> {
        events
            .iter()
            .enumerate()
            .map(|(i, (kind, schema_version, payload))| StoredEvent {
                stream_type: "order".into(),
                schema_version: *schema_version,
                ..event(order, i as i64 + 1, i as i64 + 1, kind, payload.clone())
            })
            .collect()
    }

    fn money(id: &str, status: &str, amount_cents: i64) -> Money {
        Money {
            id: id.into(),
            status: status.into(),
            amount_cents,
        }
    }

    fn placed() -> (&'static str, i32, Value) {
        ("OrderPlaced", 2, json!({"total_cents": 3098}))
    }

    #[test]
    fn orders_fold_their_payments_and_refunds() {
        let o = Uuid::new_v4();
        let events = order_events(
            o,
            &[
                placed(),
                (
                    "PaymentRequested",
                    1,
                    json!({"payment_id": "pi_1", "amount_cents": 3098}),
                ),
                (
                    "PaymentFailed",
                    1,
                    json!({"payment_id": "pi_1", "reason": "declined"}),
                ),
                (
                    "PaymentRequested",
                    1,
                    json!({"payment_id": "pi_2", "amount_cents": 3098}),
                ),
                (
                    "PaymentNeedsReview",
                    1,
                    json!({"payment_id": "pi_2", "amount_cents": 3000}),
                ),
                (
                    "PaymentRequested",
                    1,
                    json!({"payment_id": "pi_3", "amount_cents": 3098}),
                ),
                (
                    "OrderPaid",
                    2,
                    json!({"amount_cents": 3098, "payment_ref": "pi_3",
                           "provider_event": "evt_1", "reason": null}),
                ),
                (
                    "RefundRequested",
                    1,
                    json!({"refund_id": "re_1", "payment_id": "pi_2", "amount_cents": 3000}),
                ),
                (
                    "Refunded",
                    1,
                    json!({"refund_id": "re_1", "amount_cents": 3000}),
                ),
                (
                    "RefundRequested",
                    1,
                    json!({"refund_id": "re_2", "payment_id": "pi_3", "amount_cents": 100}),
                ),
                (
                    "RefundFailed",
                    1,
                    json!({"refund_id": "re_2", "reason": "no"}),
                ),
                ("OrderCancelled", 1, json!({"refunded_cents": 0})),
                (
                    "RefundRequested",
                    1,
                    json!({"refund_id": "re_3", "payment_id": "pi_3", "amount_cents": 3098}),
                ),
            ],
        );
        let (report, folds) = check_store(&[], &events);
        report.assert_clean().unwrap();
        let expected = OrderFold {
            version: 13,
            status: "cancelled".into(),
            payment_ref: Some("pi_3".into()),
            refunded_cents: Some(3000),
            payments: vec![
                money("pi_1", "failed", 3098),
                money("pi_2", "needs_review", 3000),
                money("pi_3", "succeeded", 3098),
            ],
            refunds: vec![
                money("re_1", "succeeded", 3000),
                money("re_2", "failed", 100),
                money("re_3", "requested", 3098),
            ],
        };
        assert_eq!(folds.orders[&o], expected);

        // An open payment is withdrawn by the cancellation; an old-style cancellation
        // recorded the refund itself.
        let o = Uuid::new_v4();
        let events = order_events(
            o,
            &[
                placed(),
                (
                    "OrderPaid",
                    1,
                    json!({"amount_cents": 3098, "payment_ref": "psp-1"}),
                ),
                ("OrderCancelled", 1, json!({"refunded_cents": 3098})),
            ],
        );
        let (report, folds) = check_store(&[], &events);
        report.assert_clean().unwrap();
        assert_eq!(folds.orders[&o].refunded_cents, Some(3098));
        assert_eq!(
            folds.orders[&o].payments,
            [money("psp-1", "succeeded", 3098)]
        );
        let o = Uuid::new_v4();
        let events = order_events(
            o,
            &[
                placed(),
                (
                    "PaymentRequested",
                    1,
                    json!({"payment_id": "pi_1", "amount_cents": 3098}),
                ),
                ("OrderCancelled", 1, json!({"refunded_cents": 0})),
            ],
        );
        let (_, folds) = check_store(&[], &events);
        assert_eq!(folds.orders[&o].payments, [money("pi_1", "canceled", 3098)]);
        assert_eq!(folds.orders[&o].refunded_cents, Some(0));
    }

    #[test]
    fn a_payment_must_name_its_provider_event_or_reason_and_come_once() {
        let paid = |provider_event: Value, reason: Value| {
            (
                "OrderPaid",
                2,
                json!({"amount_cents": 3098, "payment_ref": "pi_1",
                       "provider_event": provider_event, "reason": reason}),
            )
        };
        let (provider, offline, neither, blank, twice, v1) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let mut events = Vec::new();
        events.extend(order_events(
            provider,
            &[placed(), paid(json!("evt_1"), Value::Null)],
        ));
        events.extend(order_events(
            offline,
            &[placed(), paid(Value::Null, json!("bank"))],
        ));
        events.extend(order_events(
            neither,
            &[placed(), paid(Value::Null, Value::Null)],
        ));
        events.extend(order_events(
            blank,
            &[placed(), paid(json!(""), json!("  "))],
        ));
        events.extend(order_events(
            twice,
            &[
                placed(),
                paid(json!("evt_1"), Value::Null),
                paid(json!("evt_2"), Value::Null),
            ],
        ));
        // Before payments went through a provider: neither field, at schema version 1.
        let v1_paid = (
            "OrderPaid",
            1,
            json!({"amount_cents": 3098, "payment_ref": "psp-1"}),
        );
        events.extend(order_events(v1, &[placed(), v1_paid]));

        let (report, _) = check_store(&[], &events);
        let violations = &report.violations;
        assert_eq!(violations.len(), 3, "{violations:?}");
        let about = |order: Uuid| {
            violations
                .iter()
                .filter(|v| v.contains(&order.to_string()))
                .cloned()
                .collect::<Vec<_>>()
        };
        for order in [neither, blank] {
            let found = about(order);
            assert_eq!(found.len(), 1, "{violations:?}");
            assert!(found[0].contains("names neither"), "{found:?}");
        }
        let found = about(twice);
        assert_eq!(found.len(), 1, "{violations:?}");
        assert!(found[0].contains("paid twice"), "{found:?}");
        assert!(report.assert_clean().is_err());
    }

    #[test]
    fn an_unknown_order_event_is_a_violation() {
        let o = Uuid::new_v4();
        let events = order_events(o, &[placed(), ("OrderTeleported", 1, json!({}))]);
        let (report, folds) = check_store(&[], &events);
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("unknown order event OrderTeleported")),
            "{:?}",
            report.violations
        );
        assert_eq!(folds.orders[&o].status, "placed");
    }
}
