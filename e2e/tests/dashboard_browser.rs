//! The dashboard page (`GET /dashboard/`) in a real browser: Debian's headless Chromium,
//! driven over WebDriver (Debian's `chromedriver`) by fantoccini. The page gets a viewer
//! token once, shows the same figures as the REST API, changes without a reload within
//! 2 s of an order being paid through the command API, and a screenshot is saved
//! (`AGORA_SAVE_SCREENSHOT=1` writes the one docs/ shows, docs/images/dashboard.png).
//!
//! `AGORA_CHROMEDRIVER` and `AGORA_CHROMIUM` name the binaries (default: Debian's paths;
//! `scripts/test.sh` installs them). Without them the test fails, it never skips.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use platform::Role;
use serde_json::{json, Value};
use support::Stack;
use tokio::process::{Child, Command};

/// chromedriver on a free port, killed when dropped.
struct Driver {
    _process: Child,
    url: String,
}

impl Driver {
    async fn start() -> anyhow::Result<Driver> {
        let binary =
            std::env::var("AGORA_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = testkit::free_port()?;
        let process = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot start {binary} ({error}): install Debian's chromium and \
                     chromium-driver (scripts/test.sh does)"
                )
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = http.get(format!("{url}/status")).send().await {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Driver {
            _process: process,
            url,
        })
    }

    /// A headless Chromium session.
    async fn browser(&self) -> anyhow::Result<Client> {
        let chromium =
            std::env::var("AGORA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1100"],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        Ok(
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&self.url)
                .await?,
        )
    }
}

/// Runs `script` in the page and returns its value.
async fn page_value(browser: &Client, script: &str) -> anyhow::Result<Value> {
    Ok(browser.execute(script, vec![]).await?)
}

/// What the page shows: the figures, the top products and the latest orders.
const READ_PAGE: &str = r##"
    const text = (id) => document.getElementById(id).textContent;
    const rows = (id) => [...document.getElementById(id).tBodies[0].rows];
    return {
        revenue_cents: Number(document.getElementById("revenue-total").dataset.cents),
        orders_paid: Number(text("orders-paid-total")),
        orders_placed: Number(text("orders-placed-total")),
        units_sold: Number(text("units-sold-total")),
        top: rows("top-products").map((r) => [r.dataset.productId, Number(r.cells[2].textContent)]),
        orders: rows("latest-orders").map((r) => [r.dataset.orderId, r.cells[2].textContent]),
        bars: document.querySelectorAll("#sales-chart rect").length,
        marker: window.agoraTestMarker || null,
    };
"##;

/// What the page must show, from the REST API.
async fn expected(stack: &Stack, token: &str) -> anyhow::Result<Value> {
    let sales: Value = stack
        .get("/v1/dashboard/sales", token)
        .await?
        .json()
        .await?;
    let top: Value = stack
        .get("/v1/dashboard/top-products", token)
        .await?
        .json()
        .await?;
    let orders: Value = stack
        .get("/v1/orders?limit=10", token)
        .await?
        .json()
        .await?;
    let buckets = sales["buckets"].as_array().cloned().unwrap_or_default();
    let sum = |field: &str| -> i64 { buckets.iter().filter_map(|b| b[field].as_i64()).sum() };
    let items = |list: &Value| list["items"].as_array().cloned().unwrap_or_default();
    Ok(json!({
        "revenue_cents": sum("revenue_cents"),
        "orders_paid": sum("orders_paid"),
        "orders_placed": sum("orders_placed"),
        "units_sold": sum("units_sold"),
        "top": items(&top).iter().map(|i| json!([i["product_id"], i["units_sold"]])).collect::<Vec<_>>(),
        "orders": items(&orders).iter().map(|o| json!([o["id"], o["status"]])).collect::<Vec<_>>(),
        "bars": buckets.len(),
    }))
}

/// The page's figures without the marker.
fn figures(mut page: Value) -> Value {
    if let Some(object) = page.as_object_mut() {
        object.remove("marker");
    }
    page
}

#[tokio::test]
async fn the_dashboard_shows_the_rest_figures_and_follows_a_payment_live() -> anyhow::Result<()> {
    let stack = Stack::start(false).await?;
    let alice = stack.token("alice", &[Role::Customer]);
    let viewer = stack.token("vera", &[Role::Viewer]);
    let mut products = Vec::new();
    for (sku, name, price) in [("MUG-1", "Mug", 1299), ("POT-1", "Teapot", 3500)] {
        let (id, _) = stack
            .ok("/v1/products", &stack.admin, json!({"sku": sku, "name": name, "price_cents": price, "currency": "EUR", "initial_stock": 20}))
            .await?;
        products.push(id);
    }
    let (first, _) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": products[0], "quantity": 2}]}),
        )
        .await?;
    let (_, paid_version) = stack.pay(first, &alice).await?;
    let (second, second_version) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": products[1], "quantity": 1}]}),
        )
        .await?;
    stack
        .read_at(&format!("/v1/orders/{first}"), &viewer, paid_version)
        .await?;
    stack
        .read_at(&format!("/v1/orders/{second}"), &viewer, second_version)
        .await?;
    // Sales and top products are projected beside the orders: wait for them too.
    stack
        .eventually(
            "the first sale in the dashboards",
            Duration::from_secs(10),
            || async {
                Ok(expected(&stack, &viewer).await?["top"]
                    .as_array()
                    .map(Vec::len)
                    == Some(1))
            },
        )
        .await?;

    let driver = Driver::start().await?;
    let browser = driver.browser().await?;
    let outcome = exercise(&stack, &browser, &viewer, &alice, second).await;
    let screenshot = browser.screenshot().await;
    browser.close().await?;
    outcome?;

    let png = screenshot?;
    anyhow::ensure!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let path = if std::env::var_os("AGORA_SAVE_SCREENSHOT").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/images/dashboard.png")
    } else {
        std::env::temp_dir().join("agora-dashboard.png")
    };
    std::fs::write(&path, png)?;
    stack.stop().await
}

async fn exercise(
    stack: &Stack,
    browser: &Client,
    viewer: &str,
    alice: &str,
    unpaid: uuid::Uuid,
) -> anyhow::Result<()> {
    browser.goto(&format!("{}/dashboard/", stack.query)).await?;
    // The token, entered once.
    browser
        .wait()
        .for_element(Locator::Css("#token"))
        .await?
        .send_keys(viewer)
        .await?;
    browser
        .find(Locator::Css("#sign-in button[type=submit]"))
        .await?
        .click()
        .await?;

    // The figures equal the REST answers.
    let want = expected(stack, viewer).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut page = Value::Null;
    while Instant::now() < deadline {
        page = figures(page_value(browser, READ_PAGE).await?);
        if page == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(page == want, "the page shows {page}, REST answers {want}");
    anyhow::ensure!(
        want["revenue_cents"] == 2598 && want["orders_placed"] == 2,
        "{want}"
    );

    // Signed in: the form is gone, the dashboard shown.
    let shown = page_value(
        browser,
        "const shown = (id) => getComputedStyle(document.getElementById(id)).display !== 'none';
         return [shown('sign-in'), shown('dashboard')];",
    )
    .await?;
    anyhow::ensure!(
        shown == json!([false, true]),
        "sign-in, dashboard shown: {shown}"
    );

    // Kept for the tab only, never in the URL.
    let storage = page_value(
        browser,
        "return [sessionStorage.getItem('agora.token') !== null, localStorage.length];",
    )
    .await?;
    anyhow::ensure!(storage == json!([true, 0]), "storage: {storage}");
    anyhow::ensure!(!browser.current_url().await?.as_str().contains(viewer));

    // Pay the second order through the command API (alice checks out, an admin confirms):
    // the page follows the payment, without a reload. Her checkout alone pays nothing.
    page_value(
        browser,
        "window.agoraTestMarker = 'still here'; return true;",
    )
    .await?;
    let checkout = stack.checkout(unpaid, alice).await?;
    anyhow::ensure!(checkout["amount_cents"] == 3500, "{checkout}");
    let paid = Instant::now();
    stack.confirm_payment(unpaid).await?;
    let changed = loop {
        let page = page_value(browser, READ_PAGE).await?;
        if page["revenue_cents"] == 2598 + 3500 && page["top"].as_array().map(Vec::len) == Some(2) {
            break page;
        }
        anyhow::ensure!(
            paid.elapsed() < Duration::from_secs(2),
            "the page did not follow the payment within 2 s: {page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let latency = paid.elapsed();
    anyhow::ensure!(changed["marker"] == "still here", "the page was reloaded");
    anyhow::ensure!(latency < Duration::from_secs(2), "{latency:?}");

    // Once everything has settled, the page again equals REST, orders list included.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let want = expected(stack, viewer).await?;
        let page = figures(page_value(browser, READ_PAGE).await?);
        if page == want && want["orders"][0][1] == "paid" {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "page {page} vs REST {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
