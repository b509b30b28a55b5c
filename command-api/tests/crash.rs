//! kill -9 of a command API in the middle of group commits: no acknowledged command is
//! lost, and no command is left half written (an order and every reservation it made are
//! in the store together, in one transaction, or not at all).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::Role;
use serde_json::{json, Value};
use support::TestApp;
use uuid::Uuid;

#[tokio::test]
async fn kill_9_mid_batch_loses_no_acknowledged_command_and_leaves_no_partial_one() {
    let app = TestApp::spawn().await;
    let products: Vec<Uuid> = {
        let mut ids = Vec::new();
        for n in 0..6 {
            ids.push(app.create_product(&format!("K-{n}"), 100, 1_000_000).await);
        }
        ids
    };
    let mut victim = app.another_process().await;
    let customer = app.token("kim", &[Role::Customer]);
    // (order id, version, position) of every 201 the victim answered.
    let acknowledged = Arc::new(Mutex::new(Vec::<(Uuid, i64, i64)>::new()));
    let stop_at = Instant::now() + Duration::from_secs(20);
    let mut clients = Vec::new();
    for client in 0..12 {
        let (http, base, token) = (app.http.clone(), victim.address.clone(), customer.clone());
        let acknowledged = acknowledged.clone();
        // Three products per order, so every order writes four streams.
        let lines: Vec<Value> = (0..3)
            .map(|k| json!({"product_id": products[(client + k) % products.len()], "quantity": 1}))
            .collect();
        clients.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let sent = http
                    .post(format!("{base}/v1/orders"))
                    .bearer_auth(&token)
                    .json(&json!({ "lines": lines }))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != 201 {
                    continue;
                }
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                let id = body["id"].as_str().and_then(|s| s.parse().ok());
                let (Some(id), Some(version), Some(position)) =
                    (id, body["version"].as_i64(), body["position"].as_i64())
                else {
                    break;
                };
                acknowledged
                    .lock()
                    .expect("lock")
                    .push((id, version, position));
            }
        }));
    }
    // Let batches form, then kill the process mid-stream.
    let deadline = Instant::now() + Duration::from_secs(15);
    while acknowledged.lock().expect("lock").len() < 200 {
        assert!(Instant::now() < deadline, "the victim acknowledges orders");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    victim.kill().await;
    for client in clients {
        client.await.expect("a client task");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 200);

    let client = app.db.store.pool().get().await.expect("a connection");
    let rows = client
        .query(
            "SELECT stream_id, version, position, transaction_id::text, event_type, \
                    payload->>'order_id' FROM events WHERE stream_type IN ('order', 'product')",
            &[],
        )
        .await
        .expect("the events");
    let mut orders: HashMap<Uuid, (i64, i64, String)> = HashMap::new();
    let mut reservations: HashMap<(Uuid, String), usize> = HashMap::new();
    for row in &rows {
        let event_type: String = row.get(4);
        let transaction: String = row.get(3);
        if event_type == "OrderPlaced" {
            orders.insert(row.get(0), (row.get(1), row.get(2), transaction));
        } else if event_type == "StockReserved" {
            let order: Option<String> = row.get(5);
            let order: Uuid = order.and_then(|o| o.parse().ok()).expect("an order id");
            *reservations.entry((order, transaction)).or_default() += 1;
        }
    }
    // Every acknowledged order is there, at its acknowledged version and position.
    for (id, version, position) in &acknowledged {
        let (stored_version, stored_position, _) = orders
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged order {id} was lost"));
        assert_eq!(stored_version, version);
        // The answer's position is the command's last event (a reservation).
        assert!(stored_position < position, "order {id}");
    }
    // Every order in the store has its three reservations, in its own transaction.
    for (id, (_, _, transaction)) in &orders {
        assert_eq!(
            reservations.get(&(*id, transaction.clone())),
            Some(&3),
            "order {id} is all or nothing"
        );
    }
    let reserved: usize = reservations.values().sum();
    assert_eq!(
        reserved,
        orders.len() * 3,
        "no reservation without its order"
    );
    // Commits were shared: fewer transactions than orders.
    let transactions: HashSet<&String> = orders.values().map(|(_, _, t)| t).collect();
    assert!(transactions.len() < orders.len(), "batches formed");
    assert!(app
        .db
        .store
        .verify(None)
        .await
        .expect("verification runs")
        .ok());
}
