//! GraphQL on the query API: `POST /graphql`, GraphiQL at `GET /graphql` (vendored, no
//! CDN), subscriptions over WebSocket at `/graphql/ws` (`graphql-transport-ws`).
//!
//! The resolvers call the REST routes' read functions, with the same role and ownership
//! rules (a customer's `orders` and `order` hold only their own orders; someone else's is
//! simply absent). Every request needs a bearer token like `/v1` (401 problem+json
//! without one); a subscription takes it from `connection_init`'s payload
//! (`{"Authorization": "Bearer <token>"}`) or the upgrade request's header.
//!
//! Queries deeper than [`MAX_DEPTH`] or costlier than [`MAX_COMPLEXITY`] (each field
//! costs 1, a list its most items times what each item costs: a page its `first`, sales its
//! buckets, top products its `limit`) are refused before anything is read, aliases and
//! fragments counted. A request that passes still has a budget: at most [`MAX_READS`]
//! read-model queries (`ReadBudget`) and [`DEADLINE`] to answer. Errors carry `extensions.code` (API.md's codes) and never the
//! details of a server failure, which go to the log. The schema is committed as
//! `query-api/schema.graphql`; a test keeps it equal to [`sdl`].

mod parsed;
mod query;
mod subscription;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::{EmptyMutation, ErrorExtensions, Schema};
use async_graphql_actix_web::GraphQLSubscription;
use platform::{Authenticator, Caller, Problem};

pub use parsed::ParsedQueries;
pub use query::Query;
pub use subscription::Subscription;

use crate::live::Live;
use crate::routes::AppState;
use crate::static_files::{self, StaticFile};

/// The query API's GraphQL schema.
pub type AgoraSchema = Schema<Query, EmptyMutation, Subscription>;

/// The deepest selection accepted (GraphiQL's introspection query is 13 deep).
pub const MAX_DEPTH: usize = 15;
/// The costliest query accepted: one full page (500) of one list with every field, or
/// about 1,600 hourly sales buckets with every field.
pub const MAX_COMPLEXITY: usize = 10_000;
/// The most read-model queries one request may make (a dashboard's query makes a few).
pub const MAX_READS: usize = 32;
/// The longest one request may run.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// What is left of one request's [`MAX_READS`].
#[derive(Debug, Default)]
pub(crate) struct ReadBudget(AtomicUsize);

impl ReadBudget {
    /// Counts one read-model query; an error once the budget is spent.
    pub(crate) fn spend(&self) -> async_graphql::Result<()> {
        if self.0.fetch_add(1, Ordering::Relaxed) < MAX_READS {
            Ok(())
        } else {
            Err(too_costly(format!(
                "the request makes more than {MAX_READS} read-model queries; split it"
            )))
        }
    }
}

/// An error with `extensions.code` `too_costly`.
fn too_costly(message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, extensions| {
        extensions.set("code", "too_costly");
    })
}

/// The schema, its subscriptions fed by `live`.
pub fn schema(live: Live) -> AgoraSchema {
    Schema::build(Query, EmptyMutation, Subscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .data(live)
        .finish()
}

/// The schema in SDL, as committed in `query-api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, Subscription)
        .finish()
        .sdl()
}

/// A problem as a GraphQL error: its detail (never a server failure's details, see
/// [`Problem::internal`]) with `extensions.code` and `extensions.status`.
pub(crate) fn error(problem: Problem) -> async_graphql::Error {
    async_graphql::Error::new(problem.detail).extend_with(|_, extensions| {
        extensions.set("code", problem.code);
        extensions.set("status", problem.status.as_u16());
    })
}

/// `Result<T, Problem>` into a GraphQL result.
pub(crate) trait OrGraphqlError<T> {
    fn or_graphql_error(self) -> async_graphql::Result<T>;
}

impl<T> OrGraphqlError<T> for Result<T, Problem> {
    fn or_graphql_error(self) -> async_graphql::Result<T> {
        self.map_err(error)
    }
}

/// The caller of this request or subscription (401 without one).
pub(crate) fn caller<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Caller> {
    ctx.data_opt::<Caller>().ok_or_else(|| {
        error(Problem::unauthenticated(
            "send Authorization: Bearer <token> (in connection_init for subscriptions)",
        ))
    })
}

/// `POST /graphql`.
pub async fn execute(
    caller: Caller,
    schema: web::Data<AgoraSchema>,
    state: web::Data<AppState>,
    parsed: web::Data<ParsedQueries>,
    request: web::Json<async_graphql::Request>,
) -> HttpResponse {
    let mut request = request.into_inner();
    parsed.prepare(&mut request);
    let request = request
        .data(caller)
        .data(state.into_inner())
        .data(ReadBudget::default());
    let response = match tokio::time::timeout(DEADLINE, schema.execute(request)).await {
        Ok(response) => response,
        Err(_) => async_graphql::Response::from_errors(vec![too_costly(format!(
            "the request ran past its {} s deadline",
            DEADLINE.as_secs()
        ))
        .into_server_error(async_graphql::Pos::default())]),
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .json(&response)
}

/// `GET /graphql/ws`: subscriptions (`graphql-transport-ws`).
pub async fn subscriptions(
    schema: web::Data<AgoraSchema>,
    authenticator: web::Data<Authenticator>,
    request: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let header_token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer)
        .map(str::to_owned);
    GraphQLSubscription::new(Schema::clone(&schema))
        .on_connection_init(move |init| async move {
            let token = header_token.or_else(|| init_token(&init)).ok_or_else(|| {
                async_graphql::Error::new(
                    "unauthenticated: send {\"Authorization\": \"Bearer <token>\"} in \
                         connection_init",
                )
            })?;
            let caller = authenticator.authenticate(&token).await.map_err(error)?;
            let mut data = async_graphql::Data::default();
            data.insert(caller);
            Ok(data)
        })
        .start(&request, payload)
}

/// The token of `Bearer <token>`.
fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// The token in a `connection_init` payload: `Authorization` (any case) `Bearer <token>`.
fn init_token(init: &serde_json::Value) -> Option<String> {
    init.as_object()?
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
        .and_then(bearer)
        .map(str::to_owned)
}

/// GraphiQL's vendored files (`query-api/assets/graphiql/`).
const GRAPHIQL_FILES: &[StaticFile] = &[
    StaticFile {
        name: "graphiql.min.js",
        content_type: "text/javascript",
        body: include_bytes!("../../assets/graphiql/graphiql.min.js"),
    },
    StaticFile {
        name: "graphiql.min.css",
        content_type: "text/css",
        body: include_bytes!("../../assets/graphiql/graphiql.min.css"),
    },
    StaticFile {
        name: "react.production.min.js",
        content_type: "text/javascript",
        body: include_bytes!("../../assets/graphiql/react.production.min.js"),
    },
    StaticFile {
        name: "react-dom.production.min.js",
        content_type: "text/javascript",
        body: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    },
];

/// `GET /graphql`: GraphiQL.
pub async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("../../assets/graphiql/index.html"))
}

/// `GET /graphql/assets/{file}`: GraphiQL's scripts and styles.
pub async fn graphiql_asset(file: web::Path<String>) -> Result<HttpResponse, Problem> {
    static_files::serve(GRAPHIQL_FILES, &file, "public, max-age=86400", "GraphiQL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_init_payload_in_any_case() {
        let init = serde_json::json!({"authorization": "Bearer abc"});
        assert_eq!(init_token(&init).as_deref(), Some("abc"));
        let init = serde_json::json!({"Authorization": "Basic abc"});
        assert_eq!(init_token(&init), None);
        assert_eq!(init_token(&serde_json::json!(null)), None);
    }
}
