//! RFC 9457 problem details: every error response of the APIs, with a machine-readable
//! `code` from API.md.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer: `application/problem+json` with `type`, `title`, `status`, `detail`
/// and `code`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub retry_after_seconds: Option<u64>,
}

/// The body of every error answer: RFC 9457 problem details plus Agora's machine-readable
/// `code`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(
    example = json!({
        "type": "https://agora.dev/problems/invalid-request",
        "title": "Bad Request",
        "status": 400,
        "detail": "sku: may only contain the characters A-Z a-z 0-9 - _",
        "code": "invalid_request"
    })
)]
pub struct ProblemDetails {
    /// A URI naming the kind of problem: `https://agora.dev/problems/<code with dashes>`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status code, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time, for a human.
    pub detail: String,
    /// The machine-readable error code (API.md's table: `invalid_request`, `not_found`, ...).
    pub code: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after_seconds: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 422 with a business-rule code.
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 429 `rate_limited` with `Retry-After` (at least 1 s): the caller is over its share.
    pub fn rate_limited(detail: impl Into<String>, retry_after: u64) -> Self {
        metrics::counter!("rate_limited_total").increment(1);
        let mut problem = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
        problem.retry_after_seconds = Some(retry_after.max(1));
        problem
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Problem {
            retry_after_seconds: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
        }
    }

    /// 500 `internal`: details go to the log, not to the client.
    pub fn internal(error: impl fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// A failed database call, as the one classification ([`eventstore::DbFailure`]) says:
    /// passing trouble is 503 `code` with `Retry-After` (the cause logged as a warning); a
    /// value the database refused is 400 `invalid_request`; anything else is a 500 whose
    /// body says nothing of the cause (logged as an error).
    pub fn database(
        failure: eventstore::DbFailure,
        cause: impl fmt::Display,
        code: &'static str,
        detail: &'static str,
    ) -> Self {
        match failure {
            eventstore::DbFailure::Transient => {
                tracing::warn!(%cause, "database unavailable");
                Problem::unavailable(code, detail, 1)
            }
            eventstore::DbFailure::Data => {
                tracing::info!(%cause, "the database refused a value of the request");
                Problem::invalid_request("a value in the request cannot be stored or searched for")
            }
            eventstore::DbFailure::Other => Problem::internal(cause),
        }
    }

    /// The title: the status's canonical reason.
    pub fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

/// The problem `type` URI of an error code: `https://agora.dev/problems/<code with dashes>`.
pub fn type_uri(code: &str) -> String {
    format!("https://agora.dev/problems/{}", code.replace('_', "-"))
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = ProblemDetails {
            kind: type_uri(self.code),
            title: self.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
        };
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(seconds) = self.retry_after_seconds {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(body)
    }
}
