//! OpenID Connect on both APIs, over real HTTP: tokens from a real Ory Hydra
//! (`scripts/hydra.sh`), its key rotated while Agora runs, and tokens of the test's own
//! (RS256, ES256, EdDSA; wrong issuer, audience, times, keys and algorithms) from a JWKS
//! server that counts how often Agora fetches it.

mod support;

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use platform::AuthSettings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::oidc::{claims, kid_of, Hydra, JwksServer, SigningKey};
use support::{Stack, SECRET};
use uuid::Uuid;

/// Both APIs trusting `issuer` for `audience`, roles at `roles_claim`; HS256 off. The test
/// provider serves plain http on loopback: allowed only by `AGORA_OIDC_ALLOW_HTTP`.
fn provider(issuer: &str, audience: &str, roles_claim: &str) -> AuthSettings {
    AuthSettings {
        jwt_secret: None,
        jwt_issuer: Some(issuer.to_owned()),
        jwt_audience: Some(audience.to_owned()),
        jwt_roles_claim: roles_claim.to_owned(),
        oidc_allow_http: true,
        ..AuthSettings::hs256("")
    }
}

/// What each API answers `token`: creating a product (admin) on the command API, listing
/// products (any role) on the query API.
async fn answers(stack: &Stack, token: &str) -> anyhow::Result<(StatusCode, StatusCode)> {
    let sku = format!("SKU-{}", Uuid::new_v4().simple());
    let (command, body) = stack
        .command(
            "/v1/products",
            token,
            json!({"sku": sku, "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 1}),
        )
        .await?;
    if command == StatusCode::UNAUTHORIZED {
        anyhow::ensure!(body["code"] == "unauthenticated", "{body}");
    }
    let response = stack.get("/v1/products", token).await?;
    let query = response.status();
    let body: Value = response.json().await?;
    if query == StatusCode::UNAUTHORIZED {
        anyhow::ensure!(body["code"] == "unauthenticated", "{body}");
    }
    Ok((command, query))
}

const OK: (StatusCode, StatusCode) = (StatusCode::CREATED, StatusCode::OK);
const REFUSED: (StatusCode, StatusCode) = (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hydra_tokens_work_on_both_apis_and_a_rotated_key_is_picked_up() -> anyhow::Result<()> {
    let hydra = Hydra::connect().await?;
    let audience = format!("agora-{}", Uuid::new_v4().simple());
    let client = hydra
        .client("admin viewer customer", &[&audience, "another-api"])
        .await?;
    // The provider and HS256 together; Hydra puts the granted scopes in `scp`.
    let stack = Stack::start_with_auth(
        false,
        AuthSettings {
            jwt_secret: Some(SECRET.into()),
            jwt_jwks_min_refetch_ms: 1000,
            ..provider(&hydra.issuer, &audience, "scp")
        },
    )
    .await?;

    let admin = hydra.token(&client, "admin", &audience).await?;
    assert_eq!(answers(&stack, &admin).await?, OK);
    let customer = hydra.token(&client, "customer", &audience).await?;
    assert_eq!(
        answers(&stack, &customer).await?,
        (StatusCode::FORBIDDEN, StatusCode::OK)
    );
    assert_eq!(
        answers(&stack, &stack.admin).await?,
        OK,
        "HS256 beside the provider"
    );

    let elsewhere = hydra.token(&client, "admin", "another-api").await?;
    assert_eq!(
        answers(&stack, &elsewhere).await?,
        REFUSED,
        "wrong audience"
    );

    // Algorithm confusion: HS256 "signed" with the provider's public key material.
    let kid = kid_of(&admin)?;
    let jwks = hydra.jwks().await?;
    let public = jwks
        .iter()
        .find(|key| key["kid"] == kid)
        .expect("Hydra publishes the key its token names");
    let stolen = claims(
        &hydra.issuer,
        &audience,
        "mallory",
        json!({"scp": ["admin"]}),
    );
    for secret in [
        public.to_string(),
        public["n"].as_str().unwrap_or_default().to_owned(),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let forged = encode(
            &header,
            &stolen,
            &EncodingKey::from_secret(secret.as_bytes()),
        )?;
        assert_eq!(
            answers(&stack, &forged).await?,
            REFUSED,
            "algorithm confusion"
        );
    }

    // Rotation at the provider: new tokens name a new key, which Agora fetches without a
    // restart (after the refetch interval); tokens signed with the old key still pass.
    let rotated_kid = format!("rotated-{}", Uuid::new_v4().simple());
    hydra.rotate(&rotated_kid).await?;
    let rotated = hydra.token(&client, "admin viewer", &audience).await?;
    assert_eq!(kid_of(&rotated)?, rotated_kid);
    stack
        .eventually(
            "the rotated key to be accepted",
            Duration::from_secs(15),
            || async { Ok(answers(&stack, &rotated).await? == OK) },
        )
        .await?;
    assert_eq!(
        answers(&stack, &admin).await?,
        OK,
        "the old key is still published"
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rs256_es256_and_eddsa_tokens_pass_with_roles_from_a_claim_path() -> anyhow::Result<()> {
    let keys = [
        SigningKey::generate(Algorithm::RS256)?,
        SigningKey::generate(Algorithm::ES256)?,
        SigningKey::generate(Algorithm::EdDSA)?,
    ];
    let server = JwksServer::start(&keys.iter().collect::<Vec<_>>()).await?;
    // The JWKS is found through discovery; HS256 is off.
    let stack = Stack::start_with_auth(
        false,
        provider(&server.issuer, "agora", "realm_access.roles"),
    )
    .await?;
    let realm_roles = |sub: &str, roles: &[&str]| {
        claims(
            &server.issuer,
            "agora",
            sub,
            json!({"realm_access": {"roles": roles}}),
        )
    };
    let admin = realm_roles("kc-admin", &["offline_access", "admin"]);
    let nobody = realm_roles("kc-user", &["offline_access", "uma_authorization"]);
    for key in &keys {
        let algorithm = key.algorithm;
        assert_eq!(
            answers(&stack, &key.sign(&admin)).await?,
            OK,
            "{algorithm:?}"
        );
        assert_eq!(
            answers(&stack, &key.sign(&nobody)).await?,
            (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN),
            "no known role: {algorithm:?}"
        );
    }
    assert_eq!(
        answers(&stack, &stack.admin).await?,
        REFUSED,
        "HS256 is off"
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_issuer_audience_times_keys_and_algorithms_get_401() -> anyhow::Result<()> {
    let rsa = SigningKey::generate(Algorithm::RS256)?;
    let ec = SigningKey::generate(Algorithm::ES256)?;
    let unpublished = SigningKey::generate(Algorithm::RS256)?;
    let server = JwksServer::start(&[&rsa, &ec]).await?;
    let stack = Stack::start_with_auth(
        false,
        AuthSettings {
            jwt_secret: Some(SECRET.into()),
            jwt_jwks_url: Some(format!("{}/jwks.json", server.issuer)),
            // Every unknown kid fetches again: the last case meets a provider that is gone.
            jwt_jwks_min_refetch_ms: 0,
            ..provider(&server.issuer, "agora", "roles")
        },
    )
    .await?;
    let good = || {
        claims(
            &server.issuer,
            "agora",
            "alice",
            json!({"roles": ["admin"]}),
        )
    };
    assert_eq!(answers(&stack, &rsa.sign(&good())).await?, OK);

    let now = chrono::Utc::now().timestamp();
    let with = |changes: Value| {
        let mut claims = good();
        if let (Value::Object(claims), Value::Object(changes)) = (&mut claims, changes) {
            claims.extend(changes);
        }
        claims
    };
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some(rsa.kid.clone());
    let cases = [
        (
            "wrong issuer",
            rsa.sign(&with(json!({"iss": "https://evil.example.com"}))),
        ),
        (
            "wrong audience",
            rsa.sign(&with(json!({"aud": ["another-api"]}))),
        ),
        ("no audience", rsa.sign(&with(json!({"aud": null})))),
        (
            "expired",
            rsa.sign(&with(json!({"nbf": now - 1200, "exp": now - 600}))),
        ),
        (
            "not yet valid",
            rsa.sign(&with(json!({"nbf": now + 600, "exp": now + 1200}))),
        ),
        ("no sub", rsa.sign(&with(json!({"sub": ""})))),
        (
            "sub naming the system actor",
            rsa.sign(&with(json!({"sub": "system"}))),
        ),
        (
            "sub naming the payment provider",
            rsa.sign(&with(json!({"sub": "psp:stripe"}))),
        ),
        (
            "sub with the HS256 prefix",
            rsa.sign(&with(json!({"sub": "hs256:alice"}))),
        ),
        ("unknown kid", unpublished.sign(&good())),
        (
            "a published kid, another key",
            unpublished.sign_as(&rsa.kid, &good()),
        ),
        (
            "an RSA key's kid on an ES256 token",
            ec.sign_as(&rsa.kid, &good()),
        ),
        ("no kid", rsa.sign_without_kid(&good())),
        (
            "HS256 signed with the provider's public key",
            encode(
                &confused,
                &good(),
                &EncodingKey::from_secret(rsa.public_pem.as_bytes()),
            )?,
        ),
    ];
    for (case, token) in &cases {
        assert_eq!(answers(&stack, token).await?, REFUSED, "{case}");
    }
    // With both kinds of token on, an HS256 subject cannot name a provider's user: it is
    // recorded as hs256:<sub>.
    let customer = stack.token("alice", &[platform::Role::Customer]);
    let mug = stack.ok("/v1/products", &stack.admin, json!({"sku": "SUB-1", "name": "Mug", "price_cents": 100, "currency": "EUR", "initial_stock": 5})).await?;
    let (order, version) = stack
        .ok(
            "/v1/orders",
            &customer,
            json!({"lines": [{"product_id": mug.0, "quantity": 1}]}),
        )
        .await?;
    let read = stack
        .read_at(&format!("/v1/orders/{order}"), &stack.admin, version)
        .await?;
    assert_eq!(read["customer_id"], "hs256:alice", "{read}");
    // The provider gone: 401 without a word of where it was or what the network said.
    server.stop().await;
    let stranger = unpublished.sign(&good());
    let response = stack.get("/v1/products", &stranger).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await?;
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("unavailable"), "{body}");
    for leak in ["127.0.0.1", "http", "jwks.json", "connect", "error sending"] {
        assert!(!detail.contains(leak), "the 401 shows {leak:?}: {body}");
    }
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval() -> anyhow::Result<()>
{
    let key = SigningKey::generate(Algorithm::ES256)?;
    let server = JwksServer::start(&[&key]).await?;
    let interval = Duration::from_secs(10);
    let stack = Stack::start_with_auth(
        false,
        AuthSettings {
            jwt_jwks_url: Some(format!("{}/jwks.json", server.issuer)),
            jwt_jwks_min_refetch_ms: interval.as_millis() as u64,
            ..provider(&server.issuer, "agora", "roles")
        },
    )
    .await?;
    let good = claims(
        &server.issuer,
        "agora",
        "alice",
        json!({"roles": ["admin"]}),
    );
    let product = json!({"sku": "MUG-1", "name": "Mug", "price_cents": 1299, "currency": "EUR"});
    let (status, _) = stack
        .command("/v1/products", &key.sign(&good), product.clone())
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let before = server.jwks_fetches();
    assert_eq!(before, 1);

    let started = Instant::now();
    let statuses: Vec<StatusCode> = stream::iter(0..300)
        .map(|_| {
            let token = key.sign_as(&Uuid::new_v4().to_string(), &good);
            let (stack, product) = (&stack, product.clone());
            async move {
                stack
                    .command("/v1/products", &token, product)
                    .await
                    .map(|(status, _)| status)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let elapsed = started.elapsed();
    assert!(statuses
        .iter()
        .all(|status| *status == StatusCode::UNAUTHORIZED));
    let refetches = server.jwks_fetches() - before;
    let allowed = 1 + (elapsed.as_millis() / interval.as_millis()) as usize;
    assert!(
        refetches <= allowed,
        "{refetches} JWKS fetches for 300 unknown kids in {elapsed:?} (at most {allowed})"
    );
    stack.stop().await
}
