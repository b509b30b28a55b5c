//! The query API's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations, the query-string types and the response types themselves, served at
//! `GET /openapi.json` with Swagger UI at `/docs/`.

use std::sync::OnceLock;

use platform::openapi::{problem_response, ApiDocs, Common};
use serde::Serialize;
use utoipa::openapi::{RefOr, Response};
use utoipa::{IntoParams, OpenApi, ToResponse, ToSchema};
use uuid::Uuid;

use crate::pagination::Page;
use crate::routes::{audit, customers, dashboard, health, orders, parked, products, verifiable};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agora query API",
        description = "Reads of the Agora shop. Products, orders and the dashboards come from \
            read models, which are eventually consistent: every entity carries the `version` \
            of its stream it reflects, as its `ETag`, and `?min_version=N` waits until it \
            reflects at least version N (read-your-writes after a command). Lists are keyset \
            paginated (`limit`, `cursor`, `next_cursor`). The audit endpoints read the event \
            log itself. Every `/v1` request needs a bearer JWT. Errors are \
            `application/problem+json` (RFC 9457) with a machine-readable `code`. Commands \
            are the command API's.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        products::list,
        products::get,
        orders::list,
        orders::get,
        customers::me,
        customers::get,
        dashboard::sales,
        dashboard::top_products,
        audit::events,
        audit::stream_events,
        audit::stream_state,
        audit::verify,
        verifiable::checkpoint,
        verifiable::public_key,
        verifiable::inclusion,
        verifiable::consistency,
        parked::list,
        parked::retry,
        parked::skip,
        health::healthz,
        health::readyz,
        platform::telemetry::metrics_endpoint,
    ),
    components(
        schemas(
            products::Product,
            Page<products::Product>,
            orders::OrderSummary,
            orders::OrderDetail,
            orders::OrderLine,
            orders::OrderPayment,
            orders::OrderRefund,
            orders::PaymentStatus,
            orders::RefundStatus,
            orders::Status,
            Page<orders::OrderSummary>,
            customers::Address,
            customers::CustomerView,
            dashboard::Bucket,
            dashboard::Sales,
            dashboard::SalesBucket,
            dashboard::TopProducts,
            dashboard::TopProduct,
            Envelope,
            EventMetadata,
            StreamType,
            audit::StreamState,
            audit::Verification,
            audit::Failure,
            verifiable::SignedCheckpoint,
            verifiable::LogPublicKey,
            verifiable::InclusionProof,
            verifiable::ConsistencyProof,
            health::Health,
            parked::ParkedStreams,
            parked::ParkedStream,
            parked::HeldEvent,
            parked::ParkedAction,
            parked::ParkedActionRequest,
            parked::ParkedActionAccepted,
        ),
        responses(
            NotModified,
            ReadModelUnavailable,
            EntityUnavailable,
            AuditUnavailable,
            UndecodableEvent,
        )
    ),
    modifiers(&Common),
    tags(
        (name = "products", description = "The catalog with stock (any role)."),
        (name = "orders", description = "Orders (`admin`, `viewer`; a `customer` their own)."),
        (name = "customers", description = "Customers' personal data (a `customer` their own, an `admin` anyone's; opened per request with the customer's data key)."),
        (name = "dashboard", description = "Sales and best sellers (`admin`, `viewer`)."),
        (name = "audit", description = "The event log as recorded (role `auditor`)."),
        (name = "operations", description = "Health, readiness and metrics (no token); parked streams of the projections (`admin`)."),
    )
)]
pub struct ApiDoc;

/// The document, built and serialized once.
pub fn docs() -> &'static ApiDocs {
    static DOCS: OnceLock<ApiDocs> = OnceLock::new();
    DOCS.get_or_init(|| ApiDocs::new(&ApiDoc::openapi()))
}

/// The headers an entity (`GET /v1/products/{id}`, `GET /v1/orders/{id}`) accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct EntityHeaders {
    /// The `ETag` of a cached copy (weak or strong, quotes optional, several separated by
    /// commas, or `*`): when it names the entity's current version the answer is 304
    /// without a body.
    #[param(
        rename = "If-None-Match",
        value_type = String,
        required = false,
        example = "\"3\""
    )]
    if_none_match: Option<String>,
}

/// The entity has not changed since the `ETag` the request named.
#[derive(ToResponse)]
#[response(
    description = "Not Modified: `If-None-Match` names the entity's current version. No body.",
    headers(
        ("ETag" = String, description = "The current version, quoted: `\"3\"`."),
        ("Cache-Control" = String, description = "`private, max-age=0, must-revalidate`.")
    )
)]
#[allow(dead_code)]
pub struct NotModified;

platform::problem_responses! {
    /// 503 of the lists and dashboards.
    pub ReadModelUnavailable => 503,
        "The read-model database cannot be reached; retry after `Retry-After` seconds.",
        ["database_unavailable"];
    /// 503 of the entities.
    pub EntityUnavailable => 503,
        "`not_yet_consistent`: `min_version` was not reached within the wait \
         (`AGORA_CONSISTENCY_WAIT_MS`; also when the entity does not exist or is not visible \
         to this caller); `database_unavailable`: the read-model database cannot be reached; \
         `unavailable`, `personal_data_unavailable`: the event store (the customers' data \
         keys) cannot be reached or personal data cannot be opened. Retry after \
         `Retry-After` seconds.",
        ["not_yet_consistent", "database_unavailable", "unavailable", "personal_data_unavailable"];
    /// 500 of the state endpoint.
    pub UndecodableEvent => 500,
        "The stream holds an event this service cannot fold (an unknown type, or a payload \
         that does not decode even after upcasting); the detail names its position, stream \
         and version.",
        ["undecodable_event"];
}

/// 503 of the audit endpoints. Not declared with `problem_responses!`: only one of its two
/// codes sets `Retry-After`.
pub struct AuditUnavailable;

impl<'r> ToResponse<'r> for AuditUnavailable {
    fn response() -> (&'r str, RefOr<Response>) {
        let mut response = problem_response(
            503,
            "`database_unavailable`: the event store cannot be reached (retry after \
             `Retry-After` seconds); `event_store_not_configured`: this query API was started \
             without `DATABASE_URL`, so it has no event store (a configuration error: \
             retrying does not help).",
            &["database_unavailable", "event_store_not_configured"],
        );
        if let Some(RefOr::T(retry_after)) = response.headers.get_mut("Retry-After") {
            retry_after.description = Some(
                "Seconds to wait before retrying; set with `database_unavailable` only.".to_owned(),
            );
        }
        ("AuditUnavailable", response.into())
    }
}

/// The type of a stream.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum StreamType {
    Product,
    Order,
    Customer,
    Webhook,
}

/// One recorded event: a line of the NDJSON exports, and the value of a Kafka message.
/// Documents `eventstore::envelope::Envelope` (which knows nothing of OpenAPI; the tests
/// check the two agree).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "event_id": "0190f5b4-0c1d-7e2f-8a3b-4c5d6e7f8091",
    "position": 1417,
    "sequence": 1417,
    "stream_type": "product",
    "stream_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37",
    "version": 2,
    "event_type": "StockAdded",
    "schema_version": 1,
    "occurred_at": "2024-05-01T10:00:00.123456Z",
    "payload": {"quantity": 5},
    "metadata": {
        "actor": "root",
        "correlation_id": "req-7d1f",
        "causation_id": null,
        "command_id": "0190f5b4-0c1d-7e2f-8a3b-4c5d6e7f8090"
    },
    "prev_hash": "5d1c0e6b2f3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
    "hash": "0b7e42c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7"
}))]
#[allow(dead_code)]
pub struct Envelope {
    pub event_id: Uuid,
    /// Identifies the event in the global log (not monotonic in log order).
    #[schema(minimum = 1)]
    pub position: i64,
    /// The event's place in the verifiable log: 1, 2, 3, ... in log order without gaps,
    /// its leaf index + 1 in the Merkle tree; `null` until assigned (shortly after commit).
    #[schema(minimum = 1, required = true)]
    pub sequence: Option<i64>,
    pub stream_type: StreamType,
    /// The product or order id.
    pub stream_id: Uuid,
    /// The event's version within its stream, from 1, gap-free.
    #[schema(minimum = 1)]
    pub version: i64,
    /// A PascalCase fact name (`ProductCreated`, `StockReserved`, `OrderPlaced`, ...), with
    /// a JSON Schema per type and version in `schemas/`.
    #[schema(example = "OrderPlaced")]
    pub event_type: String,
    /// The version of the event type's schema the payload was recorded with.
    #[schema(minimum = 1)]
    pub schema_version: i32,
    /// When it was recorded: RFC 3339 UTC with microseconds, exactly as hashed.
    #[schema(format = DateTime)]
    pub occurred_at: String,
    /// The event's data, as recorded (not upcast).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    /// The previous event's `hash` in this stream (64 zeros for version 1), lowercase hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub prev_hash: String,
    /// `SHA-256(prev_hash || JCS(event))`, lowercase hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

/// Who caused an event and in answer to what.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EventMetadata {
    /// The authenticated caller (the token's `sub`).
    pub actor: String,
    /// Ties together everything done for one user action (`X-Correlation-Id`).
    pub correlation_id: String,
    /// The event or message that caused the command, when there is one.
    #[schema(required = true)]
    pub causation_id: Option<String>,
    /// The command that appended the event.
    pub command_id: Uuid,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use eventstore::envelope::Envelope as StoredEnvelope;
    use eventstore::{EventMetadata as StoredMetadata, Hash, RecordedEvent};
    use serde_json::{json, Value};

    use super::*;
    use crate::pagination::{DEFAULT_LIMIT, MAX_CURSOR_CHARS, MAX_LIMIT};
    use crate::routes::audit::{DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT};
    use crate::routes::dashboard::{TOP_DEFAULT_LIMIT, TOP_MAX_LIMIT};

    fn document() -> Value {
        serde_json::from_slice(docs().json()).expect("the document is JSON")
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    /// The property names of the schema `name`, all required.
    fn properties(document: &Value, name: &str) -> BTreeSet<String> {
        let schema = &document["components"]["schemas"][name];
        let properties = keys(&schema["properties"]);
        let required: BTreeSet<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            required, properties,
            "{name}: every property is always sent"
        );
        properties
    }

    fn recorded() -> RecordedEvent {
        RecordedEvent {
            position: 7,
            transaction_id: 1,
            event_id: Uuid::now_v7(),
            stream_type: domain::product::STREAM_TYPE.into(),
            stream_id: Uuid::now_v7(),
            version: 1,
            event_type: "StockAdded".into(),
            schema_version: 1,
            payload: json!({"quantity": 5}),
            metadata: StoredMetadata {
                actor: "root".into(),
                correlation_id: "c".into(),
                causation_id: Some("e".into()),
                command_id: Uuid::now_v7(),
            },
            occurred_at: Utc::now(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
            sequence: None,
            stored_metadata: None,
        }
    }

    #[test]
    fn the_envelope_schema_matches_the_stored_envelope() {
        let document = document();
        let line = serde_json::to_value(StoredEnvelope::of(&recorded()).unwrap()).unwrap();
        assert_eq!(properties(&document, "Envelope"), keys(&line));
        assert_eq!(
            properties(&document, "EventMetadata"),
            keys(&line["metadata"])
        );
        // The example is a real envelope.
        let example = document["components"]["schemas"]["Envelope"]["example"].clone();
        let parsed: StoredEnvelope = serde_json::from_value(example).expect("an envelope");
        parsed.to_recorded().expect("a recorded event");
    }

    #[test]
    fn the_state_example_is_a_product_s_state() {
        let document = document();
        let example = &document["components"]["schemas"]["StreamState"]["example"];
        let state = serde_json::to_value(domain::Product::default()).unwrap();
        assert_eq!(keys(&example["state"]), keys(&state));
        assert_eq!(example["stream_type"], domain::product::STREAM_TYPE);
    }

    #[test]
    fn the_order_example_shows_payments_and_refunds_as_documented() {
        let document = document();
        let example = &document["components"]["schemas"]["OrderDetail"]["example"];
        for (list, schema) in [("payments", "OrderPayment"), ("refunds", "OrderRefund")] {
            let items = example[list].as_array().expect("a list");
            assert!(!items.is_empty(), "{list}");
            for item in items {
                assert_eq!(keys(item), properties(&document, schema), "{list}");
            }
            let own = &document["components"]["schemas"][schema]["example"];
            assert_eq!(keys(own), properties(&document, schema), "{schema}");
        }
    }

    #[test]
    fn stream_types_are_the_domain_s() {
        let document = document();
        assert_eq!(
            document["components"]["schemas"]["StreamType"]["enum"],
            json!([
                domain::product::STREAM_TYPE,
                domain::order::STREAM_TYPE,
                domain::customer::STREAM_TYPE,
                domain::webhook::STREAM_TYPE
            ])
        );
    }

    /// The schema of the query parameter `name` of `GET path`.
    fn parameter(document: &Value, path: &str, name: &str) -> Value {
        document["paths"][path]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name && p["in"] == "query")
            .unwrap_or_else(|| panic!("{path}: no {name}"))["schema"]
            .clone()
    }

    #[test]
    fn documented_limits_are_the_enforced_ones() {
        let document = document();
        for (path, default, max) in [
            ("/v1/products", DEFAULT_LIMIT, MAX_LIMIT),
            ("/v1/orders", DEFAULT_LIMIT, MAX_LIMIT),
            (
                "/v1/dashboard/top-products",
                TOP_DEFAULT_LIMIT,
                TOP_MAX_LIMIT,
            ),
            ("/v1/audit/events", DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT),
        ] {
            let limit = parameter(&document, path, "limit");
            assert_eq!(limit["minimum"], 1, "{path}: {limit}");
            assert_eq!(limit["maximum"], max, "{path}: {limit}");
            assert_eq!(limit["default"], default, "{path}: {limit}");
        }
        for path in ["/v1/products", "/v1/orders"] {
            let cursor = parameter(&document, path, "cursor");
            assert_eq!(cursor["maxLength"], MAX_CURSOR_CHARS, "{path}: {cursor}");
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
