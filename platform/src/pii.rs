//! Personal data, encrypted per customer (crypto-shredding).
//!
//! Each customer gets a random 256-bit data key, stored wrapped (XChaCha20-Poly1305) under
//! the master key `AGORA_PII_KEY`, with the customer id as associated data
//! (`eventstore::pii_keys`). Personal fields are sealed with the data key before they reach
//! an event: XChaCha20-Poly1305 with a random 24-byte nonce and the customer's stream id
//! and the field name as associated data, written `pii1.<base64url(nonce ‖ ciphertext)>`
//! ([`domain::Sealed`]). The hash chain, the Merkle tree, Kafka and the exports carry only
//! that. Erasure destroys the data key: every sealed value of the customer, wherever it was
//! copied, is then unreadable, and no event changes.
//!
//! Reading processes keep no data keys: each read uses the key row, so an erasure takes
//! effect at once. The command API keeps the keys it seals with ([`Vault::caching`]) only
//! while it hears every change of a key (the key table's trigger notifies
//! `agora_customers`), and drops each one as its change commits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use clap::Args;
use domain::Sealed;
use eventstore::pii_keys::{self, StoredDataKey};
use eventstore::{Pool, StoreError};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The master key settings.
#[derive(Debug, Clone, Default, Args)]
pub struct PiiSettings {
    /// The master key personal data keys are wrapped with: 64 hex digits (32 random bytes;
    /// a weak key is refused). Without it no personal data is accepted or shown (503).
    #[arg(long = "pii-key", env = "AGORA_PII_KEY", hide_env_values = true)]
    pub pii_key: Option<String>,
    /// Earlier master keys (comma-separated, 64 hex digits each), still read while
    /// `agora customers rewrap-keys` moves their data keys to `AGORA_PII_KEY`.
    #[arg(
        long = "pii-retired-keys",
        env = "AGORA_PII_RETIRED_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub pii_retired_keys: Vec<String>,
}

impl PiiSettings {
    /// The master keys, or `None` without `AGORA_PII_KEY`.
    pub fn keyring(&self) -> Result<Option<Keyring>, String> {
        let Some(current) = &self.pii_key else {
            return Ok(None);
        };
        let current = MasterKey::from_hex("AGORA_PII_KEY", current)?;
        let retired = self
            .pii_retired_keys
            .iter()
            .filter(|key| !key.trim().is_empty())
            .map(|key| MasterKey::from_hex("AGORA_PII_RETIRED_KEYS", key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Keyring { current, retired }))
    }
}

/// A fresh random master key, as 64 hex digits (what `agora dev` makes).
pub fn generate_master_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// One master key and its id (the first 8 hex digits of a SHA-256 of it).
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl MasterKey {
    /// The key from 64 hex digits; refused when malformed or weak (fewer than 16 distinct
    /// byte values, or bytes in a fixed progression like `00 01 02 …`).
    pub fn from_hex(setting: &str, hex_key: &str) -> Result<MasterKey, String> {
        let bytes = hex::decode(hex_key.trim())
            .map_err(|_| format!("{setting} must be 64 hex digits (32 bytes)"))?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "{setting} must be 32 bytes (64 hex digits), not {}",
                bytes.len()
            )
        })?;
        let distinct = bytes
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let step = bytes[1].wrapping_sub(bytes[0]);
        let progression = bytes.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step);
        if distinct < 16 || progression {
            return Err(format!(
                "{setting} is weak: use 32 random bytes (`openssl rand -hex 32`)"
            ));
        }
        let digest = Sha256::new()
            .chain_update(b"agora-pii-master-key\0")
            .chain_update(bytes)
            .finalize();
        Ok(MasterKey {
            id: hex::encode(&digest[..4]),
            cipher: XChaCha20Poly1305::new(&bytes.into()),
        })
    }

    /// The key's id, stored beside what it wrapped.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, customer: &str, key: &DataKey) -> Vec<u8> {
        let nonce: [u8; 24] = rand::random();
        let mut out = nonce.to_vec();
        // Encrypting 32 bytes in memory cannot fail.
        if let Ok(ciphertext) = self.cipher.encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &key.0,
                aad: &wrap_aad(customer),
            },
        ) {
            out.extend(ciphertext);
        }
        out
    }

    fn unwrap(&self, customer: &str, wrapped: &[u8]) -> Result<DataKey, PiiError> {
        let (nonce, ciphertext) = split_nonce(wrapped).ok_or(PiiError::Unwrap)?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &wrap_aad(customer),
                },
            )
            .map_err(|_| PiiError::Unwrap)?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| PiiError::Unwrap)?;
        Ok(DataKey(bytes))
    }
}

fn wrap_aad(customer: &str) -> Vec<u8> {
    [b"agora-pii-data-key\0".as_slice(), customer.as_bytes()].concat()
}

fn split_nonce(bytes: &[u8]) -> Option<(XNonce, &[u8])> {
    if bytes.len() < 24 + 16 {
        return None;
    }
    let (nonce, rest) = bytes.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().ok()?;
    Some((XNonce::from(nonce), rest))
}

/// The current master key and the retired ones still read.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    retired: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring of one master key.
    pub fn new(current: MasterKey) -> Keyring {
        Keyring {
            current,
            retired: Vec::new(),
        }
    }

    /// The master key new data keys are wrapped with.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Unwraps a data key stored under master key `master_key_id`.
    pub fn unwrap(
        &self,
        customer: &str,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> Result<DataKey, PiiError> {
        std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|key| key.id == master_key_id)
            .ok_or_else(|| PiiError::UnknownMasterKey(master_key_id.to_owned()))?
            .unwrap(customer, wrapped)
    }

    /// Wraps `key` of `customer` under the current master key.
    pub fn wrap(&self, customer: &str, key: &DataKey) -> Vec<u8> {
        self.current.wrap(customer, key)
    }
}

/// One customer's data key (never stored unwrapped, never kept by a process: its bytes are
/// wiped when it is dropped).
pub struct DataKey([u8; 32]);

impl Drop for DataKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> DataKey {
        DataKey(rand::random())
    }

    /// Seals `plaintext` as field `field` of the customer whose stream is `stream`.
    pub fn seal(&self, stream: Uuid, field: &str, plaintext: &[u8]) -> Result<Sealed, PiiError> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce: [u8; 24] = rand::random();
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &seal_aad(stream, field),
                },
            )
            .map_err(|_| PiiError::TooLong)?;
        let mut bytes = nonce.to_vec();
        bytes.extend(ciphertext);
        Sealed::parse(format!(
            "{}{}",
            Sealed::PREFIX,
            URL_SAFE_NO_PAD.encode(bytes)
        ))
        .map_err(|_| PiiError::TooLong)
    }

    /// Opens `sealed`, sealed as field `field` of the customer whose stream is `stream`.
    pub fn open(&self, stream: Uuid, field: &str, sealed: &Sealed) -> Result<Vec<u8>, PiiError> {
        let body = sealed
            .as_str()
            .strip_prefix(Sealed::PREFIX)
            .ok_or(PiiError::Open)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| PiiError::Open)?;
        let (nonce, ciphertext) = split_nonce(&bytes).ok_or(PiiError::Open)?;
        XChaCha20Poly1305::new(&self.0.into())
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &seal_aad(stream, field),
                },
            )
            .map_err(|_| PiiError::Open)
    }
}

fn seal_aad(stream: Uuid, field: &str) -> Vec<u8> {
    [stream.as_bytes().as_slice(), field.as_bytes()].concat()
}

/// What went wrong with personal data.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("personal data is not configured (set AGORA_PII_KEY)")]
    Unconfigured,
    #[error("the customer's personal data was erased")]
    Erased,
    #[error("a data key is wrapped by master key {0}, which is not configured")]
    UnknownMasterKey(String),
    #[error("a data key does not unwrap with its master key")]
    Unwrap,
    #[error("sealed personal data does not open with its key")]
    Open,
    #[error("personal data is too long to seal")]
    TooLong,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The data keys of customers: made on first use, read on use, destroyed on erasure.
#[derive(Clone)]
pub struct Vault {
    keyring: Option<Keyring>,
    pool: Pool,
    /// Keys for sealing, kept while someone tells this vault of every key change
    /// ([`Vault::caching`]); none otherwise.
    cache: Option<Arc<KeyCache>>,
}

/// Unwrapped keys for sealing, each dropped (and wiped) when its key changes elsewhere.
#[derive(Default)]
struct KeyCache {
    /// Whether changes are being heard now: only then is anything kept or used.
    live: AtomicBool,
    /// Bumped by every change heard: a key read before a change is not kept after it.
    epoch: AtomicU64,
    keys: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl Vault {
    /// Keys under `keyring` (none: personal data is refused) in the key table of `pool`.
    pub fn new(keyring: Option<Keyring>, pool: Pool) -> Vault {
        Vault {
            keyring,
            pool,
            cache: None,
        }
    }

    /// This vault keeps the keys it seals with, as long as [`Vault::hearing`] says that
    /// every change of a key is heard (and passed to [`Vault::forget`]).
    pub fn caching(mut self) -> Vault {
        self.cache = Some(Arc::default());
        self
    }

    /// Whether changes are being heard: on a change of state every kept key is dropped (what
    /// changed while nobody listened is unknown).
    pub fn hearing(&self, live: bool) {
        if let Some(cache) = &self.cache {
            cache.live.store(live, Ordering::SeqCst);
            cache.epoch.fetch_add(1, Ordering::SeqCst);
            cache.keys.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Drops the kept key of `customer` (it changed, or was destroyed, elsewhere).
    pub fn forget(&self, customer: &str) {
        if let Some(cache) = &self.cache {
            cache.epoch.fetch_add(1, Ordering::SeqCst);
            cache
                .keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(customer);
        }
    }

    fn kept(&self, customer: &str) -> Option<Arc<DataKey>> {
        let cache = self.cache.as_ref()?;
        if !cache.live.load(Ordering::SeqCst) {
            return None;
        }
        cache
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(customer)
            .cloned()
    }

    fn epoch(&self) -> u64 {
        self.cache
            .as_ref()
            .map_or(0, |cache| cache.epoch.load(Ordering::SeqCst))
    }

    /// Keeps `key`, read at `epoch`, unless a change was heard since.
    fn keep(&self, customer: &str, key: &Arc<DataKey>, epoch: u64) {
        if let Some(cache) = &self.cache {
            let mut keys = cache.keys.lock().unwrap_or_else(|p| p.into_inner());
            if cache.live.load(Ordering::SeqCst) && cache.epoch.load(Ordering::SeqCst) == epoch {
                keys.insert(customer.to_owned(), key.clone());
            }
        }
    }

    fn keyring(&self) -> Result<&Keyring, PiiError> {
        self.keyring.as_ref().ok_or(PiiError::Unconfigured)
    }

    /// True when a master key is configured.
    pub fn configured(&self) -> bool {
        self.keyring.is_some()
    }

    /// The key to seal new personal data of `customer` with, made now if they have none;
    /// [`PiiError::Erased`] for an erased customer.
    pub async fn key_for_writing(&self, customer: &str) -> Result<Arc<DataKey>, PiiError> {
        let keyring = self.keyring()?;
        if let Some(key) = self.kept(customer) {
            return Ok(key);
        }
        let epoch = self.epoch();
        let stored = match pii_keys::read(&self.pool, customer).await? {
            StoredDataKey::Absent => {
                let key = DataKey::generate();
                let wrapped = keyring.wrap(customer, &key);
                pii_keys::insert(&self.pool, customer, keyring.current.id(), &wrapped).await?
            }
            other => other,
        };
        let key = Arc::new(
            self.unwrap_stored(customer, stored)?
                .ok_or(PiiError::Erased)?,
        );
        self.keep(customer, &key, epoch);
        Ok(key)
    }

    /// The key to open personal data of `customer` with; `None` once erased (or when they
    /// never had one).
    pub async fn key_for_reading(&self, customer: &str) -> Result<Option<DataKey>, PiiError> {
        self.keyring()?;
        let stored = pii_keys::read(&self.pool, customer).await?;
        self.unwrap_stored(customer, stored)
    }

    fn unwrap_stored(
        &self,
        customer: &str,
        stored: StoredDataKey,
    ) -> Result<Option<DataKey>, PiiError> {
        match stored {
            StoredDataKey::Live {
                master_key_id,
                wrapped,
            } => Ok(Some(self.keyring()?.unwrap(
                customer,
                &master_key_id,
                &wrapped,
            )?)),
            StoredDataKey::Absent | StoredDataKey::Erased => Ok(None),
        }
    }

    /// Destroys the data key of `customer` (a tombstone stays). Works without a master
    /// key: erasure never waits for configuration.
    pub async fn destroy(&self, customer: &str) -> Result<bool, PiiError> {
        self.forget(customer);
        let destroyed = pii_keys::destroy(&self.pool, customer).await?;
        self.forget(customer);
        Ok(destroyed)
    }

    /// Re-wraps every data key wrapped by another master key under the current one;
    /// returns how many were re-wrapped.
    pub async fn rewrap_all(&self) -> Result<usize, PiiError> {
        let keyring = self.keyring()?;
        let mut done = 0;
        for old in pii_keys::wrapped_by_others(&self.pool, keyring.current.id()).await? {
            let key = keyring.unwrap(&old.customer_id, &old.master_key_id, &old.wrapped)?;
            let wrapped = keyring.wrap(&old.customer_id, &key);
            if pii_keys::rewrap(&self.pool, &old, keyring.current.id(), &wrapped).await? {
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> MasterKey {
        MasterKey::from_hex("K", &generate_master_key()).unwrap()
    }

    #[test]
    fn weak_and_malformed_master_keys_are_refused() {
        for weak in [
            "00".repeat(32),
            "ab".repeat(32),
            (0u8..32).map(|b| format!("{b:02x}")).collect::<String>(),
            (0u8..32).map(|b| format!("{:02x}", 255 - b)).collect(),
            "0123456789abcdef".repeat(4),
        ] {
            let error = MasterKey::from_hex("AGORA_PII_KEY", &weak).unwrap_err();
            assert!(error.contains("weak"), "{weak}: {error}");
        }
        assert!(MasterKey::from_hex("AGORA_PII_KEY", "abcd").is_err());
        assert!(MasterKey::from_hex("AGORA_PII_KEY", &"zz".repeat(32)).is_err());
        let error = MasterKey::from_hex("AGORA_PII_KEY", &"0".repeat(63)).unwrap_err();
        assert!(!error.contains("000"), "the value is not echoed: {error}");
    }

    #[test]
    fn a_data_key_unwraps_only_for_its_customer_and_under_its_master_key() {
        let ring = Keyring::new(key());
        let data = DataKey::generate();
        let wrapped = ring.wrap("ana", &data);
        let id = ring.current().id().to_owned();
        assert_eq!(ring.unwrap("ana", &id, &wrapped).unwrap().0, data.0);
        assert!(matches!(
            ring.unwrap("bob", &id, &wrapped),
            Err(PiiError::Unwrap)
        ));
        assert!(matches!(
            Keyring::new(key()).unwrap("ana", &id, &wrapped),
            Err(PiiError::UnknownMasterKey(_))
        ));
        // A rotated keyring still reads keys wrapped by the retired master key.
        let rotated = Keyring {
            current: key(),
            retired: vec![ring.current().clone()],
        };
        assert_eq!(rotated.unwrap("ana", &id, &wrapped).unwrap().0, data.0);
    }

    proptest! {
        #[test]
        fn sealed_fields_round_trip_and_open_only_with_their_key_field_and_stream(
            plaintext in ".{0,300}",
            stream in any::<u128>(),
            other_stream in any::<u128>(),
        ) {
            let stream = Uuid::from_u128(stream);
            let key = DataKey::generate();
            for field in [domain::customer::field::EMAIL, domain::customer::field::NAME,
                          domain::customer::field::ADDRESS] {
                let sealed = key.seal(stream, field, plaintext.as_bytes()).unwrap();
                prop_assert!(sealed.as_str().starts_with("pii1."));
                if plaintext.len() >= 4 {
                    prop_assert!(!sealed.as_str().contains(plaintext.as_str()));
                }
                prop_assert_eq!(key.open(stream, field, &sealed).unwrap(), plaintext.as_bytes());
                prop_assert!(DataKey::generate().open(stream, field, &sealed).is_err());
                prop_assert!(key.open(stream, "other", &sealed).is_err());
                if other_stream != stream.as_u128() {
                    prop_assert!(key.open(Uuid::from_u128(other_stream), field, &sealed).is_err());
                }
            }
        }
    }
}
