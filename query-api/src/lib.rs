//! Agora's query API: serves the read models the projectors maintain (products, orders,
//! sales, top products) over HTTP, with keyset pagination, `ETag`/`If-None-Match` and
//! read-your-writes (`?min_version=N`).
//!
//! It reads only the `read_model.*` views, never the versioned tables behind them, so a
//! blue/green rebuild can switch a view without this service noticing.
//!
//! The audit endpoints (`/v1/audit/*`, role `auditor`) are the exception: they read the
//! event store itself (`DATABASE_URL`) through read-only sessions; see [`routes::audit`].
//!
//! The OpenAPI document is generated from the handlers and served at `GET /openapi.json`,
//! with Swagger UI at `/docs/` (see [`openapi`]).
//!
//! For dashboards: GraphQL at `/graphql` (see [`graphql`]), live updates over SSE
//! (`/v1/dashboard/stream`) and GraphQL subscriptions, fanned out by [`live`] when
//! [`progress`] hears the projector's NOTIFY, and a page for people at `/dashboard/`.

pub mod audit;
pub mod config;
pub mod consistency;
pub mod db;
pub mod etag;
pub mod graphql;
pub mod live;
pub mod openapi;
pub mod pagination;
pub mod progress;
pub mod routes;
pub mod shares;
pub mod startup;
pub mod static_files;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;
