//! An OpenID provider's public keys (its JWKS), fetched over HTTP (found through
//! discovery when no URL is configured; redirects are never followed, and an `http` URL only
//! when allowed), cached by `kid`. A token naming a `kid` not in the cache fetches again;
//! fetches are single-flight and at least `min_refetch` apart, so tokens with invented
//! `kid`s cannot hammer the provider. Keys older than [`MAX_KEY_AGE`] are refreshed off the
//! request path (the cached key answers meanwhile: stale-while-revalidate); keys older than
//! [`MAX_STALENESS`] (the provider unreachable that long) are no longer trusted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// Cached keys older than this are fetched again in the background (rate-limited), so a
/// key the provider withdrew stops being accepted.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(15 * 60);
/// Cached keys older than this are not used at all: a token then needs a fresh fetch.
pub const MAX_STALENESS: Duration = Duration::from_secs(60 * 60);
/// The largest JWKS or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A public key of the provider, ready to check signatures.
pub struct PublicKey {
    pub key: DecodingKey,
    /// The algorithm the JWKS pins the key to (`alg`), if it does.
    pub algorithm: Option<Algorithm>,
}

/// Why no key is available for a `kid`.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no key with kid {0:?} in the provider's JWKS")]
    UnknownKid(String),
    #[error("the provider's JWKS cannot be fetched: {0}")]
    Unavailable(String),
}

/// Why a refresh fetched nothing.
enum RefreshError {
    /// A fetch happened less than `min_refetch` ago, or one is in flight.
    NotDue,
    /// The fetch failed (the detail is logged, never answered).
    Failed(String),
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<PublicKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct Fetcher {
    last_attempt: Option<Instant>,
    jwks_url: Option<Url>,
}

/// The provider's keys, fetched on demand.
pub struct Jwks {
    issuer: String,
    http: reqwest::Client,
    min_refetch: Duration,
    allow_http: bool,
    cache: RwLock<Cache>,
    fetcher: Mutex<Fetcher>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    /// Keys from `jwks_url`, or from the URL `issuer`'s discovery document names.
    pub fn new(
        issuer: &str,
        jwks_url: Option<Url>,
        min_refetch: Duration,
        allow_http: bool,
    ) -> reqwest::Result<Jwks> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Fetches are rare and may come from any worker's runtime: no pooled
            // connection outlives the runtime that opened it.
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Jwks {
            issuer: issuer.to_owned(),
            http,
            min_refetch,
            allow_http,
            cache: RwLock::new(Cache::default()),
            fetcher: Mutex::new(Fetcher {
                last_attempt: None,
                jwks_url,
            }),
        })
    }

    /// The key named `kid`: from the cache (refreshed in the background once it is older
    /// than [`MAX_KEY_AGE`]) or, for a `kid` not cached or keys older than
    /// [`MAX_STALENESS`], from a fetch on the request path (rate-limited).
    pub async fn key(this: &Arc<Jwks>, kid: &str) -> Result<Arc<PublicKey>, KeyError> {
        if let Some((key, age)) = this.cached(kid).await {
            if age < MAX_KEY_AGE {
                return Ok(key);
            }
            if age < MAX_STALENESS {
                let jwks = this.clone();
                tokio::spawn(async move { jwks.refresh(false).await });
                return Ok(key);
            }
        }
        match this.refresh(true).await {
            Ok(()) | Err(RefreshError::NotDue) => {}
            Err(RefreshError::Failed(error)) => {
                return match this.cached(kid).await {
                    Some((key, age)) if age < MAX_STALENESS => Ok(key),
                    _ => Err(KeyError::Unavailable(error)),
                };
            }
        }
        match this.cached(kid).await {
            Some((key, age)) if age < MAX_STALENESS => Ok(key),
            Some(_) => Err(KeyError::Unavailable(
                "the cached keys are too old and no fresh ones could be fetched".into(),
            )),
            None => Err(KeyError::UnknownKid(kid.to_owned())),
        }
    }

    /// Fetches the keys if no fetch happened in the last `min_refetch` (one at a time;
    /// `wait`: for a fetch in flight, else skip).
    async fn refresh(&self, wait: bool) -> Result<(), RefreshError> {
        let mut fetcher = if wait {
            self.fetcher.lock().await
        } else {
            match self.fetcher.try_lock() {
                Ok(fetcher) => fetcher,
                Err(_) => return Err(RefreshError::NotDue),
            }
        };
        let due = fetcher
            .last_attempt
            .is_none_or(|last| last.elapsed() >= self.min_refetch);
        if !due {
            return Err(RefreshError::NotDue);
        }
        fetcher.last_attempt = Some(Instant::now());
        match self.fetch(&mut fetcher).await {
            Ok(keys) => {
                metrics::counter!("jwks_fetches_total", "outcome" => "ok").increment(1);
                let mut cache = self.cache.write().await;
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                Ok(())
            }
            Err(error) => {
                metrics::counter!("jwks_fetches_total", "outcome" => "error").increment(1);
                tracing::warn!(%error, "cannot fetch the OpenID provider's JWKS");
                Err(RefreshError::Failed(error))
            }
        }
    }

    /// The cached key named `kid` and how old the cache is.
    async fn cached(&self, kid: &str) -> Option<(Arc<PublicKey>, Duration)> {
        let cache = self.cache.read().await;
        let age = cache.fetched_at?.elapsed();
        cache.keys.get(kid).cloned().map(|key| (key, age))
    }

    async fn fetch(
        &self,
        fetcher: &mut Fetcher,
    ) -> Result<HashMap<String, Arc<PublicKey>>, String> {
        let url = match &fetcher.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = self.discover().await?;
                fetcher.jwks_url = Some(url.clone());
                url
            }
        };
        let set: KeySet = self.get_json(url.clone()).await?;
        let keys: HashMap<String, Arc<PublicKey>> = set
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                Some((kid, Arc::new(public_key(&jwk)?)))
            })
            .collect();
        tracing::info!(%url, keys = keys.len(), "fetched the OpenID provider's JWKS");
        Ok(keys)
    }

    async fn discover(&self) -> Result<Url, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let url = Url::parse(&url).map_err(|error| format!("{url}: {error}"))?;
        let discovery: Discovery = self.get_json(url.clone()).await?;
        if discovery.issuer != self.issuer {
            return Err(format!(
                "{url} names the issuer {:?}, not {:?}",
                discovery.issuer, self.issuer
            ));
        }
        let jwks_uri = Url::parse(&discovery.jwks_uri)
            .map_err(|error| format!("{url}: jwks_uri {:?}: {error}", discovery.jwks_uri))?;
        if jwks_uri.scheme() != "https" && !(self.allow_http && jwks_uri.scheme() == "http") {
            return Err(format!(
                "{url}: jwks_uri {jwks_uri} is not https (AGORA_OIDC_ALLOW_HTTP=true allows http in development)"
            ));
        }
        Ok(jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, String> {
        let mut response = self
            .http
            .get(url.clone())
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .map_err(|error| format!("{url}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "{url}: answered {} (redirects are not followed)",
                response.status()
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("{url}: {error}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|error| format!("{url}: {error}"))
    }
}

/// An asymmetric signing key of the set; symmetric (`oct`) keys and keys for encryption
/// are never used to check a token.
fn public_key(jwk: &Jwk) -> Option<PublicKey> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return None;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        None => None,
        Some(pinned) => Some(
            Algorithm::try_from(pinned)
                .ok()
                .filter(|algorithm| algorithm.family() != AlgorithmFamily::Hmac)?,
        ),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.family() == AlgorithmFamily::Hmac {
        return None;
    }
    Some(PublicKey { key, algorithm })
}
