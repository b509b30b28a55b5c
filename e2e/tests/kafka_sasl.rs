//! Kafka over SASL_SSL: the relay publishes and a projector consumes through the test
//! broker's SASL/PLAIN-over-TLS listener (scripts/kafka.sh; its certificate from
//! scripts/tls.sh), configured only through `AGORA_KAFKA_<PROPERTY>` variables, as an
//! operator would; a wrong password is refused by the broker.

mod support;

use std::time::Duration;

use platform::Role;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use support::Stack;

/// The SASL_SSL listener's settings, as `scripts/kafka.sh sasl` prints them.
fn listener() -> std::collections::HashMap<String, String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = std::process::Command::new(format!("{root}/scripts/kafka.sh"))
        .arg("sasl")
        .output()
        .expect("scripts/kafka.sh sasl runs");
    assert!(output.status.success(), "scripts/kafka.sh sasl failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_and_projector_round_trip_through_sasl_ssl() -> anyhow::Result<()> {
    let sasl = listener();
    // A wrong password: the broker refuses the client.
    let refused: BaseConsumer = eventstore::kafka::client_config(&sasl["bootstrap"])
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", &sasl["user"])
        .set("sasl.password", "not-the-password")
        .set("ssl.ca.location", &sasl["ca"])
        .create()?;
    let metadata = tokio::task::spawn_blocking(move || {
        refused
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
    })
    .await?;
    assert!(metadata.is_err(), "a wrong SASL password must be refused");

    // Everything else as an operator configures it: through AGORA_KAFKA_* variables.
    // (This test binary sets them before any client exists; no other test runs in it.)
    for (name, value) in [
        ("AGORA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL".to_owned()),
        ("AGORA_KAFKA_SASL_MECHANISM", "PLAIN".to_owned()),
        ("AGORA_KAFKA_SASL_USERNAME", sasl["user"].clone()),
        ("AGORA_KAFKA_SASL_PASSWORD", sasl["password"].clone()),
        ("AGORA_KAFKA_SSL_CA_LOCATION", sasl["ca"].clone()),
        (e2e::KAFKA_BROKERS_ENV, sasl["bootstrap"].clone()),
    ] {
        std::env::set_var(name, value);
    }
    let stack = Stack::start(true).await?;
    let (product, version) = stack
        .ok(
            "/v1/products",
            &stack.admin,
            json!({"sku": "SASL-1", "name": "Mug", "price_cents": 700, "currency": "EUR",
                   "initial_stock": 3}),
        )
        .await?;
    let viewer = stack.token("vera", &[Role::Viewer]);
    // Written to the store, published by the relay over SASL_SSL, consumed by the
    // projector over SASL_SSL, served by the query API.
    let read = stack
        .read_at(&format!("/v1/products/{product}"), &viewer, version)
        .await?;
    assert_eq!(read["sku"], "SASL-1");
    stack.stop().await
}
