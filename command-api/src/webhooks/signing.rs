//! The `Agora-Signature` header of a delivery: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`. A receiver recomputes `v1` over the raw body it got and rejects
//! old `t` values (replays).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header value for `body` sent at `timestamp` (unix seconds).
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// hex(HMAC-SHA256(secret, "<timestamp>.<body>")).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    match mac_of(secret, timestamp, body) {
        Some(mac) => hex::encode(mac.finalize().into_bytes()),
        None => String::new(),
    }
}

/// Whether `candidate_hex` is [`signature`] of `body` at `timestamp` with `secret`,
/// compared in constant time (the way a receiver checks one).
pub fn verifies(secret: &[u8], timestamp: i64, body: &[u8], candidate_hex: &str) -> bool {
    let (Some(mac), Ok(candidate)) = (mac_of(secret, timestamp, body), hex::decode(candidate_hex))
    else {
        return false;
    };
    mac.verify_slice(&candidate).is_ok()
}

/// HMAC-SHA256(secret) over `"<timestamp>.<body>"` (HMAC takes a key of any length: `None`
/// never happens).
fn mac_of(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'whsec-0123456789abcdef',
        //   b'1700000000.{\"a\":1}', hashlib.sha256).hexdigest())"
        assert_eq!(
            signature_header(b"whsec-0123456789abcdef", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=d77c78ac4da074c56908b55eac30358b2a7bfc573be4c76819af5102e8dcf939"
        );
        assert_ne!(signature(b"Jefe", 0, b"x"), signature(b"Jefe", 1, b"x"));
    }
}
