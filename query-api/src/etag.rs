//! Entity tags: an entity's `ETag` is its stream version in quotes (`"7"`), and a request
//! whose `If-None-Match` names that tag (weakly or not, quoted or not, or `*`) is answered
//! 304 without a body.

use actix_web::http::header::{self, HeaderMap};

/// The `ETag` value of an entity at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// True when the request's `If-None-Match` matches the entity at `version` (RFC 9110
/// weak comparison). A missing or unreadable header matches nothing.
pub fn if_none_match(headers: &HeaderMap, version: i64) -> bool {
    let wanted = version.to_string();
    headers
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || opaque_tag(tag) == wanted)
}

/// The opaque part of an entity tag: without `W/` and without the quotes (which we
/// accept missing, as the command API does for `If-Match`).
fn opaque_tag(tag: &str) -> &str {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn etags_are_quoted_versions() {
        assert_eq!(etag(7), "\"7\"");
    }

    #[test]
    fn matching_tags_in_every_spelling() {
        for value in [
            "\"7\"",
            "W/\"7\"",
            "7",
            "*",
            "\"3\", \"7\"",
            " \"1\" ,W/\"7\"",
        ] {
            assert!(if_none_match(&headers(&[value]), 7), "{value}");
        }
        assert!(if_none_match(&headers(&["\"1\"", "\"7\""]), 7));
    }

    #[test]
    fn other_tags_do_not_match() {
        for value in ["\"70\"", "\"6\"", "", "\"\"", "W/", "\"7", "x7"] {
            assert!(!if_none_match(&headers(&[value]), 7), "{value}");
        }
        assert!(!if_none_match(&HeaderMap::new(), 7));
    }
}
