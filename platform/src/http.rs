//! Extractor settings, fallbacks and a guard that turn every malformed request into a 400
//! (or 404) problem+json instead of actix's plain-text errors or a database's refusal.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};
use percent_encoding::percent_decode_str;

use crate::problem::Problem;

/// How long an idle client connection stays open. Longer than the idle timeouts of
/// common load balancers and client pools (60 s), so the peer is the one to close an
/// idle connection: a server that closes first races a request the peer is just
/// sending on it, and that request gets no answer (a 502 at a load balancer).
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(75);

/// The largest accepted JSON body.
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// JSON bodies: malformed JSON, wrong types, unknown or missing fields are 400. The detail
/// says what was wrong and where, never the value sent ([`without_values`]): bodies carry
/// personal data, and answers and logs must not repeat it.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .content_type_required(false)
        .error_handler(|error, _| {
            Problem::invalid_request(without_values(&error.to_string())).into()
        })
}

/// A serde error message without the values it quotes: `string "…"` becomes `a string`,
/// and a backticked value after `integer`, `floating point`, `variant` or `character`
/// becomes `…`. Field names (`unknown field `x``) stay.
pub fn without_values(message: &str) -> String {
    const VALUE_KINDS: [&str; 4] = ["integer ", "floating point ", "variant ", "character "];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let (before, from) = rest.split_at(start);
        let quote = from.as_bytes()[0] as char;
        let body = &from[1..];
        // The closing quote (a string's may be escaped inside).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if quote == '"' && !escaped => escaped = true,
                c if c == quote && !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            out.push_str(before);
            out.push_str(if quote == '"' { "a string" } else { "…" });
            return out;
        };
        let hide = quote == '"' || VALUE_KINDS.iter().any(|kind| before.ends_with(kind));
        if quote == '"' {
            out.push_str(before.strip_suffix("string ").unwrap_or(before));
            out.push_str("a string");
        } else if hide {
            out.push_str(before);
            out.push('…');
        } else {
            out.push_str(before);
            out.push('`');
            out.push_str(&body[..end]);
            out.push('`');
        }
        rest = &body[end + quote.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Path segments: a bad UUID in the path is 400.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|error, _| Problem::invalid_request(format!("bad path: {error}")).into())
}

/// Query strings: bad or unknown parameters are 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|error, _| Problem::invalid_request(format!("bad query: {error}")).into())
}

/// Refuses, with 400 `invalid_request` and before any handler runs, a request whose path
/// or query string holds a control character (U+0000–U+001F, U+007F–U+009F) once
/// percent-decoded (`%00`, `%0A`, ...), or bytes that do not decode to UTF-8: no
/// parameter, cursor or id ever carries one. Bodies are checked where they are parsed
/// (the domain's string types).
pub async fn refuse_control_characters(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    for (part, raw) in [
        ("path", request.path()),
        ("query string", request.query_string()),
    ] {
        let decoded = percent_decode_str(raw).decode_utf8();
        let refused = match &decoded {
            Ok(text) => text.chars().any(char::is_control),
            Err(_) => true,
        };
        if refused {
            return Err(Problem::invalid_request(format!(
                "the {part} must be UTF-8 without control characters"
            ))
            .into());
        }
    }
    next.call(request).await
}

/// The fallback for paths no route matches.
pub async fn no_such_route(request: HttpRequest) -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn serde_messages_lose_their_values_but_keep_field_names() {
        assert_eq!(
            without_values(
                "Json deserialize error: invalid type: string \"Rua Secreta 9\", expected \
                 struct PostalAddress at line 1 column 34"
            ),
            "Json deserialize error: invalid type: a string, expected struct PostalAddress \
             at line 1 column 34"
        );
        assert_eq!(
            without_values("invalid type: integer `351912345678`, expected a string"),
            "invalid type: integer …, expected a string"
        );
        assert_eq!(
            without_values("unknown field `phone`, expected one of `email`, `name`"),
            "unknown field `phone`, expected one of `email`, `name`"
        );
        assert_eq!(
            without_values(r#"invalid value: string "a \"quoted\" secret", expected x"#),
            "invalid value: a string, expected x"
        );
        assert_eq!(
            without_values("unterminated \"secret"),
            "unterminated a string"
        );
        assert_eq!(without_values("no quotes"), "no quotes");
    }
}
