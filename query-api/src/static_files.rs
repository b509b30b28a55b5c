//! Files built into the binary and served as they are: the dashboard page's and GraphiQL's.
//! Only the names listed are served; anything else is 404.

use actix_web::http::header;
use actix_web::HttpResponse;
use platform::Problem;

/// One served file.
pub struct StaticFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The file called `name` among `files`, with `Cache-Control: cache_control`; 404 naming
/// `what` otherwise.
pub fn serve(
    files: &[StaticFile],
    name: &str,
    cache_control: &'static str,
    what: &str,
) -> Result<HttpResponse, Problem> {
    let file = files
        .iter()
        .find(|file| file.name == name)
        .ok_or_else(|| Problem::not_found(format!("no {what} file {name}")))?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((header::CACHE_CONTROL, cache_control))
        .body(file.body))
}
