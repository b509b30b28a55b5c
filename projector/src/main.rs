//! The `projector` binary.

use clap::Parser;
use projector::config::Settings;
use projector::service::Projector;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init_logging();
    let settings = Settings::parse();
    let projector = Projector::start(settings).await?;
    tracing::info!(port = projector.port, "projector running");
    projector.run_until_signalled().await
}
