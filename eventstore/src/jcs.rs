//! RFC 8785 (JSON Canonicalization Scheme) written straight into a byte buffer: the form
//! the hash chain and the Merkle leaves hash (docs/AUDIT.md restates it for auditors).
//!
//! `serde_jcs` canonicalizes through a serializer that buffers every member in its own
//! allocations and re-parses every key to sort it; hashing a log of a million events spent
//! most of its time there. This writer walks a [`Value`] instead: object members sorted by
//! their names as UTF-16 code units (serde_json's maps are already in byte order, which is
//! the same for every name without characters beyond U+FFFF, so sorting is rarely needed),
//! strings escaped as serde_json escapes them (exactly RFC 8785's rules), integers of at
//! most 2^53 in magnitude in decimal. Any other number goes through `serde_jcs` itself, the
//! one implementation of ECMAScript's number formatting here; the tests check the whole
//! writer against `serde_jcs`.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Integers up to this magnitude are exact as IEEE 754 doubles and written as is.
const EXACT_INTEGER: u64 = 1 << 53;

/// Appends the canonical form of `value`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(out, members),
    }
}

/// Appends a JSON string in canonical form.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // serde_json escapes `"`, `\` and the controls below U+0020 (as \b \f \n \r \t or
    // \u00xx with lowercase hex) and nothing else: RFC 8785, section 3.2.2.2.
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends an integer as RFC 8785 writes the double it denotes.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    if value.unsigned_abs() <= EXACT_INTEGER {
        let mut buffer = itoa::Buffer::new();
        out.extend_from_slice(buffer.format(value).as_bytes());
    } else {
        write_number(out, &Number::from(value));
    }
}

fn write_number(out: &mut Vec<u8>, number: &Number) {
    if let Some(small) = number
        .as_i64()
        .filter(|n| n.unsigned_abs() <= EXACT_INTEGER)
    {
        let mut buffer = itoa::Buffer::new();
        out.extend_from_slice(buffer.format(small).as_bytes());
    } else {
        // Every JSON number of a `Value` is finite, which is all serde_jcs refuses.
        let _ = serde_jcs::to_writer(&mut *out, number);
    }
}

fn write_object(out: &mut Vec<u8>, members: &Map<String, Value>) {
    out.push(b'{');
    let mut keys = members.keys();
    let in_order = match keys.next() {
        Some(mut previous) => keys.all(|key| {
            let ordered = utf16_cmp(previous, key) == Ordering::Less;
            previous = key;
            ordered
        }),
        None => true,
    };
    if in_order {
        for (index, (name, value)) in members.iter().enumerate() {
            write_member(out, index, name, value);
        }
    } else {
        let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
        sorted.sort_by(|(a, _), (b, _)| utf16_cmp(a, b));
        for (index, (name, value)) in sorted.into_iter().enumerate() {
            write_member(out, index, name, value);
        }
    }
    out.push(b'}');
}

fn write_member(out: &mut Vec<u8>, index: usize, name: &str, value: &Value) {
    if index > 0 {
        out.push(b',');
    }
    write_str(out, name);
    out.push(b':');
    write_value(out, value);
}

/// Names compared as arrays of UTF-16 code units (RFC 8785, section 3.2.3).
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn canonical(value: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, value);
        String::from_utf8(out).expect("UTF-8")
    }

    fn reference(value: &Value) -> String {
        serde_jcs::to_string(value).expect("serde_jcs")
    }

    #[test]
    fn tricky_documents_match_serde_jcs() {
        let documents = [
            json!({"b": 1, "a": [true, false, null], "c": {"z": "é", "y": -0.0}}),
            json!({"\u{1F600}": 1, "\u{FF61}": 2, "\u{E000}": 3, "a": 4}),
            json!({"text": "\"\\\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}/\u{2028}"}),
            json!([
                1.5,
                1e21,
                1e-7,
                123456789012345678u64,
                -9007199254740993i64,
                9007199254740992u64
            ]),
            json!({"n": 18446744073709551615u64, "m": -9223372036854775808i64, "f": 0.1}),
            json!({}),
            json!([]),
            json!("plain"),
        ];
        for document in documents {
            assert_eq!(canonical(&document), reference(&document), "{document}");
        }
    }

    #[test]
    fn integers_match_serde_jcs() {
        for value in [
            0,
            1,
            -1,
            1250,
            (1 << 53) - 1,
            1 << 53,
            (1 << 53) + 1,
            -(1 << 53) - 1,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_i64(&mut out, value);
            assert_eq!(
                String::from_utf8(out).expect("UTF-8"),
                reference(&json!(value)),
                "{value}"
            );
        }
    }

    fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_value_matches_serde_jcs(value in arbitrary_value()) {
            prop_assert_eq!(canonical(&value), reference(&value));
        }
    }
}
