//! HS256 tokens with a shared secret (`AGORA_JWT_SECRET`): minting for development
//! (`agora token`, `agora dev`, tests) and checking them.

use std::sync::Arc;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Role;

/// The claims of an HS256 token Agora mints (and reads back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
}

/// The keys HS256 tokens are signed and checked with.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
}

impl JwtKeys {
    /// HS256 keys from a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        JwtKeys {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
        }
    }

    /// Signs a token for `sub` with `roles`, valid for `ttl_seconds`.
    pub fn mint(
        &self,
        sub: &str,
        roles: &[Role],
        ttl_seconds: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: sub.to_owned(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            exp: chrono::Utc::now().timestamp() + ttl_seconds,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Checks signature and expiry; only an HS256 token can pass.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Ok(decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_carry_roles() {
        let keys = JwtKeys::hs256(b"secret");
        let token = keys.mint("alice", &[Role::Customer], 60).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.roles, vec!["customer"]);
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let keys = JwtKeys::hs256(b"secret");
        let expired = keys.mint("alice", &[Role::Admin], -3600).unwrap();
        assert!(keys.verify(&expired).is_err());
        let foreign = JwtKeys::hs256(b"other")
            .mint("alice", &[Role::Admin], 60)
            .unwrap();
        assert!(keys.verify(&foreign).is_err());
    }
}
