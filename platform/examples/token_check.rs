//! Benchmark: the CPU cost of checking one bearer token, per algorithm, with the key
//! cached (the steady state: every request of every API pays it).
//!
//! `cargo run --release -p platform --example token_check -- [iterations]` (default 2000).
//! Keys are made by `openssl genpkey`; the provider is a JWKS served on 127.0.0.1 by this
//! program (fetched once, before the timing).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use actix_web::{web, App, HttpResponse, HttpServer};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use platform::{AuthSettings, JwtKeys, Role};
use serde_json::{json, Value};

fn openssl(args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("openssl's stdin"))?
        .write_all(input)?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

/// A private key for `algorithm` and its public JWK named `kid`.
fn key(algorithm: Algorithm, kid: &str) -> anyhow::Result<(EncodingKey, Value)> {
    let options: &[&str] = match algorithm {
        Algorithm::RS256 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        Algorithm::ES256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        _ => &["-algorithm", "ED25519"],
    };
    let pem = openssl(&[&["genpkey"], options].concat(), b"")?;
    let encoding = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem)?,
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem)?,
        _ => EncodingKey::from_ed_pem(&pem)?,
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm)?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok((encoding, serde_json::to_value(jwk)?))
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(2000);
    let algorithms = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
    let mut keys = Vec::new();
    for algorithm in algorithms {
        keys.push((algorithm, key(algorithm, &format!("{algorithm:?}"))?));
    }
    let jwks = json!({"keys": keys.iter().map(|(_, (_, jwk))| jwk.clone()).collect::<Vec<_>>()});
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route(
            "/jwks.json",
            web::get().to(move || {
                let jwks = jwks.clone();
                async move { HttpResponse::Ok().json(jwks) }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    let secret = "a-benchmark-secret-of-more-than-32-bytes";
    let authenticator = AuthSettings {
        jwt_issuer: Some(issuer.clone()),
        jwt_jwks_url: Some(format!("{issuer}/jwks.json")),
        jwt_audience: Some("agora".into()),
        oidc_allow_http: true,
        ..AuthSettings::hs256(secret)
    }
    .authenticator()?;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": issuer, "aud": "agora", "sub": "bench", "roles": ["admin"],
                        "nbf": now, "exp": now + 3600});
    let mut tokens = vec![(
        "HS256 (secret)".to_owned(),
        JwtKeys::hs256(secret.as_bytes()).mint("bench", &[Role::Admin], 3600)?,
    )];
    for (algorithm, (encoding, _)) in &keys {
        let mut header = Header::new(*algorithm);
        header.kid = Some(format!("{algorithm:?}"));
        tokens.push((
            format!("{algorithm:?} (provider)"),
            encode(&header, &claims, encoding)?,
        ));
    }
    println!("{iterations} checks per algorithm, one thread, key cached");
    for (name, token) in &tokens {
        // Warm-up: the first provider token fetches the JWKS.
        authenticator
            .authenticate(token)
            .await
            .map_err(|problem| anyhow::anyhow!("{name}: {problem:?}"))?;
        let started = Instant::now();
        for _ in 0..iterations {
            authenticator
                .authenticate(token)
                .await
                .map_err(|problem| anyhow::anyhow!("{name}: {problem:?}"))?;
        }
        let each = started.elapsed() / iterations;
        println!(
            "{name:<18} {:>8.1} µs per token  ({:>7.0} tokens/s)",
            each.as_secs_f64() * 1e6,
            1.0 / each.as_secs_f64()
        );
    }
    handle.stop(false).await;
    Ok(())
}
