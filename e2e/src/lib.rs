//! What the end-to-end tests share beyond `testkit`: the fault tests' client history and its
//! checker, their workload, a toxiproxy client, and the compose-file parsers; plus the test
//! services' addresses (re-exported from `testkit::env`).
//!
//! The services are started by the project's own scripts (`scripts/services.sh start`, or
//! `scripts/test.sh`, which starts them and exports the variables). Tests that need a
//! service and cannot reach it must fail with a clear message, never skip.

pub mod checker;
pub mod compose;
pub mod history;
pub mod toxiproxy;
pub mod workload;

pub use testkit::env::{
    database_url, kafka_brokers, oidc_admin, oidc_issuer, DATABASE_URL_ENV, DEFAULT_DATABASE_URL,
    DEFAULT_KAFKA_BROKERS, DEFAULT_OIDC_ADMIN, DEFAULT_OIDC_ISSUER, KAFKA_BROKERS_ENV,
    OIDC_ADMIN_ENV, OIDC_ISSUER_ENV, SERVICES_HINT,
};
