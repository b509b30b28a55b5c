//! The verifiable log's endpoints (role `auditor`), read from the event store through the
//! audit endpoints' read-only sessions: the newest signed checkpoint, the public key it
//! verifies with, and RFC 9162 inclusion and consistency proofs over the Merkle tree of the
//! sequenced log (docs/AUDIT.md).
//!
//! - `GET /v1/audit/checkpoint`: `{"tree_size", "root_hash", "timestamp", "key_id",
//!   "signature"}`; 404 before the first checkpoint.
//! - `GET /v1/audit/public-key`: `{"key_id", "algorithm": "Ed25519", "public_key"}`.
//! - `GET /v1/audit/proofs/inclusion?sequence=S&tree_size=N`: `1 <= S <= N`, else 400;
//!   `N` beyond the tree's size is 404.
//! - `GET /v1/audit/proofs/consistency?from=M&to=N`: `1 <= M <= N`, else 400; `N` beyond
//!   the tree's size is 404.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use eventstore::checkpoint::{Checkpoint, PublicKeyDocument};
use eventstore::EventStore;
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::{event_store, AUDIT_CACHE_CONTROL, AUDIT_ROLES};
use super::AppState;
use crate::audit::store::store_error;
use crate::openapi::AuditUnavailable;

fn json<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, AUDIT_CACHE_CONTROL))
        .json(body)
}

/// A signed checkpoint (the document auditors keep).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "tree_size": 1417,
    "root_hash": "5d1c0e6b2f3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
    "timestamp": "2026-03-14T09:26:53.589793Z",
    "key_id": "9f86d081884c7d65",
    "signature": "3q2+7w…=="
}))]
#[allow(dead_code)]
pub struct SignedCheckpoint {
    #[schema(minimum = 1)]
    pub tree_size: u64,
    /// The Merkle root of the first `tree_size` events, lowercase hex.
    pub root_hash: String,
    /// When it was signed: RFC 3339 UTC, six fractional digits, `Z`.
    pub timestamp: String,
    /// The first 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// Base64 of the Ed25519 signature of
    /// `agora-log-checkpoint/v1\n<key_id>\n<tree_size>\n<root_hash>\n<timestamp>\n`.
    pub signature: String,
}

/// `GET /v1/audit/checkpoint`.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoint",
    operation_id = "latestCheckpoint",
    tag = "audit",
    summary = "The newest signed checkpoint",
    description = "Role `auditor`. The newest signed checkpoint of the Merkle tree over the \
                   sequenced log. Keep it: a later rewrite of the events it covers cannot \
                   verify against it.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The checkpoint.", body = SignedCheckpoint),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn checkpoint(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let store = event_store(&state)?;
    let checkpoint: Checkpoint = store
        .latest_checkpoint()
        .await
        .map_err(store_error)?
        .ok_or_else(|| Problem::not_found("no checkpoint has been signed yet"))?;
    Ok(json(&checkpoint))
}

/// The log's public key.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key_id": "9f86d081884c7d65", "algorithm": "Ed25519",
    "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
}))]
#[allow(dead_code)]
pub struct LogPublicKey {
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
}

/// `GET /v1/audit/public-key`.
#[utoipa::path(
    get,
    path = "/v1/audit/public-key",
    operation_id = "logPublicKey",
    tag = "audit",
    summary = "The key checkpoints are signed with",
    description = "Role `auditor`. The public key of the newest checkpoint's signer. Pin it \
                   (compare it with one obtained out of band) before trusting checkpoints.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The public key.", body = LogPublicKey),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn public_key(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let store = event_store(&state)?;
    let key = store
        .published_key()
        .await
        .map_err(store_error)?
        .ok_or_else(|| Problem::not_found("the log has no signing key yet"))?;
    let document: PublicKeyDocument = key.document();
    Ok(json(&document))
}

/// The tree's current size; `wanted` beyond it is 404.
async fn within_tree(store: &EventStore, wanted: u64) -> Result<(), Problem> {
    let size = store.tree_size().await.map_err(store_error)?;
    if wanted > size {
        return Err(Problem::not_found(format!(
            "the tree has {size} events; it has no size {wanted} yet"
        )));
    }
    Ok(())
}

/// `GET /v1/audit/proofs/inclusion` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event's `sequence` (its leaf index + 1).
    #[param(minimum = 1)]
    pub sequence: u64,
    /// The size of the tree to prove inclusion in (at least `sequence`).
    #[param(minimum = 1)]
    pub tree_size: u64,
}

/// An inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    pub sequence: u64,
    pub tree_size: u64,
    /// SHA-256(0x00 ‖ leaf bytes), hex.
    pub leaf_hash: String,
    /// RFC 9162 audit path, the leaf's sibling first, hex.
    pub audit_path: Vec<String>,
}

/// `GET /v1/audit/proofs/inclusion`.
#[utoipa::path(
    get,
    path = "/v1/audit/proofs/inclusion",
    operation_id = "inclusionProof",
    tag = "audit",
    summary = "Prove an event is in the tree",
    description = "Role `auditor`. The RFC 9162 inclusion proof of the event with `sequence` \
                   in the tree of `tree_size` events.",
    security(("bearer" = [])),
    params(InclusionQuery),
    responses(
        (status = 200, description = "The proof.", body = InclusionProof),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn inclusion(
    caller: Caller,
    query: web::Query<InclusionQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let InclusionQuery {
        sequence,
        tree_size,
    } = query.into_inner();
    if sequence == 0 || sequence > tree_size {
        return Err(Problem::invalid_request(format!(
            "sequence must be between 1 and tree_size ({tree_size}), got {sequence}"
        )));
    }
    let store = event_store(&state)?;
    within_tree(store, tree_size).await?;
    let proof = store
        .inclusion_proof(sequence, tree_size)
        .await
        .map_err(store_error)?;
    Ok(json(&InclusionProof {
        sequence,
        tree_size,
        leaf_hash: proof.leaf_hash.to_hex(),
        audit_path: proof.audit_path.iter().map(|h| h.to_hex()).collect(),
    }))
}

/// `GET /v1/audit/proofs/consistency` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The size of the older tree (a kept checkpoint's `tree_size`).
    #[param(minimum = 1)]
    pub from: u64,
    /// The size of the newer tree (at least `from`).
    #[param(minimum = 1)]
    pub to: u64,
}

/// A consistency proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// RFC 9162 consistency proof, hex; empty when `from == to`.
    pub proof: Vec<String>,
}

/// `GET /v1/audit/proofs/consistency`.
#[utoipa::path(
    get,
    path = "/v1/audit/proofs/consistency",
    operation_id = "consistencyProof",
    tag = "audit",
    summary = "Prove the log only grew",
    description = "Role `auditor`. The RFC 9162 consistency proof that the tree of `to` \
                   events extends the tree of `from` events.",
    security(("bearer" = [])),
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof.", body = ConsistencyProof),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn consistency(
    caller: Caller,
    query: web::Query<ConsistencyQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let ConsistencyQuery { from, to } = query.into_inner();
    if from == 0 || from > to {
        return Err(Problem::invalid_request(format!(
            "from must be between 1 and to ({to}), got {from}"
        )));
    }
    let store = event_store(&state)?;
    within_tree(store, to).await?;
    let proof = store
        .consistency_proof(from, to)
        .await
        .map_err(store_error)?;
    Ok(json(&ConsistencyProof {
        from,
        to,
        proof: proof.iter().map(|h| h.to_hex()).collect(),
    }))
}
