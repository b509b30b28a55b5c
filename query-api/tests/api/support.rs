//! Spawns the query API on a random port over a fresh database, fills the read-model
//! tables, and speaks HTTP to it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use eventstore::testing::TestDatabase;
use platform::{JwtKeys, Role};
use query_api::config::Settings;
use query_api::startup::Application;
use reqwest::Response;
use serde_json::{json, Value};
use uuid::Uuid;

pub const SECRET: &str = "query-api-test-secret-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub keys: JwtKeys,
    pub http: reqwest::Client,
    pub admin: String,
    pub viewer: String,
    pub auditor: String,
}

impl TestApp {
    /// The app with the default consistency wait (5 s).
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with_wait(Duration::from_millis(5000)).await
    }

    /// The app with `AGORA_CONSISTENCY_WAIT_MS` = `wait`.
    pub async fn spawn_with_wait(wait: Duration) -> TestApp {
        TestApp::spawn_with(|settings| {
            settings.consistency_wait_ms = u64::try_from(wait.as_millis()).expect("a short wait");
        })
        .await
    }

    /// The app with settings adjusted by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDatabase::create()
            .await
            .expect("the test PostgreSQL must be running (scripts/postgres.sh start)");
        let mut settings = Settings {
            read_database_url: Some(db.url.clone()),
            database_url: Some(db.url.clone()),
            addr: "127.0.0.1:0".into(),
            auth: platform::AuthSettings::hs256(SECRET),
            consistency_wait_ms: 5000,
            consistency_max_waiters: 256,
            pool_size: 8,
            workers: 2,
            tls: Default::default(),
            max_live_subscribers: 10_000,
            sse_heartbeat_secs: 15,
            pii: Default::default(),
        };
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("the app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let keys = JwtKeys::hs256(SECRET.as_bytes());
        let admin = keys.mint("root", &[Role::Admin], 3600).expect("token");
        let viewer = keys.mint("dash", &[Role::Viewer], 3600).expect("token");
        let auditor = keys.mint("audit", &[Role::Auditor], 3600).expect("token");
        TestApp {
            address,
            db,
            keys,
            http: reqwest::Client::new(),
            admin,
            viewer,
            auditor,
        }
    }

    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.keys.mint(sub, roles, 3600).expect("token")
    }

    /// GETs `path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.get_with(path, token, &[]).await
    }

    /// GETs `path` with a bearer token and extra headers.
    pub async fn get_with(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the request reaches the app")
    }

    /// GETs `path` without any credentials.
    pub async fn get_anonymous(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request reaches the app")
    }

    /// GETs `path` and expects 200 with a JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token).await;
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Runs one statement on the test database.
    /// Runs `sql` as an attacker with superuser access would: triggers off, so the
    /// append-only guard of `events` does not stop it.
    pub async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
        let client = eventstore::testing::attacker_session(&self.db.url)
            .await
            .expect("a connection");
        client
            .execute(sql, params)
            .await
            .expect("the statement runs");
    }

    /// Inserts a product row and returns its id.
    pub async fn insert_product(
        &self,
        sku: &str,
        on_hand: i64,
        reserved: i64,
        version: i64,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let name = format!("Product {sku}");
        self.execute(
            "INSERT INTO read_model.products_v1 \
             (id, sku, name, price_cents, currency, on_hand, reserved, discontinued, version, updated_at) \
             VALUES ($1, $2, $3, 1299, 'EUR', $4, $5, false, $6, now())",
            &[&id, &sku, &name, &on_hand, &reserved, &version],
        )
        .await;
        id
    }

    /// Inserts an order row (two lines, total 2 × 1299 + 1 × 500) and returns its id.
    pub async fn insert_order(
        &self,
        customer: &str,
        status: &str,
        placed_at: DateTime<Utc>,
        version: i64,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let lines = json!([
            {"product_id": Uuid::new_v4(), "quantity": 2, "unit_price_cents": 1299},
            {"product_id": Uuid::new_v4(), "quantity": 1, "unit_price_cents": 500}
        ]);
        self.execute(
            "INSERT INTO read_model.orders_v1 \
             (id, customer_id, status, total_cents, currency, placed_at, updated_at, version, lines) \
             VALUES ($1, $2, $3, 3098, 'EUR', $4, $4, $5, $6)",
            &[&id, &customer, &status, &placed_at, &version, &lines],
        )
        .await;
        id
    }

    pub async fn insert_sales(
        &self,
        bucket: &str,
        start: DateTime<Utc>,
        [placed, paid, revenue, units]: [i64; 4],
    ) {
        self.execute(
            "INSERT INTO read_model.sales_v1 \
             (bucket, start, orders_placed, orders_paid, revenue_cents, units_sold) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&bucket, &start, &placed, &paid, &revenue, &units],
        )
        .await;
    }

    pub async fn insert_top_product(&self, id: Uuid, sku: &str, units: i64, revenue: i64) {
        let name = format!("Product {sku}");
        self.execute(
            "INSERT INTO read_model.top_products_v1 \
             (product_id, sku, name, units_sold, revenue_cents, product_version) \
             VALUES ($1, $2, $3, $4, $5, 1)",
            &[&id, &sku, &name, &units, &revenue],
        )
        .await;
    }
}

/// An RFC 3339 time.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// Asserts a problem+json answer with `status` and `code`, and returns its body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
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

/// The keys of a JSON object, sorted.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Every item of a list, following `next_cursor` with `limit`; also returns the number
/// of pages.
pub async fn walk(app: &TestApp, path: &str, token: &str, limit: usize) -> (Vec<Value>, usize) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cursor) => format!("{path}{separator}limit={limit}&cursor={cursor}"),
            None => format!("{path}{separator}limit={limit}"),
        };
        let page = app.get_json(&url, token).await;
        pages += 1;
        let batch = page["items"].as_array().expect("items").clone();
        assert!(batch.len() <= limit, "a page larger than the limit");
        items.extend(batch);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
        assert!(pages < 1000, "the walk does not end");
    }
    (items, pages)
}
