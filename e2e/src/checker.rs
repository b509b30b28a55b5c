//! The history checker: compares a [`History`](crate::history::History) with the event store
//! and the read models, independently of the code under test (it folds the stored events'
//! JSON itself).
//!
//! Checked: every acknowledged command's events are in the store exactly once (one
//! `command_id` per correlation id), at its acknowledged version and position; every refused
//! command left nothing; an unknown outcome was applied at most once; each stream's versions
//! are 1, 2, 3, … without gaps; no product's stock is negative at any version; and, once the
//! read models caught up, each product and order in the query API equals the fold of its
//! events.

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
            "SELECT stream_id, stream_type, version, position, event_type, payload, \
                    coalesce(metadata->>'correlation_id', ''), coalesce(metadata->>'command_id', '') \
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
                payload: row.try_get(5)?,
                correlation_id: row.try_get(6)?,
                command_id: row.try_get(7)?,
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
                fold.version = event.version;
                fold.status = match event.event_type.as_str() {
                    "OrderPlaced" => "placed",
                    "OrderPaid" => "paid",
                    "OrderShipped" => "shipped",
                    "OrderCancelled" => "cancelled",
                    other => {
                        report
                            .violations
                            .push(format!("unknown order event {other}"));
                        "?"
                    }
                }
                .to_owned();
            }
            other => report
                .violations
                .push(format!("unknown stream type {other}")),
        }
    }
    report.streams = expected.len();
    folds
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
        let seen = OrderFold {
            version: body["version"].as_i64().unwrap_or(-1),
            status: body["status"].as_str().unwrap_or_default().to_owned(),
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
}
