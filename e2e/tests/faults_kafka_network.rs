//! Network faults between the services and Kafka, through a real TCP fault proxy (toxiproxy,
//! `scripts/faults.sh toxiproxy`), under 8 writers and 2 readers: latency, a bandwidth limit,
//! every connection reset (five times), connections cut after a few kilobytes, stalls, and a
//! blackout (nothing passes, connections stay open) that must hold projections back.
//! The relay produces and the projector consumes only through the proxy: the broker's
//! `PROXIED` listener advertises the proxy's address (`scripts/kafka.sh proxied`), so every
//! connection after the bootstrap goes there too. Commands never depend on Kafka; afterwards
//! the history checker finds every acknowledged command applied exactly once and the read
//! models, fed through the faulty path (redeliveries included), equal to the fold of the log.
//!
//! The proxy listens on a fixed port (the advertised one), so this is the only test in its
//! binary; cargo runs test binaries one after another.

mod support;

use std::time::{Duration, Instant};

use e2e::toxiproxy::Toxiproxy;
use platform::Role;
use serde_json::json;
use support::faults::{assert_survived_off_the_write_path, faults_script, kafka_proxied, Load};
use support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_faults_to_kafka_lose_nothing() -> anyhow::Result<()> {
    let (listener, advertised) = kafka_proxied()?;
    let toxiproxy = Toxiproxy::new(&faults_script("toxiproxy")?);
    let proxy = toxiproxy
        .create_at("kafka-proxied", &advertised, &listener)
        .await?;
    let stack = Stack::start_via(&advertised).await?;
    let load = Load::start(&stack, 6, 8, 2, Duration::from_secs(10)).await?;
    load.acknowledge(&stack, 50, Duration::from_secs(60))
        .await?;

    // Slow: 100 ms ± 50 each way.
    let latency = json!({"latency": 100, "jitter": 50});
    let during = async {
        let down = load.acknowledge(&stack, 100, Duration::from_secs(60));
        proxy
            .with_toxic("latency", "downstream", latency.clone(), down)
            .await
    };
    proxy
        .with_toxic("latency", "upstream", latency.clone(), during)
        .await?;

    // Narrow: 32 KB/s back from the broker (fetches and produce acknowledgements).
    let during = load.acknowledge(&stack, 100, Duration::from_secs(60));
    proxy
        .with_toxic("bandwidth", "downstream", json!({"rate": 32}), during)
        .await?;

    // Cut: every connection reset at once, five times, while events are in flight.
    for _ in 0..5 {
        let during = load.acknowledge(&stack, 30, Duration::from_secs(60));
        proxy
            .with_toxic("reset_peer", "downstream", json!({"timeout": 0}), during)
            .await?;
        load.acknowledge(&stack, 30, Duration::from_secs(60))
            .await?;
    }

    // Cut after a few kilobytes: connections die at arbitrary points of their traffic.
    let during = load.acknowledge(&stack, 100, Duration::from_secs(60));
    proxy
        .with_toxic("limit_data", "downstream", json!({"bytes": 50_000}), during)
        .await?;

    // Stalled: nothing passes, and the connection closes after 2 s.
    let during = load.acknowledge(&stack, 100, Duration::from_secs(60));
    proxy
        .with_toxic("timeout", "downstream", json!({"timeout": 2000}), during)
        .await?;
    load.acknowledge(&stack, 50, Duration::from_secs(60))
        .await?;

    // Blackout: nothing passes and connections stay open. The proof that Kafka's traffic
    // runs through the proxy: a product created now is not projected while it lasts (the
    // query API's read-your-writes wait runs out), and is once it ends.
    let viewer = stack.token("blackout-viewer", &[Role::Viewer]);
    let blackout = async {
        let (product, version) = stack
            .ok(
                "/v1/products",
                &stack.admin,
                json!({"sku": "BLACKOUT-1", "name": "Lamp", "price_cents": 900, "currency": "EUR"}),
            )
            .await?;
        let path = format!("/v1/products/{product}?min_version={version}");
        let during = stack.get(&path, &viewer).await?;
        let status = during.status();
        let body: serde_json::Value = during.json().await?;
        anyhow::ensure!(
            status.as_u16() == 503 && body["code"] == "not_yet_consistent",
            "projected although Kafka was cut off: {status} {body}"
        );
        Ok(path)
    };
    let path = proxy
        .with_toxic("timeout", "downstream", json!({"timeout": 0}), blackout)
        .await?;
    let lifted = Instant::now();
    stack
        .eventually(
            "the product created in the blackout to be projected",
            Duration::from_secs(180),
            || async { Ok(stack.get(&path, &viewer).await?.status().is_success()) },
        )
        .await?;
    println!(
        "kafka blackout: projected {:?} after it ended",
        lifted.elapsed()
    );
    load.acknowledge(&stack, 50, Duration::from_secs(60))
        .await?;

    let converging = Instant::now();
    let (report, summary) = load.stop_and_check(&stack).await?;
    println!(
        "kafka network faults: read models converged and checked in {:?}\n{report:#?}\n\
         {summary:#?}",
        converging.elapsed()
    );
    assert_survived_off_the_write_path(&report, &summary)?;
    stack.stop().await?;
    proxy.delete().await?;
    Ok(())
}
