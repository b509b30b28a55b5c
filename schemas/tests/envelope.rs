//! The envelope schema: one NDJSON line of the audit export, one Kafka message value.

mod common;

use common::*;
use serde_json::{json, Value};

fn sample() -> Value {
    json!({
        "event_id": "0190f5a2-7c3e-7d4a-9b1e-2f3a4b5c6d7e",
        "position": 1,
        "stream_type": "product",
        "stream_id": "0190f5a2-7c3e-7d4a-9b1e-000000000001",
        "version": 1,
        "event_type": "ProductCreated",
        "schema_version": 1,
        "occurred_at": "2025-01-31T12:34:56.789Z",
        "payload": {"sku": "A-1", "name": "Mug", "price_cents": 1299, "currency": "EUR",
                    "initial_stock": 10},
        "metadata": {
            "actor": "admin-1",
            "correlation_id": "req-42",
            "causation_id": null,
            "command_id": "0190f5a2-7c3e-7d4a-9b1e-2f3a4b5c6d70"
        },
        "prev_hash": "0".repeat(64),
        "hash": "0123456789abcdef".repeat(4)
    })
}

#[test]
fn a_recorded_event_validates_and_its_payload_against_its_own_schema() {
    let envelope = compile(schemas::envelope_schema());
    let e = sample();
    assert_eq!(errors(&envelope, &e), Vec::<String>::new());
    let payload = payload_validator(
        e["stream_type"].as_str().unwrap(),
        e["event_type"].as_str().unwrap(),
    );
    assert!(payload.is_valid(&e["payload"]));
}

#[test]
fn envelope_is_strict() {
    let envelope = compile(schemas::envelope_schema());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("extra field", Box::new(|e| e["extra"] = json!(1))),
        (
            "no hash",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("hash");
            }),
        ),
        (
            "uppercase hash",
            Box::new(|e| e["hash"] = json!("A".repeat(64))),
        ),
        (
            "short prev_hash",
            Box::new(|e| e["prev_hash"] = json!("0".repeat(63))),
        ),
        ("null prev_hash", Box::new(|e| e["prev_hash"] = Value::Null)),
        (
            "bad stream type",
            Box::new(|e| e["stream_type"] = json!("invoice")),
        ),
        ("bad event id", Box::new(|e| e["event_id"] = json!("x"))),
        (
            "bad time",
            Box::new(|e| e["occurred_at"] = json!("yesterday")),
        ),
        ("version 0", Box::new(|e| e["version"] = json!(0))),
        ("position 0", Box::new(|e| e["position"] = json!(0))),
        (
            "snake event type",
            Box::new(|e| e["event_type"] = json!("product_created")),
        ),
        ("payload not object", Box::new(|e| e["payload"] = json!([]))),
        (
            "metadata extra",
            Box::new(|e| e["metadata"]["x"] = json!(1)),
        ),
        (
            "metadata no actor",
            Box::new(|e| {
                e["metadata"].as_object_mut().unwrap().remove("actor");
            }),
        ),
        (
            "metadata no command id",
            Box::new(|e| {
                e["metadata"].as_object_mut().unwrap().remove("command_id");
            }),
        ),
    ];
    for (what, mutate) in mutations {
        let mut e = sample();
        mutate(&mut e);
        assert!(!envelope.is_valid(&e), "{what}");
    }
}
