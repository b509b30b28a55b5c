//! Subscription secrets sealed at rest: ChaCha20-Poly1305 under `AGORA_WEBHOOK_KEY` (32
//! bytes, never stored in the database), a random nonce per secret, and the subscription
//! id as associated data (a sealed secret copied onto another subscription does not open).
//! Whoever can only read the database cannot sign deliveries.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use uuid::Uuid;

/// Seals and opens webhook secrets with one key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl SecretBox {
    /// The key from its 64 hex digits.
    pub fn from_hex(key: &str) -> Result<SecretBox, String> {
        let bytes = hex::decode(key.trim())
            .map_err(|_| "AGORA_WEBHOOK_KEY must be 64 hex digits (32 bytes)".to_owned())?;
        if bytes.len() != 32 {
            return Err(format!(
                "AGORA_WEBHOOK_KEY must be 32 bytes (64 hex digits), not {}",
                bytes.len()
            ));
        }
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| "AGORA_WEBHOOK_KEY must be 32 bytes".to_owned())?;
        Ok(SecretBox { cipher })
    }

    /// A fresh random key, as 64 hex digits (what `agora dev` generates).
    pub fn generate_key() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// Seals the secret of subscription `id`.
    pub fn seal(&self, id: Uuid, secret: &str) -> Result<Sealed, String> {
        let nonce = rand::random::<[u8; 12]>();
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| "cannot seal the webhook secret".to_owned())?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens the sealed secret of subscription `id` (fails under another key or id).
    pub fn open(&self, id: Uuid, sealed: &Sealed) -> Result<Vec<u8>, String> {
        let nonce: [u8; 12] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| "a sealed webhook secret has a malformed nonce".to_owned())?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| "the webhook secret does not open with AGORA_WEBHOOK_KEY".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_subscription() {
        let keys = SecretBox::from_hex(&SecretBox::generate_key()).unwrap();
        let other = SecretBox::from_hex(&SecretBox::generate_key()).unwrap();
        let id = Uuid::now_v7();
        let sealed = keys.seal(id, "s3cret-s3cret-s3cret").unwrap();
        assert!(!sealed
            .ciphertext
            .windows(6)
            .any(|w| w == b"s3cret".as_slice()));
        assert_eq!(keys.open(id, &sealed).unwrap(), b"s3cret-s3cret-s3cret");
        assert!(other.open(id, &sealed).is_err());
        assert!(keys.open(Uuid::now_v7(), &sealed).is_err());
        assert!(SecretBox::from_hex("abcd").is_err());
        assert!(SecretBox::from_hex("not hex").is_err());
    }
}
