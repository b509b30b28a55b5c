//! The OpenAPI document (`GET /openapi.json`) and Swagger UI (`/docs/`): every query and
//! audit route of API.md is documented with its method, bearer security, parameters,
//! success and error responses; the documented response schemas are those of the real
//! answers (same field names, same JSON types); and the UI is served from the binary (no
//! network needed).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use domain::{Currency, PriceCents, Product, ProductCommand, ProductName, Sku, StockQuantity};
use eventstore::{AppendRequest, EventMetadata, LoadedStream, NewEvent, StreamWrite, UniqueClaim};
use platform::openapi::check::{contract_routes, dangling_refs, operations};
use platform::Role;
use reqwest::Response;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::support::{assert_problem, at, TestApp};

/// The contract, beside the clone (CI checks out `shared/` next to it).
const API_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/API.md");

/// API.md's query and audit routes, as of this writing.
const QUERY_ROUTES: [(&str, &str); 10] = [
    ("GET", "/v1/products"),
    ("GET", "/v1/products/{id}"),
    ("GET", "/v1/orders"),
    ("GET", "/v1/orders/{id}"),
    ("GET", "/v1/dashboard/sales"),
    ("GET", "/v1/dashboard/top-products"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/streams/{stream_id}/events"),
    ("GET", "/v1/audit/streams/{stream_id}/state"),
    ("GET", "/v1/audit/verify"),
];

/// The routes of API.md's "Query API" tables (its "Audit" tables are a `###` subsection
/// of it; an `## Audit` section would be read too), or the list above when the file is not
/// there.
fn contract() -> BTreeSet<(String, String)> {
    let known: BTreeSet<(String, String)> = QUERY_ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    match std::fs::read_to_string(API_MD) {
        Ok(markdown) => {
            let mut parsed = contract_routes(&markdown, "Query API");
            parsed.extend(contract_routes(&markdown, "Audit"));
            assert!(
                parsed.is_superset(&known),
                "API.md's query and audit tables no longer list {:?} (parsed: {parsed:?})",
                known.difference(&parsed).collect::<Vec<_>>()
            );
            parsed
        }
        Err(error) => {
            eprintln!("warning: cannot read {API_MD} ({error}); checking the built-in list");
            known
        }
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Follows a local `$ref`.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(target) => {
            let pointer = target.strip_prefix('#').expect("a local reference");
            let found = document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{target} is not in the document"));
            resolve(document, found)
        }
        None => value,
    }
}

/// A schema with its `$ref`s followed and its `allOf` merged into one object schema (the
/// union of the parts' properties and required fields).
fn flatten(document: &Value, schema: &Value) -> Value {
    let schema = resolve(document, schema);
    let Some(parts) = schema["allOf"].as_array() else {
        return schema.clone();
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in parts {
        let part = flatten(document, part);
        if let Some(own) = part["properties"].as_object() {
            properties.extend(own.clone());
        }
        required.extend(part["required"].as_array().cloned().unwrap_or_default());
    }
    json!({"type": "object", "properties": properties, "required": required})
}

fn names(values: &Value) -> BTreeSet<String> {
    values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

fn is_of_type(json_type: &str, value: &Value) -> bool {
    match json_type {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown JSON type {other}"),
    }
}

/// Checks a real answer against its documented schema, recursively: every key it has is a
/// documented property and every required property is there; every value has a documented
/// JSON type, is one of the `enum` values, and parses as its `format` (uuid, date-time).
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) {
    // A nullable reference (`oneOf: [{$ref}, {type: null}]`): null, or the referenced schema.
    if let Some(choices) = schema["oneOf"].as_array() {
        if value.is_null() {
            assert!(
                choices.iter().any(|c| c["type"] == "null"),
                "{at}: null is not allowed: {schema}"
            );
            return;
        }
        let Some(referenced) = choices.iter().find(|c| c["type"] != "null") else {
            panic!("{at}: no non-null choice in {schema}");
        };
        return conforms(document, referenced, value, at);
    }
    let schema = flatten(document, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    assert!(!types.is_empty(), "{at}: the schema has no type: {schema}");
    assert!(
        types.iter().any(|t| is_of_type(t, value)),
        "{at}: {value} is not of type {types:?}"
    );
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(
            allowed.contains(value),
            "{at}: {value} is not in {allowed:?}"
        );
    }
    if let Some(text) = value.as_str() {
        match schema["format"].as_str() {
            Some("uuid") => assert!(Uuid::parse_str(text).is_ok(), "{at}: {text}"),
            Some("date-time") => {
                let parsed = chrono::DateTime::parse_from_rfc3339(text);
                assert!(parsed.is_ok(), "{at}: {text}");
            }
            _ => {}
        }
    }
    match value {
        Value::Object(map) if schema["properties"].is_object() => {
            let documented = keys(&schema["properties"]);
            let sent: BTreeSet<String> = map.keys().cloned().collect();
            let undocumented: Vec<_> = sent.difference(&documented).collect();
            assert!(
                undocumented.is_empty(),
                "{at}: undocumented {undocumented:?}"
            );
            let required = names(&schema["required"]);
            let missing: Vec<_> = required.difference(&sent).collect();
            assert!(
                missing.is_empty(),
                "{at}: required but not sent {missing:?}"
            );
            for (key, item) in map {
                conforms(
                    document,
                    &schema["properties"][key],
                    item,
                    &format!("{at}.{key}"),
                );
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                conforms(document, &schema["items"], item, &format!("{at}[{index}]"));
            }
        }
        _ => {}
    }
}

/// The documented schema of the 200 answer of `GET path` in `media_type`, flattened.
fn success_schema(document: &Value, path: &str, media_type: &str) -> Value {
    let ok = resolve(
        document,
        &document["paths"][path]["get"]["responses"]["200"],
    );
    let schema = &ok["content"][media_type]["schema"];
    assert!(schema.is_object(), "GET {path}: no {media_type} 200 body");
    flatten(document, schema)
}

/// The property names of a flattened object schema, checking that each is required (sent
/// in every answer, `null` where not set).
fn always_sent(schema: &Value, what: &str) -> BTreeSet<String> {
    let properties = keys(&schema["properties"]);
    assert_eq!(names(&schema["required"]), properties, "{what}");
    properties
}

/// The `code`s a problem response documents.
fn problem_codes(document: &Value, response: &Value) -> Vec<String> {
    let content = &resolve(document, response)["content"]["application/problem+json"];
    let schema = &content["schema"];
    let parts = schema["allOf"]
        .as_array()
        .expect("ProblemDetails plus its codes");
    assert!(
        parts
            .iter()
            .any(|part| part["$ref"] == "#/components/schemas/ProblemDetails"),
        "{schema}"
    );
    parts
        .iter()
        .filter_map(|part| part["properties"]["code"]["enum"].as_array())
        .flatten()
        .filter_map(|code| code.as_str().map(str::to_owned))
        .collect()
}

async fn fetch_document(app: &TestApp) -> Value {
    let response = app.get_anonymous("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("a JSON document")
}

/// What a route documents beyond what every `/v1` route does.
struct Expected {
    path: &'static str,
    /// Its query parameters.
    query: &'static [&'static str],
    /// Its 200 body's media type.
    media_type: &'static str,
    /// Its 503 codes.
    unavailable: &'static [&'static str],
    /// Whether it answers 404 `not_found`.
    not_found: bool,
}

const DATABASE: &[&str] = &["database_unavailable"];
const ENTITY: &[&str] = &[
    "not_yet_consistent",
    "database_unavailable",
    "unavailable",
    "personal_data_unavailable",
];
const AUDIT: &[&str] = &["database_unavailable", "event_store_not_configured"];
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

const EXPECTED: [Expected; 12] = [
    Expected {
        path: "/v1/products",
        query: &["limit", "cursor"],
        media_type: JSON,
        unavailable: DATABASE,
        not_found: false,
    },
    Expected {
        path: "/v1/products/{id}",
        query: &["min_version"],
        media_type: JSON,
        unavailable: ENTITY,
        not_found: true,
    },
    Expected {
        path: "/v1/orders",
        query: &["status", "customer_id", "limit", "cursor"],
        media_type: JSON,
        unavailable: DATABASE,
        not_found: false,
    },
    Expected {
        path: "/v1/orders/{id}",
        query: &["min_version"],
        media_type: JSON,
        unavailable: ENTITY,
        not_found: true,
    },
    Expected {
        path: "/v1/dashboard/sales",
        query: &["from", "to", "bucket"],
        media_type: JSON,
        unavailable: DATABASE,
        not_found: false,
    },
    Expected {
        path: "/v1/dashboard/top-products",
        query: &["limit"],
        media_type: JSON,
        unavailable: DATABASE,
        not_found: false,
    },
    Expected {
        path: "/v1/audit/events",
        query: &["after", "after_sequence", "limit"],
        media_type: NDJSON,
        unavailable: AUDIT,
        not_found: true,
    },
    Expected {
        path: "/v1/audit/streams/{stream_id}/events",
        query: &[],
        media_type: NDJSON,
        unavailable: AUDIT,
        not_found: true,
    },
    Expected {
        path: "/v1/audit/streams/{stream_id}/state",
        query: &["version", "as_of"],
        media_type: JSON,
        unavailable: AUDIT,
        not_found: true,
    },
    Expected {
        path: "/v1/audit/verify",
        query: &[
            "stream_id",
            "tree_size",
            "root_hash",
            "timestamp",
            "key_id",
            "signature",
        ],
        media_type: JSON,
        unavailable: AUDIT,
        not_found: true,
    },
    Expected {
        path: "/v1/audit/checkpoint",
        query: &[],
        media_type: JSON,
        unavailable: AUDIT,
        not_found: true,
    },
    Expected {
        path: "/v1/audit/public-key",
        query: &[],
        media_type: JSON,
        unavailable: AUDIT,
        not_found: true,
    },
];

#[tokio::test]
async fn the_document_lists_every_query_and_audit_route_of_the_contract() {
    let app = TestApp::spawn().await;
    let document = fetch_document(&app).await;

    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(dangling_refs(&document), Vec::<String>::new());

    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    assert_eq!(scheme["bearerFormat"], "JWT", "{scheme}");

    let documented = operations(&document);
    let routes = contract();
    for route in &routes {
        assert!(documented.contains(route), "{route:?} is not documented");
    }
    for (method, path) in [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")] {
        assert!(documented.contains(&(method.into(), path.into())), "{path}");
        let operation = &document["paths"][path]["get"];
        assert!(operation["security"].is_null(), "{path} needs no token");
    }
    // Nothing but GETs (the query API changes nothing), except the admins' requests on
    // parked streams, which the projector carries out.
    assert!(
        documented.iter().all(|(method, path)| method == "GET"
            || (method == "POST" && path.starts_with("/v1/projections/{name}/parked/"))),
        "{documented:?}"
    );

    for (method, path) in &routes {
        let operation = &document["paths"][path][method.to_lowercase()];
        let at = format!("{method} {path}");
        assert_eq!(operation["security"], json!([{"bearer": []}]), "{at}");
        let description = operation["description"].as_str().unwrap_or_default();
        assert!(
            ["any role", "`admin`", "`auditor`"]
                .iter()
                .any(|role| description.to_lowercase().contains(role)),
            "{at}: the description names no role: {description}"
        );

        let responses = &operation["responses"];
        let ok = resolve(&document, &responses["200"]);
        assert!(
            ok["content"].is_object(),
            "{at}: no 200 body in {responses}"
        );
        assert!(ok["headers"]["Cache-Control"].is_object(), "{at}: {ok}");

        let codes = |status: &str| {
            let response = &responses[status];
            assert!(response.is_object(), "{at}: no {status} in {responses}");
            problem_codes(&document, response)
        };
        assert_eq!(codes("400"), ["invalid_request"], "{at}");
        assert_eq!(codes("401"), ["unauthenticated"], "{at}");
        assert_eq!(codes("403"), ["forbidden"], "{at}");

        let Some(expected) = EXPECTED.iter().find(|e| e.path == path) else {
            continue; // A route API.md gained since: the checks above still hold.
        };
        assert!(
            ok["content"][expected.media_type]["schema"].is_object(),
            "{at}: {ok}"
        );
        assert_eq!(codes("503"), expected.unavailable, "{at}");
        let unavailable = resolve(&document, &responses["503"]);
        assert!(
            unavailable["headers"]["Retry-After"].is_object(),
            "{at}: {unavailable}"
        );
        if expected.not_found {
            assert_eq!(codes("404"), ["not_found"], "{at}");
        } else {
            assert!(responses["404"].is_null(), "{at}");
        }

        let parameters = operation["parameters"].as_array().cloned();
        let parameters = parameters.unwrap_or_default();
        let named = |place: &str| -> BTreeSet<String> {
            parameters
                .iter()
                .filter(|p| p["in"] == place)
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        };
        let query: BTreeSet<String> = expected.query.iter().map(|q| q.to_string()).collect();
        assert_eq!(named("query"), query, "{at}");
        for parameter in &parameters {
            if parameter["in"] == "query" {
                assert_ne!(parameter["required"], true, "{at}: {parameter}");
            }
        }
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(named("path"), in_path, "{at}");
        for parameter in parameters.iter().filter(|p| p["in"] == "path") {
            assert_eq!(parameter["schema"]["format"], "uuid", "{at}: {parameter}");
        }

        // Entities: read-your-writes and conditional requests.
        let entity = expected.query.contains(&"min_version");
        assert_eq!(
            named("header").contains("If-None-Match"),
            entity,
            "{at}: If-None-Match"
        );
        assert_eq!(ok["headers"]["ETag"].is_object(), entity, "{at}: {ok}");
        assert_eq!(responses["304"].is_object(), entity, "{at}");
        if entity {
            let not_modified = resolve(&document, &responses["304"]);
            assert!(not_modified["headers"]["ETag"].is_object(), "{at}");
            assert!(not_modified["content"].is_null(), "{at}: a 304 has no body");
        }

        // Lists: `{"items": [...], "next_cursor": string | null}`.
        if expected.query.contains(&"cursor") {
            let page = success_schema(&document, path, JSON);
            assert_eq!(
                always_sent(&page, path),
                BTreeSet::from(["items".into(), "next_cursor".into()])
            );
            assert_eq!(page["properties"]["items"]["type"], "array", "{at}");
            assert_eq!(
                page["properties"]["next_cursor"]["type"],
                json!(["string", "null"]),
                "{at}"
            );
        }
    }

    // Route-specific errors.
    let state = &document["paths"]["/v1/audit/streams/{stream_id}/state"]["get"]["responses"];
    assert_eq!(
        problem_codes(&document, &state["500"]),
        ["undecodable_event"]
    );
    let export = success_schema(&document, "/v1/audit/events", NDJSON);
    assert_eq!(
        always_sent(&export, "Envelope"),
        [
            "event_id",
            "position",
            "stream_type",
            "stream_id",
            "version",
            "event_type",
            "schema_version",
            "sequence",
            "occurred_at",
            "payload",
            "metadata",
            "prev_hash",
            "hash",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
}

/// Appends a product's creation to the event store, as the command API does.
async fn create_product_event(app: &TestApp, sku: &str) -> Uuid {
    let id = Uuid::now_v7();
    let events = Product::default()
        .decide(ProductCommand::Create {
            sku: Sku::parse(sku).unwrap(),
            name: ProductName::parse(format!("Product {sku}")).unwrap(),
            price: PriceCents::parse(1299).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            initial_stock: StockQuantity::parse(10).unwrap(),
        })
        .unwrap();
    let rows = events
        .iter()
        .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
        .collect();
    app.db
        .store
        .append(AppendRequest {
            streams: vec![StreamWrite::after(
                &LoadedStream::empty(id),
                "product",
                rows,
            )],
            metadata: EventMetadata {
                actor: "root".into(),
                correlation_id: "req-openapi".into(),
                causation_id: None,
                command_id: Uuid::now_v7(),
            },
            occurred_at: Utc::now(),
            claims: vec![UniqueClaim {
                scope: "sku".into(),
                value: sku.into(),
                stream_id: id,
            }],
            idempotency: None,
        })
        .await
        .expect("the append succeeds");
    id
}

/// GETs the NDJSON export `path` until it holds events. The log's horizon is the oldest
/// running transaction of the whole PostgreSQL cluster, so other tests' transactions (in
/// their own databases) may hold a fresh event back from the log export for a while.
async fn ndjson_once_visible(app: &TestApp, path: &str) -> String {
    for _ in 0..6_000 {
        let response = app.get(path, &app.auditor).await;
        assert_eq!(response.status(), 200, "{path}");
        let content_type = header(&response, "content-type").unwrap_or_default();
        assert!(content_type.starts_with(NDJSON), "{path}: {content_type}");
        let body = response.text().await.expect("a body");
        if !body.is_empty() {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path}: no event became visible within a minute");
}

/// GETs `path` and checks its JSON answer against the documented 200 schema of `route`;
/// returns the answer.
async fn checked(app: &TestApp, document: &Value, route: &str, path: &str, token: &str) -> Value {
    let body = app.get_json(path, token).await;
    conforms(
        document,
        &success_schema(document, route, JSON),
        &body,
        &format!("GET {path}"),
    );
    body
}

#[tokio::test]
async fn documented_schemas_are_those_of_the_real_answers() {
    let app = TestApp::spawn().await;
    let document = fetch_document(&app).await;

    // Products: the documented fields are exactly the real ones.
    let product_id = app.insert_product("DOC-1", 10, 3, 4).await;
    let product = checked(
        &app,
        &document,
        "/v1/products/{id}",
        &format!("/v1/products/{product_id}"),
        &app.viewer,
    )
    .await;
    let product_schema = success_schema(&document, "/v1/products/{id}", JSON);
    assert_eq!(always_sent(&product_schema, "Product"), keys(&product));
    let products = checked(&app, &document, "/v1/products", "/v1/products", &app.admin).await;
    let listed = flatten(
        &document,
        &success_schema(&document, "/v1/products", JSON)["properties"]["items"]["items"],
    );
    assert_eq!(
        always_sent(&listed, "listed product"),
        keys(&products["items"][0])
    );

    // Orders: the summary in lists, the detail with its lines.
    let placed = at("2024-05-01T10:00:00.123456Z");
    let order_id = app.insert_order("alice", "placed", placed, 2).await;
    app.execute(
        "UPDATE read_model.orders_v1 SET status = 'paid', payment_ref = 'psp-1', version = 3, \
         refunded_cents = 500, payments = $2, refunds = $3 WHERE id = $1",
        &[
            &order_id,
            &json!([
                {"payment_id": "pi_1", "status": "needs_review", "amount_cents": 3000},
                {"payment_id": "psp-1", "status": "succeeded", "amount_cents": 3098}
            ]),
            &json!([{"refund_id": "re_1", "status": "succeeded", "amount_cents": 500}]),
        ],
    )
    .await;
    let order = checked(
        &app,
        &document,
        "/v1/orders/{id}",
        &format!("/v1/orders/{order_id}"),
        &app.viewer,
    )
    .await;
    let detail = success_schema(&document, "/v1/orders/{id}", JSON);
    assert_eq!(always_sent(&detail, "OrderDetail"), keys(&order));
    let line = flatten(&document, &detail["properties"]["lines"]["items"]);
    assert_eq!(always_sent(&line, "OrderLine"), keys(&order["lines"][0]));
    let payment = flatten(&document, &detail["properties"]["payments"]["items"]);
    assert_eq!(
        always_sent(&payment, "OrderPayment"),
        keys(&order["payments"][0])
    );
    let refund = flatten(&document, &detail["properties"]["refunds"]["items"]);
    assert_eq!(
        always_sent(&refund, "OrderRefund"),
        keys(&order["refunds"][0])
    );
    // The statuses are documented with every value the projector writes.
    let documented =
        |schema: &Value| names(&resolve(&document, &schema["properties"]["status"])["enum"]);
    assert_eq!(
        documented(&payment),
        [
            "canceled",
            "failed",
            "needs_review",
            "requested",
            "succeeded"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    assert_eq!(
        documented(&refund),
        ["failed", "requested", "succeeded"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let customer = app.token("alice", &[Role::Customer]);
    let orders = checked(
        &app,
        &document,
        "/v1/orders",
        "/v1/orders?status=paid",
        &customer,
    )
    .await;
    let summary = flatten(
        &document,
        &success_schema(&document, "/v1/orders", JSON)["properties"]["items"]["items"],
    );
    assert_eq!(
        always_sent(&summary, "OrderSummary"),
        keys(&orders["items"][0])
    );
    // The detail is the summary plus more.
    assert!(keys(&order).is_superset(&keys(&orders["items"][0])));

    // Dashboards.
    app.insert_sales("hour", at("2024-05-01T10:00:00Z"), [3, 2, 5196, 4])
        .await;
    app.insert_top_product(product_id, "DOC-1", 4, 5196).await;
    let sales = checked(
        &app,
        &document,
        "/v1/dashboard/sales",
        "/v1/dashboard/sales?from=2024-05-01T09:00:00Z&to=2024-05-01T12:00:00Z",
        &app.viewer,
    )
    .await;
    assert_eq!(sales["buckets"].as_array().map(Vec::len), Some(3));
    let top = checked(
        &app,
        &document,
        "/v1/dashboard/top-products",
        "/v1/dashboard/top-products",
        &app.viewer,
    )
    .await;
    assert_eq!(top["items"].as_array().map(Vec::len), Some(1));

    // Audit: an NDJSON line is an envelope; state and verification as documented.
    let stream_id = create_product_event(&app, "DOC-1").await;
    let envelope = success_schema(&document, "/v1/audit/events", NDJSON);
    for path in [
        "/v1/audit/events".to_owned(),
        format!("/v1/audit/streams/{stream_id}/events"),
    ] {
        let body = ndjson_once_visible(&app, &path).await;
        for line in body.lines() {
            let line: Value = serde_json::from_str(line).expect("a JSON line");
            conforms(&document, &envelope, &line, &path);
            assert_eq!(always_sent(&envelope, "Envelope"), keys(&line));
            let metadata = flatten(&document, &envelope["properties"]["metadata"]);
            assert_eq!(
                always_sent(&metadata, "EventMetadata"),
                keys(&line["metadata"])
            );
        }
    }
    let state = checked(
        &app,
        &document,
        "/v1/audit/streams/{stream_id}/state",
        &format!("/v1/audit/streams/{stream_id}/state?version=1"),
        &app.auditor,
    )
    .await;
    assert_eq!(state["stream_type"], "product");
    let verification = checked(
        &app,
        &document,
        "/v1/audit/verify",
        "/v1/audit/verify",
        &app.auditor,
    )
    .await;
    assert_eq!(verification["ok"], true, "{verification}");

    // Operations.
    for path in ["/healthz", "/readyz"] {
        let response = app.get_anonymous(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.expect("JSON");
        conforms(
            &document,
            &success_schema(&document, path, JSON),
            &body,
            path,
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = TestApp::spawn().await;

    let response = app.get_anonymous("/docs/").await;
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");

    // `/docs` redirects to `/docs/` (reqwest follows it).
    let response = app.get_anonymous("/docs").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.url().path().ends_with("/docs/"),
        "{}",
        response.url()
    );

    // The UI loads the document from this service, and its assets from the binary.
    let response = app.get_anonymous("/docs/swagger-initializer.js").await;
    assert_eq!(response.status(), 200);
    let script = response.text().await.expect("js");
    assert!(script.contains("\"/openapi.json\""), "{script}");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        let response = app.get_anonymous(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            !response.bytes().await.expect("bytes").is_empty(),
            "{asset}"
        );
    }

    // Unknown files and paths are still 404 problems.
    assert_problem(app.get_anonymous("/docs/nope.js").await, 404, "not_found").await;
    assert_problem(app.get_anonymous("/no/such/path").await, 404, "not_found").await;
}
