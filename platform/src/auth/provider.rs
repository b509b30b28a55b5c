//! Tokens from an OpenID provider: signed with one of its asymmetric keys (RS256, ES256,
//! EdDSA, ...; the key chosen by `kid`), issued by its issuer for this API's audience,
//! within `nbf`..`exp`, roles read from a configurable claim path.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{decode, Algorithm, AlgorithmFamily, Header, Validation};
use reqwest::Url;
use serde_json::{Map, Value};

use super::jwks::{Jwks, KeyError};
use super::Role;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Where the roles are in a token's claims: a claim name, or a dotted path into nested
/// objects (`realm_access.roles`). A claim whose name itself has dots (Auth0's
/// `https://agora.example.com/roles`) is found by its full name first.
#[derive(Debug, Clone)]
pub struct RolesClaim {
    path: String,
}

impl RolesClaim {
    /// `None` for an empty path or one with an empty segment.
    pub fn parse(path: &str) -> Option<RolesClaim> {
        let path = path.trim();
        if path.is_empty() || (path.split('.').any(str::is_empty) && !path.contains("://")) {
            return None;
        }
        Some(RolesClaim {
            path: path.to_owned(),
        })
    }

    /// The known roles the claim holds (an array of strings, or one space-separated
    /// string such as `scope`); anything else in it is ignored.
    pub fn roles(&self, claims: &Map<String, Value>) -> Vec<Role> {
        let value = claims.get(&self.path).or_else(|| {
            let mut segments = self.path.split('.');
            let first = claims.get(segments.next()?)?;
            segments.try_fold(first, |value, segment| value.get(segment))
        });
        let names: Vec<&str> = match value {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(names)) => names.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = names.into_iter().filter_map(Role::parse).collect();
        roles.dedup();
        roles
    }
}

/// How to reach and trust a provider.
pub struct ProviderConfig {
    pub issuer: String,
    pub jwks_url: Option<Url>,
    pub audiences: Vec<String>,
    pub roles_claim: RolesClaim,
    pub min_refetch: Duration,
    /// Whether an `http` JWKS URL (found by discovery) is acceptable (development, tests).
    pub allow_http: bool,
}

/// Checks tokens against one OpenID provider.
pub struct Provider {
    issuer: String,
    audiences: Vec<String>,
    roles_claim: RolesClaim,
    jwks: Arc<Jwks>,
}

/// A token the provider vouches for.
pub struct Verified {
    pub sub: String,
    pub roles: Vec<Role>,
    /// `exp`, in seconds since the epoch.
    pub expires_at: i64,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> reqwest::Result<Provider> {
        Ok(Provider {
            jwks: Arc::new(Jwks::new(
                &config.issuer,
                config.jwks_url,
                config.min_refetch,
                config.allow_http,
            )?),
            issuer: config.issuer,
            audiences: config.audiences,
            roles_claim: config.roles_claim,
        })
    }

    /// Checks an asymmetrically signed token (`header` is its decoded header); the reason
    /// for a refusal is in the error.
    pub async fn verify(&self, token: &str, header: &Header) -> Result<Verified, String> {
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(format!("{:?} is not a provider's algorithm", header.alg));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or("the token names no key (kid)")?;
        let key = Jwks::key(&self.jwks, kid)
            .await
            .map_err(|error| match error {
                // The detail (URLs, network errors) is logged, never answered.
                KeyError::Unavailable(_) => {
                    "the provider's signing keys are unavailable; retry shortly".to_owned()
                }
                KeyError::UnknownKid(_) => error.to_string(),
            })?;
        if key.algorithm.is_some_and(|pinned| pinned != header.alg)
            || key.key.family() != header.alg.family()
        {
            return Err(format!("key {kid:?} is not for {:?}", header.alg));
        }
        let claims = decode::<Map<String, Value>>(token, &key.key, &self.validation(header.alg))
            .map_err(|error| format!("invalid token: {error}"))?
            .claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or("the token has no sub")?
            .to_owned();
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("the token has no numeric exp")?;
        Ok(Verified {
            sub,
            roles: self.roles_claim.roles(&claims),
            expires_at,
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        validation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roles(path: &str, claims: Value) -> Vec<Role> {
        let Value::Object(claims) = claims else {
            panic!("not an object")
        };
        RolesClaim::parse(path).expect("a path").roles(&claims)
    }

    #[test]
    fn roles_come_from_the_configured_claim() {
        assert_eq!(
            roles("roles", json!({"roles": ["admin", "boss"]})),
            [Role::Admin]
        );
        assert_eq!(
            roles(
                "realm_access.roles",
                json!({"realm_access": {"roles": ["offline_access", "viewer"]}})
            ),
            [Role::Viewer]
        );
        assert_eq!(
            roles("scope", json!({"scope": "openid customer auditor"})),
            [Role::Customer, Role::Auditor]
        );
        assert_eq!(
            roles(
                "https://agora.example.com/roles",
                json!({"https://agora.example.com/roles": ["admin"]})
            ),
            [Role::Admin]
        );
        assert!(roles("scp", json!({"scp": 7})).is_empty());
        assert!(roles("realm_access.roles", json!({"roles": ["admin"]})).is_empty());
    }

    #[test]
    fn empty_paths_are_refused() {
        for bad in ["", " ", "a..b", ".roles", "roles."] {
            assert!(RolesClaim::parse(bad).is_none(), "{bad:?}");
        }
    }
}
