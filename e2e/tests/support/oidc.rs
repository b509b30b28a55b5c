//! OpenID providers for the auth tests: the real Ory Hydra that `scripts/hydra.sh` runs
//! (clients, tokens and key rotation through its own APIs), and a small JWKS server of the
//! test's own, serving discovery and keys made by openssl and counting its JWKS fetches.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

/// The Hydra of `scripts/hydra.sh`.
pub struct Hydra {
    pub issuer: String,
    admin: String,
    http: reqwest::Client,
}

/// A client-credentials client registered at Hydra.
pub struct HydraClient {
    pub id: String,
    secret: String,
}

impl Hydra {
    /// The running Hydra; an error naming the script when it does not answer.
    pub async fn connect() -> anyhow::Result<Hydra> {
        let hydra = Hydra {
            issuer: e2e::oidc_issuer(),
            admin: e2e::oidc_admin(),
            http: reqwest::Client::new(),
        };
        hydra
            .http
            .get(format!("{}/health/ready", hydra.admin))
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .with_context(|| {
                format!(
                    "Hydra's admin API at {} does not answer: run `scripts/hydra.sh start` \
                     (scripts/test.sh does)",
                    hydra.admin
                )
            })?;
        Ok(hydra)
    }

    /// Registers a client that may ask for `scope` (space-separated) and `audiences`.
    pub async fn client(&self, scope: &str, audiences: &[&str]) -> anyhow::Result<HydraClient> {
        let client = HydraClient {
            id: format!("agora-test-{}", Uuid::new_v4().simple()),
            secret: Uuid::new_v4().simple().to_string(),
        };
        self.admin_post(
            "/admin/clients",
            &json!({
                "client_id": client.id,
                "client_secret": client.secret,
                "grant_types": ["client_credentials"],
                "scope": scope,
                "audience": audiences,
                "token_endpoint_auth_method": "client_secret_basic",
            }),
        )
        .await?;
        Ok(client)
    }

    /// An access token (a JWT) from Hydra's token endpoint.
    pub async fn token(
        &self,
        client: &HydraClient,
        scope: &str,
        audience: &str,
    ) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/oauth2/token", self.issuer))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("audience", audience),
            ])
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "token endpoint: {status} {body}");
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no access_token in {body}"))
    }

    /// Rotates the access-token signing key: Hydra signs new tokens with a new key `kid`
    /// (the old one stays published).
    pub async fn rotate(&self, kid: &str) -> anyhow::Result<()> {
        self.admin_post(
            "/admin/keys/hydra.jwt.access-token",
            &json!({"alg": "RS256", "use": "sig", "kid": kid}),
        )
        .await
    }

    /// POSTs `body` to Hydra's admin API; an error unless it succeeds.
    async fn admin_post(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}{path}", self.admin))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "POST {path}: {status} {}",
            response.text().await?
        );
        Ok(())
    }

    /// The public keys Hydra publishes.
    pub async fn jwks(&self) -> anyhow::Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.issuer))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["keys"].as_array().cloned().unwrap_or_default())
    }
}

/// The `kid` in a token's header.
pub fn kid_of(token: &str) -> anyhow::Result<String> {
    jsonwebtoken::decode_header(token)?
        .kid
        .context("the token names no kid")
}

/// A signing key made by openssl, with its public half as PEM and as a JWK.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    pub public_pem: String,
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh key for RS256, ES256 or EdDSA.
    pub fn generate(algorithm: Algorithm) -> anyhow::Result<SigningKey> {
        let options: &[&str] = match algorithm {
            Algorithm::RS256 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Algorithm::ES256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Algorithm::EdDSA => &["-algorithm", "ED25519"],
            other => anyhow::bail!("no test keys for {other:?}"),
        };
        let private = openssl(&[&["genpkey"], options].concat(), b"")?;
        let public = openssl(&["pkey", "-pubout"], &private)?;
        let encoding = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&private)?,
            Algorithm::ES256 => EncodingKey::from_ec_pem(&private)?,
            _ => EncodingKey::from_ed_pem(&private)?,
        };
        let kid = format!("test-{}", Uuid::new_v4().simple());
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm)?;
        jwk.common.key_id = Some(kid.clone());
        Ok(SigningKey {
            kid,
            algorithm,
            encoding,
            public_pem: String::from_utf8(public)?,
            jwk: serde_json::to_value(jwk)?,
        })
    }

    /// A token with `claims`, naming this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// A token with `claims` whose header names `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        encode(&header, claims, &self.encoding).expect("signing a test token")
    }

    /// A token with `claims` whose header names no key.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        encode(&Header::new(self.algorithm), claims, &self.encoding).expect("signing a test token")
    }
}

fn openssl(args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running openssl (apt-get install openssl)")?;
    child
        .stdin
        .take()
        .context("openssl's stdin")?
        .write_all(input)?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

/// Claims a provider would issue: `sub`, `iss`, `aud`, the roles at `roles_claim`
/// (top-level), valid from a minute ago for ten minutes.
pub fn claims(issuer: &str, audience: &str, sub: &str, roles_claim: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer,
        "aud": [audience],
        "sub": sub,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 600,
    });
    if let (Value::Object(claims), Value::Object(extra)) = (&mut claims, roles_claim) {
        claims.extend(extra);
    }
    claims
}

/// An issuer of the test's own: discovery at `/.well-known/openid-configuration`, keys at
/// `/jwks.json`, counting the JWKS fetches.
pub struct JwksServer {
    pub issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    handle: ServerHandle,
}

struct Published {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn discovery(published: web::Data<Published>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "issuer": published.issuer,
        "jwks_uri": format!("{}/jwks.json", published.issuer),
    }))
}

async fn jwks(published: web::Data<Published>) -> HttpResponse {
    published.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = published
        .keys
        .lock()
        .map(|keys| keys.clone())
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

impl JwksServer {
    /// Serves the public halves of `keys`.
    pub async fn start(keys: &[&SigningKey]) -> anyhow::Result<JwksServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let published = web::Data::new(Published {
            issuer: issuer.clone(),
            keys: Arc::new(Mutex::new(keys.iter().map(|key| key.jwk.clone()).collect())),
            fetches: Arc::new(AtomicUsize::new(0)),
        });
        let (keys, fetches) = (published.keys.clone(), published.fetches.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(published.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks.json", web::get().to(jwks))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(JwksServer {
            issuer,
            keys,
            fetches,
            handle,
        })
    }

    /// How often the JWKS was fetched so far.
    pub fn jwks_fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Stops serving (as a provider that went away).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Publishes one more key.
    pub fn publish(&self, key: &SigningKey) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(key.jwk.clone());
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
