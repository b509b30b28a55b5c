//! The authentication settings of the APIs (`AGORA_JWT_*`), checked before a service
//! starts: a weak or development HS256 secret, a provider without an audience, or no way
//! to authenticate at all is refused with a message saying what to set.

use std::time::Duration;

use clap::Args;
use reqwest::Url;

use super::provider::{Provider, ProviderConfig, RolesClaim};
use super::{Authenticator, JwtKeys};

/// The secret `agora dev` and `agora token` use when `AGORA_JWT_SECRET` is unset. Only
/// `agora dev` accepts it: every other service refuses to start with it.
pub const DEVELOPMENT_SECRET: &str = "agora-development-secret-never-deploy-this";

/// Secrets that were ever published (in this repository's defaults, docs or compose file)
/// or that anyone would guess: a service refuses them whatever their length.
pub const KNOWN_DEVELOPMENT_SECRETS: &[&str] = &[
    DEVELOPMENT_SECRET,
    "agora-dev-secret",
    "change-me-dev-secret",
    "change-me",
    "changeme",
    "secret",
    "test-secret",
    "e2e-secret",
];

/// The shortest HS256 secret a service accepts (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// How tokens are checked: an OpenID provider (production), an HS256 secret
/// (development), or both.
#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// HS256 secret, for development (at least 32 bytes; empty or unset: HS256 off).
    #[arg(long, env = "AGORA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The OpenID provider's issuer (`iss`); its JWKS is discovered from
    /// `<issuer>/.well-known/openid-configuration` unless `--jwt-jwks-url` is given.
    #[arg(long, env = "AGORA_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The provider's JWKS (public keys) URL.
    #[arg(long, env = "AGORA_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// The audience a provider's token must name in `aud` (comma-separated: any of them).
    #[arg(long, env = "AGORA_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Where a provider's token holds the roles: a claim name or a dotted path
    /// (`roles`, `realm_access.roles`, `scp`); an array of strings or a space-separated
    /// string (`scope`).
    #[arg(long, env = "AGORA_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,
    /// The least time between two JWKS fetches caused by tokens naming an unknown `kid`.
    #[arg(long, env = "AGORA_JWT_JWKS_MIN_REFETCH_MS", default_value_t = 10_000)]
    pub jwt_jwks_min_refetch_ms: u64,
    /// Allow an `http` issuer or JWKS URL (development and tests only: keys fetched over
    /// plain HTTP can be swapped by anyone on the path).
    #[arg(long, env = "AGORA_OIDC_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub oidc_allow_http: bool,
    /// Requests per second one token subject may send (a burst of one second's worth);
    /// over it, 429 `rate_limited`. 0: no limit.
    #[arg(long, env = "AGORA_RATE_LIMIT_PER_SUBJECT", default_value_t = 1000)]
    pub rate_limit_per_subject: u32,
    /// Requests per second one client address may send (the TCP peer: behind a load
    /// balancer, its address; limit there instead). 0: no limit.
    #[arg(long, env = "AGORA_RATE_LIMIT_PER_ADDRESS", default_value_t = 0)]
    pub rate_limit_per_address: u32,
    /// Set by `agora dev` only: there, the development secret is allowed.
    #[arg(skip)]
    pub development: bool,
}

/// Why a service refuses to start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthSettingsError {
    #[error(
        "AGORA_JWT_SECRET is a known development secret; set a random secret of at least \
         {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`), or use an OpenID \
         provider (AGORA_JWT_ISSUER) and leave AGORA_JWT_SECRET empty"
    )]
    DevelopmentSecret,
    #[error(
        "AGORA_JWT_SECRET has {0} bytes; HS256 needs at least {MIN_SECRET_BYTES} \
         (e.g. `openssl rand -base64 48`)"
    )]
    ShortSecret(usize),
    #[error(
        "no way to authenticate: set AGORA_JWT_ISSUER and AGORA_JWT_AUDIENCE (an OpenID \
         provider) or AGORA_JWT_SECRET (HS256, development); there is no anonymous mode"
    )]
    NoAuthentication,
    #[error("AGORA_JWT_ISSUER is set, so AGORA_JWT_AUDIENCE must name this API's audience")]
    MissingAudience,
    #[error("{0} is set, but AGORA_JWT_ISSUER is not: the provider's issuer is required")]
    MissingIssuer(&'static str),
    #[error("{name} is not an http(s) URL: {value:?}")]
    BadUrl { name: &'static str, value: String },
    #[error(
        "{name} is an http URL: the provider's keys must come over https (set \
         AGORA_OIDC_ALLOW_HTTP=true only in development and tests)"
    )]
    InsecureUrl { name: &'static str },
    #[error("AGORA_JWT_ROLES_CLAIM {0:?} is not a claim name or dotted path")]
    BadRolesClaim(String),
    #[error("cannot build the HTTP client for the JWKS: {0}")]
    HttpClient(String),
}

impl AuthSettings {
    /// HS256 only, with `secret`.
    pub fn hs256(secret: &str) -> Self {
        AuthSettings {
            jwt_secret: Some(secret.to_owned()),
            jwt_issuer: None,
            jwt_jwks_url: None,
            jwt_audience: None,
            jwt_roles_claim: "roles".into(),
            jwt_jwks_min_refetch_ms: 10_000,
            oidc_allow_http: false,
            rate_limit_per_subject: 1000,
            rate_limit_per_address: 0,
            development: false,
        }
    }

    /// Checks the settings and builds what checks the tokens.
    pub fn authenticator(&self) -> Result<Authenticator, AuthSettingsError> {
        let secret = self.secret()?;
        let provider = self.provider()?;
        if secret.is_none() && provider.is_none() {
            return Err(AuthSettingsError::NoAuthentication);
        }
        tracing::info!(
            provider = non_empty(&self.jwt_issuer).unwrap_or("none"),
            hs256 = secret.is_some(),
            development = self.development,
            "bearer tokens are checked"
        );
        Ok(
            Authenticator::new(secret.map(JwtKeys::hs256), provider).limited(
                super::RateLimits::new(self.rate_limit_per_subject, self.rate_limit_per_address),
            ),
        )
    }

    fn secret(&self) -> Result<Option<&[u8]>, AuthSettingsError> {
        let Some(secret) = non_empty(&self.jwt_secret) else {
            return Ok(None);
        };
        if self.development {
            return Ok(Some(secret.as_bytes()));
        }
        if KNOWN_DEVELOPMENT_SECRETS.contains(&secret) {
            return Err(AuthSettingsError::DevelopmentSecret);
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthSettingsError::ShortSecret(secret.len()));
        }
        Ok(Some(secret.as_bytes()))
    }

    fn provider(&self) -> Result<Option<Provider>, AuthSettingsError> {
        let jwks_url = non_empty(&self.jwt_jwks_url)
            .map(|value| self.provider_url("AGORA_JWT_JWKS_URL", value))
            .transpose()?;
        let audiences: Vec<String> = non_empty(&self.jwt_audience)
            .map(|value| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|audience| !audience.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let Some(issuer) = non_empty(&self.jwt_issuer) else {
            if jwks_url.is_some() {
                return Err(AuthSettingsError::MissingIssuer("AGORA_JWT_JWKS_URL"));
            }
            if !audiences.is_empty() {
                return Err(AuthSettingsError::MissingIssuer("AGORA_JWT_AUDIENCE"));
            }
            return Ok(None);
        };
        self.provider_url("AGORA_JWT_ISSUER", issuer)?;
        if audiences.is_empty() {
            return Err(AuthSettingsError::MissingAudience);
        }
        let roles_claim = RolesClaim::parse(&self.jwt_roles_claim)
            .ok_or_else(|| AuthSettingsError::BadRolesClaim(self.jwt_roles_claim.clone()))?;
        Provider::new(ProviderConfig {
            issuer: issuer.to_owned(),
            jwks_url,
            audiences,
            roles_claim,
            min_refetch: Duration::from_millis(self.jwt_jwks_min_refetch_ms),
            allow_http: self.oidc_allow_http,
        })
        .map(Some)
        .map_err(|error| AuthSettingsError::HttpClient(error.to_string()))
    }
}

impl AuthSettings {
    /// A provider URL: https, or http only with `AGORA_OIDC_ALLOW_HTTP`.
    fn provider_url(&self, name: &'static str, value: &str) -> Result<Url, AuthSettingsError> {
        let url = http_url(name, value)?;
        if url.scheme() == "http" && !self.oidc_allow_http {
            return Err(AuthSettingsError::InsecureUrl { name });
        }
        Ok(url)
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn http_url(name: &'static str, value: &str) -> Result<Url, AuthSettingsError> {
    Url::parse(value)
        .ok()
        .filter(|url| ["http", "https"].contains(&url.scheme()) && url.has_host())
        .ok_or_else(|| AuthSettingsError::BadUrl {
            name,
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG: &str = "0123456789abcdef0123456789abcdef";

    fn refusal(settings: &AuthSettings) -> AuthSettingsError {
        match settings.authenticator() {
            Ok(_) => panic!("{settings:?} was accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn weak_and_development_secrets_are_refused() {
        assert_eq!(
            refusal(&AuthSettings::hs256(&STRONG[..31])),
            AuthSettingsError::ShortSecret(31)
        );
        for known in KNOWN_DEVELOPMENT_SECRETS {
            assert_eq!(
                refusal(&AuthSettings::hs256(known)),
                AuthSettingsError::DevelopmentSecret,
                "{known}"
            );
        }
        assert!(AuthSettings::hs256(STRONG).authenticator().is_ok());
        assert!(DEVELOPMENT_SECRET.len() >= MIN_SECRET_BYTES);
    }

    #[test]
    fn only_the_development_mode_takes_the_development_secret() {
        let mut settings = AuthSettings::hs256(DEVELOPMENT_SECRET);
        settings.development = true;
        assert!(settings.authenticator().is_ok());
    }

    #[test]
    fn an_empty_secret_is_off_and_then_a_provider_is_required() {
        for empty in ["", "  "] {
            assert_eq!(
                refusal(&AuthSettings::hs256(empty)),
                AuthSettingsError::NoAuthentication
            );
        }
        let mut settings = AuthSettings::hs256("");
        settings.jwt_issuer = Some("https://id.example.com/realms/shop".into());
        assert_eq!(refusal(&settings), AuthSettingsError::MissingAudience);
        settings.jwt_audience = Some("agora".into());
        assert!(settings.authenticator().is_ok());
    }

    #[test]
    fn an_http_issuer_or_jwks_needs_the_development_switch() {
        let mut settings = AuthSettings::hs256("");
        settings.jwt_audience = Some("agora".into());
        settings.jwt_issuer = Some("http://id.example.com".into());
        assert_eq!(
            refusal(&settings),
            AuthSettingsError::InsecureUrl {
                name: "AGORA_JWT_ISSUER"
            }
        );
        settings.jwt_issuer = Some("https://id.example.com".into());
        settings.jwt_jwks_url = Some("http://id.example.com/jwks.json".into());
        assert_eq!(
            refusal(&settings),
            AuthSettingsError::InsecureUrl {
                name: "AGORA_JWT_JWKS_URL"
            }
        );
        settings.oidc_allow_http = true;
        settings.jwt_issuer = Some("http://id.example.com".into());
        assert!(settings.authenticator().is_ok());
    }

    #[test]
    fn provider_settings_are_checked() {
        let mut settings = AuthSettings::hs256(STRONG);
        settings.jwt_audience = Some("agora".into());
        assert_eq!(
            refusal(&settings),
            AuthSettingsError::MissingIssuer("AGORA_JWT_AUDIENCE")
        );
        settings.jwt_issuer = Some("id.example.com".into());
        assert!(matches!(
            refusal(&settings),
            AuthSettingsError::BadUrl {
                name: "AGORA_JWT_ISSUER",
                ..
            }
        ));
        settings.jwt_issuer = Some("https://id.example.com".into());
        settings.jwt_roles_claim = "realm_access..roles".into();
        assert!(matches!(
            refusal(&settings),
            AuthSettingsError::BadRolesClaim(_)
        ));
    }
}
