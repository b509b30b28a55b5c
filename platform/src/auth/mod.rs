//! JWT bearer authentication and roles: tokens from an OpenID provider (its JWKS) and/or
//! HS256 tokens with a shared secret, as configured by [`AuthSettings`].

mod hs256;
mod jwks;
mod limits;
mod provider;
mod settings;

use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use jsonwebtoken::{decode_header, Algorithm};

use crate::problem::Problem;

pub use hs256::{Claims, JwtKeys};
pub use limits::RateLimits;
pub use provider::RolesClaim;
pub use settings::{
    AuthSettings, AuthSettingsError, DEVELOPMENT_SECRET, KNOWN_DEVELOPMENT_SECRETS,
    MIN_SECRET_BYTES,
};

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

/// The actors Agora records for itself (`metadata.actor`): a token naming one as its `sub`
/// is refused, so no caller can pass for the system or the payment provider.
pub const INTERNAL_ACTORS: &[&str] = &["system"];
/// Prefixes of internal actor names (`psp:stripe`, `psp:reconcile`).
pub const INTERNAL_ACTOR_PREFIXES: &[&str] = &["psp:"];
/// What HS256 subjects are prefixed with when an OpenID provider is trusted too, so a
/// development token can never name a provider's user (and a provider token naming this
/// prefix is refused).
pub const HS256_SUBJECT_PREFIX: &str = "hs256:";

/// Whether `sub` is reserved: an internal actor, or (from a provider) the HS256 prefix.
fn reserved_subject(sub: &str) -> bool {
    INTERNAL_ACTORS.contains(&sub)
        || INTERNAL_ACTOR_PREFIXES
            .iter()
            .chain([&HS256_SUBJECT_PREFIX])
            .any(|prefix| sub.starts_with(prefix))
}

/// Checks bearer tokens: an HS256 token only against the secret, any other only against
/// the provider's keys (so a token "signed" with a public key as an HMAC secret fails).
/// Subjects that name an internal actor are refused; with both kinds of token on, HS256
/// subjects are prefixed with [`HS256_SUBJECT_PREFIX`] so the two cannot collide.
#[derive(Clone)]
pub struct Authenticator {
    secret: Option<JwtKeys>,
    provider: Option<Arc<provider::Provider>>,
    limits: Arc<RateLimits>,
}

impl Authenticator {
    fn new(secret: Option<JwtKeys>, provider: Option<provider::Provider>) -> Self {
        Authenticator {
            secret,
            provider: provider.map(Arc::new),
            limits: Arc::new(RateLimits::off()),
        }
    }

    /// The same, holding callers to `limits` ([`Caller`]'s extraction checks them).
    pub fn limited(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The fair-share limits callers are held to.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// HS256 tokens signed with `keys`, nothing else.
    pub fn hs256(keys: JwtKeys) -> Self {
        Authenticator::new(Some(keys), None)
    }

    /// The caller a token names; 401 for a token that is not valid here.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Problem> {
        let header = decode_header(token)
            .map_err(|error| Problem::unauthenticated(format!("invalid token: {error}")))?;
        let (id, roles, expires_at) = if header.alg == Algorithm::HS256 {
            let keys = self
                .secret
                .as_ref()
                .ok_or_else(|| Problem::unauthenticated("HS256 tokens are not accepted here"))?;
            let claims = keys
                .verify(token)
                .map_err(|error| Problem::unauthenticated(format!("invalid token: {error}")))?;
            let roles = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
            if reserved_subject(&claims.sub) {
                return Err(Problem::unauthenticated(
                    "the token's sub names one of Agora's own actors",
                ));
            }
            let sub = if self.provider.is_some() {
                format!("{HS256_SUBJECT_PREFIX}{}", claims.sub)
            } else {
                claims.sub
            };
            (sub, roles, claims.exp)
        } else {
            let provider = self.provider.as_ref().ok_or_else(|| {
                Problem::unauthenticated(format!("{:?} tokens are not accepted here", header.alg))
            })?;
            let verified = provider
                .verify(token, &header)
                .await
                .map_err(Problem::unauthenticated)?;
            if reserved_subject(&verified.sub) {
                return Err(Problem::unauthenticated(
                    "the token's sub names one of Agora's own actors",
                ));
            }
            (verified.sub, verified.roles, verified.expires_at)
        };
        if id.is_empty() {
            return Err(Problem::unauthenticated("the token has an empty sub"));
        }
        Ok(Caller {
            id,
            roles,
            expires_at,
        })
    }
}

/// An authenticated caller: extracting it answers 401 for a missing or bad token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub roles: Vec<Role>,
    /// When the token expires (`exp`, seconds since the epoch): long-lived answers (SSE,
    /// GraphQL subscriptions) end then.
    pub expires_at: i64,
}

impl Caller {
    /// How long the token still holds (zero once expired).
    pub fn remaining(&self) -> std::time::Duration {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        std::time::Duration::from_secs(self.expires_at.saturating_sub(now).max(0) as u64)
    }

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

/// The bearer token of a request.
fn bearer_token(request: &HttpRequest) -> Result<String, Problem> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthenticated("missing Authorization: Bearer <token>"))?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is not ASCII"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Problem::unauthenticated("the Authorization header must be Bearer <token>"))
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<Caller, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = request.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer_token(request);
        let address = request.peer_addr().map(|peer| peer.ip());
        Box::pin(async move {
            let authenticator =
                authenticator.ok_or_else(|| Problem::internal("no Authenticator is configured"))?;
            if let Some(address) = address {
                authenticator.limits().check_address(address)?;
            }
            let caller = authenticator.authenticate(&token?).await?;
            authenticator.limits().check_subject(&caller.id)?;
            Ok(caller)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn authenticator() -> Authenticator {
        Authenticator::hs256(JwtKeys::hs256(SECRET))
    }

    fn token(sub: &str) -> String {
        JwtKeys::hs256(SECRET)
            .mint(sub, &[Role::Admin], 60)
            .expect("a token")
    }

    #[tokio::test]
    async fn no_token_passes_for_one_of_agoras_own_actors() {
        for sub in ["system", "psp:stripe", "psp:reconcile", "hs256:alice"] {
            let refused = authenticator()
                .authenticate(&token(sub))
                .await
                .expect_err(sub);
            assert_eq!(refused.status.as_u16(), 401, "{sub}");
            assert_eq!(refused.code, "unauthenticated", "{sub}");
        }
        // Names that merely look alike are people.
        for sub in ["System", "systems", "alice:psp", "psp"] {
            let caller = authenticator().authenticate(&token(sub)).await.expect(sub);
            assert_eq!(caller.id, sub);
        }
    }
}
