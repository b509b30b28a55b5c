//! Live dashboards on the query API: `GET /v1/dashboard/stream` pushes a change within a
//! second of the projector's NOTIFY, beats its heartbeat, holds its subscriber cap and
//! keeps to its roles; and the dashboard page is served.

use std::time::{Duration, Instant};

use platform::Role;
use query_api::testing::{SseBlock, SseReader};
use uuid::Uuid;

use crate::support::{assert_problem, TestApp};

const STREAM: &str = "/v1/dashboard/stream";

async fn open(app: &TestApp, token: &str) -> Result<SseReader, reqwest::Response> {
    SseReader::open(&app.http, &format!("{}{STREAM}", app.address), token).await
}

/// What the projector does after a batch: the change, committed with its NOTIFY.
async fn project_top_product(app: &TestApp, sku: &str, units: i64) {
    let client = app.db.store.pool().get().await.expect("a connection");
    let name = format!("Product {sku}");
    client
        .batch_execute("BEGIN")
        .await
        .expect("a transaction starts");
    client
        .execute(
            "INSERT INTO read_model.top_products_v1 \
             (product_id, sku, name, units_sold, revenue_cents, product_version) \
             VALUES ($1, $2, $3, $4, $5, 1)",
            &[&Uuid::new_v4(), &sku, &name, &units, &(units * 100)],
        )
        .await
        .expect("the row is written");
    client
        .execute(
            "SELECT pg_notify($1, 'top_products')",
            &[&readmodel::PROGRESS_CHANNEL],
        )
        .await
        .expect("the notification is queued");
    client.batch_execute("COMMIT").await.expect("committed");
}

#[tokio::test]
async fn the_stream_pushes_a_change_within_a_second() {
    let app = TestApp::spawn().await;
    let mut stream = open(&app, &app.viewer).await.expect("200");
    // First the latest of each, as REST answers them.
    let top = stream
        .next_event_where("top_products", Duration::from_secs(5), |_| true)
        .await
        .expect("the current top products");
    assert_eq!(
        top,
        app.get_json("/v1/dashboard/top-products", &app.viewer)
            .await
    );

    let changed = Instant::now();
    project_top_product(&app, "LIVE-1", 3).await;
    let top = stream
        .next_event_where("top_products", Duration::from_secs(1), |top| {
            top["items"][0]["sku"] == "LIVE-1"
        })
        .await
        .expect("the change arrives within a second");
    assert!(changed.elapsed() < Duration::from_secs(1));
    assert_eq!(
        top,
        app.get_json("/v1/dashboard/top-products", &app.viewer)
            .await
    );
}

#[tokio::test]
async fn the_stream_beats_its_heartbeat() {
    let app = TestApp::spawn_with(|settings| settings.sse_heartbeat_secs = 1).await;
    let mut stream = open(&app, &app.admin).await.expect("200");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut beats = 0;
    while beats < 2 && Instant::now() < deadline {
        if let Some(SseBlock::Comment(text)) = stream.next_block(Duration::from_secs(3)).await {
            beats += usize::from(text == "heartbeat");
        }
    }
    assert_eq!(beats, 2);
}

#[tokio::test]
async fn the_subscriber_cap_holds_and_frees_places() {
    let app = TestApp::spawn_with(|settings| {
        settings.max_live_subscribers = 2;
        settings.sse_heartbeat_secs = 1;
    })
    .await;
    let first = open(&app, &app.viewer).await.expect("room for one");
    let _second = open(&app, &app.viewer).await.expect("room for two");
    let refused = open(&app, &app.viewer)
        .await
        .err()
        .expect("no room for three");
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_problem(refused, 503, "too_many_subscribers").await;

    // A client that leaves frees its place (noticed at the next heartbeat at the latest).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open(&app, &app.viewer).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(response) => panic!("no place freed: {}", response.status()),
        }
    }
}

#[tokio::test]
async fn the_stream_keeps_to_its_roles() {
    let app = TestApp::spawn().await;
    let customer = app.token("alice", &[Role::Customer]);
    assert_problem(open(&app, &customer).await.err().unwrap(), 403, "forbidden").await;
    assert_problem(
        open(&app, &app.auditor).await.err().unwrap(),
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        open(&app, "nope").await.err().unwrap(),
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn the_dashboard_page_is_served_with_its_own_files_only() {
    let app = TestApp::spawn().await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/dashboard", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    let page = app.get_anonymous("/dashboard/").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    for file in ["/dashboard/dashboard.js", "/dashboard/dashboard.css"] {
        assert!(html.contains(file), "{file}");
        let asset = app.get_anonymous(file).await;
        assert_eq!(asset.status(), 200, "{file}");
        // The SVG namespace is a name, not a fetch.
        let text = asset
            .text()
            .await
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{file}"
        );
    }
    assert_eq!(
        app.get_anonymous("/dashboard/secret.txt").await.status(),
        404
    );
}
