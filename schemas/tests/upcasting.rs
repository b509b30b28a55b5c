//! The upcaster registry: identity today, and consistent with the schemas.

mod common;

use serde_json::json;

use common::*;
use schemas::UpcastError;

#[test]
fn current_payloads_pass_through_unchanged() {
    for s in schemas::all_event_schemas() {
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
    for version in [0, 2] {
        assert!(matches!(
            schemas::upcast("OrderPlaced", version, json!({})),
            Err(UpcastError::UnsupportedVersion { current: 1, .. })
        ));
    }
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
}

/// An upcast payload validates against the current schema: checked on the current
/// samples today, and on every older version's payload once upcasters exist.
#[test]
fn upcast_output_validates_against_the_current_schema() {
    let sample = json!({"order_id": oid(1), "quantity": 1});
    let (version, payload) = schemas::upcast("StockReserved", 1, sample).unwrap();
    let schema = schemas::event_schema("product", "StockReserved", version).unwrap();
    assert!(compile(schema).is_valid(&payload));
}
