//! PostgreSQL over TLS, as `sslmode` and `sslrootcert` in the URL say, against a real
//! server that accepts TLS connections only (scripts/postgres.sh with AGORA_PG_TLS_DIR,
//! certificates from scripts/tls.sh; started by scripts/test.sh).

use eventstore::{connect_pool, migrate, Connector};

/// The TLS-only test server and the directory of the test certificates.
fn tls_server() -> (String, String) {
    let url = std::env::var("AGORA_TEST_TLS_DATABASE_URL").expect(
        "AGORA_TEST_TLS_DATABASE_URL: start the TLS test PostgreSQL (scripts/test.sh does)",
    );
    let dir = std::env::var("AGORA_TEST_TLS_DIR").expect("AGORA_TEST_TLS_DIR (scripts/tls.sh dir)");
    (url, dir)
}

async fn encrypted(url: &str) -> Result<bool, eventstore::StoreError> {
    let (client, _driver) = Connector::new(url)?.session().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn verify_full_connects_to_the_right_server_and_a_wrong_ca_is_refused() {
    let (url, dir) = tls_server();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={dir}/ca.crt");
    assert!(encrypted(&verified)
        .await
        .expect("verify-full with the right CA"));
    // The certificate names 127.0.0.1 too.
    let by_ip = verified.replace("localhost", "127.0.0.1");
    assert!(encrypted(&by_ip).await.expect("verify-full by IP"));
    // verify-ca checks the chain only.
    let ca_only = format!("{url}?sslmode=verify-ca&sslrootcert={dir}/ca.crt");
    assert!(encrypted(&ca_only).await.expect("verify-ca"));
    // require encrypts without checking (as libpq does).
    assert!(encrypted(&format!("{url}?sslmode=require"))
        .await
        .expect("require"));
    // The default, prefer, encrypts when the server can.
    assert!(encrypted(&url).await.expect("prefer"));

    // A CA that did not sign the server's certificate: refused, for every checking mode.
    for mode in ["verify-full", "verify-ca", "require"] {
        let wrong = format!("{url}?sslmode={mode}&sslrootcert={dir}/other-ca.crt");
        let error = encrypted(&wrong)
            .await
            .expect_err(&format!("{mode} with a wrong CA"));
        // The refusal is the certificate check's (rustls: the issuer is unknown).
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(
            chain.to_lowercase().contains("issuer") || chain.contains("certificate"),
            "{mode}: {chain}"
        );
    }
    // Without TLS the server refuses us.
    let plain = format!("{url}?sslmode=disable");
    assert!(encrypted(&plain).await.is_err());
}

#[tokio::test]
async fn the_event_store_works_over_verified_tls() {
    let (url, dir) = tls_server();
    let admin = format!("{url}?sslmode=verify-full&sslrootcert={dir}/ca.crt");
    let name = format!("agora_test_{}", uuid::Uuid::new_v4().simple());
    let (client, _driver) = Connector::new(&admin).unwrap().session().await.unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let database = admin.replace("/postgres?", &format!("/{name}?"));
    migrate(&database).await.expect("migrations over TLS");
    let store = eventstore::EventStore::new(connect_pool(&database, 2).unwrap());
    let report = store
        .verify(None)
        .await
        .expect("a query over a pooled TLS connection");
    assert!(report.ok());
    drop(store);
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}
