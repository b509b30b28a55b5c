//! Upcasters: bring a stored payload from the schema version it was written at to the
//! current one, one version step at a time, so readers only ever decode the current shape.
//!
//! Stored events are never rewritten; readers (aggregate loading, projectors, the audit
//! state endpoint) call [`upcast`] on each payload before decoding it.
//!
//! Today every event type is at version 1 and there are no upcasters: [`upcast`] is the
//! identity for version 1. A schema change adds **one function** and its registry entry.
//! For example, if `OrderPlaced` v2 gained a `channel` field defaulting to `"web"`:
//!
//! 1. add `events/order/OrderPlaced.v2.json` and list it in the crate's `EVENT_SCHEMAS`
//!    (which makes 2 the current version of `OrderPlaced`);
//! 2. add the step and register it in `UPCASTERS`:
//!
//! ```ignore
//! fn order_placed_v1_to_v2(mut payload: Value) -> Result<Value, String> {
//!     let object = payload.as_object_mut().ok_or("payload is not an object")?;
//!     object.entry("channel").or_insert_with(|| Value::from("web"));
//!     Ok(payload)
//! }
//!
//! static UPCASTERS: &[Upcaster] = &[Upcaster {
//!     event_type: "OrderPlaced",
//!     from_version: 1,
//!     step: order_placed_v1_to_v2,
//! }];
//! ```
//!
//! 3. the domain then writes and reads version 2. The tests check that every step from
//!    version 1 to the current one is registered and that its output validates.

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

/// Every registered upcasting step. Empty: every event type is at version 1.
static UPCASTERS: &[Upcaster] = &[];

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
    #[error("{event_type} schema version {version} is not supported (current is {current})")]
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

    /// The example from the module documentation.
    fn order_placed_v1_to_v2(mut payload: Value) -> Result<Value, String> {
        let object = payload.as_object_mut().ok_or("payload is not an object")?;
        object
            .entry("channel")
            .or_insert_with(|| Value::from("web"));
        Ok(payload)
    }

    fn order_placed_v2_to_v3(mut payload: Value) -> Result<Value, String> {
        let object = payload.as_object_mut().ok_or("payload is not an object")?;
        let channel = object.remove("channel").unwrap_or(Value::Null);
        object.insert("source".into(), json!({ "channel": channel }));
        Ok(payload)
    }

    static EXAMPLE: &[Upcaster] = &[
        Upcaster {
            event_type: "OrderPlaced",
            from_version: 2,
            step: order_placed_v2_to_v3,
        },
        Upcaster {
            event_type: "OrderPlaced",
            from_version: 1,
            step: order_placed_v1_to_v2,
        },
    ];

    #[test]
    fn chains_steps_up_to_the_current_version() {
        let v1 = json!({"total_cents": 5});
        assert_eq!(
            upcast_with(EXAMPLE, 2, "OrderPlaced", 1, v1.clone()),
            Ok((2, json!({"total_cents": 5, "channel": "web"})))
        );
        assert_eq!(
            upcast_with(EXAMPLE, 3, "OrderPlaced", 1, v1),
            Ok((3, json!({"total_cents": 5, "source": {"channel": "web"}})))
        );
        let v3 = json!({"source": {}});
        assert_eq!(
            upcast_with(EXAMPLE, 3, "OrderPlaced", 3, v3.clone()),
            Ok((3, v3))
        );
    }

    #[test]
    fn reports_missing_steps_refusals_and_bad_versions() {
        assert_eq!(
            upcast_with(EXAMPLE, 2, "OrderPaid", 1, json!({})),
            Err(UpcastError::MissingUpcaster {
                event_type: "OrderPaid".into(),
                from_version: 1,
            })
        );
        assert!(matches!(
            upcast_with(EXAMPLE, 2, "OrderPlaced", 1, json!([])),
            Err(UpcastError::InvalidPayload {
                from_version: 1,
                ..
            })
        ));
        for version in [0, 4] {
            assert!(matches!(
                upcast_with(EXAMPLE, 3, "OrderPlaced", version, json!({})),
                Err(UpcastError::UnsupportedVersion { current: 3, .. })
            ));
        }
    }
}
