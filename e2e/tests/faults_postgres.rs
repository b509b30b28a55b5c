//! PostgreSQL's postmaster killed with SIGKILL under 8 writers and 4 readers, then started
//! again: while it is down every service answers not ready and commands get 503; afterwards
//! they recover without being restarted, and the history checker finds every acknowledged
//! command in the store exactly once at its acknowledged version and position, nothing from
//! a refused one, and read models equal to the fold of the log.
//!
//! The crash cluster is a private one (`scripts/faults.sh pg-start`, port 55434), never the
//! shared test cluster.

mod support;

use std::time::{Duration, Instant};

use eventstore::testing::TestDatabase;
use serde_json::json;
use support::faults::{all_ready_are, assert_survived, faults_script, Load};
use support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_crash_under_load_loses_nothing() -> anyhow::Result<()> {
    let admin_url = faults_script("pg-start")?;
    let db = TestDatabase::create_at(&admin_url).await?;
    let stack = Stack::start_on(db, false).await?;
    let load = Load::start(&stack, 6, 8, 4, Duration::from_secs(10)).await?;
    load.acknowledge(&stack, 150, Duration::from_secs(60))
        .await?;

    faults_script("pg-kill")?;
    let killed = Instant::now();
    all_ready_are(&stack, 503, Duration::from_secs(20)).await?;
    let (status, body) = stack
        .command(
            "/v1/products",
            &stack.admin,
            json!({"sku": "DOWN-1", "name": "Down", "price_cents": 100, "currency": "EUR"}),
        )
        .await?;
    assert_eq!(
        status.as_u16(),
        503,
        "a command while the database is down: {body}"
    );
    // The writers keep sending into the outage.
    load.lose_answers(&stack, 16, Duration::from_secs(30))
        .await?;
    let (acknowledged_at_restart, unknown_in_outage) = load.history.counts();

    faults_script("pg-start")?;
    let back = Instant::now();
    all_ready_are(&stack, 200, Duration::from_secs(60)).await?;
    let ready_after = back.elapsed();
    load.acknowledge(&stack, 1, Duration::from_secs(60)).await?;
    let first_ack_after = back.elapsed();
    let (_, unknown_when_recovered) = load.history.counts();
    load.acknowledge(&stack, 150, Duration::from_secs(120))
        .await?;
    let (_, unknown_at_end) = load.history.counts();

    let (report, summary) = load.stop_and_check(&stack).await?;
    println!(
        "postgres crash: down {:?}; {acknowledged_at_restart} acknowledged before the restart, \
         {unknown_in_outage} without an answer by then; ready {ready_after:?} and first \
         acknowledgement {first_ack_after:?} after PostgreSQL was back; {} more without an \
         answer until then, {} after\n{report:#?}\n{summary:#?}",
        back - killed,
        unknown_when_recovered - unknown_in_outage,
        unknown_at_end - unknown_when_recovered,
    );
    assert_survived(&report, &summary)?;
    assert!(report.acknowledged >= 300, "{report:?}");
    assert!(
        report.unknown >= 16,
        "the outage left commands without answers: {report:?}"
    );
    assert!(
        summary.reads_unavailable > 0,
        "reads during the outage: {summary:?}"
    );

    // Dropping the stack drops its database.
    stack.stop().await?;
    Ok(())
}
