//! JWT bearer authentication (HS256 with `AGORA_JWT_SECRET`) and roles.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Customer,
    Viewer,
    Auditor,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "customer" => Some(Role::Customer),
            "viewer" => Some(Role::Viewer),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }
}

/// The claims Agora reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
}

/// The keys tokens are signed and checked with.
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

    /// Checks signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Ok(decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

impl JwtKeys {
    /// The caller a bearer token names: 401 `unauthenticated` for a bad, expired or
    /// foreign token (also for tokens that arrive outside a header, such as a WebSocket's
    /// `connection_init` payload).
    pub fn caller(&self, token: &str) -> Result<Caller, Problem> {
        let claims = self
            .verify(token)
            .map_err(|error| Problem::unauthenticated(format!("invalid token: {error}")))?;
        if claims.sub.is_empty() {
            return Err(Problem::unauthenticated("the token has an empty sub"));
        }
        Ok(Caller {
            id: claims.sub,
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        })
    }
}

/// An authenticated caller: extracting it answers 401 for a missing or bad token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub roles: Vec<Role>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.iter().any(|role| self.has(*role)) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(Problem::forbidden(format!(
                "this needs one of the roles: {}",
                names.join(", ")
            )))
        }
    }
}

fn authenticate(request: &HttpRequest) -> Result<Caller, Problem> {
    let keys = request
        .app_data::<web::Data<JwtKeys>>()
        .ok_or_else(|| Problem::internal("JwtKeys are not configured"))?;
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthenticated("missing Authorization: Bearer <token>"))?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is not ASCII"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthenticated("the Authorization header must be Bearer <token>")
        })?;
    keys.caller(token)
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Ready<Result<Caller, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request))
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
