//! OpenAPI plumbing shared by the HTTP services: the problem+json schema and responses,
//! the bearer security scheme, and serving a document at `GET /openapi.json` with Swagger
//! UI at `/docs/` (assets compiled in, no network needed).
//!
//! A service describes its handlers with `#[utoipa::path]`, collects them in a
//! `#[derive(utoipa::OpenApi)]` document with `modifiers(&Common)` (imported from here), and
//! mounts it in its `configure` with [`ApiDocs::configure`]:
//!
//! ```ignore
//! #[derive(utoipa::OpenApi)]
//! #[openapi(
//!     paths(routes::things::get, platform::telemetry::metrics_endpoint),
//!     components(responses(ThingGone)),
//!     modifiers(&Common),
//! )]
//! struct ApiDoc;
//!
//! platform::problem_responses! {
//!     /// A thing that is gone.
//!     pub ThingGone => 410, "The thing is gone.", ["gone"];
//! }
//!
//! #[utoipa::path(get, path = "/v1/things/{id}", security(("bearer" = [])),
//!     responses((status = 401, response = platform::openapi::Unauthenticated), ...))]
//! async fn get(...) { ... }
//! ```
//!
//! Every problem response is `application/problem+json` with the [`ProblemDetails`] schema,
//! its `code` restricted to the codes the response lists, and one example per code.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    AllOfBuilder, ContentBuilder, ObjectBuilder, OpenApi, Ref, Response, ResponseBuilder, Type,
};
use utoipa::{Modify, PartialSchema, ToResponse, ToSchema};

pub use crate::problem::ProblemDetails;
use crate::problem::{type_uri, Problem};

/// Re-exported for [`problem_responses!`](crate::problem_responses).
pub use utoipa;

/// The name of the bearer (JWT) security scheme: `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the document is served.
pub const OPENAPI_JSON_PATH: &str = "/openapi.json";

/// Where Swagger UI is served (`/docs` redirects here).
pub const DOCS_PATH: &str = "/docs/";

/// What every Agora document needs: the bearer scheme ([`BEARER`]), the [`ProblemDetails`]
/// schema, and the problem responses common to the `/v1` routes ([`InvalidRequest`],
/// [`Unauthenticated`], [`Forbidden`], [`NotFound`]). Use it as
/// `#[openapi(modifiers(&Common))]` (the attribute takes a plain name, so import it).
pub struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An HS256 JWT with `sub` (the caller's id), `exp` and `roles` \
                         (`admin`, `customer`, `viewer`, `auditor`). Missing, malformed, \
                         expired or wrongly signed: 401; without the route's role: 403.",
                    ))
                    .build(),
            ),
        );
        components.schemas.insert(
            ProblemDetails::name().into_owned(),
            ProblemDetails::schema(),
        );
        for (name, response) in [
            InvalidRequest::response(),
            Unauthenticated::response(),
            Forbidden::response(),
            NotFound::response(),
        ] {
            components.responses.insert(name.to_owned(), response);
        }
    }
}

/// A problem+json response for `status`: the [`ProblemDetails`] schema with `code` one of
/// `codes`, and an example per code. A 503 also documents `Retry-After` (every 503 of
/// Agora sets it).
pub fn problem_response(status: u16, description: &str, codes: &[&str]) -> Response {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.iter().copied()));
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(ProblemDetails::name()))
        .item(ObjectBuilder::new().property("code", code).required("code"));
    let title = actix_web::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let examples = codes.iter().map(|code| {
        let example = ExampleBuilder::new().summary(*code).value(Some(json!({
            "type": type_uri(code),
            "title": title,
            "status": status,
            "detail": example_detail(code),
            "code": code,
        })));
        (*code, example)
    });
    let content = ContentBuilder::new()
        .schema(Some(schema))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    if status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                ))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

/// An illustrative `detail` for an error code of API.md (the real text says what was wrong
/// with the request at hand).
fn example_detail(code: &str) -> String {
    const PRODUCT: &str = "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37";
    match code {
        "invalid_request" => "sku: may only contain the characters A-Z a-z 0-9 - _".into(),
        "unauthenticated" => "missing Authorization: Bearer <token>".into(),
        "forbidden" => "this needs one of the roles: admin".into(),
        "not_found" => format!("product {PRODUCT} not found"),
        "sku_taken" => "sku \"A-1\" is already taken".into(),
        "version_mismatch" => "If-Match names version 2, but the current version is 3".into(),
        "insufficient_stock" => {
            format!("insufficient stock for product {PRODUCT}: 5 requested, 2 available")
        }
        "unknown_product" => format!("unknown product {PRODUCT}"),
        "product_discontinued" => {
            format!("product {PRODUCT} is discontinued and cannot be ordered")
        }
        "currency_mismatch" => format!(
            "all products of an order must have the same currency: the order is in EUR, \
             but product {PRODUCT} is priced in USD"
        ),
        "invalid_state" => "order is shipped; only a placed or paid order can be cancelled".into(),
        "amount_mismatch" => {
            "the payment must be exactly the order total: 2598 (minor units) EUR".into()
        }
        "idempotency_key_reused" => "this Idempotency-Key was used with a different request".into(),
        "unavailable" => "the event store is unavailable; retry shortly".into(),
        "contention" => "too many concurrent writers on these streams; retry".into(),
        "not_yet_consistent" => "the read model has not reached version 4 yet".into(),
        other => format!("What went wrong (`{other}`)."),
    }
}

/// Declares reusable problem+json responses (each a unit struct implementing
/// `utoipa::ToResponse`, named after the struct in `#/components/responses`):
///
/// ```ignore
/// platform::problem_responses! {
///     /// 409 `sku_taken`.
///     pub SkuTaken => 409, "A product with that SKU exists.", ["sku_taken"];
/// }
/// ```
///
/// Use them as `(status = 409, response = SkuTaken)` in `#[utoipa::path]` and register
/// them with `#[openapi(components(responses(SkuTaken)))]`.
#[macro_export]
macro_rules! problem_responses {
    ($(
        $(#[$meta:meta])*
        $vis:vis $name:ident => $status:literal, $description:expr, [$($code:literal),+ $(,)?];
    )+) => {$(
        $(#[$meta])*
        $vis struct $name;

        impl<'r> $crate::openapi::utoipa::ToResponse<'r> for $name {
            fn response() -> (
                &'r str,
                $crate::openapi::utoipa::openapi::RefOr<
                    $crate::openapi::utoipa::openapi::Response,
                >,
            ) {
                (
                    stringify!($name),
                    $crate::openapi::problem_response($status, $description, &[$($code),+])
                        .into(),
                )
            }
        }
    )+};
}

crate::problem_responses! {
    /// 400 `invalid_request`.
    pub InvalidRequest => 400,
        "Malformed JSON, wrong types, out-of-range, missing or unknown fields, a bad UUID in \
         the path or query, or a malformed header.",
        ["invalid_request"];
    /// 401 `unauthenticated`.
    pub Unauthenticated => 401,
        "No token, or a malformed, expired or wrongly signed one.",
        ["unauthenticated"];
    /// 403 `forbidden`.
    pub Forbidden => 403, "The token lacks the role this needs.", ["forbidden"];
    /// 404 `not_found`.
    pub NotFound => 404,
        "No such resource, or not visible to this caller.",
        ["not_found"];
}

/// A document ready to serve: its JSON (serialized once) and the Swagger UI settings.
#[derive(Clone)]
pub struct ApiDocs {
    json: web::Bytes,
    swagger: Arc<utoipa_swagger_ui::Config<'static>>,
}

impl ApiDocs {
    /// Serializes `openapi` and points Swagger UI at [`OPENAPI_JSON_PATH`].
    pub fn new(openapi: &OpenApi) -> Self {
        let json = serde_json::to_vec(openapi).expect("an OpenAPI document serializes");
        let swagger = utoipa_swagger_ui::Config::new([OPENAPI_JSON_PATH])
            .persist_authorization(true)
            .display_request_duration(true);
        ApiDocs {
            json: web::Bytes::from(json),
            swagger: Arc::new(swagger),
        }
    }

    /// The document as served.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// Mounts `GET /openapi.json`, `GET /docs` (a redirect to `/docs/`) and Swagger UI's
    /// files under `/docs/`. No token needed; an unknown file under `/docs/` is a 404
    /// problem.
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        let docs = web::Data::new(self.clone());
        config
            .service(
                web::resource(OPENAPI_JSON_PATH)
                    .app_data(docs.clone())
                    .route(web::get().to(openapi_json)),
            )
            .service(web::resource("/docs").route(web::get().to(redirect_to_docs)))
            .service(
                web::resource("/docs/{file:.*}")
                    .app_data(docs)
                    .route(web::get().to(swagger_file)),
            );
    }
}

async fn openapi_json(docs: web::Data<ApiDocs>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(docs.json.clone())
}

async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, DOCS_PATH))
        .finish()
}

async fn swagger_file(
    docs: web::Data<ApiDocs>,
    file: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let file = file.into_inner();
    match utoipa_swagger_ui::serve(&file, docs.swagger.clone()) {
        Ok(Some(found)) => {
            let mut response = HttpResponse::Ok();
            response.content_type(found.content_type);
            if found.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            Ok(response.body(found.bytes.into_owned()))
        }
        Ok(None) => Err(Problem::not_found(format!("no file /docs/{file}"))),
        Err(error) => Err(Problem::internal(error)),
    }
}

/// Checks for tests: which routes a contract lists, which operations a document has, and
/// whether its references resolve.
pub mod check {
    use super::*;

    /// The routes (`("POST", "/v1/orders")`, query strings dropped) in the first column of
    /// the tables under the `## <section>` heading of a Markdown contract (API.md), up to
    /// the next `## ` heading. A cell may hold several backticked routes.
    pub fn contract_routes(markdown: &str, section: &str) -> BTreeSet<(String, String)> {
        let heading = format!("## {section}");
        let mut routes = BTreeSet::new();
        let mut inside = false;
        for line in markdown.lines() {
            let line = line.trim();
            if line.starts_with("## ") {
                inside = line == heading;
                continue;
            }
            if !inside || !line.starts_with('|') {
                continue;
            }
            let Some(first_cell) = cells(line).into_iter().next() else {
                continue;
            };
            for span in first_cell.split('`').skip(1).step_by(2) {
                let Some((method, target)) = span.split_once(' ') else {
                    continue;
                };
                let known = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
                if known.contains(&method) && target.starts_with('/') {
                    let path = target.split('?').next().unwrap_or(target).trim();
                    routes.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        routes
    }

    /// The cells of a Markdown table row; `\|` is a literal bar, not a separator.
    fn cells(row: &str) -> Vec<String> {
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut chars = row.trim().trim_start_matches('|').chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'|') => {
                    cell.push('|');
                    chars.next();
                }
                '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
                other => cell.push(other),
            }
        }
        if !cell.trim().is_empty() {
            cells.push(cell.trim().to_owned());
        }
        cells
    }

    /// The operations of an OpenAPI document as `("POST", "/v1/orders")`.
    pub fn operations(document: &Value) -> BTreeSet<(String, String)> {
        let methods = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, item)| {
                methods
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect()
    }

    /// Every local `$ref` (`#/components/...`) that names nothing in the document.
    pub fn dangling_refs(document: &Value) -> Vec<String> {
        fn walk(value: &Value, document: &Value, dangling: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let resolved = target
                            .strip_prefix('#')
                            .and_then(|pointer| document.pointer(pointer));
                        if resolved.is_none() {
                            dangling.push(target.clone());
                        }
                    }
                    map.values().for_each(|v| walk(v, document, dangling));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, document, dangling)),
                _ => {}
            }
        }
        let mut dangling = Vec::new();
        walk(document, document, &mut dangling);
        dangling.sort();
        dangling.dedup();
        dangling
    }
}

#[cfg(test)]
mod tests {
    use super::check::*;
    use super::*;

    const CONTRACT: &str = "\
# Contract

## Command API
| method and path | body | success |
|---|---|---|
| `POST /v1/things` | `{\"a\": 1}` | 201 |

### Sub
| method and path | roles |
|---|---|
| `POST /v1/things/{id}/poke` | `admin` |

## Query API
| method and path | returns |
|---|---|
| `GET /v1/things`, `GET /v1/things/{id}` | a thing |
| `GET /v1/stats?from=&bucket=hour\\|day` | `{\"x\"}` |
| `GET /v1/x/{id}/state?version=N` or `?as_of=<t>` | state |
";

    fn routes(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        list.iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn contract_routes_come_from_the_first_column_of_the_section() {
        assert_eq!(
            contract_routes(CONTRACT, "Command API"),
            routes(&[("POST", "/v1/things"), ("POST", "/v1/things/{id}/poke")])
        );
        assert_eq!(
            contract_routes(CONTRACT, "Query API"),
            routes(&[
                ("GET", "/v1/things"),
                ("GET", "/v1/things/{id}"),
                ("GET", "/v1/stats"),
                ("GET", "/v1/x/{id}/state"),
            ])
        );
        assert!(contract_routes(CONTRACT, "Nothing").is_empty());
    }

    #[test]
    fn common_parts_resolve() {
        let mut openapi = OpenApi::default();
        Common.modify(&mut openapi);
        let unavailable = problem_response(503, "busy", &["unavailable"]);
        openapi
            .components
            .as_mut()
            .expect("components")
            .responses
            .insert("Busy".into(), unavailable.into());
        let document = serde_json::to_value(&openapi).expect("json");
        assert!(dangling_refs(&document).is_empty(), "{document}");
        let scheme = &document["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
        let busy = &document["components"]["responses"]["Busy"];
        assert!(busy["headers"]["Retry-After"].is_object(), "{busy}");
        let content = &busy["content"][PROBLEM_JSON];
        assert_eq!(
            content["schema"]["allOf"][1]["properties"]["code"]["enum"],
            json!(["unavailable"])
        );
        assert_eq!(content["examples"]["unavailable"]["value"]["status"], 503);
        let unauthenticated = &document["components"]["responses"]["Unauthenticated"];
        assert_eq!(
            unauthenticated["content"][PROBLEM_JSON]["examples"]["unauthenticated"]["value"]
                ["type"],
            "https://agora.dev/problems/unauthenticated"
        );
        let dangling = json!({"a": {"$ref": "#/components/schemas/Nope"}});
        assert_eq!(dangling_refs(&dangling), vec!["#/components/schemas/Nope"]);
    }
}
