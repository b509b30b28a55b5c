//! The upcaster registry: consistent with the schemas, `OrderPlaced` v1 → v2 (`placed_by`
//! defaults to `customer_id`) → v3 (no shipping address), and clear errors for what cannot be upcast.

mod common;

use serde_json::{json, Value};

use common::*;
use domain::{ActorId, CustomerId, EventDecodeError, OrderEvent};
use schemas::UpcastError;

#[test]
fn current_payloads_pass_through_unchanged() {
    for s in schemas::all_event_schemas() {
        if Some(s.version) != schemas::current_version(s.event_type) {
            continue;
        }
        let payload = json!({"any": "thing"});
        assert_eq!(
            schemas::upcast(s.event_type, s.version, payload.clone()),
            Ok((s.version, payload))
        );
    }
}

#[test]
fn unknown_types_and_versions_are_errors() {
    assert_eq!(
        schemas::upcast("Nope", 1, json!({})),
        Err(UpcastError::UnknownEventType {
            event_type: "Nope".into()
        })
    );
    for version in [0, 4, u32::MAX] {
        assert_eq!(
            schemas::upcast("OrderPlaced", version, json!({})),
            Err(UpcastError::UnsupportedVersion {
                event_type: "OrderPlaced".into(),
                version,
                current: 3,
            })
        );
    }
    // A type still at version 1 has no version 2 yet.
    assert!(matches!(
        schemas::upcast("OrderShipped", 2, json!({})),
        Err(UpcastError::UnsupportedVersion { current: 1, .. })
    ));
}

/// An event written by a newer release (a future schema version) is refused with a message
/// that says so, not decoded as something it is not.
#[test]
fn a_future_version_is_a_clear_error() {
    let err = schemas::upcast("OrderPlaced", 4, json!({"customer_id": "alice"})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "OrderPlaced schema version 4 is not supported: this release reads versions 1 to 3 \
         (a newer version was written by a newer release)"
    );
    // The domain refuses it too, had a reader skipped the upcast.
    assert!(matches!(
        OrderEvent::from_stored("OrderPlaced", 4, &json!({})),
        Err(EventDecodeError::UnsupportedSchemaVersion {
            schema_version: 4,
            expected: 3,
            ..
        })
    ));
}

#[test]
fn a_refused_step_names_the_type_version_and_reason() {
    let err = schemas::upcast("OrderPlaced", 1, json!({"lines": []})).unwrap_err();
    assert_eq!(
        err,
        UpcastError::InvalidPayload {
            event_type: "OrderPlaced".into(),
            from_version: 1,
            reason: "customer_id is missing".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot upcast OrderPlaced from schema version 1: customer_id is missing"
    );
    assert!(schemas::upcast("OrderPlaced", 1, json!("not an object")).is_err());
}

/// Every version from 1 to the current one has a schema and a step to the next, and each
/// registered step connects two existing schemas.
#[test]
fn registry_matches_the_schemas() {
    for s in schemas::all_event_schemas() {
        let current = schemas::current_version(s.event_type).unwrap();
        for version in 1..=current {
            assert!(
                schemas::event_schema(s.stream_type, s.event_type, version).is_some(),
                "{} v{version} has no schema",
                s.event_type
            );
            if version < current {
                assert!(
                    schemas::upcasters()
                        .iter()
                        .any(|u| u.event_type == s.event_type && u.from_version == version),
                    "{} has no upcaster from v{version}",
                    s.event_type
                );
            }
        }
    }
    for u in schemas::upcasters() {
        let stream = schemas::stream_type_of(u.event_type).unwrap();
        assert!(schemas::event_schema(stream, u.event_type, u.from_version).is_some());
        assert!(schemas::event_schema(stream, u.event_type, u.from_version + 1).is_some());
    }
    assert!(schemas::upcasters()
        .iter()
        .any(|u| u.event_type == "OrderPlaced" && u.from_version == 1));
}

/// `OrderPlaced` v1 payloads as the previous release wrote them.
fn order_placed_v1_samples() -> Vec<Value> {
    let longest = chars(255);
    vec![
        json!({"customer_id": "alice",
               "lines": [{"product_id": pid(1), "quantity": 2, "unit_price_cents": 1299}],
               "total_cents": 2598, "currency": "EUR"}),
        json!({"customer_id": "c",
               "lines": [{"product_id": pid(2), "quantity": 1, "unit_price_cents": 1}],
               "total_cents": 1, "currency": "USD"}),
        json!({"customer_id": longest,
               "lines": (0..100u128)
                   .map(|n| json!({"product_id": pid(n), "quantity": 1000,
                                   "unit_price_cents": 1_000_000_000i64}))
                   .collect::<Vec<_>>(),
               "total_cents": domain::MAX_TOTAL_CENTS, "currency": "EUR"}),
    ]
}

/// Payloads of every older (non-current) schema version, valid at that version: one
/// list per upcaster chain, so each step's output can be checked.
fn older_version_samples() -> Vec<(&'static str, &'static str, u32, Value)> {
    let placed = order_placed_v1_samples()
        .into_iter()
        .map(|p| ("order", "OrderPlaced", 1, p));
    let placed_v2 = order_placed_v1_samples().into_iter().map(|mut p| {
        p["placed_by"] = json!("root");
        ("order", "OrderPlaced", 2, p)
    });
    let paid = order_paid_v1_samples()
        .into_iter()
        .map(|p| ("order", "OrderPaid", 1, p));
    placed.chain(placed_v2).chain(paid).collect()
}

/// `OrderPaid` v1 payloads as the releases before payments went through a provider wrote
/// them.
fn order_paid_v1_samples() -> Vec<Value> {
    vec![
        json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "psp-123"}),
        json!({"amount_cents": domain::MAX_TOTAL_CENTS, "currency": "USD",
               "payment_ref": chars(200)}),
    ]
}

#[test]
fn every_older_schema_version_has_samples() {
    let samples = older_version_samples();
    for s in schemas::all_event_schemas() {
        if Some(s.version) == schemas::current_version(s.event_type) {
            continue;
        }
        assert!(
            samples
                .iter()
                .any(|(_, t, v, _)| *t == s.event_type && *v == s.version),
            "add samples of {} v{} to check its upcast",
            s.event_type,
            s.version
        );
    }
}

/// Every older payload (valid at its version) upcasts to a payload valid against the
/// current schema, which the domain decodes.
#[test]
fn upcast_output_validates_against_the_current_schema() {
    for (stream_type, event_type, version, payload) in older_version_samples() {
        let old = payload_validator_at(stream_type, event_type, version);
        assert!(
            errors(&old, &payload).is_empty(),
            "the sample is valid at v{version}"
        );
        let (current, upcast) = schemas::upcast(event_type, version, payload).unwrap();
        assert_eq!(Some(current), schemas::current_version(event_type));
        let validator = payload_validator(stream_type, event_type);
        let problems = errors(&validator, &upcast);
        assert!(problems.is_empty(), "{event_type}: {problems:?}\n{upcast}");
        domain_decodes(stream_type, event_type, current, &upcast)
            .unwrap_or_else(|e| panic!("{event_type} decodes after upcasting: {e}"));
    }
}

#[test]
fn order_placed_v1_upcasts_with_placed_by_the_customer_and_no_address() {
    for v1 in order_placed_v1_samples() {
        // v1 is no longer readable as it is: the current schema and the domain refuse it.
        assert!(!payload_validator("order", "OrderPlaced").is_valid(&v1));
        assert!(matches!(
            OrderEvent::from_stored("OrderPlaced", 1, &v1),
            Err(EventDecodeError::UnsupportedSchemaVersion { expected: 3, .. })
        ));

        let (version, v3) = schemas::upcast("OrderPlaced", 1, v1.clone()).unwrap();
        assert_eq!(version, 3);
        // Two fields added: placed_by = customer_id, no shipping address; the rest as
        // recorded.
        let mut expected = v1.clone();
        expected["placed_by"] = v1["customer_id"].clone();
        expected["shipping_address"] = Value::Null;
        assert_eq!(v3, expected);

        let Ok(OrderEvent::OrderPlaced(placed)) = OrderEvent::from_stored("OrderPlaced", 3, &v3)
        else {
            panic!("the upcast payload decodes");
        };
        let customer = CustomerId::parse(v1["customer_id"].as_str().unwrap()).unwrap();
        assert_eq!(placed.placed_by, ActorId::from(customer.clone()));
        assert_eq!(placed.customer_id, customer);
        assert_eq!(placed.total_cents, v1["total_cents"].as_i64().unwrap());
        assert_eq!(placed.shipping_address, None);
        // Encoding the decoded event gives the v3 payload back.
        let event = OrderEvent::OrderPlaced(placed);
        assert_eq!(event.schema_version(), 3);
        assert_eq!(event.payload(), v3);
    }
}

/// v2 keeps its recorded placer (an admin here) and gains no address; a payload at the
/// current version is not touched, and upcasting it again changes nothing.
#[test]
fn order_placed_v2_keeps_its_placer() {
    let mut v2 = order_placed_v1_samples().remove(0);
    v2["placed_by"] = json!("root");
    let mut v3 = v2.clone();
    v3["shipping_address"] = Value::Null;
    assert_eq!(
        schemas::upcast("OrderPlaced", 2, v2.clone()),
        Ok((3, v3.clone()))
    );
    assert_eq!(schemas::upcast("OrderPlaced", 3, v3.clone()), Ok((3, v3)));
    let (_, from_v1) =
        schemas::upcast("OrderPlaced", 1, order_placed_v1_samples().remove(0)).expect("v1 upcasts");
    assert_eq!(
        schemas::upcast("OrderPlaced", 3, from_v1.clone()),
        Ok((3, from_v1))
    );
}
