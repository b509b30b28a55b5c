//! [`Timestamp`]: a UTC time as every answer writes it, REST and GraphQL alike: RFC 3339
//! with `Z` and as many fraction digits as it has (`2024-05-01T10:00:00.123456Z`).

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// A UTC time (GraphQL scalar `DateTime`; in JSON an RFC 3339 string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The time written as in every answer.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// GraphQL input accepts any RFC 3339 time (with any offset) and output is always UTC.
#[Scalar(name = "DateTime")]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => DateTime::parse_from_rfc3339(text)
                .map(|time| Timestamp(time.with_timezone(&Utc)))
                .map_err(|_| {
                    InputValueError::custom(format!(
                        "expected an RFC 3339 time such as 2024-05-01T12:00:00Z, got {text:?}"
                    ))
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_writes_times_exactly_as_serde_does() {
        for text in ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123456Z"] {
            let time = Timestamp::parse(Value::String(text.into())).unwrap();
            assert_eq!(time.to_value(), Value::String(text.into()));
            assert_eq!(serde_json::to_value(time).unwrap(), text);
        }
        let offset = Timestamp::parse(Value::String("2024-05-01T12:00:00+02:00".into())).unwrap();
        assert_eq!(offset.to_rfc3339(), "2024-05-01T10:00:00Z");
        assert!(Timestamp::parse(Value::String("yesterday".into())).is_err());
    }
}
