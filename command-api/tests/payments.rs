//! Payments through a real Stripe-compatible provider (localstripe, started by
//! `scripts/payments.sh`), and the webhook endpoint attacked with events signed the way
//! Stripe signs them: only the provider's verified word moves an order to `paid`, each
//! provider event counts once, and a success the order cannot take is never a silent
//! `paid`.

mod support;

use std::time::Duration;

use command_api::payments::{PaymentSettings, ProviderKind};
use command_api::webhooks::signing::signature;
use platform::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::TestApp;
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_agora";

/// The provider's API base (fails loudly when it cannot be reached: tests never skip).
async fn provider() -> String {
    let base = eventstore::testing::env::stripe_api_base();
    let reachable = reqwest::Client::new()
        .get(format!("{base}/v1/balance"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .is_ok_and(|response| response.status().is_success());
    assert!(
        reachable,
        "the test payment provider (localstripe) does not answer at {base}: {}",
        eventstore::testing::env::SERVICES_HINT
    );
    base
}

/// A command API taking payments through Stripe at `base` with these webhook secrets.
async fn stripe_app(base: &str, secrets: &str) -> TestApp {
    let base = base.to_owned();
    let secrets = secrets.to_owned();
    TestApp::spawn_with(move |settings| {
        settings.payments = PaymentSettings {
            provider: ProviderKind::Stripe,
            stripe_api_base: base,
            stripe_secret_key: Some(SECRET_KEY.into()),
            stripe_webhook_secrets: Some(secrets),
            ..PaymentSettings::default()
        };
    })
    .await
}

/// A fresh webhook secret (each test its own: localstripe sends every event to every
/// registered endpoint, and the other tests' apps refuse it).
fn fresh_secret() -> String {
    format!("whsec_{}", Uuid::new_v4().simple())
}

/// Registers `app`'s webhook endpoint at the provider.
async fn register_webhook(base: &str, app: &TestApp, secret: &str) {
    let response = reqwest::Client::new()
        .post(format!(
            "{base}/_config/webhooks/{}",
            Uuid::new_v4().simple()
        ))
        .form(&[
            ("url", format!("{}/v1/payments/stripe/webhook", app.address)),
            ("secret", secret.to_owned()),
        ])
        .send()
        .await
        .expect("the provider answers");
    assert!(response.status().is_success(), "{}", response.status());
}

/// An order of two mugs (2 × 1299 EUR) placed by `customer`.
async fn placed_order(app: &TestApp, customer: &str) -> Uuid {
    let mug = app
        .create_product(&format!("MUG-{}", Uuid::new_v4().simple()), 1299, 10)
        .await;
    let response = app
        .place_order(customer, json!([{"product_id": mug, "quantity": 2}]))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

/// The order's event types, in order.
async fn event_types(app: &TestApp, order: Uuid) -> Vec<String> {
    app.events_of(order)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// The order's events' metadata actors and payloads, by type.
async fn recorded(app: &TestApp, order: Uuid, event_type: &str) -> Vec<(String, Value)> {
    let stream = app.db.store.load_stream(order).await.expect("load");
    stream
        .events
        .iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| (e.metadata.actor.clone(), e.payload.clone()))
        .collect()
}

async fn wait_for_event(app: &TestApp, order: Uuid, event_type: &str) {
    eventstore::testing::eventually(
        &format!("{event_type} recorded for order {order}"),
        Duration::from_secs(30),
        || async {
            event_types(app, order)
                .await
                .iter()
                .any(|t| t == event_type)
        },
    )
    .await;
}

/// A call to the provider's API as the buyer's browser (or the test) would make it.
async fn at_provider(base: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(SECRET_KEY)
        .form(form)
        .send()
        .await
        .expect("the provider answers");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

#[tokio::test]
async fn checkout_the_buyer_pays_at_the_provider_its_webhook_pays_the_order_and_refunds_flow_back()
{
    let base = provider().await;
    let secret = fresh_secret();
    let app = stripe_app(&base, &secret).await;
    register_webhook(&base, &app, &secret).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = placed_order(&app, &alice).await;

    // Checkout: a PaymentIntent for exactly the total, the order id in its metadata.
    let checkout = app
        .post(&format!("/v1/orders/{order}/payment"), &alice, &json!({}))
        .await;
    assert_eq!(checkout.status(), StatusCode::OK);
    let checkout: Value = checkout.json().await.expect("json");
    assert_eq!(checkout["provider"], "stripe");
    assert_eq!(checkout["amount_cents"], 2598);
    assert_eq!(checkout["currency"], "EUR");
    let payment_id = checkout["payment_id"].as_str().expect("id").to_owned();
    assert!(payment_id.starts_with("pi_"), "{checkout}");
    assert!(checkout["client_secret"]
        .as_str()
        .is_some_and(|s| s.starts_with(&payment_id)));
    let intent = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{payment_id}"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("provider")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(intent["amount"], 2598);
    assert_eq!(intent["currency"], "eur");
    assert_eq!(intent["metadata"]["order_id"], order.to_string());
    // Asking again returns the same open payment, and records nothing more.
    let again: Value = app
        .post(&format!("/v1/orders/{order}/payment"), &alice, &json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["payment_id"], payment_id.as_str());
    assert_eq!(
        event_types(&app, order).await,
        ["OrderPlaced", "PaymentRequested"]
    );

    // The buyer pays at the provider with a test card; only its webhook makes it paid.
    at_provider(
        &base,
        &format!("/v1/payment_intents/{payment_id}"),
        &[("payment_method", "pm_card_visa")],
    )
    .await;
    at_provider(
        &base,
        &format!("/v1/payment_intents/{payment_id}/confirm"),
        &[],
    )
    .await;
    wait_for_event(&app, order, "OrderPaid").await;
    let paid = recorded(&app, order, "OrderPaid").await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].0, "psp:stripe");
    assert_eq!(paid[0].1["payment_ref"], payment_id.as_str());
    assert_eq!(paid[0].1["amount_cents"], 2598);
    assert!(paid[0].1["provider_event"]
        .as_str()
        .is_some_and(|e| e.starts_with("evt_")));
    assert_eq!(paid[0].1["reason"], Value::Null);

    // Nothing that would be refused reaches the provider: a stale If-Match on a refund or
    // on the cancellation of the paid order.
    let stale = [("If-Match", "\"1\"")];
    let refused = app
        .post_with(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &json!({"amount_cents": 100, "reason": "stale"}),
            &stale,
        )
        .await;
    support::assert_problem(refused, 412, "version_mismatch").await;
    let refused = app
        .post_with(
            &format!("/v1/orders/{order}/cancel"),
            &alice,
            &json!({"reason": "stale"}),
            &stale,
        )
        .await;
    support::assert_problem(refused, 412, "version_mismatch").await;
    assert_eq!(provider_refunds(&base, &payment_id).await, 0);

    // A refund of one mug: sent to the provider, which pays it back.
    let customer_refund = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &alice,
            &json!({"amount_cents": 1299, "reason": "mine"}),
        )
        .await;
    assert_eq!(customer_refund.status(), StatusCode::FORBIDDEN);
    let key = [("Idempotency-Key", "refund-broken-mug")];
    let one_mug = json!({"amount_cents": 1299, "reason": "one mug arrived broken"});
    let refund = app
        .post_with(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &one_mug,
            &key,
        )
        .await;
    assert_eq!(refund.status(), StatusCode::ACCEPTED);
    let refund: Value = refund.json().await.expect("json");
    let refund_id = refund["refund_id"].as_str().expect("id").to_owned();
    // The same request again: the same refund, nothing more at the provider; the same key
    // with another body: refused.
    let again = app
        .post_with(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &one_mug,
            &key,
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["refund_id"], refund_id.as_str());
    let reused = app
        .post_with(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &json!({"amount_cents": 700, "reason": "one mug arrived broken"}),
            &key,
        )
        .await;
    support::assert_problem(reused, 422, "idempotency_key_reused").await;
    assert_eq!(provider_refunds(&base, &payment_id).await, 1);
    assert!(refund_id.starts_with("re_"), "{refund}");
    wait_for_event(&app, order, "Refunded").await;
    let refunds = reqwest::Client::new()
        .get(format!("{base}/v1/refunds"))
        .query(&[("payment_intent", payment_id.as_str())])
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("provider")
        .json::<Value>()
        .await
        .expect("json");
    let at_provider: Vec<&Value> = refunds["data"].as_array().expect("list").iter().collect();
    assert_eq!(at_provider.len(), 1, "{refunds}");
    assert_eq!(at_provider[0]["amount"], 1299);
    // More than is left is refused, and nothing reaches the provider.
    let too_much = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &json!({"amount_cents": 1300, "reason": "too much"}),
        )
        .await;
    support::assert_problem(too_much, 422, "refund_exceeds_payment").await;

    // Cancelling the paid order refunds the rest through the provider.
    let cancelled = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            &alice,
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let refunded: i64 = recorded(&app, order, "Refunded")
        .await
        .iter()
        .map(|(_, p)| p["amount_cents"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(refunded, 2598);
    let after = reqwest::Client::new()
        .get(format!("{base}/v1/refunds"))
        .query(&[("payment_intent", payment_id.as_str())])
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("provider")
        .json::<Value>()
        .await
        .expect("json");
    let total: i64 = after["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["amount"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        total, 2598,
        "the provider paid back the whole total: {after}"
    );
}

/// How many refunds the provider made of `payment_id`.
async fn provider_refunds(base: &str, payment_id: &str) -> usize {
    let refunds = reqwest::Client::new()
        .get(format!("{base}/v1/refunds"))
        .query(&[("payment_intent", payment_id)])
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("provider")
        .json::<Value>()
        .await
        .expect("json");
    refunds["data"].as_array().map_or(0, Vec::len)
}

/// A Stripe event for `order`'s payment, signed with `secret` at `t`.
fn signed(secret: &str, t: i64, event: &Value) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(event).expect("json");
    let header = format!("t={t},v1={}", signature(secret.as_bytes(), t, &body));
    (body, header)
}

fn succeeded(event_id: &str, payment_id: &str, order: Uuid, amount: i64, currency: &str) -> Value {
    json!({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": payment_id, "object": "payment_intent", "amount": amount,
                            "amount_received": amount, "currency": currency, "status": "succeeded",
                            "metadata": {"order_id": order.to_string()}}}
    })
}

async fn deliver(app: &TestApp, body: Vec<u8>, header: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/v1/payments/stripe/webhook", app.address))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(header) = header {
        request = request.header("Stripe-Signature", header);
    }
    request.send().await.expect("the app answers")
}

#[tokio::test]
async fn forged_stale_altered_and_replayed_webhooks_pay_nothing() {
    let base = provider().await;
    let secret = fresh_secret();
    // Rotation: the old secret and the new one.
    let app = stripe_app(&base, &format!("whsec_old_one, {secret}")).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = placed_order(&app, &alice).await;
    let now = chrono::Utc::now().timestamp();
    let event = succeeded("evt_forged_1", "pi_forged", order, 2598, "eur");
    let before = app.event_count().await;

    let (body, _) = signed(&secret, now, &event);
    let (_, wrong) = signed("whsec_attacker", now, &event);
    let (_, stale) = signed(&secret, now - 301, &event);
    let (_, future) = signed(&secret, now + 301, &event);
    let (good_body, good) = signed(&secret, now, &event);
    let mut altered = good_body.clone();
    if let Some(byte) = altered.iter_mut().find(|b| **b == b'8') {
        *byte = b'9';
    }
    for (what, body, header) in [
        ("no signature", body.clone(), None),
        ("a wrong secret", body.clone(), Some(wrong.as_str())),
        ("a stale timestamp", body.clone(), Some(stale.as_str())),
        ("a future timestamp", body.clone(), Some(future.as_str())),
        ("a body changed by one byte", altered, Some(good.as_str())),
        ("garbage", body.clone(), Some("t=abc,v1=zz")),
    ] {
        let response = deliver(&app, body, header).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], "invalid_request", "{what}");
    }
    assert_eq!(
        app.event_count().await,
        before,
        "a refused webhook appends nothing"
    );
    // A customer's token is no signature.
    let with_token = app
        .http
        .post(format!("{}/v1/payments/stripe/webhook", app.address))
        .bearer_auth(&alice)
        .header("Content-Type", "application/json")
        .body(good_body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(with_token.status(), StatusCode::BAD_REQUEST);

    // Signed with the old secret of the rotation: accepted. The success arrives before any
    // PaymentRequested (the checkout's append had not committed): the order is paid.
    let (body, old) = signed("whsec_old_one", now, &event);
    assert_eq!(
        deliver(&app, body, Some(&old)).await.status(),
        StatusCode::OK
    );
    assert_eq!(event_types(&app, order).await, ["OrderPlaced", "OrderPaid"]);
    // A replay, and the same event delivered five times at once: nothing more.
    let replays = (0..5).map(|_| deliver(&app, good_body.clone(), Some(&good)));
    for response in futures::future::join_all(replays).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The same payment's success under another event id (the provider's retry): nothing.
    let (body, header) = signed(
        &secret,
        now,
        &succeeded("evt_forged_2", "pi_forged", order, 2598, "eur"),
    );
    assert_eq!(
        deliver(&app, body, Some(&header)).await.status(),
        StatusCode::OK
    );
    assert_eq!(event_types(&app, order).await, ["OrderPlaced", "OrderPaid"]);
    // An event type we ignore, and an event for no order of ours: 200, nothing appended.
    let count = app.event_count().await;
    let ignored = json!({"id": "evt_other", "type": "customer.created", "data": {"object": {}}});
    let (body, header) = signed(&secret, now, &ignored);
    assert_eq!(
        deliver(&app, body, Some(&header)).await.status(),
        StatusCode::OK
    );
    let (body, header) = signed(
        &secret,
        now,
        &succeeded("evt_stranger", "pi_x", Uuid::new_v4(), 1, "eur"),
    );
    assert_eq!(
        deliver(&app, body, Some(&header)).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.event_count().await, count);
}

#[tokio::test]
async fn a_success_the_order_cannot_take_is_recorded_for_review_never_paid() {
    let base = provider().await;
    let secret = fresh_secret();
    let app = stripe_app(&base, &secret).await;
    let alice = app.token("alice", &[Role::Customer]);
    let now = chrono::Utc::now().timestamp();

    // Another amount, another currency: the order stays placed.
    let order = placed_order(&app, &alice).await;
    for (n, (amount, currency)) in [(2597, "eur"), (2598, "usd")].into_iter().enumerate() {
        let event = succeeded(
            &format!("evt_mismatch_{n}"),
            &format!("pi_mismatch_{n}"),
            order,
            amount,
            currency,
        );
        let (body, header) = signed(&secret, now, &event);
        assert_eq!(
            deliver(&app, body, Some(&header)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        event_types(&app, order).await,
        ["OrderPlaced", "PaymentNeedsReview", "PaymentNeedsReview"]
    );
    // The captured money can be refunded by an admin.
    let refund = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &json!({"amount_cents": 2598, "reason": "paid in the wrong currency"}),
        )
        .await;
    // Not through localstripe here: these payments exist only in the forged events, so the
    // provider refuses the refund (and nothing is recorded).
    support::assert_problem(refund, 422, "payment_provider_refused").await;

    // A success for an order that was cancelled (as expiry does) meanwhile.
    let expired = placed_order(&app, &alice).await;
    let cancel = app
        .post(
            &format!("/v1/orders/{expired}/cancel"),
            &alice,
            &json!({"reason": "payment_timeout"}),
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    let (body, header) = signed(
        &secret,
        now,
        &succeeded("evt_late", "pi_late", expired, 2598, "eur"),
    );
    assert_eq!(
        deliver(&app, body, Some(&header)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        event_types(&app, expired).await,
        ["OrderPlaced", "OrderCancelled", "PaymentNeedsReview"]
    );
    let review = recorded(&app, expired, "PaymentNeedsReview").await;
    assert_eq!(review[0].0, "psp:stripe");
    assert!(review[0].1["reason"]
        .as_str()
        .is_some_and(|r| r.contains("cancelled")));

    // A failure leaves the order placed; the buyer may check out again.
    let retry = placed_order(&app, &alice).await;
    let failed = json!({
        "id": "evt_failed", "type": "payment_intent.payment_failed",
        "data": {"object": {"id": "pi_failed", "amount": 2598, "currency": "eur",
                            "last_payment_error": {"code": "card_declined"},
                            "metadata": {"order_id": retry.to_string()}}}
    });
    let (body, header) = signed(&secret, now, &failed);
    assert_eq!(
        deliver(&app, body, Some(&header)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        event_types(&app, retry).await,
        ["OrderPlaced", "PaymentFailed"]
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_clear_503_and_appends_nothing() {
    // Nothing listens on port 9 (discard) here: every call fails at once.
    let secret = fresh_secret();
    let app = stripe_app("http://127.0.0.1:9", &secret).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = placed_order(&app, &alice).await;
    let before = app.event_count().await;
    let checkout = app
        .post(&format!("/v1/orders/{order}/payment"), &alice, &json!({}))
        .await;
    let retry_after = checkout.headers().get("Retry-After").cloned();
    support::assert_problem(checkout, 503, "payment_provider_unavailable").await;
    assert!(retry_after.is_some());
    assert_eq!(app.event_count().await, before);

    // Paid (its webhook got through), then the provider is unreachable for the refund and
    // for the cancellation's refund: 503 each time, nothing appended, the order still paid.
    let now = chrono::Utc::now().timestamp();
    let (body, header) = signed(
        &secret,
        now,
        &succeeded("evt_outage", "pi_outage", order, 2598, "eur"),
    );
    assert_eq!(
        deliver(&app, body, Some(&header)).await.status(),
        StatusCode::OK
    );
    let paid = app.event_count().await;
    let refund = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &json!({"amount_cents": 100, "reason": "outage"}),
        )
        .await;
    support::assert_problem(refund, 503, "payment_provider_unavailable").await;
    let cancel = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            &alice,
            &json!({"reason": "outage"}),
        )
        .await;
    support::assert_problem(cancel, 503, "payment_provider_unavailable").await;
    assert_eq!(app.event_count().await, paid);
    assert_eq!(event_types(&app, order).await, ["OrderPlaced", "OrderPaid"]);
}

#[tokio::test]
async fn the_manual_provider_needs_an_admin_to_confirm() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = placed_order(&app, &alice).await;
    let checkout = app
        .post(&format!("/v1/orders/{order}/payment"), &alice, &json!({}))
        .await;
    assert_eq!(checkout.status(), StatusCode::OK);
    let checkout: Value = checkout.json().await.expect("json");
    assert_eq!(checkout["provider"], "manual");
    assert_eq!(checkout["client_secret"], Value::Null);
    // The buyer cannot confirm their own payment, nor pay by declaration.
    let confirm = format!("/v1/orders/{order}/payment/confirm");
    support::assert_problem(
        app.post(&confirm, &alice, &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let declared = app
        .post(
            &format!("/v1/orders/{order}/pay"),
            &alice,
            &json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "x", "reason": "trust me"}),
        )
        .await;
    support::assert_problem(declared, 403, "forbidden").await;
    assert_eq!(
        event_types(&app, order).await,
        ["OrderPlaced", "PaymentRequested"]
    );
    // The webhook is not open without a provider's secret.
    let response = deliver(&app, b"{}".to_vec(), Some("t=1,v1=00")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.post(&confirm, &app.admin, &json!({})).await.status(),
        StatusCode::OK
    );
    let paid = recorded(&app, order, "OrderPaid").await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].0, "root");
    assert_eq!(paid[0].1["payment_ref"], checkout["payment_id"]);
    // An admin's offline payment needs a reason; with one it is recorded as such.
    let other = placed_order(&app, &alice).await;
    let pay = format!("/v1/orders/{other}/pay");
    let without = json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "bank-1"});
    support::assert_problem(
        app.post(&pay, &app.admin, &without).await,
        400,
        "invalid_request",
    )
    .await;
    let with = json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "bank-1", "reason": "bank transfer 2024-05-02"});
    assert_eq!(
        app.post(&pay, &app.admin, &with).await.status(),
        StatusCode::OK
    );
    let offline = recorded(&app, other, "OrderPaid").await;
    assert_eq!(offline[0].1["reason"], "bank transfer 2024-05-02");
    assert_eq!(offline[0].1["provider_event"], Value::Null);
    // Its refund is offline too, at once.
    let refund = app
        .post(
            &format!("/v1/orders/{other}/refunds"),
            &app.admin,
            &json!({"amount_cents": 598, "reason": "discount"}),
        )
        .await;
    assert_eq!(refund.status(), StatusCode::ACCEPTED);
    let refund: Value = refund.json().await.expect("json");
    assert_eq!(refund["status"], "succeeded");
    assert_eq!(
        event_types(&app, other).await,
        ["OrderPlaced", "OrderPaid", "RefundRequested", "Refunded"]
    );
}
