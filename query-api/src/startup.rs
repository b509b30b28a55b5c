//! Building and running the HTTP server (tests build it on port 0 with a fresh database
//! and talk to it over real HTTP).

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use eventstore::{connect_pool, EventStore};
use platform::telemetry::{metrics_endpoint, metrics_handle, track_requests};
use platform::{http, Authenticator};
use tracing_actix_web::TracingLogger;

use crate::audit::store::connect_read_only;
use crate::config::Settings;
use crate::consistency::Consistency;
use crate::db::ReadModel;
use crate::graphql::{self, AgoraSchema};
use crate::live::Live;
use crate::progress::Progress;
use crate::routes::{
    audit, customers, dashboard, health, orders, page, parked, products, stream, verifiable,
    AppState,
};

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    address: String,
    server: Server,
}

impl Application {
    /// Migrates the read-model schema, connects, and binds `settings.addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let authenticator = settings.auth.authenticator()?;
        let read_url = settings.read_database_url()?;
        readmodel::migrate(read_url).await?;
        let read = connect_pool(read_url, settings.pool_size)?;
        let events = match &settings.database_url {
            Some(url) => Some(EventStore::new(connect_read_only(url, settings.pool_size)?)),
            None => {
                tracing::warn!(
                    "DATABASE_URL is unset: the audit endpoints answer 503 until the query \
                     API is started with the event store"
                );
                None
            }
        };
        let keyring = settings.pii.keyring().map_err(anyhow::Error::msg)?;
        let vault = events
            .as_ref()
            .map(|events| platform::pii::Vault::new(keyring, events.pool().clone()));
        let progress = Progress::listen(read_url.to_owned());
        let live = Live::start(
            ReadModel::new(read.clone()),
            &progress,
            settings.max_live_subscribers,
        );
        let schema = graphql::schema(live.clone());
        let state = AppState {
            read: ReadModel::new(read),
            events,
            vault,
            verifications: crate::shares::SubjectShares::new(1),
            consistency: Consistency::new(
                settings.consistency_wait(),
                settings.consistency_max_waiters,
                Some(progress.clone()),
            ),
            progress,
            live,
            heartbeat: settings.sse_heartbeat(),
        };
        let tls = settings.tls.server_config()?;
        let listener = TcpListener::bind(&settings.addr)?;
        let local = listener.local_addr()?;
        let server = run(
            listener,
            state,
            schema,
            authenticator,
            settings.workers,
            tls,
        )?;
        Ok(Application {
            port: local.port(),
            address: local.to_string(),
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM stop it gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The routes of API.md's query API, plus health, metrics, the OpenAPI document
/// (`/openapi.json`), Swagger UI (`/docs/`), GraphQL with GraphiQL (`/graphql`) and the
/// dashboard page (`/dashboard/`).
pub fn configure(config: &mut web::ServiceConfig) {
    crate::openapi::docs().configure(config);
    config
        .route("/graphql", web::post().to(graphql::execute))
        .route("/graphql", web::get().to(graphql::graphiql))
        .route("/graphql/ws", web::get().to(graphql::subscriptions))
        .route(
            "/graphql/assets/{file}",
            web::get().to(graphql::graphiql_asset),
        )
        .route("/dashboard", web::get().to(page::to_index))
        .route("/dashboard/", web::get().to(page::index))
        .route("/dashboard/{file}", web::get().to(page::asset))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics_endpoint))
        .service(
            web::scope("/v1")
                .route("/products", web::get().to(products::list))
                .route("/products/{id}", web::get().to(products::get))
                .route("/orders", web::get().to(orders::list))
                .route("/orders/{id}", web::get().to(orders::get))
                .route("/me", web::get().to(customers::me))
                .route("/customers/{id}", web::get().to(customers::get))
                .route("/dashboard/sales", web::get().to(dashboard::sales))
                .route(
                    "/dashboard/top-products",
                    web::get().to(dashboard::top_products),
                )
                .route("/dashboard/stream", web::get().to(stream::stream))
                .route("/audit/events", web::get().to(audit::events))
                .route(
                    "/audit/streams/{stream_id}/events",
                    web::get().to(audit::stream_events),
                )
                .route(
                    "/audit/streams/{stream_id}/state",
                    web::get().to(audit::stream_state),
                )
                .route("/audit/verify", web::get().to(audit::verify))
                .route("/audit/checkpoint", web::get().to(verifiable::checkpoint))
                .route("/audit/public-key", web::get().to(verifiable::public_key))
                .route(
                    "/audit/proofs/inclusion",
                    web::get().to(verifiable::inclusion),
                )
                .route(
                    "/audit/proofs/consistency",
                    web::get().to(verifiable::consistency),
                )
                .route("/projections/{name}/parked", web::get().to(parked::list))
                .route(
                    "/projections/{name}/parked/{stream_id}/retry",
                    web::post().to(parked::retry),
                )
                .route(
                    "/projections/{name}/parked/{stream_id}/skip",
                    web::post().to(parked::skip),
                ),
        );
}

/// Starts serving on `listener`: HTTPS with `tls`, else plain HTTP.
pub fn run(
    listener: TcpListener,
    state: AppState,
    schema: AgoraSchema,
    authenticator: Authenticator,
    workers: usize,
    tls: Option<platform::tls::ServerConfig>,
) -> std::io::Result<Server> {
    let state = std::sync::Arc::new(state);
    let schema = web::Data::new(schema);
    let parsed = web::Data::new(graphql::ParsedQueries::default());
    let authenticator = web::Data::new(authenticator);
    let metrics = web::Data::new(metrics_handle());
    let mut server = HttpServer::new(move || {
        // Built on each worker's thread: its shared connections live on its runtime.
        App::new()
            .wrap(from_fn(http::refuse_control_characters))
            .wrap(from_fn(track_requests))
            .wrap(TracingLogger::default())
            .app_data(web::Data::new(state.for_worker()))
            .app_data(authenticator.clone())
            .app_data(schema.clone())
            .app_data(parsed.clone())
            .app_data(metrics.clone())
            .app_data(http::json_config())
            .app_data(http::path_config())
            .app_data(http::query_config())
            .configure(configure)
            .default_service(web::to(http::no_such_route))
    })
    .keep_alive(http::KEEP_ALIVE);
    server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}
