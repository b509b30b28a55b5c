//! Customers' personal data: `GET /v1/me` (the customer), `GET /v1/customers/{id}` (an
//! admin), and opening an order's shipping address for [`super::orders`].
//!
//! The read model holds personal fields only sealed; they are opened here, per request, with
//! the customer's data key read from the event store (no key is kept between requests). An
//! erased customer's key is gone, so nothing of theirs opens, whatever a read model still
//! holds. Viewers and auditors never see personal data.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::customer::{field, stream_id};
use domain::{CustomerId, Sealed};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::pii::{DataKey, PiiError, Vault};
use platform::{Caller, Problem, Role};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::{entity_response, AppState};
use crate::consistency::{EntityQuery, Versioned};
use crate::db;
use crate::openapi::{EntityHeaders, EntityUnavailable, NotModified};

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"line1": "Hauptstraße 1", "line2": null, "postal_code": "10115",
    "city": "Berlin", "country": "DE"}))]
pub struct Address {
    pub line1: String,
    #[schema(required = true)]
    pub line2: Option<String>,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// A customer as the query API shows them: their profile, or `erased` and nothing personal.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"customer_id": "ana", "email": "ana@example.com", "name": "Ana Lima",
    "address": {"line1": "Hauptstraße 1", "line2": null, "postal_code": "10115",
                "city": "Berlin", "country": "DE"}, "email_updates": true, "erased": false, "version": 1}))]
pub struct CustomerView {
    pub customer_id: String,
    /// Absent once erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Absent once erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `null` when none; absent once erased.
    #[serde(skip_serializing_if = "erased_field")]
    pub address: Option<Option<Address>>,
    /// Whether they want the emails beyond receipts (shipping, expiry); absent once erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_updates: Option<bool>,
    pub erased: bool,
    /// The customer stream's version (also the `ETag`).
    pub version: i64,
}

fn erased_field(address: &Option<Option<Address>>) -> bool {
    address.is_none()
}

impl Versioned for CustomerView {
    fn version(&self) -> i64 {
        self.version
    }
}

/// The read model's row: sealed fields, as projected.
struct SealedRow {
    customer_id: String,
    email: Option<String>,
    name: Option<String>,
    address: Option<String>,
    email_updates: bool,
    erased: bool,
    version: i64,
}

impl SealedRow {
    fn from_row(row: &Row) -> Result<SealedRow, tokio_postgres::Error> {
        Ok(SealedRow {
            customer_id: row.try_get("customer_id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            address: row.try_get("address")?,
            email_updates: row.try_get("email_updates")?,
            erased: row.try_get("erased")?,
            version: row.try_get("version")?,
        })
    }
}

/// Personal data trouble as an answer (never with personal data in it).
fn pii_problem(error: PiiError) -> Problem {
    match error {
        PiiError::Store(error) => Problem::database(
            error.failure(),
            &error,
            "unavailable",
            "the event store is unavailable; retry shortly",
        ),
        other => {
            if !matches!(other, PiiError::Unconfigured) {
                tracing::error!(error = %other, "personal data cannot be opened");
            }
            Problem::unavailable(
                "personal_data_unavailable",
                "personal data cannot be shown right now",
                60,
            )
        }
    }
}

fn vault(state: &AppState) -> Result<&Vault, Problem> {
    state.vault.as_ref().ok_or_else(|| {
        Problem::unavailable(
            "personal_data_unavailable",
            "personal data needs the event store (DATABASE_URL) and AGORA_PII_KEY",
            60,
        )
    })
}

/// The key of `customer` (`None` once erased).
async fn key_of(vault: &Vault, customer: &str) -> Result<Option<DataKey>, Problem> {
    vault.key_for_reading(customer).await.map_err(pii_problem)
}

/// Opens a field of `customer` sealed as `field`: `None` when it does not open (a value
/// the key does not open is treated as erased, never shown half-read).
fn open<T>(
    key: &DataKey,
    customer: &CustomerId,
    field: &str,
    sealed: &str,
    parse: impl FnOnce(Vec<u8>) -> Option<T>,
) -> Option<T> {
    let sealed = Sealed::parse(sealed).ok()?;
    let plain = key.open(stream_id(customer), field, &sealed).ok()?;
    parse(plain)
}

fn text(plain: Vec<u8>) -> Option<String> {
    String::from_utf8(plain).ok()
}

fn json<T: DeserializeOwned>(plain: Vec<u8>) -> Option<T> {
    serde_json::from_slice(&plain).ok()
}

/// Opens the shipping address of an order of `customer` (`None`: none, or erased).
pub async fn shipping_address(
    state: &AppState,
    customer: &str,
    sealed: Option<&str>,
) -> Result<Option<Address>, Problem> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let Ok(customer_id) = CustomerId::parse(customer) else {
        return Ok(None);
    };
    let Some(key) = key_of(vault(state)?, customer).await? else {
        return Ok(None);
    };
    Ok(open(
        &key,
        &customer_id,
        field::ADDRESS,
        sealed,
        json::<Address>,
    ))
}

/// The customer `customer` as shown, `None` when the read model has no row for them.
async fn view(state: &AppState, customer: &CustomerId) -> Result<Option<CustomerView>, Problem> {
    let row = db::query_opt(
        &state.read,
        "SELECT customer_id, email, name, address, email_updates, erased, version \
         FROM read_model.customers WHERE customer_id = $1",
        &[&customer.as_str()],
        SealedRow::from_row,
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let erased = |row: SealedRow| CustomerView {
        customer_id: row.customer_id,
        email: None,
        name: None,
        address: None,
        email_updates: None,
        erased: true,
        version: row.version,
    };
    if row.erased {
        return Ok(Some(erased(row)));
    }
    // The key is gone before the erasure is recorded: then the customer is erased already.
    let Some(key) = key_of(vault(state)?, customer.as_str()).await? else {
        return Ok(Some(erased(row)));
    };
    let email = row
        .email
        .as_deref()
        .and_then(|s| open(&key, customer, field::EMAIL, s, text));
    let name = row
        .name
        .as_deref()
        .and_then(|s| open(&key, customer, field::NAME, s, text));
    let (Some(email), Some(name)) = (email, name) else {
        return Ok(Some(erased(row)));
    };
    let address = row
        .address
        .as_deref()
        .and_then(|s| open(&key, customer, field::ADDRESS, s, json::<Address>));
    Ok(Some(CustomerView {
        customer_id: row.customer_id,
        email: Some(email),
        name: Some(name),
        address: Some(address),
        email_updates: Some(row.email_updates),
        erased: false,
        version: row.version,
    }))
}

async fn respond(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    customer: CustomerId,
    query: &EntityQuery,
) -> Result<HttpResponse, Problem> {
    let min_version = query.min_version()?;
    let found = state
        .consistency
        .fetch("customer", &caller.id, min_version, || {
            view(state, &customer)
        })
        .await?;
    Ok(entity_response(request, found.version, &found))
}

/// `GET /v1/me`.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "getProfile",
    tag = "customers",
    summary = "The caller's profile",
    description = "Role `customer`: their email, name and address, opened with their data \
                   key; `erased: true` and no personal field once erased; 404 before they set \
                   a profile. `?min_version=N` waits for the version `PUT /v1/me` answered.",
    security(("bearer" = [])),
    params(EntityQuery, EntityHeaders),
    responses(
        (status = 200, description = "The profile.", body = CustomerView),
        (status = 304, response = NotModified),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = EntityUnavailable),
    )
)]
pub async fn me(
    caller: Caller,
    query: web::Query<EntityQuery>,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Customer])?;
    let customer = CustomerId::parse(caller.id.clone())
        .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?;
    respond(&state, &request, &caller, customer, &query).await
}

/// `GET /v1/customers/{id}`.
#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    summary = "A customer's profile",
    description = "Role `admin`. As `GET /v1/me`: `erased: true` and no personal field once \
                   erased.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The customer (token `sub`)."), EntityQuery,
           EntityHeaders),
    responses(
        (status = 200, description = "The customer.", body = CustomerView),
        (status = 304, response = NotModified),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = EntityUnavailable),
    )
)]
pub async fn get(
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<EntityQuery>,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let customer =
        CustomerId::parse(id.into_inner()).map_err(|e| Problem::invalid_request(e.to_string()))?;
    respond(&state, &request, &caller, customer, &query).await
}
