//! Restocks through the command API over HTTP (`POST /v1/products/{id}/restock`), with an
//! admin token, for the curve and the memory check.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use platform::{JwtKeys, Role};
use uuid::Uuid;

use crate::support::http_client;

/// A command API and a way to call it.
pub struct RestockApi {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl RestockApi {
    /// The command API at `base` (`http://127.0.0.1:PORT`), with an admin token signed with
    /// `secret` (the service's `AGORA_JWT_SECRET`), for up to `concurrency` callers.
    pub fn new(base: &str, secret: &str, concurrency: usize) -> Result<RestockApi> {
        let token = JwtKeys::hs256(secret.as_bytes())
            .mint("peers-bench", &[Role::Admin], 24 * 3600)
            .context("signing the admin token")?;
        Ok(RestockApi {
            client: http_client(concurrency)?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Restocks product `id` by one unit; anything but 200 is an error.
    pub async fn restock(&self, id: Uuid) -> Result<()> {
        let response = self
            .client
            .post(format!("{}/v1/products/{id}/restock", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "quantity": 1 }))
            .send()
            .await
            .with_context(|| format!("restocking {id}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            bail!("restocking {id}: {status}: {body}");
        }
        Ok(())
    }

    /// Waits until `/readyz` answers 200, for up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = self
                .client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{} is not ready after {timeout:?}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
