//! `agora migrate` applies the event-store and read-model migrations, idempotently.

mod support;

use eventstore::testing::admin_url;
use support::{agora, agora_with_env, exit_code};
use testkit::ScratchDatabase;

/// An empty scratch database (dropped with the value).
async fn fresh_database() -> anyhow::Result<ScratchDatabase> {
    ScratchDatabase::create(&admin_url())
        .await
        .map_err(anyhow::Error::msg)
}

async fn tables(url: &str) -> anyhow::Result<Vec<String>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

#[tokio::test]
async fn migrate_creates_both_schemas_and_can_run_again() -> anyhow::Result<()> {
    let database = fresh_database().await?;
    let url = database.url.clone();
    for _ in 0..2 {
        let output = agora(&["migrate", "--database-url", &url]);
        assert_eq!(
            exit_code(&output),
            0,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tables = tables(&url).await?;
    assert!(tables.contains(&"public.events".to_owned()), "{tables:?}");
    assert!(
        tables.iter().any(|t| t.starts_with("read_model.")),
        "{tables:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_read_model_may_live_in_another_database() -> anyhow::Result<()> {
    let events_database = fresh_database().await?;
    let reads_database = fresh_database().await?;
    let (events, reads) = (events_database.url.clone(), reads_database.url.clone());
    let output = agora_with_env(
        &["migrate"],
        &[("DATABASE_URL", &events), ("READ_DATABASE_URL", &reads)],
    );
    assert_eq!(
        exit_code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let event_tables = tables(&events).await?;
    let read_tables = tables(&reads).await?;
    assert!(event_tables.contains(&"public.events".to_owned()));
    assert!(!event_tables.iter().any(|t| t.starts_with("read_model.")));
    assert!(read_tables.iter().any(|t| t.starts_with("read_model.")));
    assert!(!read_tables.contains(&"public.events".to_owned()));
    Ok(())
}

#[test]
fn an_unreachable_database_is_an_error() {
    let output = agora(&[
        "migrate",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/nowhere",
    ]);
    assert_eq!(exit_code(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("event-store migrations failed"));
}
