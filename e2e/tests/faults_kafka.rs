//! The Kafka broker killed with SIGKILL under 8 writers and 2 readers, then started again:
//! commands keep being acknowledged while it is down (the relay catches up from the store),
//! and afterwards the history checker finds every acknowledged command applied exactly once
//! and the read models, fed through Kafka, equal to the fold of the log.
//!
//! This kills and restarts the shared test broker (scripts/kafka.sh), so it is the only test
//! in its binary; cargo runs test binaries one after another.

mod support;

use std::time::{Duration, Instant};

use support::faults::{
    assert_survived_off_the_write_path, faults_script, restart_kafka, BrokerBack, Load,
};
use support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_crash_under_load_loses_nothing() -> anyhow::Result<()> {
    let stack = Stack::start(true).await?;
    let load = Load::start(&stack, 6, 8, 2, Duration::from_secs(10)).await?;
    load.acknowledge(&stack, 100, Duration::from_secs(60))
        .await?;

    let guard = BrokerBack;
    faults_script("kafka-kill")?;
    let killed = Instant::now();
    // Writes do not depend on the broker.
    load.acknowledge(&stack, 150, Duration::from_secs(60))
        .await?;
    let (_, unknown_while_down) = load.history.counts();
    restart_kafka(Duration::from_secs(180))?;
    let down = killed.elapsed();
    drop(guard);
    load.acknowledge(&stack, 100, Duration::from_secs(60))
        .await?;

    let converging = Instant::now();
    let (report, summary) = load.stop_and_check(&stack).await?;
    println!(
        "kafka crash: down {down:?}, {unknown_while_down} commands without an answer by the \
         restart; read models converged and checked in {:?}\n{report:#?}\n{summary:#?}",
        converging.elapsed()
    );
    assert_survived_off_the_write_path(&report, &summary)?;
    stack.stop().await?;
    Ok(())
}
