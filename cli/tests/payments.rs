//! `agora payments reconcile` against a real Stripe-compatible provider (localstripe): a
//! payment whose webhook was lost is applied from the provider's record, once; a payment
//! the log holds that the provider does not know is reported, with exit code 1.

mod support;

use chrono::Utc;
use eventstore::testing::TestDatabase;
use eventstore::{AppendRequest, NewEvent, StreamWrite};
use serde_json::{json, Value};
use support::{agora, exit_code, report};
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_agora";

/// Appends `events` (type, schema version, payload) to order `id`.
async fn append(db: &TestDatabase, id: Uuid, events: Vec<(&str, u32, Value)>) {
    let loaded = db.store.load_streams(&[id]).await.expect("load");
    let write = StreamWrite::after(
        &loaded[&id],
        "order",
        events
            .into_iter()
            .map(|(event_type, version, payload)| {
                NewEvent::new(event_type, version as i32, payload)
            })
            .collect(),
    );
    db.store
        .append(AppendRequest {
            streams: vec![write],
            metadata: support::metadata(None),
            occurred_at: Utc::now(),
            claims: vec![],
            idempotency: None,
        })
        .await
        .expect("append");
}

fn placed(total: i64) -> (&'static str, u32, Value) {
    (
        "OrderPlaced",
        2,
        json!({"customer_id": "alice", "placed_by": "alice",
               "lines": [{"product_id": Uuid::new_v4(), "quantity": 1, "unit_price_cents": total}],
               "total_cents": total, "currency": "EUR"}),
    )
}

/// A call to the provider's API, its JSON answer.
async fn at_provider(base: &str, path: &str, form: &[(&str, String)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(SECRET_KEY)
        .form(form)
        .send()
        .await
        .expect("the test payment provider (localstripe) answers: scripts/services.sh start");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

fn reconcile(db: &TestDatabase, base: &str) -> std::process::Output {
    agora(&[
        "payments",
        "reconcile",
        "--database-url",
        &db.url,
        "--payments",
        "stripe",
        "--stripe-api-base",
        base,
        "--stripe-secret-key",
        SECRET_KEY,
        "--stripe-webhook-secrets",
        "whsec_reconcile",
        "--since",
        "1h",
    ])
}

#[tokio::test]
async fn a_lost_webhook_is_applied_once_and_a_payment_the_provider_lacks_is_reported() {
    let base = eventstore::testing::env::stripe_api_base();
    let db = TestDatabase::create().await.expect("db");

    // An order whose buyer paid at the provider; its webhook never arrived.
    let lost = Uuid::new_v4();
    append(&db, lost, vec![placed(1500)]).await;
    let intent = at_provider(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "1500".into()),
            ("currency", "eur".into()),
            ("metadata[order_id]", lost.to_string()),
        ],
    )
    .await;
    let payment = intent["id"].as_str().expect("id").to_owned();
    at_provider(
        &base,
        &format!("/v1/payment_intents/{payment}"),
        &[("payment_method", "pm_card_visa".into())],
    )
    .await;
    at_provider(
        &base,
        &format!("/v1/payment_intents/{payment}/confirm"),
        &[],
    )
    .await;

    // An order the log says the provider paid, with a payment the provider never had.
    let phantom = Uuid::new_v4();
    append(
        &db,
        phantom,
        vec![
            placed(700),
            (
                "OrderPaid",
                2,
                json!({"amount_cents": 700, "currency": "EUR", "payment_ref": "pi_neverexisted",
                       "provider_event": "evt_forged", "reason": null}),
            ),
        ],
    )
    .await;

    let output = reconcile(&db, &base);
    assert_eq!(
        exit_code(&output),
        1,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first = report(&output);
    let applied: Vec<&str> = first["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .filter_map(|f| f["payment_id"].as_str())
        .collect();
    assert_eq!(applied, [payment.as_str()], "{first}");
    let unresolved = first["unresolved"].as_array().expect("unresolved");
    assert_eq!(unresolved.len(), 1, "{first}");
    assert_eq!(unresolved[0]["payment_id"], "pi_neverexisted");
    assert_eq!(unresolved[0]["order_id"], phantom.to_string());

    let stream = db.store.load_stream(lost).await.expect("load");
    let paid: Vec<_> = stream
        .events
        .iter()
        .filter(|e| e.event_type == "OrderPaid")
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].metadata.actor, "psp:reconcile");
    assert_eq!(paid[0].payload["payment_ref"], payment.as_str());
    assert_eq!(
        paid[0].payload["provider_event"],
        format!("reconcile:{payment}")
    );

    // Again: nothing more is applied; the phantom is still reported.
    let output = reconcile(&db, &base);
    assert_eq!(exit_code(&output), 1);
    let second = report(&output);
    assert_eq!(second["applied"], json!([]), "{second}");
    let stream = db.store.load_stream(lost).await.expect("load");
    assert_eq!(
        stream
            .events
            .iter()
            .filter(|e| e.event_type == "OrderPaid")
            .count(),
        1
    );
}
