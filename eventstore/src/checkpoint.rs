//! Signed checkpoints of the verifiable log: `{tree_size, root_hash, timestamp}` signed with
//! Ed25519 by the log's signing key, which lives in a PKCS#8 PEM file
//! (`AGORA_LOG_SIGNING_KEY`) and never in the database.
//!
//! The signature covers exactly the bytes of [`Checkpoint::signed_message`]:
//!
//! ```text
//! agora-log-checkpoint/v1\n<key_id>\n<tree_size>\n<root_hash hex>\n<timestamp>\n
//! ```
//!
//! where `key_id` is the first 16 hex digits of SHA-256 of the 32-byte public key, and
//! `timestamp` is RFC 3339 UTC with six fractional digits and `Z`. docs/AUDIT.md restates it.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hashchain::{format_timestamp, truncate_to_micros, Hash};

/// What the signed bytes start with (names the format and its version).
pub const SIGNED_PREFIX: &str = "agora-log-checkpoint/v1";

/// The log's signing key.
#[derive(Clone)]
pub struct LogSigningKey {
    key: SigningKey,
}

impl std::fmt::Debug for LogSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogSigningKey({})", self.key_id())
    }
}

impl LogSigningKey {
    /// Reads a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey
    /// -algorithm ed25519` writes).
    pub fn from_pem_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Self::from_pem(&pem).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// Parses a PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| LogSigningKey { key })
            .map_err(|error| format!("not a PKCS#8 PEM Ed25519 private key: {error}"))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        LogSigningKey {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The key as a PKCS#8 PEM document.
    pub fn to_pem(&self) -> Result<String, String> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|pem| pem.to_string())
            .map_err(|error| format!("cannot encode the key: {error}"))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// Signs the tree of `tree_size` leaves with root `root_hash`, now.
    pub fn sign(&self, tree_size: u64, root_hash: Hash, at: DateTime<Utc>) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            tree_size,
            root_hash: root_hash.to_hex(),
            timestamp: format_timestamp(truncate_to_micros(at)),
            key_id: self.key_id(),
            signature: String::new(),
        };
        let signature = self.key.sign(checkpoint.signed_message().as_bytes());
        checkpoint.signature = BASE64.encode(signature.to_bytes());
        checkpoint
    }
}

/// A log's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl PublicKey {
    /// From the 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("a public key is 32 bytes, not {}", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|error| format!("not an Ed25519 public key: {error}"))
    }

    /// From base64 of the 32 raw bytes (`public_key` of `GET /v1/audit/public-key`).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|error| format!("the public key is not base64: {error}"))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_bytes())
    }

    /// The first 16 hex digits of SHA-256 of the 32-byte key.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    /// `{"key_id", "algorithm": "Ed25519", "public_key"}`.
    pub fn document(&self) -> PublicKeyDocument {
        PublicKeyDocument {
            key_id: self.key_id(),
            algorithm: "Ed25519".to_owned(),
            public_key: self.to_base64(),
        }
    }
}

/// The published form of a public key (`GET /v1/audit/public-key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyDocument {
    pub key_id: String,
    pub algorithm: String,
    /// Base64 of the 32-byte key.
    pub public_key: String,
}

/// A signed checkpoint, as `GET /v1/audit/checkpoint` returns it and auditors keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub tree_size: u64,
    /// Lowercase hex.
    pub root_hash: String,
    /// RFC 3339 UTC, six fractional digits, `Z`.
    pub timestamp: String,
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature of [`Checkpoint::signed_message`].
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes signed.
    pub fn signed_message(&self) -> String {
        format!(
            "{SIGNED_PREFIX}\n{}\n{}\n{}\n{}\n",
            self.key_id, self.tree_size, self.root_hash, self.timestamp
        )
    }

    /// The root as a hash.
    pub fn root(&self) -> Result<Hash, String> {
        Hash::from_hex(&self.root_hash)
            .ok_or_else(|| format!("root_hash {:?} is not 64 hex digits", self.root_hash))
    }

    /// The 64 signature bytes.
    pub fn signature_bytes(&self) -> Result<Vec<u8>, String> {
        BASE64
            .decode(&self.signature)
            .map_err(|error| format!("the signature is not base64: {error}"))
    }

    /// Checks that `key` signed this checkpoint; the error says why not.
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        if self.key_id != key.key_id() {
            return Err(format!(
                "the checkpoint names key {}, but the log's key is {}",
                self.key_id,
                key.key_id()
            ));
        }
        let signature = Signature::from_slice(&self.signature_bytes()?)
            .map_err(|error| format!("the signature is not 64 bytes: {error}"))?;
        key.0
            .verify(self.signed_message().as_bytes(), &signature)
            .map_err(|_| {
                format!(
                    "the checkpoint's signature does not verify with the log's public key {}",
                    key.key_id()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_only() {
        let key = LogSigningKey::generate();
        let root = crate::merkle::leaf_hash(b"x");
        let checkpoint = key.sign(7, root, Utc::now());
        assert_eq!(checkpoint.verify(&key.public_key()), Ok(()));
        let other = LogSigningKey::generate();
        assert!(checkpoint.verify(&other.public_key()).is_err());
        let mut altered = checkpoint.clone();
        altered.tree_size = 8;
        assert!(altered.verify(&key.public_key()).is_err());
        let reloaded = LogSigningKey::from_pem(&key.to_pem().unwrap()).unwrap();
        assert_eq!(reloaded.key_id(), key.key_id());
        let public = PublicKey::from_base64(&key.public_key().to_base64()).unwrap();
        assert_eq!(public, key.public_key());
    }
}
