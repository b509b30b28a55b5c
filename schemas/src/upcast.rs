//! Upcasters: bring a stored payload from the schema version it was written at to the
//! current one, one version step at a time, so readers only ever decode the current shape.
//!
//! Stored events are never rewritten: the event store, its hash chain and the audit export
//! keep each payload exactly as recorded, at its recorded `schema_version`. Readers that
//! decode events into domain types (aggregate loading in the command API, projectors, the
//! audit state endpoint) call [`upcast`] on each payload first, then decode the result at
//! the version [`upcast`] returns (the domain's `from_stored` reads only the current
//! version of each event type).
//!
//! A schema change adds one schema file and **one step function** with its registry entry
//! in `UPCASTERS`. Registered steps:
//!
//! | event type | step | change |
//! |---|---|---|
//! | `OrderPlaced` | v1 → v2 | adds `placed_by` (who placed the order), default `customer_id` ([`order_placed_v1_to_v2`]) |
//! | `OrderPaid` | v1 → v2 | adds `provider_event` and `reason`, both `null` ([`order_paid_v1_to_v2`]) |
//! | `OrderPlaced` | v2 → v3 | adds `shipping_address`, `null` ([`order_placed_v2_to_v3`]) |
//!
//! Steps chain: a payload at version 1 of a type at version 3 goes through the 1 → 2 and
//! 2 → 3 steps. A version newer than the current one (written by a newer release) or 0 is
//! [`UpcastError::UnsupportedVersion`]; a missing step is
//! [`UpcastError::MissingUpcaster`]. The tests check that every step from version 1 to the
//! current one is registered and that each step's output validates against the next
//! version's schema.

use serde_json::Value;

use crate::current_version;

/// One upcasting step: turns a payload of `event_type` at `from_version` into one at
/// `from_version + 1`, or says why it cannot.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type it applies to.
    pub event_type: &'static str,
    /// The version it reads; it produces `from_version + 1`.
    pub from_version: u32,
    /// The conversion.
    pub step: fn(Value) -> Result<Value, String>,
}

/// Every registered upcasting step.
static UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "OrderPlaced",
        from_version: 1,
        step: order_placed_v1_to_v2,
    },
    Upcaster {
        event_type: "OrderPaid",
        from_version: 1,
        step: order_paid_v1_to_v2,
    },
    Upcaster {
        event_type: "OrderPlaced",
        from_version: 2,
        step: order_placed_v2_to_v3,
    },
];

/// `OrderPlaced` v2 → v3: adds `shipping_address`, `null`.
///
/// Orders placed before v3 named no address (there was no way to give one), which is what
/// `null` says. Refuses a payload that is not an object or already has the field.
fn order_placed_v2_to_v3(mut payload: Value) -> Result<Value, String> {
    let object = payload
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    if object.contains_key("shipping_address") {
        return Err("a v2 payload has no shipping_address".to_owned());
    }
    object.insert("shipping_address".to_owned(), Value::Null);
    Ok(payload)
}

/// `OrderPaid` v1 → v2: adds `provider_event` and `reason`, both `null`.
///
/// Version 1 was written when a payment was recorded by whoever called `pay` (customers
/// included), with a free `payment_ref` and nothing else: it names neither a provider event
/// nor an offline payment's reason, so both are read as unknown (`null`). Who recorded it
/// is still in the event's metadata `actor`. Refuses a payload that is not an object or
/// already has either field (v1 never had them).
fn order_paid_v1_to_v2(mut payload: Value) -> Result<Value, String> {
    let object = payload
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    for field in ["provider_event", "reason"] {
        if object.contains_key(field) {
            return Err(format!("a v1 payload has no {field}"));
        }
        object.insert(field.to_owned(), Value::Null);
    }
    Ok(payload)
}

/// `OrderPlaced` v1 → v2: adds `placed_by`, who placed the order (a token `sub`).
///
/// **Default: `placed_by` = the payload's `customer_id`.** Version 1 did not record who
/// placed an order. The customer is the only placer a v1 event can name without admin
/// tooling (a customer may place orders only for themself), so every v1 event is read as
/// placed by its customer. An order an admin placed on a customer's behalf before v2 is
/// therefore read as placed by the customer; who sent that command is still in the
/// recorded event's metadata `actor`, which an upcaster (payload in, payload out) does not
/// see.
///
/// Refuses a payload that is not an object, has no string `customer_id`, or already has a
/// `placed_by` (v1 never had one: such a payload is not v1).
fn order_placed_v1_to_v2(mut payload: Value) -> Result<Value, String> {
    let object = payload
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    if object.contains_key("placed_by") {
        return Err("a v1 payload has no placed_by".to_owned());
    }
    let customer_id = match object.get("customer_id") {
        Some(Value::String(customer_id)) => customer_id.clone(),
        Some(_) => return Err("customer_id is not a string".to_owned()),
        None => return Err("customer_id is missing".to_owned()),
    };
    object.insert("placed_by".to_owned(), Value::String(customer_id));
    Ok(payload)
}

/// Every registered upcasting step.
pub fn upcasters() -> &'static [Upcaster] {
    UPCASTERS
}

/// Why a payload could not be upcast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// No schema knows this event type.
    #[error("unknown event type {event_type:?}")]
    UnknownEventType {
        /// The stored event type.
        event_type: String,
    },
    /// The stored version is 0 or newer than this code knows (written by a newer release).
    #[error(
        "{event_type} schema version {version} is not supported: this release reads versions \
         1 to {current} (a newer version was written by a newer release)"
    )]
    UnsupportedVersion {
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        version: u32,
        /// The current version.
        current: u32,
    },
    /// A step on the way to the current version is not registered.
    #[error("no upcaster for {event_type} from schema version {from_version}")]
    MissingUpcaster {
        /// The stored event type.
        event_type: String,
        /// The version without a step to the next one.
        from_version: u32,
    },
    /// A step refused the payload.
    #[error("cannot upcast {event_type} from schema version {from_version}: {reason}")]
    InvalidPayload {
        /// The stored event type.
        event_type: String,
        /// The version of the refused payload.
        from_version: u32,
        /// Why.
        reason: String,
    },
}

/// Brings `payload`, stored as `event_type` at schema version `from_version`, to the
/// current version of that event type. Returns the new version and payload; a payload
/// already at the current version is returned as it is.
pub fn upcast(
    event_type: &str,
    from_version: u32,
    payload: Value,
) -> Result<(u32, Value), UpcastError> {
    let current = current_version(event_type).ok_or_else(|| UpcastError::UnknownEventType {
        event_type: event_type.to_owned(),
    })?;
    upcast_with(UPCASTERS, current, event_type, from_version, payload)
}

/// [`upcast`] over an explicit registry (so the chaining can be tested).
fn upcast_with(
    registry: &[Upcaster],
    current: u32,
    event_type: &str,
    from_version: u32,
    mut payload: Value,
) -> Result<(u32, Value), UpcastError> {
    if from_version == 0 || from_version > current {
        return Err(UpcastError::UnsupportedVersion {
            event_type: event_type.to_owned(),
            version: from_version,
            current,
        });
    }
    let mut version = from_version;
    while version < current {
        let step = registry
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or_else(|| UpcastError::MissingUpcaster {
                event_type: event_type.to_owned(),
                from_version: version,
            })?;
        payload = (step.step)(payload).map_err(|reason| UpcastError::InvalidPayload {
            event_type: event_type.to_owned(),
            from_version: version,
            reason,
        })?;
        version += 1;
    }
    Ok((version, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A hypothetical next step, to check that steps chain: v3 moves `placed_by` into a
    /// `source` object.
    fn hypothetical_v2_to_v3(mut payload: Value) -> Result<Value, String> {
        let object = payload.as_object_mut().ok_or("payload is not an object")?;
        let placed_by = object.remove("placed_by").ok_or("placed_by is missing")?;
        object.insert("source".into(), json!({ "placed_by": placed_by }));
        Ok(payload)
    }

    /// The real v1 → v2 step plus the hypothetical v2 → v3 (listed out of order on purpose).
    static CHAIN: &[Upcaster] = &[
        Upcaster {
            event_type: "OrderPlaced",
            from_version: 2,
            step: hypothetical_v2_to_v3,
        },
        Upcaster {
            event_type: "OrderPlaced",
            from_version: 1,
            step: order_placed_v1_to_v2,
        },
    ];

    #[test]
    fn the_registry_has_every_step() {
        let steps: Vec<_> = upcasters()
            .iter()
            .map(|u| (u.event_type, u.from_version))
            .collect();
        assert_eq!(
            steps,
            [("OrderPlaced", 1), ("OrderPaid", 1), ("OrderPlaced", 2)]
        );
    }

    #[test]
    fn order_placed_v2_ships_nowhere() {
        let v2 = json!({"customer_id": "alice", "placed_by": "alice"});
        assert_eq!(
            order_placed_v2_to_v3(v2),
            Ok(json!({"customer_id": "alice", "placed_by": "alice", "shipping_address": null}))
        );
        assert!(order_placed_v2_to_v3(json!([])).is_err());
        assert!(order_placed_v2_to_v3(json!({"shipping_address": null})).is_err());
    }

    #[test]
    fn order_paid_v1_names_neither_a_provider_event_nor_a_reason() {
        let v1 = json!({"amount_cents": 5, "currency": "EUR", "payment_ref": "p"});
        assert_eq!(
            order_paid_v1_to_v2(v1),
            Ok(
                json!({"amount_cents": 5, "currency": "EUR", "payment_ref": "p",
                      "provider_event": null, "reason": null})
            )
        );
        assert!(order_paid_v1_to_v2(json!([])).is_err());
        assert!(order_paid_v1_to_v2(json!({"reason": "x"})).is_err());
    }

    #[test]
    fn order_placed_v1_gets_placed_by_from_customer_id() {
        let v1 = json!({"customer_id": "alice", "total_cents": 5});
        assert_eq!(
            order_placed_v1_to_v2(v1),
            Ok(json!({"customer_id": "alice", "placed_by": "alice", "total_cents": 5}))
        );
        assert_eq!(
            order_placed_v1_to_v2(json!([])),
            Err("the payload is not a JSON object".into())
        );
        assert_eq!(
            order_placed_v1_to_v2(json!({"total_cents": 5})),
            Err("customer_id is missing".into())
        );
        assert_eq!(
            order_placed_v1_to_v2(json!({"customer_id": 7})),
            Err("customer_id is not a string".into())
        );
        assert_eq!(
            order_placed_v1_to_v2(json!({"customer_id": "a", "placed_by": "b"})),
            Err("a v1 payload has no placed_by".into())
        );
    }

    #[test]
    fn chains_steps_up_to_the_current_version() {
        let v1 = json!({"customer_id": "alice", "total_cents": 5});
        assert_eq!(
            upcast_with(CHAIN, 2, "OrderPlaced", 1, v1.clone()),
            Ok((
                2,
                json!({"customer_id": "alice", "placed_by": "alice", "total_cents": 5})
            ))
        );
        assert_eq!(
            upcast_with(CHAIN, 3, "OrderPlaced", 1, v1),
            Ok((
                3,
                json!({"customer_id": "alice", "source": {"placed_by": "alice"}, "total_cents": 5})
            ))
        );
        let v2 = json!({"customer_id": "alice", "placed_by": "root"});
        assert_eq!(
            upcast_with(CHAIN, 3, "OrderPlaced", 2, v2),
            Ok((
                3,
                json!({"customer_id": "alice", "source": {"placed_by": "root"}})
            ))
        );
        let v3 = json!({"source": {}});
        assert_eq!(
            upcast_with(CHAIN, 3, "OrderPlaced", 3, v3.clone()),
            Ok((3, v3))
        );
    }

    #[test]
    fn reports_missing_steps_refusals_and_bad_versions() {
        assert_eq!(
            upcast_with(CHAIN, 2, "OrderPaid", 1, json!({})),
            Err(UpcastError::MissingUpcaster {
                event_type: "OrderPaid".into(),
                from_version: 1,
            })
        );
        assert_eq!(
            upcast_with(CHAIN, 3, "OrderPlaced", 1, json!([])),
            Err(UpcastError::InvalidPayload {
                event_type: "OrderPlaced".into(),
                from_version: 1,
                reason: "the payload is not a JSON object".into(),
            })
        );
        for version in [0, 4] {
            assert_eq!(
                upcast_with(CHAIN, 3, "OrderPlaced", version, json!({})),
                Err(UpcastError::UnsupportedVersion {
                    event_type: "OrderPlaced".into(),
                    version,
                    current: 3,
                })
            );
        }
    }
}
