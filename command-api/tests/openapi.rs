//! The OpenAPI document (`GET /openapi.json`) and Swagger UI (`/docs/`): every command route
//! of API.md is documented with its method, bearer security, success status and error
//! responses, and the UI is served from the binary (no network needed).

mod support;

use std::collections::BTreeSet;

use platform::openapi::check::{contract_routes, dangling_refs, operations};
use serde_json::{json, Value};
use support::{assert_problem, body_of, header, TestApp};

/// The contract, beside the clone (CI checks out `shared/` next to it).
const API_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/API.md");

/// API.md's command routes, as of this writing.
const COMMAND_ROUTES: [(&str, &str); 8] = [
    ("POST", "/v1/products"),
    ("POST", "/v1/products/{id}/price"),
    ("POST", "/v1/products/{id}/restock"),
    ("POST", "/v1/products/{id}/discontinue"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/{id}/pay"),
    ("POST", "/v1/orders/{id}/ship"),
    ("POST", "/v1/orders/{id}/cancel"),
];

/// The command routes of API.md's "Command API" tables, or the list above when the file is
/// not there.
fn contract() -> BTreeSet<(String, String)> {
    let known: BTreeSet<(String, String)> = COMMAND_ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    match std::fs::read_to_string(API_MD) {
        Ok(markdown) => {
            let parsed = contract_routes(&markdown, "Command API");
            assert!(
                parsed.is_superset(&known),
                "API.md's command tables no longer list {:?} (parsed: {parsed:?})",
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
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    body_of(response).await
}

#[tokio::test]
async fn the_document_lists_every_command_route_of_the_contract() {
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
    }

    for (method, path) in &routes {
        let operation = &document["paths"][path][method.to_lowercase()];
        let at = format!("{method} {path}");
        assert_eq!(operation["security"], json!([{"bearer": []}]), "{at}");

        // Creates (a POST to a collection) answer 201 with Location; the rest 200.
        let creates = !path.contains('{');
        let success = if creates { "201" } else { "200" };
        let responses = &operation["responses"];
        let ok = resolve(&document, &responses[success]);
        assert!(ok.is_object(), "{at}: no {success} in {responses}");
        assert!(ok["headers"]["ETag"].is_object(), "{at}: {ok}");
        assert_eq!(ok["headers"]["Location"].is_object(), creates, "{at}: {ok}");
        let body = resolve(&document, &ok["content"]["application/json"]["schema"]);
        assert_eq!(
            body["required"],
            json!(["id", "version", "position"]),
            "{at}"
        );

        let parameters: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["If-Match", "Idempotency-Key", "X-Correlation-Id"] {
            assert!(parameters.contains(name), "{at}: no {name} header");
        }
        let request = resolve(
            &document,
            &operation["requestBody"]["content"]["application/json"]["schema"],
        );
        assert_eq!(request["additionalProperties"], false, "{at}: {request}");

        let codes = |status: &str| {
            let response = &responses[status];
            assert!(response.is_object(), "{at}: no {status} in {responses}");
            problem_codes(&document, response)
        };
        assert_eq!(codes("400"), ["invalid_request"], "{at}");
        assert_eq!(codes("401"), ["unauthenticated"], "{at}");
        assert_eq!(codes("403"), ["forbidden"], "{at}");
        assert_eq!(codes("412"), ["version_mismatch"], "{at}");
        assert!(
            codes("422").contains(&"idempotency_key_reused".into()),
            "{at}"
        );
        assert!(codes("503").contains(&"unavailable".into()), "{at}");
        if !creates {
            assert_eq!(codes("404"), ["not_found"], "{at}");
        }
    }

    let responses_of = |path: &str| &document["paths"][path]["post"]["responses"];
    assert_eq!(
        problem_codes(&document, &responses_of("/v1/products")["409"]),
        ["sku_taken"]
    );
    let place = problem_codes(&document, &responses_of("/v1/orders")["422"]);
    for code in [
        "insufficient_stock",
        "unknown_product",
        "product_discontinued",
        "currency_mismatch",
    ] {
        assert!(place.iter().any(|c| c == code), "{code} in {place:?}");
    }
    let pay = problem_codes(&document, &responses_of("/v1/orders/{id}/pay")["422"]);
    assert!(pay.iter().any(|c| c == "amount_mismatch"), "{pay:?}");
    for path in [
        "/v1/products/{id}/discontinue",
        "/v1/orders/{id}/pay",
        "/v1/orders/{id}/ship",
        "/v1/orders/{id}/cancel",
    ] {
        let codes = problem_codes(&document, &responses_of(path)["422"]);
        assert!(
            codes.iter().any(|c| c == "invalid_state"),
            "{path}: {codes:?}"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = TestApp::spawn().await;

    let response = app.get("/docs/").await;
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");

    // `/docs` redirects to `/docs/` (reqwest follows it).
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.url().path().ends_with("/docs/"),
        "{}",
        response.url()
    );

    // The UI loads the document from this service, and its assets from the binary.
    let response = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(response.status(), 200);
    let script = response.text().await.expect("js");
    assert!(script.contains("\"/openapi.json\""), "{script}");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        let response = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            !response.bytes().await.expect("bytes").is_empty(),
            "{asset}"
        );
    }

    // Unknown files and paths are still 404 problems.
    assert_problem(app.get("/docs/nope.js").await, 404, "not_found").await;
    assert_problem(app.get("/no/such/path").await, 404, "not_found").await;
}
