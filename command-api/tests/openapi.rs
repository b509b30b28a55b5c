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

/// API.md's payment routes (its third wave, served by the command API), as of this
/// writing: method, path, whether a bearer token is needed, and the success status.
const PAYMENT_ROUTES: [(&str, &str, bool, &str); 5] = [
    ("POST", "/v1/orders/{id}/payment", true, "200"),
    ("POST", "/v1/orders/{id}/payment/confirm", true, "200"),
    ("POST", "/v1/orders/{id}/pay", true, "200"),
    ("POST", "/v1/orders/{id}/refunds", true, "202"),
    ("POST", "/v1/payments/stripe/webhook", false, "200"),
];

/// The section of API.md that lists the payment routes.
const PAYMENTS_SECTION: &str = "Additions (third wave): fixed like everything above";

/// The command routes of API.md's "Command API" tables, or the list above when the file is
/// not there.
fn contract() -> BTreeSet<(String, String)> {
    routes_of("Command API", COMMAND_ROUTES.iter().copied())
}

/// The routes of API.md's section `section`, checked to include `known`; `known` alone when
/// the file is not there.
fn routes_of<'a>(
    section: &str,
    known: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeSet<(String, String)> {
    let known: BTreeSet<(String, String)> = known
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    match std::fs::read_to_string(API_MD) {
        Ok(markdown) => {
            let parsed = contract_routes(&markdown, section);
            assert!(
                parsed.is_superset(&known),
                "API.md's {section:?} tables no longer list {:?} (parsed: {parsed:?})",
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
    for code in ["amount_mismatch", "invalid_state"] {
        assert!(pay.iter().any(|c| c == code), "{code} in {pay:?}");
    }
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
async fn the_document_lists_the_payment_routes() {
    let app = TestApp::spawn().await;
    let document = fetch_document(&app).await;
    let documented = operations(&document);
    let routes = routes_of(
        PAYMENTS_SECTION,
        PAYMENT_ROUTES
            .iter()
            .map(|(method, path, _, _)| (*method, *path)),
    );
    for (method, path, bearer, success) in PAYMENT_ROUTES {
        let route = (method.to_owned(), path.to_owned());
        assert!(
            routes.contains(&route) && documented.contains(&route),
            "{route:?} is not documented"
        );
        let operation = &document["paths"][path][method.to_lowercase()];
        let at = format!("{method} {path}");
        let responses = &operation["responses"];
        let codes = |status: &str| {
            let response = &responses[status];
            assert!(response.is_object(), "{at}: no {status} in {responses}");
            problem_codes(&document, response)
        };
        assert!(
            resolve(&document, &responses[success]).is_object(),
            "{at}: no {success} in {responses}"
        );
        assert_eq!(codes("400"), ["invalid_request"], "{at}");
        assert!(codes("503").contains(&"unavailable".into()), "{at}");
        if !bearer {
            // The provider's webhook: no token, its signature is the credential.
            assert!(operation["security"].is_null(), "{at}: {operation}");
            assert!(responses["401"].is_null(), "{at}: {responses}");
            assert!(operation["requestBody"].is_object(), "{at}");
            continue;
        }
        assert_eq!(operation["security"], json!([{"bearer": []}]), "{at}");
        assert_eq!(codes("401"), ["unauthenticated"], "{at}");
        // Who may not is told so: a customer on /pay, /payment/confirm and /refunds.
        assert_eq!(codes("403"), ["forbidden"], "{at}");
        assert_eq!(codes("404"), ["not_found"], "{at}");
        let request = resolve(
            &document,
            &operation["requestBody"]["content"]["application/json"]["schema"],
        );
        assert_eq!(request["additionalProperties"], false, "{at}: {request}");
    }

    let operation_of = |path: &str| &document["paths"][path]["post"];
    let body_of_response = |path: &str, status: &str| {
        let response = resolve(&document, &operation_of(path)["responses"][status]);
        resolve(
            &document,
            &response["content"]["application/json"]["schema"],
        )
        .clone()
    };
    let codes_of = |path: &str| problem_codes(&document, &operation_of(path)["responses"]["422"]);

    // The checkout answers the payment to complete at the provider.
    let checkout = "/v1/orders/{id}/payment";
    assert_eq!(
        body_of_response(checkout, "200")["required"],
        json!([
            "provider",
            "payment_id",
            "client_secret",
            "amount_cents",
            "currency",
            "status"
        ])
    );
    let refused = codes_of(checkout);
    for code in ["invalid_state", "payment_provider_refused"] {
        assert!(refused.iter().any(|c| c == code), "{code} in {refused:?}");
    }

    // The confirmation is a command like the others: Applied with an ETag.
    let confirm = "/v1/orders/{id}/payment/confirm";
    let applied = resolve(&document, &operation_of(confirm)["responses"]["200"]);
    assert!(applied["headers"]["ETag"].is_object(), "{applied}");
    assert_eq!(
        body_of_response(confirm, "200")["required"],
        json!(["id", "version", "position"])
    );
    assert!(codes_of(confirm).iter().any(|c| c == "invalid_state"));

    // A refund is accepted (202) with the provider's refund id; never more than was paid.
    let refunds = "/v1/orders/{id}/refunds";
    assert_eq!(
        body_of_response(refunds, "202")["required"],
        json!(["refund_id", "status"])
    );
    let request = resolve(
        &document,
        &operation_of(refunds)["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(
        request["required"],
        json!(["amount_cents", "reason"]),
        "{request}"
    );
    let refused = codes_of(refunds);
    for code in ["refund_exceeds_payment", "payment_provider_refused"] {
        assert!(refused.iter().any(|c| c == code), "{code} in {refused:?}");
    }

    // An offline payment needs its reason.
    let pay = "/v1/orders/{id}/pay";
    let request = resolve(
        &document,
        &operation_of(pay)["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(
        request["required"],
        json!(["amount_cents", "currency", "payment_ref", "reason"]),
        "{request}"
    );
    assert_eq!(request["properties"]["reason"]["minLength"], 1, "{request}");
    assert_eq!(
        request["properties"]["reason"]["maxLength"], 500,
        "{request}"
    );
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
