//! `agora projections rebuild`: refused, with a message and a non-zero exit, while another
//! rebuild of the same projection runs; it proceeds once that one has finished.
//! `agora projections list` counts each live projection's parked streams.

mod support;

use std::time::Duration;

use eventstore::connect_pool;
use eventstore::testing::{eventually, TestDatabase};
use projector::rebuild::{rebuild, rebuild_lock_key};
use support::{agora, exit_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_of_a_projection_being_rebuilt_is_refused() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    readmodel::migrate(&db.url).await?;
    let pool = connect_pool(&db.url, 4)?;
    // A rebuild that took its lock is held up reading which version is live.
    let mut holder = pool.get().await?;
    let hold = holder.transaction().await?;
    hold.batch_execute("LOCK TABLE read_model.projections IN ACCESS EXCLUSIVE MODE")
        .await?;
    let running = {
        let (store, pool) = (db.store.clone(), pool.clone());
        tokio::spawn(async move { rebuild(&store, &pool, "orders", 500, false, |_| {}).await })
    };
    let observer = pool.get().await?;
    let (class, key) = rebuild_lock_key("orders");
    eventually(
        "the first rebuild to hold its lock",
        Duration::from_secs(30),
        || async {
            observer
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND objsubid = 2 AND classid = $1::int4::oid AND objid = $2::int4::oid",
                    &[&class, &key],
                )
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == 1)
        },
    )
    .await;

    let url = db.url.clone();
    let args = move || {
        let url = url.clone();
        move || agora(&["projections", "rebuild", "orders", "--database-url", &url])
    };
    let refused = tokio::task::spawn_blocking(args()).await?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(exit_code(&refused), 2, "{stderr}");
    assert!(
        stderr.contains("a rebuild of \"orders\" is already running"),
        "{stderr}"
    );

    hold.rollback().await?;
    let report = running.await??;
    assert_eq!((report.from_version, report.to_version), (1, 2));
    let done = tokio::task::spawn_blocking(args()).await?;
    assert_eq!(
        exit_code(&done),
        0,
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("orders rebuilt: version 2 -> 3"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    Ok(())
}

#[tokio::test]
async fn the_list_counts_each_projection_s_parked_streams() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    readmodel::migrate(&db.url).await?;
    let client = db.store.pool().get().await?;
    // Two streams parked in the live version of `orders`, one in a version not live.
    for version in [1, 1, 9] {
        client
            .execute(
                "INSERT INTO read_model.parked_streams \
                 (projection, version, stream_id, event_id, stream_version, event_type, error) \
                 VALUES ('orders', $1, gen_random_uuid(), gen_random_uuid(), 2, 'OrderPaid', 'x')",
                &[&version],
            )
            .await?;
    }
    let url = db.url.clone();
    let listed = tokio::task::spawn_blocking(move || {
        agora(&["projections", "list", "--database-url", &url])
    })
    .await?;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(exit_code(&listed), 0, "{stdout}");
    let columns = |name: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let header: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header[5], "parked", "{stdout}");
    assert_eq!(columns("orders")[4], "2", "{stdout}");
    assert_eq!(columns("products")[4], "0", "{stdout}");
    Ok(())
}
