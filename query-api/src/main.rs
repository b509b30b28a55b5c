//! The `query-api` binary.

use clap::Parser;
use query_api::config::Settings;
use query_api::startup::Application;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init_logging();
    let settings = Settings::parse();
    let application = Application::build(settings).await?;
    tracing::info!(address = %application.address(), "query API listening");
    application.run_until_stopped().await?;
    Ok(())
}
