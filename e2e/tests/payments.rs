//! The payments flow end to end, through Kafka, against a real Stripe-compatible provider
//! (localstripe, `scripts/payments.sh`): place → checkout → the buyer confirms at the
//! provider with a test card → the provider's signed webhook → `paid` in the query API and
//! on the dashboard → a refund → `Refunded`, revenue net of it. Then the history checker:
//! nothing paid twice, nothing paid without a provider event or an offline reason.

mod support;

use std::time::Duration;

use command_api::payments::{PaymentSettings, ProviderKind};
use platform::Role;
use serde_json::{json, Value};
use support::Stack;
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_e2e";

/// A call to the provider's API as the buyer's browser would make it.
async fn at_provider(base: &str, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(SECRET_KEY)
        .form(form)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
    Ok(body)
}

#[tokio::test]
async fn a_card_payment_at_the_provider_pays_the_order_everywhere_and_a_refund_flows_back(
) -> anyhow::Result<()> {
    let base = eventstore::testing::env::stripe_api_base();
    let secret = format!("whsec_{}", Uuid::new_v4().simple());
    let webhook_secrets = secret.clone();
    let provider = base.clone();
    let stack = Stack::start_with(true, move |settings| {
        settings.payments = PaymentSettings {
            provider: ProviderKind::Stripe,
            stripe_api_base: provider,
            stripe_secret_key: Some(SECRET_KEY.into()),
            stripe_webhook_secrets: Some(webhook_secrets),
            ..PaymentSettings::default()
        };
    })
    .await?;
    let registered = reqwest::Client::new()
        .post(format!(
            "{base}/_config/webhooks/{}",
            Uuid::new_v4().simple()
        ))
        .form(&[
            (
                "url",
                format!("{}/v1/payments/stripe/webhook", stack.command),
            ),
            ("secret", secret),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        registered.status().is_success(),
        "registering the webhook: {}",
        registered.status()
    );

    let admin = stack.admin.clone();
    let alice = stack.token("alice", &[Role::Customer]);
    let viewer = stack.token("vera", &[Role::Viewer]);
    let (mug, _) = stack
        .ok("/v1/products", &admin, json!({"sku": "MUG-PAY", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10}))
        .await?;
    let (order, _) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": mug, "quantity": 2}]}),
        )
        .await?;
    let checkout = stack.checkout(order, &alice).await?;
    assert_eq!(checkout["provider"], "stripe", "{checkout}");
    let payment = checkout["payment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(payment.starts_with("pi_"), "{checkout}");

    // The buyer pays at the provider; nothing but its webhook tells Agora.
    at_provider(
        &base,
        &format!("/v1/payment_intents/{payment}"),
        &[("payment_method", "pm_card_visa")],
    )
    .await?;
    at_provider(
        &base,
        &format!("/v1/payment_intents/{payment}/confirm"),
        &[],
    )
    .await?;
    // placed (1), PaymentRequested (2), OrderPaid (3): read it as paid through Kafka.
    let paid = stack
        .read_at(&format!("/v1/orders/{order}"), &alice, 3)
        .await?;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["payment_ref"], payment.as_str(), "{paid}");
    assert_eq!(
        paid["payments"],
        json!([{"payment_id": payment, "status": "succeeded", "amount_cents": 2598}]),
        "{paid}"
    );
    // The sales read model is a projection of its own (its batch commits beside the
    // orders' one, not with it): wait for it too.
    stack
        .eventually(
            "the dashboard counts the payment",
            Duration::from_secs(30),
            || async { Ok(stack.sales_totals(&viewer).await?.2 == 2598) },
        )
        .await?;

    // A partial refund: sent to the provider, which pays it back at once.
    let (status, refund) = stack
        .command(
            &format!("/v1/orders/{order}/refunds"),
            &admin,
            json!({"amount_cents": 1299, "reason": "one mug arrived broken"}),
        )
        .await?;
    assert_eq!(status.as_u16(), 202, "{refund}");
    let refund_id = refund["refund_id"].as_str().unwrap_or_default().to_owned();
    // RefundRequested (4), Refunded (5).
    let refunded = stack
        .read_at(&format!("/v1/orders/{order}"), &admin, 5)
        .await?;
    assert_eq!(refunded["status"], "paid", "{refunded}");
    assert_eq!(refunded["refunded_cents"], 1299, "{refunded}");
    assert_eq!(
        refunded["refunds"],
        json!([{"refund_id": refund_id, "status": "succeeded", "amount_cents": 1299}]),
        "{refunded}"
    );
    // Revenue is what the provider confirmed minus what it refunded.
    stack
        .eventually(
            "the dashboard nets the refund",
            Duration::from_secs(30),
            || async { Ok(stack.sales_totals(&viewer).await?.2 == 1299) },
        )
        .await?;

    // The log: paid once, by the provider's event, and nothing paid without one.
    let events = e2e::checker::load_events(&stack.db.url).await?;
    let (report, _) = e2e::checker::check_store(&[], &events);
    report.assert_clean()?;
    let paid_by: Vec<&Value> = events
        .iter()
        .filter(|e| e.event_type == "OrderPaid")
        .map(|e| &e.payload["provider_event"])
        .collect();
    assert_eq!(paid_by.len(), 1);
    assert!(
        paid_by[0].as_str().is_some_and(|id| id.starts_with("evt_")),
        "{paid_by:?}"
    );
    Ok(())
}
