//! Plumbing shared by the event enums for their stored form: an event is stored as its
//! type name, its schema version and its payload object, separately.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::EventDecodeError;

/// An event in its stored form: what appending it needs, whatever its stream type.
pub trait StoredEvent {
    /// The stored event type name.
    fn stored_type(&self) -> &'static str;
    /// The schema version it is written at.
    fn stored_version(&self) -> u32;
    /// The payload object.
    fn stored_payload(&self) -> Value;
}

/// The schema version of an event type that does not name one in [`stored_events`].
pub(crate) const FIRST_SCHEMA_VERSION: u32 = 1;

/// `$version`, or [`FIRST_SCHEMA_VERSION`] when none is given.
macro_rules! schema_version_or_first {
    () => {
        $crate::stored::FIRST_SCHEMA_VERSION
    };
    ($version:literal) => {
        $version
    };
}

pub(crate) use schema_version_or_first;

/// Serializes a payload struct to its JSON object.
///
/// Payload structs hold only strings, integers, UUIDs and lists of such under string keys,
/// which `serde_json` always serializes.
pub(crate) fn encode<T: Serialize>(payload: &T) -> Value {
    serde_json::json!(payload)
}

/// Checks the schema version (only `current` is read: older payloads must be upcast
/// first), then deserializes (and so validates) a payload object.
pub(crate) fn decode<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u32,
    current: u32,
    payload: &Value,
) -> Result<T, EventDecodeError> {
    if schema_version != current {
        return Err(EventDecodeError::UnsupportedSchemaVersion {
            event_type: event_type.to_owned(),
            schema_version,
            expected: current,
        });
    }
    let invalid = |reason: String| EventDecodeError::InvalidPayload {
        event_type: event_type.to_owned(),
        reason,
    };
    // serde would also accept a struct as an array of its fields; a payload is an object.
    if !payload.is_object() {
        return Err(invalid("the payload must be a JSON object".to_owned()));
    }
    T::deserialize(payload).map_err(|e| invalid(e.to_string()))
}

/// Defines an aggregate's event enum, one variant per event type, each wrapping the payload
/// struct of the same name, plus its stored form (`event_type`, `schema_version`,
/// `payload`, `from_stored`), `EVENT_TYPES`, `current_schema_version`, `From<Payload>`,
/// `cqrs_es::DomainEvent`, and each payload struct's `SCHEMA_VERSION`.
///
/// A variant is written `Name` (schema version 1) or `Name = N` (schema version `N`): the
/// version the domain writes and the only one `from_stored` reads. Raising it goes with a
/// new schema file and an upcaster from the previous version in the `schemas` crate.
///
/// The enum's own serde form is adjacently tagged: `{"event_type": "...", "payload": {...}}`.
macro_rules! stored_events {
    (
        $(#[$meta:meta])*
        $enum:ident, stream_type = $stream_type:expr,
        { $( $(#[$vmeta:meta])* $variant:ident $(= $version:literal)? ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "event_type", content = "payload")]
        pub enum $enum {
            $( $(#[$vmeta])* $variant($variant), )+
        }

        impl $enum {
            /// Every event type of this stream type, as stored in `event_type`.
            pub const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];

            /// The stored event type name (PascalCase, like the variant).
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => stringify!($variant), )+
                }
            }

            /// The schema version of the payload this event is written with (its type's
            /// current version).
            pub fn schema_version(&self) -> u32 {
                match self {
                    $( Self::$variant(_) => $variant::SCHEMA_VERSION, )+
                }
            }

            /// The current schema version of `event_type` (the one it is written and read
            /// at), or `None` if it is not an event type of this stream type.
            pub fn current_schema_version(event_type: &str) -> Option<u32> {
                match event_type {
                    $( stringify!($variant) => Some($variant::SCHEMA_VERSION), )+
                    _ => None,
                }
            }

            /// The payload object (snake_case fields, no type tag).
            pub fn payload(&self) -> serde_json::Value {
                match self {
                    $( Self::$variant(payload) => $crate::stored::encode(payload), )+
                }
            }

            /// Decodes (and validates) a stored event at its type's current schema version.
            /// Any other version is `UnsupportedSchemaVersion`: upcast older payloads first
            /// (`schemas::upcast`).
            pub fn from_stored(
                event_type: &str,
                schema_version: u32,
                payload: &serde_json::Value,
            ) -> Result<Self, $crate::error::EventDecodeError> {
                match event_type {
                    $(
                        stringify!($variant) => {
                            $crate::stored::decode(
                                event_type,
                                schema_version,
                                $variant::SCHEMA_VERSION,
                                payload,
                            )
                            .map(Self::$variant)
                        }
                    )+
                    _ => Err($crate::error::EventDecodeError::UnknownEventType {
                        stream_type: $stream_type,
                        event_type: event_type.to_owned(),
                    }),
                }
            }
        }

        impl $crate::stored::StoredEvent for $enum {
            fn stored_type(&self) -> &'static str {
                self.event_type()
            }

            fn stored_version(&self) -> u32 {
                self.schema_version()
            }

            fn stored_payload(&self) -> serde_json::Value {
                self.payload()
            }
        }

        impl cqrs_es::DomainEvent for $enum {
            fn event_type(&self) -> String {
                $enum::event_type(self).to_owned()
            }

            fn event_version(&self) -> String {
                self.schema_version().to_string()
            }
        }

        $(
            impl $variant {
                /// The schema version this payload is written and read at.
                pub const SCHEMA_VERSION: u32 =
                    $crate::stored::schema_version_or_first!($($version)?);
            }

            impl From<$variant> for $enum {
                fn from(payload: $variant) -> Self {
                    Self::$variant(payload)
                }
            }
        )+
    };
}

pub(crate) use stored_events;
