//! Webhooks against a real HTTP receiver the test runs: signed deliveries (the signature
//! recomputed here, independently), per-stream order, retries until a receiver recovers,
//! a hanging receiver that holds up no one else, `failed` after the limit and a manual
//! retry; and the admin API's rules.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use eventstore::testing::eventually;
use platform::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::receiver::{Behaviour, Received, Receiver};
use support::{assert_problem, body_of, hmac_sha256, TestApp};
use uuid::Uuid;

const HOOK_SECRET: &str = "whsec-test-0123456789";

/// A test app whose failed deliveries are retried quickly.
async fn app(max_attempts: u32) -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.webhook_max_attempts = max_attempts;
        settings.webhook_retry_base = Duration::from_millis(50);
    })
    .await
}

/// Subscribes `url` to `event_types`; the subscription's id.
async fn subscribe(app: &TestApp, url: &str, event_types: &[&str]) -> Uuid {
    let response = app
        .post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": url, "event_types": event_types, "secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = body_of(response).await;
    assert!(
        body.get("secret").is_none(),
        "the secret is never returned: {body}"
    );
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an id")
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.address))
        .bearer_auth(&app.admin)
        .send()
        .await
        .expect("the app answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Checks `Agora-Signature: t=…,v1=…` against the raw body and a recent `t`.
fn assert_signed(received: &Received) {
    let mut t = None;
    let mut v1 = None;
    for part in received.signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        panic!("malformed signature header {:?}", received.signature);
    };
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 60,
        "t is recent"
    );
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(&received.body);
    assert_eq!(
        v1,
        hex::encode(hmac_sha256(HOOK_SECRET.as_bytes(), &message)),
        "the signature verifies"
    );
}

/// The envelope of a delivery.
fn envelope(received: &Received) -> Value {
    serde_json::from_slice(&received.body).expect("a JSON envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_and_arrive_in_per_stream_order() {
    let app = app(10).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let types = [
        "OrderPlaced",
        "OrderPaid",
        "OrderCancelled",
        "StockReserved",
        "StockReleased",
    ];
    subscribe(&app, &receiver.url, &types).await;
    let product = app.create_product("W-1", 500, 1000).await;
    let alice = app.token("alice", &[Role::Customer]);
    let mut expected = 0;
    for n in 0..10 {
        let order = app
            .placed_order(&alice, json!([{"product_id": product, "quantity": 1}]))
            .await;
        expected += 2; // OrderPlaced, StockReserved
        if n % 2 == 0 {
            // Paid the storefront's way; PaymentRequested is not subscribed to.
            app.pay_through_provider(order, &alice).await;
            expected += 1; // OrderPaid
        } else {
            let response = app
                .post(
                    &format!("/v1/orders/{order}/cancel"),
                    &alice,
                    &json!({"reason": "no"}),
                )
                .await;
            assert!(response.status().is_success());
            expected += 2; // OrderCancelled, StockReleased
        }
    }
    eventually("every event delivered", Duration::from_secs(30), || async {
        receiver.received().len() >= expected
    })
    .await;
    let received = receiver.received();
    assert_eq!(
        received.len(),
        expected,
        "each event once (no failures, no repeats)"
    );
    let mut last_version: HashMap<String, i64> = HashMap::new();
    for delivery in &received {
        assert_signed(delivery);
        let event = envelope(delivery);
        assert_eq!(
            delivery.event_id,
            event["event_id"].as_str().unwrap_or_default()
        );
        assert_eq!(
            delivery.event_type,
            event["event_type"].as_str().unwrap_or_default()
        );
        assert!(types.contains(&delivery.event_type.as_str()));
        let stream = event["stream_id"].as_str().unwrap_or_default().to_owned();
        let version = event["version"].as_i64().unwrap_or_default();
        let previous = last_version.insert(stream.clone(), version).unwrap_or(0);
        assert!(
            version > previous,
            "stream {stream}: version {version} after {previous}"
        );
    }
    // A tampered body does not verify.
    let mut forged = received[0].clone();
    forged.body = br#"{"forged":true}"#.to_vec();
    let result = std::panic::catch_unwind(|| assert_signed(&forged));
    assert!(result.is_err(), "a changed body fails verification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_then_recovers_gets_every_event_in_order() {
    let app = app(20).await;
    let receiver = Receiver::start(Behaviour::FailNext(4)).await;
    let hook = subscribe(&app, &receiver.url, &["StockAdded"]).await;
    let product = app.create_product("R-1", 500, 0).await;
    app.restock(product, 5).await;
    eventually(
        "all five restocks delivered",
        Duration::from_secs(30),
        || async { receiver.received().len() >= 5 },
    )
    .await;
    let versions: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| envelope(r)["version"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(
        versions,
        vec![2, 3, 4, 5, 6],
        "one stream, in order, despite the failures"
    );
    assert!(receiver.attempts() >= 9, "the 500s were retried");
    let delivered = format!("/v1/webhooks/{hook}/deliveries?status=delivered");
    // The log is written after each round's answers are in.
    eventually(
        "the log to record five deliveries",
        Duration::from_secs(5),
        || async {
            get(&app, &delivered).await.1["items"]
                .as_array()
                .is_some_and(|items| items.len() == 5)
        },
    )
    .await;
    let (status, log) = get(&app, &delivered).await;
    assert_eq!(status, StatusCode::OK);
    let items = log["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.iter().any(|d| d["attempts"].as_i64() > Some(1)),
        "{log}"
    );
    assert!(items.iter().all(|d| d["last_status_code"] == 200), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_another_subscriber() {
    let app = app(10).await;
    let hanging = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Accept).await;
    subscribe(&app, &hanging.url, &["ProductCreated", "StockAdded"]).await;
    subscribe(&app, &healthy.url, &["ProductCreated", "StockAdded"]).await;
    let product = app.create_product("H-1", 500, 0).await;
    eventually(
        "the hanging receiver to be called",
        Duration::from_secs(10),
        || async { hanging.attempts() >= 1 },
    )
    .await;
    let started = std::time::Instant::now();
    app.restock(product, 3).await;
    eventually(
        "the healthy subscriber's deliveries",
        Duration::from_secs(5),
        || async { healthy.received().len() >= 4 },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delivered while the other receiver hangs (10 s timeout)"
    );
    assert!(hanging.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_failed_after_the_limit_and_a_manual_retry_delivers_it() {
    let app = app(3).await;
    let receiver = Receiver::start(Behaviour::FailAlways).await;
    let hook = subscribe(&app, &receiver.url, &["ProductCreated"]).await;
    let product = app.create_product("F-1", 500, 0).await;
    let failed_path = format!("/v1/webhooks/{hook}/deliveries?status=failed");
    eventually("the delivery to fail", Duration::from_secs(20), || async {
        get(&app, &failed_path).await.1["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1)
    })
    .await;
    let (_, log) = get(&app, &failed_path).await;
    let failed = &log["items"][0];
    assert_eq!(failed["attempts"], 3, "{log}");
    assert_eq!(failed["last_status_code"], 500, "{log}");
    assert!(failed["last_error"].is_string(), "{log}");
    assert_eq!(receiver.attempts(), 3, "no attempt after the limit");
    let event_id = failed["event_id"].as_str().unwrap_or_default().to_owned();

    receiver.set(Behaviour::Accept);
    let retry = format!("/v1/webhooks/{hook}/deliveries/{event_id}/retry");
    let customer = app.token("carl", &[Role::Customer]);
    assert_problem(
        app.post(&retry, &customer, &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let response = app.post(&retry, &app.admin, &json!({})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    eventually("the retried delivery", Duration::from_secs(10), || async {
        receiver.received().len() == 1
    })
    .await;
    let delivered = &receiver.received()[0];
    assert_eq!(delivered.event_id, event_id);
    assert_eq!(envelope(delivered)["stream_id"], product.to_string());
    eventually(
        "the log to say delivered",
        Duration::from_secs(5),
        || async {
            get(
                &app,
                &format!("/v1/webhooks/{hook}/deliveries?status=delivered"),
            )
            .await
            .1["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1)
        },
    )
    .await;
    let unknown = format!("/v1/webhooks/{hook}/deliveries/{}/retry", Uuid::now_v7());
    assert_problem(
        app.post(&unknown, &app.admin, &json!({})).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_admin_api_validates_subscriptions_and_hides_secrets() {
    let app = TestApp::spawn_with(|settings| settings.webhook_allow_insecure = false).await;
    let create = |body: Value| {
        let app = &app;
        async move { app.post("/v1/webhooks", &app.admin, &body).await }
    };
    for body in [
        json!({"url": "http://hooks.example.com/x", "event_types": ["OrderPaid"], "secret": HOOK_SECRET}),
        json!({"url": "https://127.0.0.1/x", "event_types": ["OrderPaid"], "secret": HOOK_SECRET}),
        json!({"url": "https://hooks.example.com/x", "event_types": ["NoSuchEvent"], "secret": HOOK_SECRET}),
        json!({"url": "https://hooks.example.com/x", "event_types": [], "secret": HOOK_SECRET}),
        json!({"url": "https://hooks.example.com/x", "event_types": ["OrderPaid"], "secret": "short"}),
        json!({"url": "https://hooks.example.com/x", "event_types": ["OrderPaid"], "secret": HOOK_SECRET, "extra": 1}),
    ] {
        assert_problem(create(body).await, 400, "invalid_request").await;
    }
    let customer = app.token("carl", &[Role::Customer]);
    let good = json!({"url": "https://hooks.example.com/x", "event_types": ["OrderPaid"], "secret": HOOK_SECRET});
    assert_problem(
        app.post("/v1/webhooks", &customer, &good).await,
        403,
        "forbidden",
    )
    .await;
    let response = create(good).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = body_of(response).await;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (status, listed) = get(&app, "/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(HOOK_SECRET), "{listed}");
    // At rest the secret is sealed: a database reader does not find it.
    let client = app.db.store.pool().get().await.expect("a connection");
    let row = client
        .query_one("SELECT secret_sealed FROM webhook_subscriptions", &[])
        .await
        .expect("the subscription row");
    let sealed: Vec<u8> = row.get(0);
    assert!(!sealed
        .windows(HOOK_SECRET.len())
        .any(|w| w == HOOK_SECRET.as_bytes()));
    let response = app
        .http
        .delete(format!("{}/v1/webhooks/{id}", app.address))
        .bearer_auth(&app.admin)
        .send()
        .await
        .expect("the app answers");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&app, &format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the delivery log records for any failure before an HTTP answer.
const UNREACHABLE: &str = "the target could not be reached";

/// A TCP listener on a free loopback port that only counts the connections it accepts
/// (it never answers): proof that a refused target was never connected to.
async fn counting_listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let port = listener.local_addr().expect("an address").port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            open.push(socket);
        }
    });
    (port, accepted)
}

/// Points subscription `id` at `url` behind the API's back: what a name that answered a
/// public address when subscribed and answers an internal one now (DNS rebinding) looks
/// like at delivery time.
async fn rebind(app: &TestApp, id: Uuid, url: &str) {
    let client = app.db.store.pool().get().await.expect("a connection");
    let updated = client
        .execute(
            "UPDATE webhook_subscriptions SET url = $2 WHERE id = $1",
            &[&id, &url],
        )
        .await
        .expect("the update");
    assert_eq!(updated, 1);
}

/// The only delivery of subscription `id` once it has been attempted at least once.
async fn first_attempted(app: &TestApp, id: Uuid) -> Value {
    let path = format!("/v1/webhooks/{id}/deliveries");
    eventually(
        "a delivery attempt to be recorded",
        Duration::from_secs(20),
        || async {
            get(app, &path).await.1["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1 && items[0]["attempts"].as_i64() >= Some(1))
        },
    )
    .await;
    get(app, &path).await.1["items"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_now_resolves_to_an_internal_address_is_never_connected_to() {
    let app = TestApp::spawn_with(|settings| {
        settings.webhook_allow_insecure = false;
        settings.webhook_max_attempts = 2;
        settings.webhook_retry_base = Duration::from_millis(50);
    })
    .await;
    let (port, accepted) = counting_listener().await;
    // Subscribed while public; internal at delivery time: by a name that resolves to
    // loopback, by IP literals (v4, v4-mapped v6, NAT64), and over plain http.
    let internal = [
        format!("https://localhost:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://[::ffff:127.0.0.1]:{port}/hook"),
        format!("https://[64:ff9b::7f00:1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ];
    let mut hooks = Vec::new();
    for (n, url) in internal.iter().enumerate() {
        let hook = subscribe(
            &app,
            &format!("https://hooks{n}.example.com/agora"),
            &["ProductCreated"],
        )
        .await;
        rebind(&app, hook, url).await;
        hooks.push(hook);
    }
    app.create_product("S-1", 500, 0).await;
    for hook in &hooks {
        let failed = format!("/v1/webhooks/{hook}/deliveries?status=failed");
        eventually(
            "the delivery to fail after its attempts",
            Duration::from_secs(20),
            || async {
                get(&app, &failed).await.1["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 1)
            },
        )
        .await;
        let (_, log) = get(&app, &failed).await;
        let delivery = &log["items"][0];
        assert_eq!(delivery["attempts"], 2, "{log}");
        assert_eq!(delivery["last_error"], UNREACHABLE, "{log}");
        assert!(delivery["last_status_code"].is_null(), "{log}");
        let text = log.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.contains(&port.to_string()),
            "nothing of the resolved address: {log}"
        );
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no delivery ever connected to the internal listener"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_errors_before_an_answer_all_read_the_same() {
    // Insecure mode (loopback allowed): a connection refused by a closed port reads as a
    // refused address does (the test above), so the log tells nothing apart; an HTTP
    // answer still records its status code.
    let app = app(1).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("an address").port()
    }; // dropped: nothing listens there now
    let refused = subscribe(
        &app,
        &format!("http://127.0.0.1:{closed}/hook"),
        &["ProductCreated"],
    )
    .await;
    let failing = Receiver::start(Behaviour::FailAlways).await;
    let answered = subscribe(&app, &failing.url, &["ProductCreated"]).await;
    app.create_product("U-1", 500, 0).await;
    let delivery = first_attempted(&app, refused).await;
    assert_eq!(delivery["last_error"], UNREACHABLE, "{delivery}");
    assert!(delivery["last_status_code"].is_null(), "{delivery}");
    let delivery = first_attempted(&app, answered).await;
    assert_eq!(delivery["last_status_code"], 500, "{delivery}");
    assert_ne!(delivery["last_error"], UNREACHABLE, "{delivery}");
}

/// Creates a subscription to a loopback URL (insecure test apps); the answer.
async fn try_subscribe(app: &TestApp, n: usize) -> reqwest::Response {
    app.post(
        "/v1/webhooks",
        &app.admin,
        &json!({"url": format!("http://127.0.0.1:9/hook{n}"), "event_types": ["OrderPaid"],
                "secret": HOOK_SECRET}),
    )
    .await
}

async fn subscriptions(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM webhook_subscriptions")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_subscription_is_refused() {
    let app = app(10).await;
    for n in 0..100 {
        let response = try_subscribe(&app, n).await;
        assert_eq!(response.status(), StatusCode::CREATED, "subscription {n}");
    }
    let problem = assert_problem(try_subscribe(&app, 100).await, 422, "too_many_webhooks").await;
    assert!(problem["detail"].is_string(), "{problem}");
    assert_eq!(subscriptions(&app).await, 100, "nothing stored");
    // Deleting one makes room for exactly one.
    let (_, listed) = get(&app, "/v1/webhooks").await;
    let id = listed["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let response = app
        .http
        .delete(format!("{}/v1/webhooks/{id}", app.address))
        .bearer_auth(&app.admin)
        .send()
        .await
        .expect("the app answers");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(try_subscribe(&app, 101).await.status(), StatusCode::CREATED);
    assert_problem(try_subscribe(&app, 102).await, 422, "too_many_webhooks").await;
    assert_eq!(subscriptions(&app).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations_never_pass_the_cap() {
    let app = app(10).await;
    for n in 0..95 {
        assert_eq!(try_subscribe(&app, n).await.status(), StatusCode::CREATED);
    }
    let answers = futures::future::join_all((95..105).map(|n| {
        let app = &app;
        async move { try_subscribe(app, n).await }
    }))
    .await;
    let mut created = 0;
    for response in answers {
        match response.status() {
            StatusCode::CREATED => created += 1,
            _ => {
                assert_problem(response, 422, "too_many_webhooks").await;
            }
        }
    }
    assert_eq!(created, 5, "exactly the room left");
    assert_eq!(subscriptions(&app).await, 100, "never more than 100 stored");
    // Each subscription stored is in the log once; no refused one is.
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE event_type = 'WebhookSubscribed'")
            .await,
        100
    );
}

/// The payloads of the `webhook` stream of subscription `id`, oldest first.
async fn logged_changes(app: &TestApp, id: Uuid) -> Vec<(String, Value, Value)> {
    let client = app.db.store.pool().get().await.expect("a connection");
    client
        .query(
            "SELECT event_type, payload, metadata FROM events \
             WHERE stream_type = 'webhook' AND stream_id = $1 ORDER BY version",
            &[&id],
        )
        .await
        .expect("the log")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_of_a_subscription_is_in_the_log_with_who_made_it() {
    let app = app(10).await;
    let id = subscribe(
        &app,
        "http://127.0.0.1:9/erp",
        &["OrderPaid", "OrderPlaced"],
    )
    .await;
    let changes = logged_changes(&app, id).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (event_type, payload, metadata) = &changes[0];
    assert_eq!(event_type, "WebhookSubscribed");
    assert_eq!(payload["subscription_id"], id.to_string());
    assert_eq!(payload["url"], "http://127.0.0.1:9/erp");
    assert_eq!(payload["event_types"], json!(["OrderPaid", "OrderPlaced"]));
    assert_eq!(payload["subscribed_by"], metadata["actor"]);
    assert!(
        !payload.to_string().contains(HOOK_SECRET) && !metadata.to_string().contains(HOOK_SECRET),
        "the secret never reaches the log: {payload} {metadata}"
    );
    // The log's own reader decodes it (chained, sequenced and exported like every event).
    let verify = app
        .count("SELECT count(*) FROM events WHERE stream_type = 'webhook'")
        .await;
    assert_eq!(verify, 1);

    // Five admins delete it at once: one deletion, one event; the others get 404.
    let deletions = futures::future::join_all((0..5).map(|_| {
        let app = &app;
        async move {
            app.http
                .delete(format!("{}/v1/webhooks/{id}", app.address))
                .bearer_auth(&app.admin)
                .send()
                .await
                .expect("the app answers")
                .status()
        }
    }))
    .await;
    let deleted = deletions
        .iter()
        .filter(|status| **status == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(deleted, 1, "{deletions:?}");
    assert!(
        deletions
            .iter()
            .all(|s| [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND].contains(s)),
        "{deletions:?}"
    );
    let changes = logged_changes(&app, id).await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[1].0, "WebhookUnsubscribed");
    assert_eq!(changes[1].1["unsubscribed_by"], changes[1].2["actor"]);

    // Refused creations (a bad URL, a viewer) leave nothing in the log.
    let before = app
        .count("SELECT count(*) FROM events WHERE stream_type = 'webhook'")
        .await;
    let refused = app
        .post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": "ftp://example.com/x", "event_types": ["OrderPaid"],
                    "secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let viewer = app.token("vera", &[Role::Viewer]);
    let refused = app
        .post(
            "/v1/webhooks",
            &viewer,
            &json!({"url": "http://127.0.0.1:9/x", "event_types": ["OrderPaid"],
                    "secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE stream_type = 'webhook'")
            .await,
        before
    );
}

/// A subscription made before its changes were logged (a row with no stream) is deleted
/// with an event that starts its stream.
#[tokio::test]
async fn a_subscription_older_than_the_log_of_changes_is_deleted_into_the_log() {
    let app = app(10).await;
    let id = subscribe(&app, "http://127.0.0.1:9/old", &["OrderPaid"]).await;
    // Make it look like one made by the previous version: a row, no events.
    let client = app.db.store.pool().get().await.expect("a connection");
    let copy = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO webhook_subscriptions (id, url, event_types, secret_nonce, secret_sealed) \
             SELECT $1, url, event_types, secret_nonce, secret_sealed \
             FROM webhook_subscriptions WHERE id = $2",
            &[&copy, &id],
        )
        .await
        .expect("a legacy row");
    let response = app
        .http
        .delete(format!("{}/v1/webhooks/{copy}", app.address))
        .bearer_auth(&app.admin)
        .send()
        .await
        .expect("the app answers");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let changes = logged_changes(&app, copy).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].0, "WebhookUnsubscribed");
}
