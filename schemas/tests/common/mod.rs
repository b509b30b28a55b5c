//! Helpers shared by the schema tests: compiled validators and domain value shortcuts.

#![allow(dead_code)]

use domain::*;
use jsonschema::Validator;
use serde_json::Value;
use uuid::Uuid;

/// Parses a schema document and compiles it as draft 2020-12 with format assertion on.
pub fn compile(schema: &str) -> Validator {
    let schema: Value = serde_json::from_str(schema).expect("schema is JSON");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// The compiled payload schema of an event type at its current version.
pub fn payload_validator(stream_type: &str, event_type: &str) -> Validator {
    let version = schemas::current_version(event_type)
        .unwrap_or_else(|| panic!("no schema for {stream_type}/{event_type}"));
    payload_validator_at(stream_type, event_type, version)
}

/// The compiled payload schema of an event type at `version`.
pub fn payload_validator_at(stream_type: &str, event_type: &str, version: u32) -> Validator {
    let schema = schemas::event_schema(stream_type, event_type, version)
        .unwrap_or_else(|| panic!("no schema for {stream_type}/{event_type} v{version}"));
    compile(schema)
}

/// The current schema version the domain writes `event_type` at.
pub fn domain_version(event_type: &str) -> Option<u32> {
    ProductEvent::current_schema_version(event_type)
        .or_else(|| OrderEvent::current_schema_version(event_type))
        .or_else(|| CustomerEvent::current_schema_version(event_type))
        .or_else(|| WebhookEvent::current_schema_version(event_type))
}

/// Decodes a payload as the domain event of `stream_type` (discarding the event).
pub fn domain_decodes(
    stream_type: &str,
    event_type: &str,
    version: u32,
    payload: &Value,
) -> Result<(), EventDecodeError> {
    match stream_type {
        "product" => ProductEvent::from_stored(event_type, version, payload).map(drop),
        "customer" => CustomerEvent::from_stored(event_type, version, payload).map(drop),
        "webhook" => WebhookEvent::from_stored(event_type, version, payload).map(drop),
        _ => OrderEvent::from_stored(event_type, version, payload).map(drop),
    }
}

/// Every validation error of `instance`, as text (empty when valid).
pub fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn pid(n: u128) -> ProductId {
    ProductId::from_uuid(Uuid::from_u128(n))
}

pub fn oid(n: u128) -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0xABCD_0000 + n))
}

pub fn price(cents: i64) -> PriceCents {
    PriceCents::parse(cents).unwrap()
}

pub fn qty(n: i64) -> LineQuantity {
    LineQuantity::parse(n).unwrap()
}

pub fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

/// A string of `n` characters, multi-byte ones included, to check character counting.
pub fn chars(n: usize) -> String {
    "aé€😀".chars().cycle().take(n).collect()
}

/// The longest valid SKU, using every allowed character class.
pub fn longest_sku() -> Sku {
    let alphabet = "ABCXYZabcxyz0189-_";
    Sku::parse(alphabet.chars().cycle().take(64).collect::<String>()).unwrap()
}
