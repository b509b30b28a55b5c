//! Reservation expiry on real processes: an unpaid order is cancelled by the system after
//! the payment TTL and its stock released; two command API processes racing as reactors,
//! with the active one killed -9 mid-batch, still expire every order exactly once; and a
//! payment in the last milliseconds (an admin's offline payment, or the confirmation of a
//! customer's checkout) ends paid or expired, never both, never neither.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eventstore::testing::eventually;
use eventstore::RecordedEvent;
use platform::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_problem, offline_payment, TestApp};
use uuid::Uuid;

/// Orders the expiry reactor still tracks.
const UNSETTLED: &str = "SELECT count(*) FROM order_expiries";

/// The order's events after `OrderPlaced`.
async fn outcome(app: &TestApp, order: Uuid) -> Vec<RecordedEvent> {
    app.recorded(order).await.into_iter().skip(1).collect()
}

/// Asserts `events` are exactly one system cancel for payment timeout.
fn assert_expired_once(order: Uuid, events: &[RecordedEvent]) {
    assert_eq!(events.len(), 1, "order {order}: {events:?}");
    let cancel = &events[0];
    assert_eq!(cancel.event_type, "OrderCancelled");
    assert_eq!(cancel.metadata.actor, "system");
    assert_eq!(cancel.payload["reason"], "payment_timeout");
    assert_eq!(cancel.payload["refunded_cents"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_expires_and_its_stock_is_released() {
    let app = TestApp::spawn_with(|s| s.payment_ttl = Duration::from_secs(2)).await;
    let product = app.create_product("E-1", 700, 10).await;
    let alice = app.token("alice", &[Role::Customer]);
    let unpaid = app
        .placed_order(&alice, json!([{"product_id": product, "quantity": 4}]))
        .await;
    let paid = app
        .placed_order(&alice, json!([{"product_id": product, "quantity": 3}]))
        .await;
    app.pay_through_provider(paid, &alice).await;
    assert_eq!(app.stock_of(product).await, (10, 7));
    let placed_at = Instant::now();
    eventually(
        "the unpaid order to expire",
        Duration::from_secs(15),
        || async { !outcome(&app, unpaid).await.is_empty() },
    )
    .await;
    assert!(
        placed_at.elapsed() >= Duration::from_millis(1500),
        "not before the TTL"
    );
    assert_expired_once(unpaid, &outcome(&app, unpaid).await);
    assert_eq!(
        app.stock_of(product).await,
        (10, 3),
        "its 4 units are available again"
    );
    // Paying the expired order is refused (her checkout, and an admin's offline payment);
    // the paid order never expires.
    let response = app
        .post(&format!("/v1/orders/{unpaid}/payment"), &alice, &json!({}))
        .await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(
            &format!("/v1/orders/{unpaid}/pay"),
            &app.admin,
            &offline_payment(2800),
        )
        .await;
    assert_problem(response, 422, "invalid_state").await;
    eventually(
        "nothing left to expire",
        Duration::from_secs(10),
        || async { app.count(UNSETTLED).await == 0 },
    )
    .await;
    let paid_events: Vec<String> = outcome(&app, paid)
        .await
        .into_iter()
        .map(|event| event.event_type)
        .collect();
    assert_eq!(paid_events, ["PaymentRequested", "OrderPaid"]);
}

/// Which of `processes` holds the expiry reactor (by its `/readyz`).
async fn active_reactor(app: &TestApp, processes: &[&support::OtherProcess]) -> Option<usize> {
    for (index, process) in processes.iter().enumerate() {
        let ready: Value = match app
            .http
            .get(format!("{}/readyz", process.address))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => continue,
        };
        if ready["reactors"]["expiry"] == "active" {
            return Some(index);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reactor_processes_and_a_kill_9_mid_batch_expire_every_order_exactly_once() {
    // This process only places orders; the two binaries are the reactors.
    let app = TestApp::spawn_with(|s| s.reactors = false).await;
    let env = [("AGORA_ORDER_PAYMENT_TTL", "3s")];
    let mut first = app.another_process_with(&env).await;
    let mut second = app.another_process_with(&env).await;
    let products: Vec<Uuid> = {
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(app.create_product(&format!("X-{n}"), 100, 100_000).await);
        }
        ids
    };
    let customer = app.token("kim", &[Role::Customer]);
    let mut orders = Vec::new();
    for n in 0..300 {
        let lines = json!([
            {"product_id": products[n % 4], "quantity": 1},
            {"product_id": products[(n + 1) % 4], "quantity": 2},
        ]);
        orders.push(app.placed_order(&customer, lines).await);
    }
    let count_expired =
        || app.count("SELECT count(*) FROM events WHERE event_type = 'OrderCancelled'");
    eventually("the first expiries", Duration::from_secs(30), || async {
        count_expired().await > 0
    })
    .await;
    let active = active_reactor(&app, &[&first, &second]).await;
    let before_kill = count_expired().await;
    match active {
        Some(0) => first.kill().await,
        Some(_) => second.kill().await,
        None => panic!("no process reports the active expiry reactor"),
    }
    assert!(
        before_kill < orders.len() as i64,
        "killed mid-batch ({before_kill} of {} expired)",
        orders.len()
    );
    eventually(
        "the standby to expire the rest",
        Duration::from_secs(60),
        || async { count_expired().await >= orders.len() as i64 },
    )
    .await;
    for order in &orders {
        assert_expired_once(*order, &outcome(&app, *order).await);
    }
    assert_eq!(
        count_expired().await,
        orders.len() as i64,
        "nothing expired twice"
    );
    for product in products {
        assert_eq!(
            app.stock_of(product).await,
            (100_000, 0),
            "every reservation released"
        );
    }
}

/// How a racing payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payment {
    /// An admin's offline payment (`/pay`).
    Offline,
    /// The customer checked out early; an admin confirms at the racing moment.
    Confirmed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_racing_the_expiry_ends_paid_or_expired_never_both() {
    let ttl = Duration::from_millis(1000);
    let app = TestApp::spawn_with(|s| s.payment_ttl = ttl).await;
    let product = app.create_product("P-1", 250, 1_000_000).await;
    let bob = app.token("bob", &[Role::Customer]);
    // Pay each order at a different moment around its deadline (-150 ms to +450 ms), every
    // other one by confirming the checkout bob made right after placing it.
    let mut races = Vec::new();
    for n in 0..60u64 {
        let order = app
            .placed_order(&bob, json!([{"product_id": product, "quantity": 1}]))
            .await;
        let placed = app.recorded(order).await[0].occurred_at;
        let (path, body, payment) = if n % 2 == 0 {
            (
                format!("/v1/orders/{order}/pay"),
                json!({"amount_cents": 250, "currency": "EUR", "payment_ref": format!("r-{n}"),
                       "reason": "cash on delivery"}),
                Payment::Offline,
            )
        } else {
            app.checkout(order, &bob).await;
            (
                format!("/v1/orders/{order}/payment/confirm"),
                json!({}),
                Payment::Confirmed,
            )
        };
        let (http, address, token) = (app.http.clone(), app.address.clone(), app.admin.clone());
        races.push(tokio::spawn(async move {
            let offset = chrono::TimeDelta::milliseconds(-150 + (n as i64 * 10));
            let pay_at = placed + chrono::TimeDelta::from_std(ttl).unwrap_or_default() + offset;
            let wait = (pay_at - chrono::Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let response = http
                .post(format!("{address}{path}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("the app answers");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (order, payment, status, body)
        }));
    }
    // What each payer was told: paid (true) or not (false).
    let mut told: HashMap<Uuid, (Payment, bool)> = HashMap::new();
    let (mut paid, mut expired) = (0, 0);
    for race in races {
        let (order, payment, status, body) = race.await.expect("a race");
        // Paid (200, the order's version after OrderPaid), or refused because the order
        // expired first (the expiry withdrew the open payment: nothing left to confirm).
        let was_paid = if status == StatusCode::OK {
            let version = match payment {
                Payment::Offline => 2,
                Payment::Confirmed => 3,
            };
            assert_eq!(body["version"], version, "{payment:?}: {body}");
            true
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["code"], "invalid_state", "{body}");
            false
        };
        if was_paid {
            paid += 1;
        } else {
            expired += 1;
        }
        told.insert(order, (payment, was_paid));
    }
    let client = app.db.store.pool().get().await.expect("a connection");
    eventually("every race settled", Duration::from_secs(15), || async {
        app.count(UNSETTLED).await == 0
    })
    .await;
    // Every order ended exactly one way, and the way its payer was told.
    let rows = client
        .query(
            "SELECT stream_id, array_agg(event_type ORDER BY version) FROM events \
             WHERE stream_type = 'order' GROUP BY stream_id",
            &[],
        )
        .await
        .expect("the orders");
    assert_eq!(rows.len(), told.len());
    let (mut ended_paid, mut ended_expired) = (0, 0);
    for row in rows {
        let order: Uuid = row.get(0);
        let types: Vec<String> = row.get(1);
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let (payment, was_paid) = told[&order];
        let expected: &[&str] = match (payment, was_paid) {
            (Payment::Offline, true) => &["OrderPlaced", "OrderPaid"],
            (Payment::Offline, false) => &["OrderPlaced", "OrderCancelled"],
            (Payment::Confirmed, true) => &["OrderPlaced", "PaymentRequested", "OrderPaid"],
            (Payment::Confirmed, false) => &["OrderPlaced", "PaymentRequested", "OrderCancelled"],
        };
        assert_eq!(types, expected, "order {order} ({payment:?})");
        if was_paid {
            ended_paid += 1;
        } else {
            ended_expired += 1;
        }
    }
    assert_eq!((ended_paid, ended_expired), (paid, expired));
    assert_eq!(app.stock_of(product).await, (1_000_000, paid as i64));
    println!("{paid} paid, {expired} expired");
}
