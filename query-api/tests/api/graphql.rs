//! GraphQL (`POST /graphql`): the same answers and rules as REST for every role, customers
//! kept to their own orders, depth and complexity limits, errors that leak nothing, the
//! committed SDL, and GraphiQL served from the binary.

use chrono::{TimeDelta, Utc};
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{assert_problem, at, TestApp};

/// Where the schema is committed.
const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");

/// POSTs `body` (JSON text) to `/graphql`, with a bearer token when given.
async fn post_graphql(app: &TestApp, token: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the request reaches the app")
}

/// Runs a GraphQL query; returns the whole response body (200 expected).
async fn graphql(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let body = json!({"query": query, "variables": variables}).to_string();
    let response = post_graphql(app, Some(token), &body).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JSON body")
}

/// The `data` of a query that must succeed.
async fn data(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let body = graphql(app, token, query, variables).await;
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// The error codes (`extensions.code`) of a response.
fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// GraphQL's camelCase keys as REST's snake_case, recursively.
fn snake_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let mut snake = String::new();
                    for c in key.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    (snake, snake_keys(value))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(snake_keys).collect()),
        other => other.clone(),
    }
}

const PRODUCT_FIELDS: &str =
    "id sku name priceCents currency onHand reserved available discontinued version";
const SUMMARY_FIELDS: &str = "id customerId status totalCents currency placedAt updatedAt version";

/// Every product over GraphQL, `first` at a time, following `endCursor`.
async fn graphql_products(app: &TestApp, token: &str, first: i64) -> Vec<Value> {
    let query = format!(
        "query($first: Int, $after: String) {{ products(first: $first, after: $after) {{ \
         edges {{ cursor node {{ {PRODUCT_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let mut items = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = data(app, token, &query, json!({"first": first, "after": after})).await;
        let connection = &page["products"];
        for edge in connection["edges"].as_array().expect("edges") {
            items.push(snake_keys(&edge["node"]));
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            return items;
        }
        after = connection["pageInfo"]["endCursor"].clone();
        assert!(items.len() < 1000, "the walk does not end");
    }
}

/// A shop: three products, orders of alice and bob, sales and top products.
async fn shop(app: &TestApp) -> (Vec<Uuid>, Uuid, Uuid) {
    let mut products = Vec::new();
    for sku in ["A-1", "B-2", "C-3"] {
        products.push(app.insert_product(sku, 10, 2, 3).await);
    }
    let now = Utc::now();
    let alice = app
        .insert_order("alice", "paid", now - TimeDelta::minutes(5), 2)
        .await;
    app.execute(
        "UPDATE read_model.orders_v1 SET payment_ref = 'pi_2', refunded_cents = 500, \
         payments = $2, refunds = $3 WHERE id = $1",
        &[
            &alice,
            &json!([
                {"payment_id": "pi_1", "status": "needs_review", "amount_cents": 3000},
                {"payment_id": "pi_2", "status": "succeeded", "amount_cents": 3098}
            ]),
            &json!([{"refund_id": "re_1", "status": "succeeded", "amount_cents": 500}]),
        ],
    )
    .await;
    app.insert_order("alice", "placed", now - TimeDelta::minutes(4), 1)
        .await;
    let bob = app
        .insert_order("bob", "placed", now - TimeDelta::minutes(3), 1)
        .await;
    let hour = now - TimeDelta::minutes(now.timestamp() % 3600 / 60);
    let hour = at(&hour.format("%Y-%m-%dT%H:00:00Z").to_string());
    app.insert_sales("hour", hour, [3, 1, 3098, 3]).await;
    app.insert_sales("hour", hour - TimeDelta::hours(2), [1, 0, 0, 0])
        .await;
    app.insert_top_product(products[0], "A-1", 2, 2598).await;
    app.insert_top_product(products[1], "B-2", 1, 500).await;
    (products, alice, bob)
}

#[tokio::test]
async fn graphql_answers_equal_rest_for_every_role() {
    let app = TestApp::spawn().await;
    let (products, alice_order, bob_order) = shop(&app).await;
    let alice = app.token("alice", &[Role::Customer]);
    let roles = [
        ("admin", app.admin.clone()),
        ("viewer", app.viewer.clone()),
        ("customer", alice.clone()),
        ("auditor", app.auditor.clone()),
    ];
    for (role, token) in &roles {
        // Products, walked two at a time, and one by id.
        let rest = app.get_json("/v1/products?limit=500", token).await;
        assert_eq!(
            graphql_products(&app, token, 2).await,
            rest["items"].as_array().unwrap().clone(),
            "{role}"
        );
        let query = format!("query($id: UUID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}");
        let one = data(&app, token, &query, json!({"id": products[1]})).await;
        let rest_one = app
            .get_json(&format!("/v1/products/{}", products[1]), token)
            .await;
        assert_eq!(snake_keys(&one["product"]), rest_one, "{role}");

        // Orders: the list and each order, or the same refusal.
        let query = format!("{{ orders(first: 500) {{ nodes {{ {SUMMARY_FIELDS} }} }} }}");
        let body = graphql(&app, token, &query, json!({})).await;
        let rest = app.get("/v1/orders?limit=500", token).await;
        if rest.status() == 200 {
            let rest: Value = rest.json().await.unwrap();
            assert_eq!(snake_keys(&body["data"]["orders"]["nodes"]), rest["items"]);
        } else {
            assert_eq!(rest.status(), 403, "{role}");
            assert_eq!(error_codes(&body), ["forbidden"], "{role}: {body}");
        }
        let query = format!(
            "query($id: UUID!) {{ order(id: $id) {{ {SUMMARY_FIELDS} \
             lines {{ productId quantity unitPriceCents }} paymentRef carrier trackingNumber \
             refundedCents payments {{ paymentId status amountCents }} \
             refunds {{ refundId status amountCents }} }} }}"
        );
        for id in [alice_order, bob_order] {
            let body = graphql(&app, token, &query, json!({"id": id})).await;
            let rest = app.get(&format!("/v1/orders/{id}"), token).await;
            match rest.status().as_u16() {
                200 => {
                    let mut rest: Value = rest.json().await.unwrap();
                    // GraphQL serves no personal data: no shipping address.
                    let address = rest
                        .as_object_mut()
                        .and_then(|o| o.remove("shipping_address"));
                    assert_eq!(address, Some(Value::Null), "{role}");
                    assert_eq!(snake_keys(&body["data"]["order"]), rest, "{role}");
                    if id == alice_order {
                        let payments = &body["data"]["order"]["payments"];
                        assert_eq!(payments[0]["status"], "needs_review", "{role}: {body}");
                        assert_eq!(payments[1]["paymentId"], "pi_2", "{role}: {body}");
                        let refunds = &body["data"]["order"]["refunds"];
                        assert_eq!(refunds[0]["amountCents"], 500, "{role}: {body}");
                    }
                }
                404 => assert_eq!(body["data"]["order"], Value::Null, "{role}: {body}"),
                status => {
                    assert_eq!(status, 403, "{role}");
                    assert_eq!(error_codes(&body), ["forbidden"], "{role}: {body}");
                }
            }
        }

        // Dashboards.
        let body = graphql(
            &app,
            token,
            "{ sales { buckets { start ordersPlaced ordersPaid revenueCents unitsSold } } \
             topProducts(limit: 5) { items { productId sku name unitsSold revenueCents } } }",
            json!({}),
        )
        .await;
        let rest = app.get("/v1/dashboard/top-products?limit=5", token).await;
        if rest.status() == 200 {
            let top: Value = rest.json().await.unwrap();
            assert_eq!(snake_keys(&body["data"]["topProducts"]), top, "{role}");
            let sales = app.get_json("/v1/dashboard/sales", token).await;
            let graphql_sales = snake_keys(&body["data"]["sales"]);
            // Both default to "the last 24 hours before now": compare the buckets they share.
            let rest_buckets = sales["buckets"].as_array().unwrap();
            let graphql_buckets = graphql_sales["buckets"].as_array().unwrap();
            assert!(rest_buckets.len() >= 24 && graphql_buckets.len() >= 24);
            let shared: Vec<&Value> = graphql_buckets
                .iter()
                .filter(|b| rest_buckets.iter().any(|r| r["start"] == b["start"]))
                .collect();
            assert!(shared.len() >= 24, "{role}");
            for bucket in shared {
                assert!(rest_buckets.contains(bucket), "{role}: {bucket}");
            }
            let revenue: i64 = graphql_buckets
                .iter()
                .map(|b| b["revenue_cents"].as_i64().unwrap())
                .sum();
            assert_eq!(revenue, 3098, "{role}");
        } else {
            assert_eq!(rest.status(), 403, "{role}");
            let codes = error_codes(&body);
            assert_eq!(codes, ["forbidden", "forbidden"], "{role}: {body}");
            assert_eq!(body["data"], Value::Null, "{role}: {body}");
        }
    }
}

#[tokio::test]
async fn explicit_sales_ranges_equal_rest_exactly() {
    let app = TestApp::spawn().await;
    app.insert_sales("day", at("2024-05-02T00:00:00Z"), [4, 3, 900, 7])
        .await;
    let rest = app
        .get_json(
            "/v1/dashboard/sales?bucket=day&from=2024-05-01T00:00:00Z&to=2024-05-04T00:00:00Z",
            &app.viewer,
        )
        .await;
    let body = data(
        &app,
        &app.viewer,
        "{ sales(bucket: DAY, from: \"2024-05-01T02:00:00+02:00\", to: \"2024-05-04T00:00:00Z\") \
         { buckets { start ordersPlaced ordersPaid revenueCents unitsSold } } }",
        json!({}),
    )
    .await;
    assert_eq!(snake_keys(&body["sales"]), rest);
}

#[tokio::test]
async fn a_customer_cannot_reach_another_customers_order_through_any_path() {
    let app = TestApp::spawn().await;
    let (_, alice_order, bob_order) = shop(&app).await;
    let alice = app.token("alice", &[Role::Customer]);

    let body = data(
        &app,
        &alice,
        "query($id: UUID!) { order(id: $id) { id customerId } }",
        json!({"id": bob_order}),
    )
    .await;
    assert_eq!(body["order"], Value::Null);

    // Naming bob, filtering, paging with a cursor made from bob's order: never bob's.
    let everything = data(
        &app,
        &alice,
        "{ mine: orders(first: 500) { nodes { id customerId } edges { cursor } } \
           bobs: orders(customerId: \"bob\") { nodes { id } pageInfo { hasNextPage } } \
           placed: orders(status: PLACED) { nodes { id customerId } } }",
        json!({}),
    )
    .await;
    assert_eq!(everything["bobs"]["nodes"], json!([]));
    for list in ["mine", "placed"] {
        let nodes = everything[list]["nodes"].as_array().unwrap();
        assert!(!nodes.is_empty(), "{list}");
        assert!(
            nodes.iter().all(|n| n["customerId"] == "alice"),
            "{list}: {nodes:?}"
        );
    }
    let mine = everything["mine"]["nodes"].as_array().unwrap();
    assert!(mine.iter().any(|n| n["id"] == json!(alice_order)));

    // A cursor taken by an admin right before bob's order still shows alice only hers.
    let admin_page = data(
        &app,
        &app.admin,
        "{ orders(first: 500) { edges { cursor node { id } } } }",
        json!({}),
    )
    .await;
    for edge in admin_page["orders"]["edges"].as_array().unwrap() {
        let after = data(
            &app,
            &alice,
            "query($after: String) { orders(after: $after) { nodes { customerId } } }",
            json!({"after": edge["cursor"]}),
        )
        .await;
        for node in after["orders"]["nodes"].as_array().unwrap() {
            assert_eq!(node["customerId"], "alice");
        }
    }

    // A customer is not a dashboard viewer.
    let body = graphql(&app, &alice, "{ topProducts { items { sku } } }", json!({})).await;
    assert_eq!(error_codes(&body), ["forbidden"]);
}

#[tokio::test]
async fn queries_over_the_depth_or_complexity_limit_are_refused() {
    let app = TestApp::spawn().await;
    app.insert_product("A-1", 1, 0, 1).await;

    // Introspection nests as deep as one likes: 20 levels is refused, nothing is resolved.
    let mut deep = String::from("name");
    for _ in 0..20 {
        deep = format!("ofType {{ {deep} }}");
    }
    let query = format!("{{ __schema {{ queryType {{ fields {{ type {{ {deep} }} }} }} }} }}");
    let body = graphql(&app, &app.viewer, &query, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{body}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");

    // Three full pages of products with every field: too costly.
    let page = format!("products(first: 500) {{ nodes {{ {PRODUCT_FIELDS} }} }}");
    let query = format!("{{ a: {page} b: {page} c: {page} }}");
    let body = graphql(&app, &app.viewer, &query, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{body}");
    // One is fine.
    let one = data(&app, &app.viewer, &format!("{{ {page} }}"), json!({})).await;
    assert_eq!(one["products"]["nodes"].as_array().unwrap().len(), 1);

    // GraphiQL's own introspection query (its TypeRef is 7 ofType deep) stays within them.
    let mut type_ref = String::from("kind name");
    for _ in 0..7 {
        type_ref = format!("kind name ofType {{ {type_ref} }}");
    }
    let query =
        format!("{{ __schema {{ types {{ name fields {{ name args {{ name type {{ {type_ref} }} }} }} }} }} }}");
    let introspection = data(&app, &app.viewer, &query, json!({})).await;
    assert!(introspection["__schema"]["types"].as_array().unwrap().len() > 10);
}

#[tokio::test]
async fn bad_requests_get_clear_errors_that_leak_nothing() {
    let app = TestApp::spawn().await;
    // No token, a bad token: 401 problem+json, like /v1.
    let query = json!({"query": "{ products { nodes { id } } }"}).to_string();
    assert_problem(
        post_graphql(&app, None, &query).await,
        401,
        "unauthenticated",
    )
    .await;
    let bad = post_graphql(&app, Some("not-a-token"), &query).await;
    assert_problem(bad, 401, "unauthenticated").await;
    // A body that is not a GraphQL request: 400 problem+json.
    let response = post_graphql(&app, Some(&app.viewer), "{\"query\": ").await;
    assert_problem(response, 400, "invalid_request").await;

    for (query, code) in [
        ("{ products(first: 0) { nodes { id } } }", "invalid_request"),
        ("{ products(first: 501) { nodes { id } } }", "invalid_request"),
        (
            "{ products(after: \"bm90LWEtY3Vyc29y\") { nodes { id } } }",
            "invalid_request",
        ),
        ("{ topProducts(limit: 101) { items { sku } } }", "invalid_request"),
        (
            "{ sales(from: \"2024-05-02T00:00:00Z\", to: \"2024-05-01T00:00:00Z\") { buckets { start } } }",
            "invalid_request",
        ),
    ] {
        let body = graphql(&app, &app.viewer, query, json!({})).await;
        assert_eq!(error_codes(&body), [code], "{query}: {body}");
    }
    // Syntax and type errors are GraphQL's own, and say what is wrong.
    for query in [
        "{ products { nodes { id } ",
        "{ product(id: \"not-a-uuid\") { id } }",
        "{ sales(from: \"yesterday\") { buckets { start } } }",
        "{ products { nodes { password } } }",
    ] {
        let body = graphql(&app, &app.viewer, query, json!({})).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{query}: {body}");
        let text = body.to_string().to_lowercase();
        for leak in ["postgres", "sql", "panicked", "tokio", "src/"] {
            assert!(!text.contains(leak), "{query}: {body}");
        }
    }

    // The database gone: a clear 503-coded error, no details.
    app.execute("DROP VIEW read_model.products CASCADE", &[])
        .await;
    let body = graphql(
        &app,
        &app.viewer,
        "{ products { nodes { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(error_codes(&body), ["internal"], "{body}");
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("relation") && !text.contains("products\" does not"),
        "{body}"
    );
}

#[tokio::test]
async fn the_committed_schema_is_the_codes() {
    let sdl = query_api::graphql::sdl();
    if std::env::var_os("AGORA_WRITE_GRAPHQL_SCHEMA").is_some() {
        std::fs::write(SCHEMA_FILE, &sdl).expect("the schema file is writable");
    }
    let committed = std::fs::read_to_string(SCHEMA_FILE).expect("query-api/schema.graphql");
    assert!(
        committed == sdl,
        "query-api/schema.graphql differs from the code's schema; to accept the code's, run \
         AGORA_WRITE_GRAPHQL_SCHEMA=1 cargo test -p query-api --test api graphql"
    );
    for field in [
        "products(",
        "product(",
        "orders(",
        "order(",
        "sales(",
        "topProducts(",
    ] {
        assert!(sdl.contains(field), "{field}");
    }
    assert!(sdl.contains("type Subscription"));
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let page = app.get_anonymous("/graphql").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("GraphiQL"));
    // Every script and style is ours: no CDN.
    let mut sources = 0;
    for attribute in ["src=\"", "href=\""] {
        for part in html.split(attribute).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(url.starts_with("/graphql/assets/"), "{url}");
            let asset = app.get_anonymous(url).await;
            assert_eq!(asset.status(), 200, "{url}");
            assert!(asset.bytes().await.unwrap().len() > 1000, "{url}");
            sources += 1;
        }
    }
    assert_eq!(sources, 4);
    let missing = app.get_anonymous("/graphql/assets/../../Cargo.toml").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn amplification_by_aliases_fragments_and_lists_is_refused_before_it_reads() {
    let app = TestApp::spawn().await;
    let product = app.insert_product("A-1", 1, 0, 1).await;
    let six_months = json!({"f": "2024-01-01T00:00:00Z", "t": "2024-07-01T00:00:00Z"});

    // The reported attack: 3,000 aliases of six months of hourly buckets.
    let sales = "sales(from: $f, to: $t) { buckets { start } }";
    let aliases: String = (0..3000).map(|i| format!("s{i}: {sales} ")).collect();
    let query = format!("query($f: DateTime, $t: DateTime) {{ {aliases} }}");
    let body = graphql(&app, &app.viewer, &query, six_months.clone()).await;
    assert_refused_as_too_complex(&body);
    // The same through a fragment spread many times.
    let spreads: String = (0..3000)
        .map(|i| format!("f{i}: sales(from: $f, to: $t) {{ ...B }} "))
        .collect();
    let query = format!(
        "query($f: DateTime, $t: DateTime) {{ {spreads} }} fragment B on Sales {{ buckets {{ start ordersPlaced revenueCents }} }}"
    );
    let body = graphql(&app, &app.viewer, &query, six_months.clone()).await;
    assert_refused_as_too_complex(&body);
    // One such range with one field is one list within the limit.
    let one = data(
        &app,
        &app.viewer,
        &format!("query($f: DateTime, $t: DateTime) {{ {sales} }}"),
        six_months,
    )
    .await;
    assert_eq!(one["sales"]["buckets"].as_array().map(Vec::len), Some(4368));

    // Aliases of full pages, and of top products at their largest.
    let pages: String = (0..20)
        .map(|i| format!("p{i}: products(first: 500) {{ nodes {{ id }} }} "))
        .collect();
    assert_refused_as_too_complex(
        &graphql(&app, &app.viewer, &format!("{{ {pages} }}"), json!({})).await,
    );
    let tops: String = (0..40)
        .map(|i| format!("t{i}: topProducts(limit: 100) {{ items {{ sku name unitsSold }} }} "))
        .collect();
    assert_refused_as_too_complex(
        &graphql(&app, &app.viewer, &format!("{{ {tops} }}"), json!({})).await,
    );

    // Cheap fields that each read the database: the request's read budget ends them.
    let reads: String = (0..200)
        .map(|i| format!("r{i}: product(id: \"{product}\") {{ id }} "))
        .collect();
    let body = graphql(&app, &app.viewer, &format!("{{ {reads} }}"), json!({})).await;
    let codes = error_codes(&body);
    assert!(!codes.is_empty(), "{body}");
    assert!(codes.iter().all(|code| code == "too_costly"), "{body}");
    assert_eq!(
        codes.len(),
        200 - query_api::graphql::MAX_READS,
        "every read past the budget is refused: {body}"
    );
}

/// The answer of a query refused by the complexity limit: an error, and nothing resolved.
fn assert_refused_as_too_complex(body: &Value) {
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{body}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");
}
