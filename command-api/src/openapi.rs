//! The command API's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations and the request types, served at `GET /openapi.json` with Swagger UI at
//! `/docs/`.

use std::sync::OnceLock;

use platform::openapi::{ApiDocs, Common};
use utoipa::{IntoParams, OpenApi, ToResponse};

use crate::execution::CommandAccepted;
use crate::requests;
use crate::routes::{customers, emails, health, orders, payments, products, webhooks};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agora command API",
        description = "Commands of the Agora shop: each one is authenticated (bearer JWT), \
            validated, optionally idempotent (`Idempotency-Key`) and conditional (`If-Match`), \
            and answers the new version of the stream it names and the global position of \
            its last event. Errors are `application/problem+json` (RFC 9457) with a \
            machine-readable `code`. Reads are the query API's.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        products::create,
        products::change_price,
        products::restock,
        products::discontinue,
        orders::place,
        orders::pay,
        orders::ship,
        orders::cancel,
        payments::checkout,
        payments::confirm,
        payments::refund,
        payments::stripe_webhook,
        customers::set_profile,
        customers::erase,
        emails::list,
        emails::retry,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::retry,
        health::healthz,
        health::readyz,
        platform::telemetry::metrics_endpoint,
    ),
    components(
        schemas(CommandAccepted, requests::OrderLine, requests::Address, health::Health,
                crate::reactors::ReactorReport),
        responses(
            Created,
            Applied,
            SkuTaken,
            VersionMismatch,
            Unavailable,
            CreateProductRefused,
            ChangePriceRefused,
            RestockRefused,
            DiscontinueRefused,
            PlaceOrderRefused,
            PayOrderRefused,
            ShipOrderRefused,
            CancelOrderRefused,
            CheckoutRefused,
            ConfirmPaymentRefused,
            RefundRefused,
            SetProfileRefused,
            EraseRefused,
        )
    ),
    modifiers(&Common),
    tags(
        (name = "products", description = "Product commands (role `admin`)."),
        (name = "orders", description = "Order commands."),
        (name = "payments", description = "Payments through the payment provider, its webhook, refunds."),
        (name = "customers", description = "Customers' personal data, sealed per customer, and its erasure."),
        (name = "emails", description = "The transactional email ledger (role `admin`)."),
        (name = "webhooks", description = "Webhook subscriptions and deliveries (role `admin`)."),
        (name = "operations", description = "Health, readiness and metrics (no token)."),
    )
)]
pub struct ApiDoc;

/// The document, built and serialized once.
pub fn docs() -> &'static ApiDocs {
    static DOCS: OnceLock<ApiDocs> = OnceLock::new();
    DOCS.get_or_init(|| ApiDocs::new(&ApiDoc::openapi()))
}

/// The headers every command accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct CommandHeaders {
    /// Apply only if the target stream is at exactly this version (quotes optional, a `W/`
    /// prefix is ignored), else 412 `version_mismatch`. A stream that does not exist yet is
    /// at version 0. Without it, concurrent writers are serialized by retrying; no update is
    /// lost.
    #[param(
        rename = "If-Match",
        value_type = String,
        required = false,
        pattern = r#"^(W/)?("[0-9]+"|[0-9]+)$"#,
        example = "\"3\""
    )]
    if_match: Option<String>,
    /// A repeat with the same key, caller and body within 24 h answers the first response
    /// (same status and body, `Idempotent-Replayed: true`) and appends nothing; the same key
    /// with a different body is 422 `idempotency_key_reused`.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255,
        pattern = r"^[\x21-\x7E]+$",
        example = "3f0c2a51-order-42"
    )]
    idempotency_key: Option<String>,
    /// Recorded in the events' metadata and echoed in the response when it is 1 to 200
    /// visible ASCII characters; otherwise (or when absent) a new one is generated.
    #[param(
        rename = "X-Correlation-Id",
        value_type = String,
        required = false,
        example = "req-7d1f"
    )]
    correlation_id: Option<String>,
}

/// The command was applied and created the stream.
#[derive(ToResponse)]
#[response(
    description = "Created: the new stream's id and version, and the global position of the \
                   command's last event.",
    headers(
        ("Location" = String, description = "The created resource, `/v1/<collection>/{id}`."),
        ("ETag" = String, description = "The new version, quoted: `\"1\"`."),
        ("X-Correlation-Id" = String, description = "The request's correlation id."),
        ("Idempotent-Replayed" = String,
         description = "`true` when this is the stored answer to a repeated `Idempotency-Key`.")
    )
)]
#[allow(dead_code)]
pub struct Created(CommandAccepted);

/// The command was applied to an existing stream.
#[derive(ToResponse)]
#[response(
    description = "Applied: the stream's id and new version, and the global position of the \
                   command's last event.",
    headers(
        ("ETag" = String, description = "The new version, quoted: `\"3\"`."),
        ("X-Correlation-Id" = String, description = "The request's correlation id."),
        ("Idempotent-Replayed" = String,
         description = "`true` when this is the stored answer to a repeated `Idempotency-Key`.")
    )
)]
#[allow(dead_code)]
pub struct Applied(CommandAccepted);

platform::problem_responses! {
    /// 409 `sku_taken`.
    pub SkuTaken => 409, "A product with that SKU exists.", ["sku_taken"];
    /// 412 `version_mismatch`.
    pub VersionMismatch => 412,
        "`If-Match` names a version the target stream is not at; nothing was appended.",
        ["version_mismatch"];
    /// 503: the event store is unreachable, or too many writers raced on these streams.
    pub Unavailable => 503,
        "The event store is unavailable (`unavailable`), too many concurrent writers \
         raced on these streams (`contention`), or personal data cannot be sealed now \
         (`personal_data_unavailable`: no `AGORA_PII_KEY`, or a key that does not unwrap); \
         nothing was appended. Retry after `Retry-After` seconds.",
        ["unavailable", "contention", "personal_data_unavailable"];
    /// 422 of `POST /v1/products`.
    pub CreateProductRefused => 422,
        "Refused; nothing was appended.",
        ["idempotency_key_reused"];
    /// 422 of `POST /v1/products/{id}/price`.
    pub ChangePriceRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the product is discontinued.",
        ["invalid_state", "idempotency_key_reused"];
    /// 422 of `POST /v1/products/{id}/restock`.
    pub RestockRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the product is discontinued, or \
         more than 1,000,000,000 units would be on hand.",
        ["invalid_state", "idempotency_key_reused"];
    /// 422 of `POST /v1/products/{id}/discontinue`.
    pub DiscontinueRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the product is already \
         discontinued.",
        ["invalid_state", "idempotency_key_reused"];
    /// 422 of `POST /v1/orders`.
    pub PlaceOrderRefused => 422,
        "Refused; neither the order nor any reservation was appended. \
         `too_many_open_orders`: the customer already holds \
         `AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER` orders in `placed`; `customer_erased`: a \
         shipping address was given for a customer whose personal data was erased.",
        [
            "too_many_open_orders",
            "insufficient_stock",
            "unknown_product",
            "product_discontinued",
            "currency_mismatch",
            "customer_erased",
            "idempotency_key_reused",
        ];
    /// 422 of `PUT /v1/me`.
    pub SetProfileRefused => 422,
        "Refused; nothing was appended. `customer_erased`: this customer's personal data \
         was erased.",
        ["customer_erased", "idempotency_key_reused"];
    /// 422 of `POST /v1/customers/{id}/erasure`.
    pub EraseRefused => 422,
        "Refused; nothing was appended.",
        ["idempotency_key_reused"];
    /// 422 of `POST /v1/orders/{id}/pay`.
    pub PayOrderRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the order is not `placed`; \
         `amount_mismatch`: amount or currency differ from the order total.",
        ["invalid_state", "amount_mismatch", "idempotency_key_reused"];
    /// 422 of `POST /v1/orders/{id}/ship`.
    pub ShipOrderRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the order is not `paid`.",
        ["invalid_state", "idempotency_key_reused"];
    /// 422 of `POST /v1/orders/{id}/cancel`.
    pub CancelOrderRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the order is `shipped` or already \
         `cancelled`; `payment_provider_refused`: the provider refused the refund of a paid \
         order.",
        ["invalid_state", "payment_provider_refused", "idempotency_key_reused"];
    /// 422 of `POST /v1/orders/{id}/payment`.
    pub CheckoutRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the order is not `placed`; \
         `payment_provider_refused`: the provider refused the payment.",
        ["invalid_state", "payment_provider_refused"];
    /// 422 of `POST /v1/orders/{id}/payment/confirm`.
    pub ConfirmPaymentRefused => 422,
        "Refused; nothing was appended. `invalid_state`: the order has no open payment.",
        ["invalid_state", "idempotency_key_reused"];
    /// 422 of `POST /v1/orders/{id}/refunds`.
    pub RefundRefused => 422,
        "Refused; nothing was appended. `refund_exceeds_payment`: more than was paid minus \
         what was refunded; `payment_provider_refused`: the provider refused the refund.",
        ["refund_exceeds_payment", "payment_provider_refused"];
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};
    use uuid::Uuid;

    use super::*;

    fn document() -> Value {
        serde_json::from_slice(docs().json()).expect("the document is JSON")
    }

    /// Whether `body` deserializes as `T`, the way the handlers parse it.
    fn accepts<T: DeserializeOwned>(body: &Value) -> bool {
        serde_json::from_value::<T>(body.clone()).is_ok()
    }

    /// `count` order lines with distinct products.
    fn lines(count: usize) -> Value {
        (0..count)
            .map(|n| json!({"product_id": Uuid::from_u128(n as u128 + 1), "quantity": 1}))
            .collect()
    }

    /// Checks the schema `name` against the type the server parses: its example is
    /// accepted; each bound is accepted and one past it refused; a missing required field
    /// and an unknown field are refused; an optional field may be left out.
    fn schema_matches<T: DeserializeOwned>(document: &Value, name: &str) {
        let schema = &document["components"]["schemas"][name];
        let example = &schema["example"];
        assert!(accepts::<T>(example), "{name}: its example {example}");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (field, property) in &properties {
            let with = |value: Value| {
                let mut body = example.clone();
                body[field] = value;
                accepts::<T>(&body)
            };
            let at = |what: &str| format!("{name}.{field} {what}: {property}");
            if let Some(min) = property["minimum"].as_i64() {
                assert!(with(json!(min)), "{}", at("minimum"));
                assert!(!with(json!(min - 1)), "{}", at("below minimum"));
            }
            if let Some(max) = property["maximum"].as_i64() {
                assert!(with(json!(max)), "{}", at("maximum"));
                assert!(!with(json!(max + 1)), "{}", at("above maximum"));
            }
            // "A" repeated fits every documented pattern.
            if let Some(min) = property["minLength"].as_u64() {
                assert!(with(json!("A".repeat(min as usize))), "{}", at("minLength"));
                if min > 0 {
                    let short = "A".repeat(min as usize - 1);
                    assert!(!with(json!(short)), "{}", at("below minLength"));
                }
            }
            if let Some(max) = property["maxLength"].as_u64() {
                assert!(with(json!("A".repeat(max as usize))), "{}", at("maxLength"));
                let long = "A".repeat(max as usize + 1);
                assert!(!with(json!(long)), "{}", at("above maxLength"));
            }
            if let Some(min) = property["minItems"].as_u64() {
                assert!(with(lines(min as usize)), "{}", at("minItems"));
                assert!(!with(lines(min as usize - 1)), "{}", at("below minItems"));
            }
            if let Some(max) = property["maxItems"].as_u64() {
                assert!(with(lines(max as usize)), "{}", at("maxItems"));
                assert!(!with(lines(max as usize + 1)), "{}", at("above maxItems"));
            }
            if property["type"] == json!(["string", "null"]) {
                assert!(with(Value::Null), "{}", at("null"));
            }
            let mut without = example.clone();
            without.as_object_mut().expect("an object").remove(field);
            let is_required = required.contains(&field.as_str());
            assert_eq!(
                accepts::<T>(&without),
                !is_required,
                "{}",
                at("left out (required: {is_required})")
            );
        }
        assert_eq!(schema["additionalProperties"], false, "{name}");
        let mut unknown = example.clone();
        unknown["surprise"] = json!(1);
        assert!(!accepts::<T>(&unknown), "{name}: an unknown field");
    }

    #[test]
    fn request_schemas_match_what_the_server_accepts() {
        let document = document();
        schema_matches::<requests::CreateProduct>(&document, "CreateProduct");
        schema_matches::<requests::ChangePrice>(&document, "ChangePrice");
        schema_matches::<requests::Restock>(&document, "Restock");
        schema_matches::<requests::Discontinue>(&document, "Discontinue");
        schema_matches::<requests::PlaceOrder>(&document, "PlaceOrder");
        schema_matches::<domain::LineItem>(&document, "OrderLine");
        schema_matches::<requests::PayOrder>(&document, "PayOrder");
        schema_matches::<requests::ShipOrder>(&document, "ShipOrder");
        schema_matches::<requests::CancelOrder>(&document, "CancelOrder");
    }

    #[test]
    fn documented_patterns_refuse_what_the_server_refuses() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["CreateProduct"]["properties"]["sku"]["pattern"],
            "^[A-Za-z0-9_-]+$"
        );
        assert_eq!(
            schemas["CreateProduct"]["properties"]["currency"]["pattern"],
            "^[A-Z]{3}$"
        );
        assert_eq!(
            schemas["PayOrder"]["properties"]["currency"]["pattern"],
            "^[A-Z]{3}$"
        );
        fn product(sku: &str, currency: &str) -> Value {
            json!({"sku": sku, "name": "Mug", "price_cents": 1, "currency": currency})
        }
        assert!(accepts::<requests::CreateProduct>(&product(
            "a-Z_09", "EUR"
        )));
        for sku in ["a b", "a.b", "ä", "a/b"] {
            assert!(
                !accepts::<requests::CreateProduct>(&product(sku, "EUR")),
                "{sku}"
            );
        }
        for currency in ["eur", "EU1", "ÉUR"] {
            let body = product("A", currency);
            assert!(!accepts::<requests::CreateProduct>(&body), "{currency}");
        }
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        assert_eq!(
            platform::openapi::check::dangling_refs(&document),
            Vec::<String>::new()
        );
    }
}
