//! Customers' personal data on the command side: `PUT /v1/me` seals every personal field
//! with the customer's data key, orders ship to a given or the profile's address (sealed),
//! and erasure destroys the key, records `CustomerErased` once, and refuses new personal
//! data. No plaintext ever reaches the events table or the key table.

mod support;

use platform::pii::{Keyring, MasterKey};
use platform::Role;
use reqwest::Method;
use serde_json::{json, Value};
use support::*;

const EMAIL: &str = "ana.lima.unique@example.org";
const NAME: &str = "Ana Lima Quaresma";
const STREET: &str = "Rua das Flores 123";

fn profile() -> Value {
    json!({"email": EMAIL, "name": NAME, "address": {
        "line1": STREET, "line2": "Apartamento 4B", "postal_code": "1200-192",
        "city": "Lisboa", "country": "PT"}})
}

impl TestApp {
    async fn put_me(&self, token: &str, body: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(body).expect("json");
        self.send(
            Method::PUT,
            "/v1/me",
            Some(&format!("Bearer {token}")),
            Some(body),
            &[],
        )
        .await
    }

    /// Every byte of the events, snapshots, idempotency records and key tables, as text.
    async fn stored_text(&self) -> String {
        let client = self.db.store.pool().get().await.expect("a connection");
        let mut all = String::new();
        for sql in [
            "SELECT coalesce(string_agg(payload::text || metadata::text, ' '), '') FROM events",
            "SELECT coalesce(string_agg(state::text, ' '), '') FROM snapshots",
            "SELECT coalesce(string_agg(encode(wrapped_key, 'escape'), ' '), '') FROM pii_keys",
        ] {
            let text: String = client.query_one(sql, &[]).await.expect(sql).get(0);
            all.push_str(&text);
        }
        all
    }
}

fn assert_no_plaintext(text: &str) {
    for secret in [EMAIL, NAME, STREET, "Apartamento", "Lisboa", "1200-192"] {
        assert!(!text.contains(secret), "plaintext {secret:?} is stored");
    }
}

#[tokio::test]
async fn a_profile_is_sealed_and_orders_ship_to_it_or_to_the_address_given() {
    let app = TestApp::spawn().await;
    let ana = app.token("ana", &[Role::Customer]);
    let response = app.put_me(&ana, &profile()).await;
    assert_eq!(response.status(), 200);
    let accepted = body_of(response).await;
    let stream = domain::customer::stream_id(&domain::CustomerId::parse("ana").unwrap());
    assert_eq!(accepted["id"], json!(stream));
    assert_eq!(accepted["version"], 1);

    let events = app.recorded(stream).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].stream_type, "customer");
    assert_eq!(events[0].event_type, "CustomerProfileSet");
    for field in ["email", "name", "address"] {
        let sealed = events[0].payload[field].as_str().unwrap();
        assert!(sealed.starts_with("pii1."), "{field}: {sealed}");
    }
    assert_no_plaintext(&app.stored_text().await);

    // The sealed address opens with the customer's key (read back as the query API does).
    let vault = platform::pii::Vault::new(
        Some(Keyring::new(MasterKey::from_hex("k", PII_KEY).unwrap())),
        app.db.store.pool().clone(),
    );
    let key = vault.key_for_reading("ana").await.unwrap().expect("a key");
    let sealed = domain::Sealed::parse(events[0].payload["address"].as_str().unwrap()).unwrap();
    let address: Value =
        serde_json::from_slice(&key.open(stream, "address", &sealed).unwrap()).unwrap();
    assert_eq!(address["line1"], STREET);

    // An order without an address ships to the profile's; one with an address to that.
    let mug = app.create_product("MUG", 1299, 10).await;
    let lines = json!([{"product_id": mug, "quantity": 1}]);
    let to_profile = app.placed_order(&ana, lines.clone()).await;
    let placed = &app.recorded(to_profile).await[0];
    assert_eq!(placed.schema_version, 3);
    assert_eq!(
        placed.payload["shipping_address"],
        events[0].payload["address"]
    );

    let elsewhere = json!({"line1": "Avenida da Liberdade 1", "postal_code": "1250-096",
                           "city": "Porto", "country": "PT"});
    let response = app
        .post(
            "/v1/orders",
            &ana,
            &json!({"lines": lines, "shipping_address": elsewhere}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let order = id_of(response).await;
    let placed = &app.recorded(order).await[0];
    let sealed = domain::Sealed::parse(placed.payload["shipping_address"].as_str().unwrap())
        .expect("sealed");
    let opened: Value =
        serde_json::from_slice(&key.open(stream, "address", &sealed).unwrap()).unwrap();
    assert_eq!(opened["city"], "Porto");
    assert!(!app.stored_text().await.contains("Avenida da Liberdade"));

    // A customer without a profile orders as before: no address.
    let bob = app.token("bob", &[Role::Customer]);
    let digital = app.placed_order(&bob, lines).await;
    assert_eq!(
        app.recorded(digital).await[0].payload["shipping_address"],
        Value::Null
    );
}

#[tokio::test]
async fn bad_personal_data_is_refused_without_echoing_it_and_nothing_is_appended() {
    let app = TestApp::spawn().await;
    let ana = app.token("ana", &[Role::Customer]);
    let before = app.event_count().await;
    for body in [
        json!({"email": "not-an-email", "name": NAME}),
        json!({"email": EMAIL, "name": "   "}),
        json!({"email": EMAIL, "name": NAME, "address": {"line1": STREET}}),
        json!({"email": EMAIL, "name": NAME, "address": {"line1": STREET, "postal_code": "1",
               "city": "Lisboa", "country": "Portugal"}}),
        json!({"email": EMAIL, "name": NAME, "phone": "+351 912 345 678"}),
        json!({"email": EMAIL}),
        json!([EMAIL, NAME]),
        json!({"email": EMAIL, "name": NAME, "address": "Rua Secreta 9, Lisboa"}),
        json!({"email": ["Rua Secreta 9"], "name": NAME}),
    ] {
        let response = app.put_me(&ana, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("not-an-email"), "{text}");
        assert!(!text.contains("+351"), "{text}");
        assert!(!text.contains("Secreta"), "{text}");
    }
    // Someone without the customer role has no profile to set.
    let response = app.put_me(&app.admin, &profile()).await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn erasure_destroys_the_key_once_and_refuses_new_personal_data() {
    let app = TestApp::spawn().await;
    let ana = app.token("ana", &[Role::Customer]);
    let mallory = app.token("mallory", &[Role::Customer]);
    assert_eq!(app.put_me(&ana, &profile()).await.status(), 200);
    let mug = app.create_product("MUG", 1299, 10).await;
    let order = app
        .placed_order(&ana, json!([{"product_id": mug, "quantity": 2}]))
        .await;

    // Another customer cannot erase ana; nothing happens.
    let reason = json!({"reason": "GDPR art. 17 request"});
    assert_problem(
        app.post("/v1/customers/ana/erasure", &mallory, &reason)
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM pii_keys WHERE customer_id = 'ana' AND wrapped_key IS NOT NULL"
        )
        .await,
        1
    );

    // The customer erases themself; again is fine and records nothing more.
    for _ in 0..2 {
        let response = app.post("/v1/customers/ana/erasure", &ana, &reason).await;
        assert_eq!(response.status(), 202);
        assert_eq!(
            body_of(response).await,
            json!({"customer_id": "ana", "erased": true})
        );
    }
    // An admin's erasure is idempotent too.
    let response = app
        .post("/v1/customers/ana/erasure", &app.admin, &reason)
        .await;
    assert_eq!(response.status(), 202);
    let stream = domain::customer::stream_id(&domain::CustomerId::parse("ana").unwrap());
    let events = app.recorded(stream).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["CustomerProfileSet", "CustomerErased"]);
    assert_eq!(
        events[1].payload,
        json!({"customer_id": "ana", "erased_by": "ana", "reason": "GDPR art. 17 request"})
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM pii_keys WHERE customer_id = 'ana' \
             AND wrapped_key IS NULL AND erased_at IS NOT NULL"
        )
        .await,
        1
    );
    // A forged revival of the key is refused by the database itself.
    let client = app.db.store.pool().get().await.unwrap();
    let revived = client
        .execute(
            "UPDATE pii_keys SET wrapped_key = '\\x00', master_key_id = 'x', erased_at = NULL \
             WHERE customer_id = 'ana'",
            &[],
        )
        .await;
    assert!(revived.is_err(), "a tombstone took key material again");

    // Nothing new of theirs is sealed: no profile, no order with an address.
    assert_problem(app.put_me(&ana, &profile()).await, 422, "customer_erased").await;
    let response = app
        .post(
            "/v1/orders",
            &ana,
            &json!({"lines": [{"product_id": mug, "quantity": 1}],
                    "shipping_address": {"line1": "x", "postal_code": "1", "city": "y",
                                         "country": "PT"}}),
        )
        .await;
    assert_problem(response, 422, "customer_erased").await;
    // Their orders stay, with lines, totals and status; one without an address still works.
    let state = app.order_state(order).await;
    assert_eq!(state.total_cents(), 2598);
    let later = app
        .placed_order(&ana, json!([{"product_id": mug, "quantity": 1}]))
        .await;
    assert_eq!(
        app.recorded(later).await[0].payload["shipping_address"],
        Value::Null
    );

    // Someone who never set a profile can be erased too (no key is ever made for them).
    let response = app
        .post("/v1/customers/carol/erasure", &app.admin, &reason)
        .await;
    assert_eq!(response.status(), 202);
    let carol = app.token("carol", &[Role::Customer]);
    assert_problem(app.put_me(&carol, &profile()).await, 422, "customer_erased").await;
}

/// What one process keeps of a customer (their profile for the default address, their data
/// key) follows changes made through another process: it hears them from the store.
#[tokio::test]
async fn another_process_s_profile_change_and_erasure_reach_what_this_one_keeps() {
    let app = TestApp::spawn().await;
    let other = app
        .another_process_with(&[("AGORA_PII_KEY", PII_KEY)])
        .await;
    let ana = app.token("ana", &[Role::Customer]);
    let mug = app.create_product("MUG", 1299, 100).await;
    let lines = json!([{"product_id": mug, "quantity": 1}]);
    let given = json!({"line1": "Rua Velha 1", "postal_code": "1000-001", "city": "Lisboa",
                       "country": "PT"});
    // This process learns that ana has no profile, and keeps her data key.
    let first = app.placed_order(&ana, lines.clone()).await;
    assert_eq!(
        app.recorded(first).await[0].payload["shipping_address"],
        Value::Null
    );
    let response = app
        .post(
            "/v1/orders",
            &ana,
            &json!({"lines": lines, "shipping_address": given}),
        )
        .await;
    assert_eq!(response.status(), 201);

    // ana sets her profile through the other process: this one ships to it.
    let body = serde_json::to_vec(&profile()).unwrap();
    let response = app
        .http
        .put(format!("{}/v1/me", other.address))
        .bearer_auth(&ana)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    testkit::try_eventually("this process ships to the new profile", WAIT, || async {
        let order = app.placed_order(&ana, lines.clone()).await;
        Ok::<_, anyhow::Error>(!app.recorded(order).await[0].payload["shipping_address"].is_null())
    })
    .await
    .unwrap();

    // ana is erased through the other process: this one seals nothing more for her.
    let response = app
        .post_at(
            &other.address,
            "/v1/customers/ana/erasure",
            &ana,
            &json!({"reason": "asked"}),
            &[],
        )
        .await;
    assert_eq!(response.status(), 202);
    testkit::try_eventually("this process refuses her data", WAIT, || async {
        let response = app
            .post(
                "/v1/orders",
                &ana,
                &json!({"lines": lines, "shipping_address": given}),
            )
            .await;
        Ok::<_, anyhow::Error>(response.status() == 422)
    })
    .await
    .unwrap();
    let order = app.placed_order(&ana, lines.clone()).await;
    assert_eq!(
        app.recorded(order).await[0].payload["shipping_address"],
        Value::Null,
        "no profile address after the erasure"
    );
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
