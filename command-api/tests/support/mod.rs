//! Spawns the command API on a random port over a fresh database, and speaks HTTP to it.

#![allow(dead_code)]

pub mod receiver;

use command_api::config::Settings;
use command_api::startup::Application;
use eventstore::testing::TestDatabase;
use eventstore::RecordedEvent;
use platform::{JwtKeys, Role};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The master key of personal data in the test stack (the command and query APIs share it).
pub const PII_KEY: &str = "83b3fead60d72ab9850be3d64a712a77e4bb2d53c434afe3d0b91a22e3cbe48b";

pub const SECRET: &str = "command-api-test-secret-0123456789abcdef";
/// The key webhook secrets are sealed with in tests (64 hex digits).
pub const WEBHOOK_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub keys: JwtKeys,
    pub http: reqwest::Client,
    pub admin: String,
}

/// The test settings of the command API on `database_url` (no open-order limit, so tests
/// may place many orders for one customer).
pub fn settings(database_url: &str) -> Settings {
    Settings {
        database_url: database_url.to_owned(),
        addr: "127.0.0.1:0".into(),
        auth: platform::AuthSettings::hs256(SECRET),
        pool_size: 20,
        workers: 2,
        state_cache_mb: 64,
        group_commit: true,
        group_commit_max_commands: 256,
        group_commit_in_flight: 2,
        kafka_brokers: None,
        topic_prefix: "agora".into(),
        shutdown_drain_ms: 0,
        tls: Default::default(),
        reactors: true,
        payment_ttl: std::time::Duration::from_secs(30 * 60),
        max_open_orders_per_customer: 0,
        webhook_key: Some(WEBHOOK_KEY.into()),
        webhook_allow_insecure: true,
        webhook_max_attempts: 10,
        webhook_retry_base: std::time::Duration::from_secs(5),
        log_signing_key: None,
        checkpoint_interval: std::time::Duration::from_secs(10),
        sequencer: true,
        sequencer_database_url: None,
        payments: Default::default(),
        pii: platform::pii::PiiSettings {
            pii_key: Some(PII_KEY.into()),
            pii_retired_keys: Vec::new(),
        },
        email: Default::default(),
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with the test settings changed by `configure` (no open-order limit by
    /// default, so tests may place many orders for one customer).
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDatabase::create()
            .await
            .expect("the test PostgreSQL must be running (scripts/postgres.sh start)");
        let mut settings = settings(&db.url);
        configure(&mut settings);
        let app = Application::build(settings).await.expect("the app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let keys = JwtKeys::hs256(SECRET.as_bytes());
        let admin = keys.mint("root", &[Role::Admin], 3600).expect("token");
        TestApp {
            address,
            db,
            keys,
            http: reqwest::Client::new(),
            admin,
        }
    }

    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.keys.mint(sub, roles, 3600).expect("token")
    }

    /// POSTs JSON with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.post_with(path, token, body, &[]).await
    }

    /// POSTs JSON with a bearer token and extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        self.post_at(&self.address, path, token, body, headers)
            .await
    }

    /// POSTs JSON with a bearer token and extra headers to the command API at `base`
    /// (this app, or another process on the same database).
    pub async fn post_at(
        &self,
        base: &str,
        path: &str,
        token: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the request reaches the app")
    }

    /// Creates a product as admin and returns its id.
    pub async fn create_product(&self, sku: &str, price_cents: i64, stock: i64) -> Uuid {
        let response = self
            .post(
                "/v1/products",
                &self.admin,
                &json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price_cents,
                        "currency": "EUR", "initial_stock": stock}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("an id")
    }

    /// Places an order for `customer` and returns its id.
    pub async fn place_order(&self, token: &str, lines: Value) -> Response {
        self.post("/v1/orders", token, &json!({ "lines": lines }))
            .await
    }

    /// The stream's events as (event_type, version).
    pub async fn events_of(&self, stream_id: Uuid) -> Vec<(String, i64)> {
        let stream = self.db.store.load_stream(stream_id).await.expect("load");
        stream
            .events
            .iter()
            .map(|e| (e.event_type.clone(), e.version))
            .collect()
    }

    /// How many events the whole store holds.
    pub async fn event_count(&self) -> i64 {
        let client = self.db.store.pool().get().await.expect("connection");
        client
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .expect("count")
            .get(0)
    }

    /// The product's (on_hand, reserved) folded from its events.
    pub async fn stock_of(&self, product_id: Uuid) -> (i64, i64) {
        let mut states = self
            .db
            .store
            .load_states(&[product_id])
            .await
            .expect("load");
        let product = states.remove(&product_id).expect("loaded").product();
        (product.on_hand(), product.reserved())
    }
}

/// A second command API: the real `command-api` binary as its own process, on the same
/// database (its own cache, locks and pool). Killed when dropped.
pub struct OtherProcess {
    pub address: String,
    child: tokio::process::Child,
}

impl OtherProcess {
    /// kill -9, and waits until the process is gone.
    pub async fn kill(&mut self) {
        self.child
            .kill()
            .await
            .expect("SIGKILL reaches the process");
    }
}

impl TestApp {
    /// Starts another command-api process on this app's database and waits until it
    /// answers.
    pub async fn another_process(&self) -> OtherProcess {
        self.another_process_with(&[]).await
    }

    /// [`TestApp::another_process`] with extra environment variables.
    pub async fn another_process_with(&self, env: &[(&str, &str)]) -> OtherProcess {
        let port = eventstore::testing::free_port().expect("a free port");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_command-api"))
            .env("DATABASE_URL", &self.db.url)
            .env("AGORA_JWT_SECRET", SECRET)
            .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
            .env("AGORA_HTTP_WORKERS", "2")
            .env("RUST_LOG", "warn")
            .env("AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER", "0")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .expect("the command-api binary starts");
        let address = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let up = self
                .http
                .get(format!("{address}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the second command-api process answers within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        OtherProcess { address, child }
    }
}

impl TestApp {
    /// Sends `method path` with a raw body (as `application/json`), the exact
    /// `Authorization` header value given (none when `None`) and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &[u8])],
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        for (name, value) in headers {
            let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
            request = request.header(*name, value);
        }
        request.send().await.expect("the request reaches the app")
    }

    /// POSTs a raw body (sent as `application/json`) with a bearer token.
    pub async fn post_raw(&self, path: &str, token: &str, body: impl Into<Vec<u8>>) -> Response {
        let authorization = format!("Bearer {token}");
        self.send(
            Method::POST,
            path,
            Some(&authorization),
            Some(body.into()),
            &[],
        )
        .await
    }

    /// POSTs JSON with the exact `Authorization` header value given (none when `None`).
    pub async fn post_authorized(
        &self,
        path: &str,
        authorization: Option<&str>,
        body: &Value,
    ) -> Response {
        let body = serde_json::to_vec(body).expect("json");
        self.send(Method::POST, path, authorization, Some(body), &[])
            .await
    }

    /// A GET without credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None, None, &[]).await
    }

    /// Creates a product priced in `currency` as admin and returns its id.
    pub async fn create_product_in(
        &self,
        sku: &str,
        price_cents: i64,
        currency: &str,
        stock: i64,
    ) -> Uuid {
        let response = self
            .post(
                "/v1/products",
                &self.admin,
                &json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price_cents,
                        "currency": currency, "initial_stock": stock}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        id_of(response).await
    }

    /// Places an order (asserting 201) and returns its id.
    pub async fn placed_order(&self, token: &str, lines: Value) -> Uuid {
        let response = self.place_order(token, lines).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        id_of(response).await
    }

    /// The stream's events as recorded (payload, metadata and all).
    pub async fn recorded(&self, stream_id: Uuid) -> Vec<RecordedEvent> {
        self.db
            .store
            .load_stream(stream_id)
            .await
            .expect("load")
            .events
    }
}

/// The body of an admin's offline payment (`POST /v1/orders/{id}/pay`) of `amount_cents` EUR:
/// every field the route requires, `reason` included.
pub fn offline_payment(amount_cents: i64) -> Value {
    json!({"amount_cents": amount_cents, "currency": "EUR", "payment_ref": "bank-2024-0042",
           "reason": "bank transfer received"})
}

impl TestApp {
    /// `token` checks `order` out at the payment provider (`POST /v1/orders/{id}/payment`
    /// with `{}`), asserting 200; the checkout answer.
    pub async fn checkout(&self, order: Uuid, token: &str) -> Value {
        let response = self
            .post(&format!("/v1/orders/{order}/payment"), token, &json!({}))
            .await;
        let status = response.status();
        let body = body_of(response).await;
        assert_eq!(status, StatusCode::OK, "checkout of {order}: {body}");
        body
    }

    /// An admin confirms `order`'s open payment (the development provider:
    /// `POST /v1/orders/{id}/payment/confirm` with `{}`), asserting 200; the command's answer.
    pub async fn confirm_payment(&self, order: Uuid) -> Value {
        let response = self
            .post(
                &format!("/v1/orders/{order}/payment/confirm"),
                &self.admin,
                &json!({}),
            )
            .await;
        let status = response.status();
        let body = body_of(response).await;
        assert_eq!(status, StatusCode::OK, "confirmation of {order}: {body}");
        body
    }

    /// How a customer's order gets paid: `token` (its owner) checks out, an admin confirms.
    /// Returns the checkout answer and the confirmation's answer.
    pub async fn pay_through_provider(&self, order: Uuid, token: &str) -> (Value, Value) {
        let checkout = self.checkout(order, token).await;
        let confirmed = self.confirm_payment(order).await;
        (checkout, confirmed)
    }

    /// The order's state as the command API folds it.
    pub async fn order_state(&self, order: Uuid) -> domain::Order {
        let mut states = self.db.store.load_states(&[order]).await.expect("load");
        states.remove(&order).expect("loaded").order()
    }
}

impl TestApp {
    /// Restocks `product` by one unit, `times` times, asserting 200 each.
    pub async fn restock(&self, product: Uuid, times: usize) {
        for _ in 0..times {
            let path = format!("/v1/products/{product}/restock");
            let response = self.post(&path, &self.admin, &json!({"quantity": 1})).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    }

    /// The single `count(*)`-like number `sql` returns.
    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.db.store.pool().get().await.expect("a connection");
        client.query_one(sql, &[]).await.expect(sql).get(0)
    }
}

/// The JSON body of a response.
pub async fn body_of(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// The `id` of a command's answer.
pub async fn id_of(response: Response) -> Uuid {
    let body = body_of(response).await;
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an id in {body}"))
}

/// A response header as text, if present.
pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone, independent of the code under test.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .to_vec()
}

/// A hand-made JWT with arbitrary header and claims: HS256-signed with `secret`, or with
/// an empty signature when `secret` is `None`.
pub fn craft_token(header: &Value, claims: &Value, secret: Option<&[u8]>) -> String {
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = secret
        .map(|secret| base64url(&hmac_sha256(secret, signing_input.as_bytes())))
        .unwrap_or_default();
    format!("{signing_input}.{signature}")
}

/// An HS256 token signed with the test secret carrying exactly `claims`.
pub fn signed_token(claims: &Value) -> String {
    craft_token(
        &json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        Some(SECRET.as_bytes()),
    )
}

/// A Unix time `seconds` from now.
pub fn in_seconds(seconds: i64) -> i64 {
    chrono::Utc::now().timestamp() + seconds
}

/// Asserts a problem+json answer with `status` and `code`, and returns its body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}
