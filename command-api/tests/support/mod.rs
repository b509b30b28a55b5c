//! Spawns the command API on a random port over a fresh database, and speaks HTTP to it.

#![allow(dead_code)]

use command_api::config::Settings;
use command_api::startup::Application;
use eventstore::testing::TestDatabase;
use platform::{JwtKeys, Role};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

pub const SECRET: &str = "test-secret";

pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub keys: JwtKeys,
    pub http: reqwest::Client,
    pub admin: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        platform::telemetry::init_logging();
        let db = TestDatabase::create()
            .await
            .expect("the test PostgreSQL must be running (scripts/postgres.sh start)");
        let settings = Settings {
            database_url: db.url.clone(),
            addr: "127.0.0.1:0".into(),
            jwt_secret: SECRET.into(),
            pool_size: 20,
            workers: 2,
        };
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
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
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
        let stream = self.db.store.load_stream(product_id).await.expect("load");
        let product = command_api::streams::product_from(&stream).expect("fold");
        (product.on_hand(), product.reserved())
    }
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
