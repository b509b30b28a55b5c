//! A client of toxiproxy's HTTP API (started by `scripts/faults.sh toxiproxy`): TCP proxies
//! between the services and their upstreams, and toxics on them (latency, bandwidth,
//! connection resets, stalls).

use serde_json::{json, Value};

/// The toxiproxy server at an API URL.
#[derive(Clone)]
pub struct Toxiproxy {
    api: String,
    http: reqwest::Client,
}

/// One proxy: connect to `listen` to reach its upstream through the toxics.
#[derive(Clone)]
pub struct Proxy {
    server: Toxiproxy,
    pub name: String,
    pub listen: String,
}

impl Toxiproxy {
    pub fn new(api: &str) -> Toxiproxy {
        Toxiproxy {
            api: api.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A new proxy named `name` on a free local port to `upstream` (`host:port`).
    pub async fn create(&self, name: &str, upstream: &str) -> anyhow::Result<Proxy> {
        self.create_at(name, "127.0.0.1:0", upstream).await
    }

    /// A new proxy named `name` listening on `listen` (`host:port`; port 0: a free one) to
    /// `upstream`. A proxy left under that name by an earlier run is replaced.
    pub async fn create_at(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> anyhow::Result<Proxy> {
        // An earlier run that failed may have left it (404 when it did not).
        let _ = self
            .call(reqwest::Method::DELETE, &format!("/proxies/{name}"), None)
            .await;
        let created = self
            .call(
                reqwest::Method::POST,
                "/proxies",
                Some(
                    json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true}),
                ),
            )
            .await?;
        let listen = created["listen"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("toxiproxy answered without listen: {created}"))?;
        Ok(Proxy {
            server: self.clone(),
            name: name.to_owned(),
            listen: listen.to_owned(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.api));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "toxiproxy {method} {path}: {status} {text}"
        );
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

impl Proxy {
    /// Adds a toxic of `kind` (latency, bandwidth, reset_peer, timeout, limit_data, slicer,
    /// slow_close) on the `stream` (upstream: towards the server; downstream: back).
    pub async fn add_toxic(
        &self,
        name: &str,
        kind: &str,
        stream: &str,
        attributes: Value,
    ) -> anyhow::Result<()> {
        self.server
            .call(
                reqwest::Method::POST,
                &format!("/proxies/{}/toxics", self.name),
                Some(json!({"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes})),
            )
            .await
            .map(drop)
    }

    /// Adds a toxic (as [`Proxy::add_toxic`], named after its kind), awaits `during`, and
    /// removes the toxic again, also when `during` failed.
    pub async fn with_toxic<T>(
        &self,
        kind: &str,
        stream: &str,
        attributes: Value,
        during: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let name = format!("{kind}-{stream}");
        self.add_toxic(&name, kind, stream, attributes).await?;
        let outcome = during.await;
        self.remove_toxic(&name).await?;
        outcome
    }

    pub async fn remove_toxic(&self, name: &str) -> anyhow::Result<()> {
        self.server
            .call(
                reqwest::Method::DELETE,
                &format!("/proxies/{}/toxics/{name}", self.name),
                None,
            )
            .await
            .map(drop)
    }

    /// Removes the proxy (its connections close).
    pub async fn delete(self) -> anyhow::Result<()> {
        self.server
            .call(
                reqwest::Method::DELETE,
                &format!("/proxies/{}", self.name),
                None,
            )
            .await
            .map(drop)
    }
}
