//! `GET /dashboard/`: the dashboard page for people (sales per hour, top products, the
//! latest orders, updating live). Hand-written HTML, CSS and JavaScript from
//! `query-api/assets/dashboard/`, built into the binary; no build step, no CDN. The page
//! itself is public; everything it shows comes from the `/v1` API with the token the
//! user enters (kept in the tab's `sessionStorage`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use platform::Problem;

use crate::static_files::{self, StaticFile};

/// The page's scripts and styles.
const FILES: &[StaticFile] = &[
    StaticFile {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/dashboard.js"),
    },
    StaticFile {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/dashboard.css"),
    },
];

/// The page may load its own files only, and talk only to its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// `GET /dashboard/`.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("../../assets/dashboard/index.html"))
}

/// `GET /dashboard`: to `/dashboard/`, so the page's relative world is right.
pub async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/dashboard/"))
        .finish()
}

/// `GET /dashboard/{file}`.
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, Problem> {
    static_files::serve(FILES, &file, "no-cache", "dashboard")
}
