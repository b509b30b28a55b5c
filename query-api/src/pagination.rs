//! Keyset pagination for lists: `limit` (1–500, default 50) and an opaque `cursor`.
//!
//! A cursor is the sort key of the last item of the previous page, tagged with the list
//! it belongs to and encoded as unpadded base64url JSON. The next page is everything
//! strictly after that key, so a walk is stable under inserts and deletes: every item
//! present for the whole walk is seen exactly once. Cursors are not signed: tampering
//! with one only moves the starting point, every filter and visibility rule still applies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::Problem;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// The page size when `limit` is absent.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page.
pub const MAX_LIMIT: i64 = 500;
/// Longer `cursor` values are refused before decoding.
pub const MAX_CURSOR_CHARS: usize = 1024;

/// `requested` checked against `1..=max`, or `default` when absent.
pub fn limit(requested: Option<i64>, default: i64, max: i64) -> Result<i64, Problem> {
    match requested {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(limit) => Err(Problem::invalid_request(format!(
            "limit must be between 1 and {max}, got {limit}"
        ))),
    }
}

/// The sort key a list's cursor carries.
pub trait CursorKey: Serialize + DeserializeOwned {
    /// Tells one list's cursors from another's.
    const KIND: &'static str;
}

/// The opaque cursor for `key`.
pub fn encode<K: CursorKey>(key: &K) -> String {
    // Serializing tuples of strings, integers and UUIDs cannot fail.
    let json = serde_json::to_string(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(format!("{}:{json}", K::KIND))
}

/// The key inside `cursor`; 400 `invalid_request` unless it is a cursor of this list.
pub fn decode<K: CursorKey>(cursor: &str) -> Result<K, Problem> {
    let malformed = || Problem::invalid_request("cursor is malformed; pass a next_cursor as is");
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(malformed());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| malformed())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed())?;
    let json = text
        .strip_prefix(K::KIND)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(malformed)?;
    let value: serde_json::Value = serde_json::from_str(json).map_err(|_| malformed())?;
    if has_control_characters(&value) {
        return Err(malformed());
    }
    serde_json::from_value(value).map_err(|_| malformed())
}

/// Whether any string inside `value` holds a control character (a forged cursor's
/// `\u0000` would otherwise reach the database as a sort key).
fn has_control_characters(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.chars().any(char::is_control),
        serde_json::Value::Array(items) => items.iter().any(has_control_characters),
        serde_json::Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.chars().any(char::is_control) || has_control_characters(value)),
        _ => false,
    }
}

/// A page of a list, as API.md answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// This page's items, in list order (at most `limit`).
    pub items: Vec<T>,
    /// Pass it as `cursor` for the next page; `null` on the last page. Opaque: pass it as
    /// is, with the same filters.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows fetched in list order: the extra row, if any,
    /// only tells that another page follows.
    pub fn from_rows<K: CursorKey>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| encode(&key(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// The page of a list that is empty for this caller.
    pub fn empty() -> Self {
        Page {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Key(String, i64);
    impl CursorKey for Key {
        const KIND: &'static str = "k";
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Other(String, i64);
    impl CursorKey for Other {
        const KIND: &'static str = "o";
    }

    #[test]
    fn a_forged_cursor_with_a_control_character_is_malformed() {
        let forged = URL_SAFE_NO_PAD.encode("k:[\"a\\u0000b\",1]");
        assert_eq!(decode::<Key>(&forged).unwrap_err().code, "invalid_request");
        let honest = URL_SAFE_NO_PAD.encode("k:[\"ab\",1]");
        assert!(decode::<Key>(&honest).is_ok());
    }

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        let key = Key("A-1/+?&=".into(), -3);
        let cursor = encode(&key);
        assert!(cursor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(decode::<Key>(&cursor).unwrap(), key);
    }

    #[test]
    fn malformed_or_foreign_cursors_are_invalid_requests() {
        let foreign = encode(&Other("x".into(), 1));
        let wrong_shape = URL_SAFE_NO_PAD.encode("k:{\"a\":1}");
        let long = "A".repeat(MAX_CURSOR_CHARS + 1);
        for cursor in [
            "",
            "!!!",
            "a",
            foreign.as_str(),
            wrong_shape.as_str(),
            long.as_str(),
        ] {
            let problem = decode::<Key>(cursor).unwrap_err();
            assert_eq!(problem.code, "invalid_request", "{cursor}");
        }
    }

    #[test]
    fn limits_default_and_stay_in_range() {
        assert_eq!(limit(None, DEFAULT_LIMIT, MAX_LIMIT).unwrap(), 50);
        assert_eq!(limit(Some(1), DEFAULT_LIMIT, MAX_LIMIT).unwrap(), 1);
        assert_eq!(limit(Some(500), DEFAULT_LIMIT, MAX_LIMIT).unwrap(), 500);
        for bad in [0, -1, 501, i64::MAX] {
            assert!(limit(Some(bad), DEFAULT_LIMIT, MAX_LIMIT).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_full_page_plus_one_has_a_next_cursor() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| Key(String::new(), *n));
        assert_eq!(page.items, vec![1, 2]);
        let next = decode::<Key>(page.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(next, Key(String::new(), 2));
        let last = Page::from_rows(vec![1, 2], 2, |n| Key(String::new(), *n));
        assert!(last.next_cursor.is_none());
    }
}
