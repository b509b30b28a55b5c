//! The `command-api` binary.

use clap::Parser;
use command_api::config::Settings;
use command_api::startup::Application;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init_logging();
    let settings = Settings::parse();
    let application = Application::build(settings).await?;
    tracing::info!(address = %application.address(), "command API listening");
    application.run_until_stopped().await?;
    Ok(())
}
