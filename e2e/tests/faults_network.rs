//! Network faults between the services and PostgreSQL, through a real TCP fault proxy
//! (toxiproxy, `scripts/faults.sh toxiproxy`), under 8 writers and 2 readers: latency, a
//! bandwidth limit, connections reset in the middle of requests and commits, and stalled
//! connections. Commands whose answers were lost are repeated with their `Idempotency-Key`;
//! the history checker then finds every acknowledged command applied exactly once, nothing
//! from refused ones, and read models equal to the fold of the log.

mod support;

use std::time::Duration;

use e2e::toxiproxy::Toxiproxy;
use eventstore::testing::{admin_url, TestDatabase};
use serde_json::json;
use support::faults::{all_ready_are, assert_survived, faults_script, Load};
use support::Stack;
use uuid::Uuid;

/// `host:port` of a postgres:// URL.
fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("not a URL: {url}"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(authority
        .rsplit_once('@')
        .map(|(_, host)| host)
        .unwrap_or(authority)
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_faults_to_postgres_lose_nothing() -> anyhow::Result<()> {
    let toxiproxy = Toxiproxy::new(&faults_script("toxiproxy")?);
    let upstream = host_port(&admin_url())?;
    let proxy = toxiproxy
        .create(&format!("pg-{}", Uuid::new_v4().simple()), &upstream)
        .await?;
    let mut db = TestDatabase::create().await?;
    db.url = db.url.replacen(&upstream, &proxy.listen, 1);
    let stack = Stack::start_on(db, false).await?;
    let load = Load::start(&stack, 6, 8, 2, Duration::from_secs(10)).await?;
    load.acknowledge(&stack, 50, Duration::from_secs(60))
        .await?;

    // Slow: 100 ms ± 50 each way.
    let latency = json!({"latency": 100, "jitter": 50});
    let during = load.acknowledge(&stack, 40, Duration::from_secs(60));
    proxy
        .with_toxic("latency", "downstream", latency, during)
        .await?;

    // Narrow: 16 KB/s towards PostgreSQL.
    let during = load.acknowledge(&stack, 20, Duration::from_secs(60));
    proxy
        .with_toxic("bandwidth", "upstream", json!({"rate": 16}), during)
        .await?;

    // Cut: every connection reset at once, five times, while commands are in flight.
    for _ in 0..5 {
        let during = load.lose_answers(&stack, 1, Duration::from_secs(30));
        proxy
            .with_toxic("reset_peer", "downstream", json!({"timeout": 0}), during)
            .await?;
        load.acknowledge(&stack, 20, Duration::from_secs(60))
            .await?;
    }

    // Cut after a few kilobytes: connections die at arbitrary points of their traffic.
    let during = load.lose_answers(&stack, 8, Duration::from_secs(60));
    proxy
        .with_toxic("limit_data", "downstream", json!({"bytes": 20_000}), during)
        .await?;
    load.acknowledge(&stack, 20, Duration::from_secs(60))
        .await?;

    // Stalled: nothing passes, and the connection closes after 2 s.
    let during = load.lose_answers(&stack, 8, Duration::from_secs(60));
    proxy
        .with_toxic("timeout", "downstream", json!({"timeout": 2000}), during)
        .await?;
    all_ready_are(&stack, 200, Duration::from_secs(60)).await?;
    load.acknowledge(&stack, 50, Duration::from_secs(60))
        .await?;

    let (report, summary) = load.stop_and_check(&stack).await?;
    println!("network faults:\n{report:#?}\n{summary:#?}");
    assert_survived(&report, &summary)?;
    stack.stop().await?;
    proxy.delete().await?;
    Ok(())
}
