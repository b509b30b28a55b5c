//! Extractor settings and fallbacks that turn every malformed request into a 400 (or 404)
//! problem+json instead of actix's plain-text errors.

use actix_web::{web, HttpRequest};

use crate::problem::Problem;

/// The largest accepted JSON body.
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// JSON bodies: malformed JSON, wrong types, unknown or missing fields are 400.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .content_type_required(false)
        .error_handler(|error, _| Problem::invalid_request(error.to_string()).into())
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

/// The fallback for paths no route matches.
pub async fn no_such_route(request: HttpRequest) -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}
