//! The command headers: `If-Match`, `Idempotency-Key` and `X-Correlation-Id`.

use actix_web::HttpRequest;
use platform::Problem;

/// `If-Match: "<version>"` (quotes optional): the version the target stream must be at.
pub fn if_match(request: &HttpRequest) -> Result<Option<i64>, Problem> {
    let Some(value) = request.headers().get("If-Match") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Problem::invalid_request("If-Match must be ASCII"))?
        .trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    match unquoted.parse::<i64>() {
        Ok(version) if version >= 0 => Ok(Some(version)),
        _ => Err(Problem::invalid_request(format!(
            "If-Match must be a stream version like \"3\", got {text:?}"
        ))),
    }
}

/// `Idempotency-Key: <1..255 visible ASCII>`.
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, Problem> {
    let Some(value) = request.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Problem::invalid_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// `X-Correlation-Id` when it is sensible (1..=200 visible ASCII), else a new one.
pub fn correlation_id(request: &HttpRequest) -> String {
    request
        .headers()
        .get("X-Correlation-Id")
        .map(|v| v.as_bytes())
        .filter(|b| !b.is_empty() && b.len() <= 200 && b.iter().all(|c| (0x21..=0x7e).contains(c)))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
