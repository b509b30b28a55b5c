//! HTTPS: both APIs serve TLS with `AGORA_TLS_CERT`/`AGORA_TLS_KEY` (test certificates by
//! scripts/tls.sh), checked with curl against the test CA; plain HTTP to them fails, and a
//! certificate without its key is a start-up error, never a fall back to HTTP.

mod support;

use std::path::PathBuf;
use std::process::Command;

use eventstore::testing::TestDatabase;
use platform::tls::TlsSettings;
use support::{command_settings, query_settings, SECRET};

fn tls_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("AGORA_TEST_TLS_DIR").expect("AGORA_TEST_TLS_DIR (scripts/tls.sh dir)"),
    )
}

/// `curl` with the test CA; returns (HTTP status, body). `extra` goes before the URL.
fn curl(url: &str, extra: &[&str]) -> (String, String) {
    let ca = tls_dir().join("ca.crt");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_serve_https_with_the_configured_certificate() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let tls = TlsSettings {
        tls_cert: Some(tls_dir().join("server.crt")),
        tls_key: Some(tls_dir().join("server.key")),
    };
    let mut settings = command_settings(&db.url, None, "agora".into());
    settings.tls = tls.clone();
    let command = command_api::startup::Application::build(settings).await?;
    let command_port = command.port();
    tokio::spawn(command.run_until_stopped());
    let mut settings = query_settings(None, Some(db.url.clone()));
    settings.tls = tls;
    let query = query_api::startup::Application::build(settings).await?;
    let query_port = query.port();
    tokio::spawn(query.run_until_stopped());

    let admin =
        platform::JwtKeys::hs256(SECRET.as_bytes()).mint("root", &[platform::Role::Admin], 600)?;
    let authorization = format!("Authorization: Bearer {admin}");
    let body = r#"{"sku": "TLS-1", "name": "Mug", "price_cents": 100, "currency": "EUR"}"#;
    let url = format!("https://localhost:{command_port}/v1/products");
    let (status, answer) = tokio::task::spawn_blocking(move || {
        curl(
            &url,
            &[
                "-X",
                "POST",
                "-H",
                &authorization,
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
            ],
        )
    })
    .await?;
    assert_eq!(status, "201", "{answer}");

    for port in [command_port, query_port] {
        let (status, _) = tokio::task::spawn_blocking(move || {
            curl(&format!("https://localhost:{port}/healthz"), &[])
        })
        .await?;
        assert_eq!(status, "200", "HTTPS on {port}");
        // Plain HTTP to a TLS port gets no HTTP answer.
        let (status, _) = tokio::task::spawn_blocking(move || {
            curl(&format!("http://127.0.0.1:{port}/healthz"), &[])
        })
        .await?;
        assert_ne!(status, "200", "plain HTTP on {port}");
    }

    // A certificate without its key: the service refuses to start.
    let mut settings = command_settings(&db.url, None, "agora".into());
    settings.tls.tls_cert = Some(tls_dir().join("server.crt"));
    let refused = command_api::startup::Application::build(settings).await;
    let error = refused
        .err()
        .expect("a certificate without a key is refused");
    assert!(error.to_string().contains("AGORA_TLS_KEY"), "{error}");
    Ok(())
}
