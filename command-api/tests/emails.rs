//! Transactional email against a real SMTP server (aiosmtpd, `scripts/tools.sh smtp`): one
//! message per order event, with the customer's data opened only at send time; none twice
//! through an SMTP outage, a SIGKILLed sender, two reactor processes and a full replay of
//! the log; nothing to an erased customer; receipts only for a customer who opted out.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use platform::Role;
use reqwest::Method;
use serde_json::{json, Value};
use support::*;
use testkit::smtp::{header as mail_header, SmtpServer};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

async fn app_mailing_to(smtp: &SmtpServer, reactors: bool) -> TestApp {
    let url = smtp.url();
    TestApp::spawn_with(move |settings| {
        settings.reactors = reactors;
        settings.payment_ttl = Duration::from_secs(5);
        settings.email.smtp_url = Some(url);
        settings.email.mail_from = "shop@agora.example".into();
        settings.email.shop_name = "Agora Test Shop".into();
        settings.email.email_retry_base = Duration::from_millis(200);
    })
    .await
}

impl TestApp {
    async fn profile(&self, sub: &str, email: &str, email_updates: bool) -> String {
        let token = self.token(sub, &[Role::Customer]);
        let body = json!({"email": email, "name": format!("Customer {sub}"),
            "address": {"line1": format!("{sub} Street 1"), "postal_code": "1000-001",
                        "city": "Lisboa", "country": "PT"},
            "email_updates": email_updates});
        let response = self
            .send(
                Method::PUT,
                "/v1/me",
                Some(&format!("Bearer {token}")),
                Some(serde_json::to_vec(&body).unwrap()),
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        token
    }

    async fn emails(&self, status: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!(
                "{}/v1/emails?status={status}&limit=1000",
                self.address
            ))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        body_of(response).await["emails"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The messages to `to`, by `Message-ID`, once `count` distinct ones arrived.
async fn wait_for(smtp: &SmtpServer, to: &str, count: usize) -> BTreeMap<String, Vec<String>> {
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    testkit::eventually(&format!("{count} emails to {to}"), WAIT, || {
        by_id.clear();
        for message in smtp.messages() {
            if mail_header(&message, "To").is_some_and(|h| h.contains(to)) {
                let id = mail_header(&message, "Message-ID").unwrap_or_default();
                by_id.entry(id).or_default().push(message);
            }
        }
        let done = by_id.len() >= count;
        async move { done }
    })
    .await;
    by_id
}

fn template_of(message_id: &str) -> &str {
    message_id
        .trim_start_matches('<')
        .split('.')
        .next()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_event_sends_its_email_once_with_the_details() {
    let smtp = SmtpServer::start().await.expect("aiosmtpd starts");
    let app = app_mailing_to(&smtp, true).await;
    let ana = app.profile("ana", "ana@mail.example", true).await;
    let mug = app.create_product("MUG", 1299, 100).await;
    let lines = json!([{"product_id": mug, "quantity": 2}]);

    // Placed, paid, shipped, refunded; and another order that expires unpaid.
    let order = app.placed_order(&ana, lines.clone()).await;
    app.pay_through_provider(order, &ana).await;
    let response = app
        .post(
            &format!("/v1/orders/{order}/ship"),
            &app.admin,
            &json!({"carrier": "CTT", "tracking_number": "RR123456789PT"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &app.admin,
            &json!({"amount_cents": 500, "reason": "a chipped mug"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    // Not paid: it expires after the 5 s payment TTL.
    app.placed_order(&ana, lines).await;

    let by_id = wait_for(&smtp, "ana@mail.example", 6).await;
    let templates: BTreeSet<&str> = by_id.keys().map(|id| template_of(id)).collect();
    assert_eq!(
        templates,
        BTreeSet::from([
            "order_expired",
            "order_paid",
            "order_placed",
            "order_shipped",
            "refunded"
        ])
    );
    for (id, copies) in &by_id {
        assert_eq!(copies.len(), 1, "{id} arrived {} times", copies.len());
        let message = &copies[0];
        assert!(id.ends_with("@agora.example>"), "{id}");
        assert!(
            mail_header(message, "From").is_some_and(|f| f.contains("shop@agora.example")),
            "{message}"
        );
        assert!(message.contains("text/plain") && message.contains("text/html"));
        assert!(
            message.contains("Customer ana"),
            "the name is opened: {message}"
        );
    }
    let shipped = by_id
        .iter()
        .find(|(id, _)| template_of(id) == "order_shipped")
        .map(|(_, m)| m[0].clone())
        .unwrap();
    assert!(shipped.contains("RR123456789PT"));
    assert!(shipped.contains("https://t.17track.net/en#nums=RR123456789PT"));
    assert!(shipped.contains("25.98 EUR"), "the total: {shipped}");
    let placed: Vec<&String> = by_id
        .iter()
        .filter(|(id, _)| template_of(id) == "order_placed")
        .map(|(_, m)| &m[0])
        .collect();
    assert_eq!(placed.len(), 2);
    assert!(
        placed.iter().all(|m| m.contains("ana Street 1")),
        "the address"
    );
    let refunded = by_id
        .iter()
        .find(|(id, _)| template_of(id) == "refunded")
        .map(|(_, m)| m[0].clone())
        .unwrap();
    assert!(refunded.contains("5.00 EUR"));

    // The ledger: six sent, no personal data in it.
    let sent = app.emails("sent").await;
    assert_eq!(sent.len(), 6, "{sent:?}");
    let ledger = serde_json::to_string(&sent).unwrap();
    assert!(!ledger.contains("ana@mail.example") && !ledger.contains("ana Street"));
    let stored: i64 = app
        .count("SELECT count(*) FROM emails WHERE details::text LIKE '%ana%'")
        .await;
    assert_eq!(stored, 0);
    // Retrying a sent one is refused; an unknown id is 404; a bad status is 400.
    let id = sent[0]["id"].as_str().unwrap();
    let response = app
        .post(&format!("/v1/emails/{id}/retry"), &app.admin, &json!({}))
        .await;
    assert_problem(response, 409, "conflict").await;
    let response = app
        .post(
            &format!("/v1/emails/{}/retry", Uuid::new_v4()),
            &app.admin,
            &json!({}),
        )
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .http
        .get(format!("{}/v1/emails?status=lost", app.address))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = app
        .http
        .get(format!("{}/v1/emails", app.address))
        .bearer_auth(&ana)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "customers do not read the ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_outage_delays_emails_but_loses_and_repeats_none() {
    let mut smtp = SmtpServer::start().await.expect("aiosmtpd starts");
    let app = app_mailing_to(&smtp, true).await;
    let bob = app.profile("bob", "bob@mail.example", true).await;
    let mug = app.create_product("MUG", 1000, 1000).await;
    smtp.stop();
    // Orders keep coming while the server is down.
    for _ in 0..30 {
        app.placed_order(&bob, json!([{"product_id": mug, "quantity": 1}]))
            .await;
    }
    testkit::eventually("failed attempts are being retried", WAIT, || async {
        app.count("SELECT count(*) FROM emails WHERE attempts >= 2 AND status = 'pending'")
            .await
            >= 1
    })
    .await;
    assert!(smtp.messages().is_empty());
    smtp.resume().await.expect("aiosmtpd starts again");
    let by_id = wait_for(&smtp, "bob@mail.example", 30).await;
    assert_eq!(by_id.len(), 30);
    assert!(by_id.values().all(|copies| copies.len() == 1), "none twice");
    testkit::eventually("the ledger says all were sent", WAIT, || async {
        app.count("SELECT count(*) FROM emails WHERE status = 'sent'")
            .await
            == 30
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_sent_to_an_erased_customer_and_opted_out_ones_get_receipts_only() {
    let smtp = SmtpServer::start().await.expect("aiosmtpd starts");
    let app = app_mailing_to(&smtp, true).await;
    let carla = app.profile("carla", "carla@mail.example", true).await;
    let dora = app.profile("dora", "dora@mail.example", false).await;
    let mug = app.create_product("MUG", 1000, 100).await;
    let lines = json!([{"product_id": mug, "quantity": 1}]);

    // carla is erased after her order was placed: its payment sends nothing.
    let order = app.placed_order(&carla, lines.clone()).await;
    wait_for(&smtp, "carla@mail.example", 1).await;
    let response = app
        .post(
            "/v1/customers/carla/erasure",
            &carla,
            &json!({"reason": "asked"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let response = app
        .post(
            &format!("/v1/orders/{order}/pay"),
            &app.admin,
            &offline_payment(1000),
        )
        .await;
    assert_eq!(response.status(), 200);
    testkit::eventually("the receipt is skipped", WAIT, || async {
        app.count(
            "SELECT count(*) FROM emails WHERE template = 'order_paid' AND status = 'skipped' \
             AND last_error = 'erased'",
        )
        .await
            == 1
    })
    .await;

    // dora opted out: placed and paid go, shipped does not.
    let order = app.placed_order(&dora, lines).await;
    app.pay_through_provider(order, &dora).await;
    let response = app
        .post(
            &format!("/v1/orders/{order}/ship"),
            &app.admin,
            &json!({"carrier": "DHL", "tracking_number": "JD1"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    testkit::eventually("the shipping notice is skipped", WAIT, || async {
        app.count(
            "SELECT count(*) FROM emails WHERE template = 'order_shipped' AND status = 'skipped' \
             AND last_error = 'opted_out'",
        )
        .await
            == 1
    })
    .await;
    let dora_mail = wait_for(&smtp, "dora@mail.example", 2).await;
    let templates: BTreeSet<&str> = dora_mail.keys().map(|id| template_of(id)).collect();
    assert_eq!(templates, BTreeSet::from(["order_paid", "order_placed"]));
    let carla_mail = wait_for(&smtp, "carla@mail.example", 1).await;
    assert_eq!(
        carla_mail.len(),
        1,
        "only the confirmation before the erasure"
    );
    assert!(!app.stored_has("carla@mail.example").await);
}

impl TestApp {
    /// Whether any table of the event store holds `text`.
    async fn stored_has(&self, text: &str) -> bool {
        self.count(&format!(
            "SELECT count(*) FROM (SELECT payload::text AS t FROM events \
             UNION ALL SELECT row_to_json(e)::text FROM emails e) x WHERE t LIKE '%{text}%'"
        ))
        .await
            > 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_sender_a_second_process_and_a_full_replay_send_nothing_twice() {
    let smtp = SmtpServer::start().await.expect("aiosmtpd starts");
    // This process takes commands only; the reactors run in other processes.
    let app = app_mailing_to(&smtp, false).await;
    let eve = app.profile("eve", "eve@mail.example", true).await;
    let mug = app.create_product("MUG", 1000, 1000).await;
    for _ in 0..40 {
        app.placed_order(&eve, json!([{"product_id": mug, "quantity": 1}]))
            .await;
    }
    let url = smtp.url();
    let env = [
        ("AGORA_SMTP_URL", url.as_str()),
        ("AGORA_MAIL_FROM", "shop@agora.example"),
        ("AGORA_PII_KEY", PII_KEY),
        ("AGORA_EMAIL_RETRY_BASE", "200ms"),
    ];
    // Two reactor processes; the first is killed once some emails went out.
    let mut first = app.another_process_with(&env).await;
    let second = app.another_process_with(&env).await;
    testkit::eventually("some emails went out", WAIT, || {
        let n = smtp.messages().len();
        async move { n >= 5 }
    })
    .await;
    first.kill().await;
    let by_id = wait_for(&smtp, "eve@mail.example", 40).await;
    let total: usize = by_id.values().map(Vec::len).sum();
    // A message accepted by the SMTP server just before the kill, and not yet recorded as
    // sent, goes again: at most the sends in flight, each with its own Message-ID again.
    assert!(
        total - by_id.len() <= 8,
        "{} duplicates after a SIGKILL",
        total - by_id.len()
    );
    testkit::eventually("the ledger says all were sent", WAIT, || async {
        app.count("SELECT count(*) FROM emails WHERE status = 'sent'")
            .await
            == 40
    })
    .await;

    // A full replay of the log through the email reactor: the ledger knows every email.
    let mut second = second;
    second.kill().await;
    let client = app.db.store.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE relay_checkpoints SET transaction_id = 0, position = 0 WHERE name = 'emails'",
            &[],
        )
        .await
        .unwrap();
    let before = smtp.messages().len();
    let _third = app.another_process_with(&env).await;
    testkit::eventually("the replay reached the end of the log", WAIT, || async {
        app.count(
            "SELECT count(*) FROM relay_checkpoints WHERE name = 'emails' \
             AND position >= (SELECT max(position) FROM events)",
        )
        .await
            == 1
    })
    .await;
    // Every ledger row is final (`sent`) and the replay added none: nothing is left to send.
    assert_eq!(
        app.count("SELECT count(*) FROM emails").await,
        40,
        "a replay adds no ledger row"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM emails WHERE status = 'sent'")
            .await,
        40
    );
    assert_eq!(smtp.messages().len(), before, "a replay sends nothing");
}
