//! Erasing a customer end to end, through Kafka and through the Postgres log: a customer
//! with a profile, two orders (one to their address, one to another), paid and shipped, is
//! erased. Their plaintext was never in the event store, the read models, Kafka or the
//! exports, before or after; after, nothing of theirs opens in any API answer; revenue and
//! stock are unchanged; and a checkpoint signed before the erasure still verifies, with
//! `agora audit verify` and with the Python verifier.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use eventstore::checkpoint::LogSigningKey;
use platform::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::personal::{
    assert_no_plaintext, given_address, kafka_bytes, pg_dump, profile, EMAIL, GIVEN_STREET, STREET,
};
use support::Stack;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn agora(args: &[&str]) -> std::process::Output {
    Command::new(support::binary("agora").expect("agora is built"))
        .args(args)
        .output()
        .expect("agora runs")
}

struct Scenario {
    stack: Stack,
    key: LogSigningKey,
    dir: PathBuf,
    ana: String,
    viewer: String,
    product: Uuid,
    orders: [Uuid; 2],
    shipped_version: i64,
}

impl Scenario {
    async fn start(kafka: bool) -> anyhow::Result<Scenario> {
        let dir = std::env::temp_dir().join(format!("agora-erasure-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let key = LogSigningKey::generate();
        let key_file = dir.join("log-signing-key.pem");
        std::fs::write(&key_file, key.to_pem().map_err(anyhow::Error::msg)?)?;
        let stack = Stack::start_with(kafka, move |settings| {
            settings.log_signing_key = Some(key_file);
            settings.checkpoint_interval = Duration::from_millis(100);
        })
        .await?;
        let ana = stack.token("ana", &[Role::Customer]);
        let viewer = stack.token("dash", &[Role::Viewer]);
        let (product, _) = stack
            .ok(
                "/v1/products",
                &stack.admin,
                json!({"sku": "MUG", "name": "Mug", "price_cents": 1299, "currency": "EUR",
                       "initial_stock": 10}),
            )
            .await?;
        let response = stack
            .http
            .put(format!("{}/v1/me", stack.command))
            .bearer_auth(&ana)
            .json(&profile())
            .send()
            .await?;
        anyhow::ensure!(response.status() == StatusCode::OK, "PUT /v1/me");
        let lines = json!([{"product_id": product, "quantity": 2}]);
        let (to_profile, _) = stack
            .ok("/v1/orders", &ana, json!({"lines": lines}))
            .await?;
        let (to_given, _) = stack
            .ok(
                "/v1/orders",
                &ana,
                json!({"lines": [{"product_id": product, "quantity": 1}],
                       "shipping_address": given_address()}),
            )
            .await?;
        stack.pay(to_profile, &ana).await?;
        stack.pay(to_given, &ana).await?;
        let (_, shipped_version) = stack
            .ok(
                &format!("/v1/orders/{to_profile}/ship"),
                &stack.admin,
                json!({"carrier": "CTT", "tracking_number": "RR123456789PT"}),
            )
            .await?;
        // Someone else's order, to see that erasure touches only ana.
        let bob = stack.token("bob", &[Role::Customer]);
        let (bobs, _) = stack
            .ok(
                "/v1/orders",
                &bob,
                json!({"lines": [{"product_id": product, "quantity": 1}]}),
            )
            .await?;
        stack.pay(bobs, &bob).await?;
        Ok(Scenario {
            stack,
            key,
            dir,
            ana,
            viewer,
            product,
            orders: [to_profile, to_given],
            shipped_version,
        })
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.stack.get(path, token).await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    /// Revenue, units, and the product's stock, as the query API shows them.
    async fn figures(&self) -> anyhow::Result<((i64, i64, i64, i64), i64, i64)> {
        let sales = self.stack.sales_totals(&self.stack.admin).await?;
        let (_, product) = self
            .get(&format!("/v1/products/{}", self.product), &self.viewer)
            .await?;
        Ok((
            sales,
            product["on_hand"].as_i64().unwrap_or(-1),
            product["reserved"].as_i64().unwrap_or(-1),
        ))
    }

    /// Every answer the APIs give about ana and her orders, and the audit export, as bytes.
    async fn answers(&self) -> anyhow::Result<Vec<u8>> {
        let mut all = Vec::new();
        let admin = &self.stack.admin;
        let auditor = self.stack.token("audit", &[Role::Auditor]);
        let mut paths = vec![
            ("/v1/me".to_owned(), self.ana.clone()),
            ("/v1/customers/ana".to_owned(), admin.clone()),
            ("/v1/orders?limit=100".to_owned(), admin.clone()),
            ("/v1/audit/events?limit=1000".to_owned(), auditor.clone()),
        ];
        for order in self.orders {
            for token in [admin, &self.ana, &self.viewer] {
                paths.push((format!("/v1/orders/{order}"), token.clone()));
            }
        }
        for (path, token) in paths {
            all.extend(self.stack.get(&path, &token).await?.bytes().await?);
        }
        let graphql = self
            .stack
            .http
            .post(format!("{}/graphql", self.stack.query))
            .bearer_auth(admin)
            .json(&json!({"query": "{ orders(first: 50) { edges { node { id customerId } } } }"}))
            .send()
            .await?
            .bytes()
            .await?;
        all.extend(graphql);
        for base in [&self.stack.command, &self.stack.query] {
            all.extend(
                self.stack
                    .http
                    .get(format!("{base}/metrics"))
                    .send()
                    .await?
                    .bytes()
                    .await?,
            );
        }
        Ok(all)
    }

    /// Everything at rest and in flight: both databases' dump, the export, Kafka.
    async fn at_rest(&self, kafka_messages: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let url = &self.stack.db.url;
        let export = self.dir.join(format!("export-{}.ndjson", Uuid::new_v4()));
        let exported = agora(&[
            "audit",
            "export",
            "--database-url",
            url,
            "--out",
            export.to_str().expect("utf-8"),
        ]);
        anyhow::ensure!(exported.status.success(), "{exported:?}");
        let mut places = vec![
            (
                "pg_dump of the event store and read models".to_owned(),
                pg_dump(url),
            ),
            ("the audit export".to_owned(), std::fs::read(&export)?),
        ];
        if let Some(prefix) = &self.stack.topic_prefix {
            let topics: Vec<String> = ["customer", "order", "product"]
                .iter()
                .map(|t| format!("{prefix}.{t}"))
                .collect();
            places.push((
                "the Kafka topics".to_owned(),
                kafka_bytes(&e2e::kafka_brokers(), &topics, kafka_messages),
            ));
        }
        Ok(places)
    }

    async fn event_count(&self) -> anyhow::Result<i64> {
        let client = self.stack.db.store.pool().get().await?;
        Ok(client
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .get(0))
    }
}

async fn erasure_leaves_nothing_readable(kafka: bool) -> anyhow::Result<()> {
    let s = Scenario::start(kafka).await?;
    let [to_profile, to_given] = s.orders;
    let admin = s.stack.admin.clone();

    // Before: the owner and admins read the plaintext; a viewer sees no address.
    let me = s.stack.read_at("/v1/me", &s.ana, 1).await?;
    assert_eq!(me["email"], EMAIL);
    assert_eq!(me["address"]["line1"], STREET);
    let shipped = s
        .stack
        .read_at(
            &format!("/v1/orders/{to_profile}"),
            &admin,
            s.shipped_version,
        )
        .await?;
    assert_eq!(shipped["shipping_address"]["line1"], STREET);
    assert_eq!(shipped["status"], "shipped");
    let (_, given) = s.get(&format!("/v1/orders/{to_given}"), &s.ana).await?;
    assert_eq!(given["shipping_address"]["line1"], GIVEN_STREET);
    let (_, seen) = s.get(&format!("/v1/orders/{to_given}"), &s.viewer).await?;
    assert_eq!(
        seen["shipping_address"],
        Value::Null,
        "a viewer sees no address"
    );
    let bob = s.stack.token("bob", &[Role::Customer]);
    let (status, _) = s.get("/v1/customers/ana", &bob).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Every projection has caught up with the three paid orders before the figures are taken.
    let expected_sales = (3, 3, 2 * 1299 + 1299 + 1299, 4);
    s.stack
        .eventually(
            "the dashboards show the three paid orders",
            WAIT,
            || async { Ok(s.stack.sales_totals(&s.stack.admin).await? == expected_sales) },
        )
        .await?;
    let figures = s.figures().await?;
    assert!(
        String::from_utf8_lossy(&s.answers().await?).contains(EMAIL),
        "the answers checked below do show personal data while it is readable"
    );

    // The plaintext is nowhere at rest or in flight, even before erasure.
    let events_before = s.event_count().await? as usize;
    for (place, bytes) in s.at_rest(events_before).await? {
        assert_no_plaintext(&place, &bytes);
        assert!(
            String::from_utf8_lossy(&bytes).contains("pii1."),
            "{place} carries the sealed fields"
        );
    }

    // An auditor keeps a checkpoint of the log as it is.
    let store = s.stack.db.store.clone();
    testkit::try_eventually("a checkpoint of every event", WAIT, || {
        let store = store.clone();
        async move {
            Ok::<_, anyhow::Error>(
                store
                    .latest_checkpoint()
                    .await?
                    .is_some_and(|c| c.tree_size as usize >= events_before),
            )
        }
    })
    .await?;
    let kept = s.dir.join("kept.json");
    let output = agora(&[
        "audit",
        "checkpoint",
        "--database-url",
        &s.stack.db.url,
        "--out",
        kept.to_str().expect("utf-8"),
    ]);
    anyhow::ensure!(output.status.success(), "{output:?}");

    // The erasure.
    let (status, body) = s
        .stack
        .command(
            "/v1/customers/ana/erasure",
            &s.ana,
            json!({"reason": "GDPR art. 17"}),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    s.stack
        .eventually("the read models forget ana", WAIT, || async {
            let (_, customer) = s.get("/v1/customers/ana", &admin).await?;
            let (_, order) = s.get(&format!("/v1/orders/{to_profile}"), &admin).await?;
            Ok(customer["erased"] == true && order["shipping_address"].is_null())
        })
        .await?;
    let (_, customer) = s.get("/v1/customers/ana", &admin).await?;
    assert_eq!(
        customer
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "customer_id".to_owned(),
            "erased".to_owned(),
            "version".to_owned()
        ]),
        "no personal field: {customer}"
    );
    // Orders stay, with totals, lines and statuses; the figures are unchanged.
    let (_, order) = s.get(&format!("/v1/orders/{to_profile}"), &admin).await?;
    assert_eq!(order["status"], "shipped");
    assert_eq!(order["total_cents"], 2598);
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(s.figures().await?, figures);

    // Nothing of ana opens anywhere: no answer, no dump, no topic, no metric holds her data.
    assert_no_plaintext("the API answers", &s.answers().await?);
    let events_after = s.event_count().await? as usize;
    for (place, bytes) in s.at_rest(events_after).await? {
        assert_no_plaintext(&place, &bytes);
    }
    let client = s.stack.db.store.pool().get().await?;
    let live_keys: i64 = client
        .query_one(
            "SELECT count(*) FROM pii_keys WHERE customer_id = 'ana' AND wrapped_key IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(live_keys, 0, "ana's data key is destroyed");

    // The checkpoint signed before the erasure still verifies: live, and the export with
    // the independent Python verifier.
    let public_key = s.key.public_key().to_base64();
    let verified = agora(&[
        "audit",
        "verify",
        "--database-url",
        &s.stack.db.url,
        "--checkpoint",
        kept.to_str().expect("utf-8"),
        "--public-key",
        &public_key,
    ]);
    assert!(verified.status.success(), "{verified:?}");
    let export = s.dir.join("after.ndjson");
    let exported = agora(&[
        "audit",
        "export",
        "--database-url",
        &s.stack.db.url,
        "--out",
        export.to_str().expect("utf-8"),
    ]);
    assert!(exported.status.success(), "{exported:?}");
    let python = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify_chain.py"))
        .arg(&export)
        .args([
            "--checkpoint",
            kept.to_str().expect("utf-8"),
            "--public-key",
            &public_key,
        ])
        .output()?;
    assert!(python.status.success(), "{python:?}");
    let _ = std::fs::remove_dir_all(&s.dir);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_through_kafka_leaves_nothing_readable_and_old_checkpoints_verify(
) -> anyhow::Result<()> {
    erasure_leaves_nothing_readable(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_through_the_postgres_log_leaves_nothing_readable_and_old_checkpoints_verify(
) -> anyhow::Result<()> {
    erasure_leaves_nothing_readable(false).await
}
