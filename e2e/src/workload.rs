//! The mixed shop workload of the fault tests: concurrent writers (restock, place, pay, ship,
//! cancel) recording into a [`History`], and readers counting what the query API answers.
//!
//! A writer pays an order the storefront's way: its customer checks out at the payment
//! provider (the development provider every test stack runs), and an admin confirms the
//! payment. Prices never change during a run, so a writer knows each order's total and
//! asserts that the checkout asks for exactly that (a panic fails the run: its task's
//! join). A writer acts only on orders whose
//! placing it saw acknowledged, and stops acting on an order after an unknown outcome on it
//! (a checkout without an answer excepted: asking again is safe, it returns the open
//! payment).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use crate::history::{Command, History, Outcome};

/// A product the workload orders, with its (fixed) price.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub id: Uuid,
    pub price_cents: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderState {
    Placed,
    Paid,
}

struct Order {
    id: Uuid,
    total: i64,
    state: OrderState,
}

/// Raised to stop the writers and readers.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs one writer (acting as `customer`, and as `admin` where only an admin may) until
/// `stop` is raised; returns how many commands it sent (checkouts included).
pub async fn writer(
    history: Arc<History>,
    products: Arc<Vec<Product>>,
    admin: String,
    customer: String,
    stop: StopFlag,
) -> u64 {
    let mut orders: Vec<Order> = Vec::new();
    let mut sent = 0;
    while !stop.raised() {
        let (choice, quantity, lines) = {
            let mut rng = rand::rng();
            let count = rng.random_range(1..=2usize);
            let lines: Vec<(Product, i64)> = products
                .choose_multiple(&mut rng, count)
                .map(|product| (*product, rng.random_range(1..=3)))
                .collect();
            (rng.random_range(0..100u32), rng.random_range(1..=5), lines)
        };
        let outcome = if choice < 15 || products.is_empty() {
            let Some(product) = products.choose(&mut rand::rng()).copied() else {
                break;
            };
            let command = Command::new(
                format!("/v1/products/{}/restock", product.id),
                &admin,
                json!({ "quantity": quantity }),
            );
            history.send(command).await
        } else if choice < 55 || orders.is_empty() {
            let total = lines.iter().map(|(p, q)| p.price_cents * q).sum();
            let body = json!({"lines": lines
                .iter()
                .map(|(p, q)| json!({"product_id": p.id, "quantity": q}))
                .collect::<Vec<_>>()});
            let outcome = history
                .send(Command::new("/v1/orders", &customer, body))
                .await;
            if let Outcome::Acknowledged { id, .. } = outcome {
                orders.push(Order {
                    id,
                    total,
                    state: OrderState::Placed,
                });
            }
            outcome
        } else {
            let index = rand::rng().random_range(0..orders.len());
            let order = &orders[index];
            if choice < 75 && order.state == OrderState::Placed {
                // The customer checks out (not a command of the history: its answer is the
                // payment to complete, without a version) ...
                let checkout = Command::new(
                    format!("/v1/orders/{}/payment", order.id),
                    &customer,
                    json!({}),
                );
                match history.call(&checkout).await {
                    Ok(answer) => {
                        assert_eq!(
                            (answer["amount_cents"].as_i64(), answer["currency"].as_str()),
                            (Some(order.total), Some("EUR")),
                            "the checkout of order {} asks for its total: {answer}",
                            order.id
                        );
                        // ... and an admin confirms the payment.
                        sent += 1;
                        let confirm = Command::new(
                            format!("/v1/orders/{}/payment/confirm", order.id),
                            &admin,
                            json!({}),
                        );
                        let outcome = history.send(confirm).await;
                        match outcome {
                            Outcome::Acknowledged { .. } => orders[index].state = OrderState::Paid,
                            // It may or may not have been applied: leave the order alone.
                            Outcome::Unknown { .. } => {
                                orders.swap_remove(index);
                            }
                            Outcome::Refused { .. } => {}
                        }
                        outcome
                    }
                    // No payment to confirm (the order stays placed; checking out again is
                    // safe, it answers the open payment).
                    Err(outcome) => outcome,
                }
            } else {
                let (path, token, body) = if choice < 85 && order.state == OrderState::Paid {
                    (
                        "ship",
                        &admin,
                        json!({"carrier": "DHL", "tracking_number": "JD0001"}),
                    )
                } else {
                    ("cancel", &customer, json!({"reason": "changed my mind"}))
                };
                let outcome = history
                    .send(Command::new(
                        format!("/v1/orders/{}/{path}", order.id),
                        token,
                        body,
                    ))
                    .await;
                // Shipped or cancelled (or unknown): the writer leaves the order alone.
                if !matches!(outcome, Outcome::Refused { .. }) {
                    orders.swap_remove(index);
                }
                outcome
            }
        };
        sent += 1;
        if outcome.is_unknown() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    sent
}

/// What the readers saw.
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub ok: AtomicU64,
    /// 503 (the database is down, or not yet consistent): expected during an outage.
    pub unavailable: AtomicU64,
    /// Any other status, or no answer: should never happen.
    pub other: AtomicU64,
    /// The first few of those, for the failure message.
    pub other_samples: std::sync::Mutex<Vec<String>>,
}

/// Reads products and orders from the query API until `stop` is raised.
pub async fn reader(
    query_url: String,
    token: String,
    products: Arc<Vec<Product>>,
    counts: Arc<ReadCounts>,
    stop: StopFlag,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(http) => http,
        Err(_) => return,
    };
    while !stop.raised() {
        let path = match products.choose(&mut rand::rng()) {
            Some(product) if rand::rng().random_bool(0.7) => format!("/v1/products/{}", product.id),
            _ => "/v1/orders?limit=20".to_owned(),
        };
        let answer = http
            .get(format!("{query_url}{path}"))
            .bearer_auth(&token)
            .send()
            .await;
        match answer.as_ref().map(|response| response.status().as_u16()) {
            Ok(200) => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(503) => {
                counts.unavailable.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => {
                counts.other.fetch_add(1, Ordering::Relaxed);
                let sample = match answer {
                    Ok(response) => format!(
                        "{path}: {} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    ),
                    Err(error) => format!("{path}: {error}"),
                };
                if let Ok(mut samples) = counts.other_samples.lock() {
                    if samples.len() < 5 {
                        samples.push(sample);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
