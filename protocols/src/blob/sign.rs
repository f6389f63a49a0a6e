//! HMAC-SHA256 signing with an account key, as every Azure signature (SharedKey, SAS) uses it.

use base64::Engine as _;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The base64 HMAC-SHA256 of `string_to_sign` under `key` (the decoded account key).
pub fn sign(key: &[u8], string_to_sign: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(key, string_to_sign))
}

/// True when `signature_b64` is the HMAC of `string_to_sign` under `key`, compared in
/// constant time.
pub fn verify(key: &[u8], string_to_sign: &str, signature_b64: &str) -> bool {
    let Ok(sent) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    m.update(string_to_sign.as_bytes());
    m.verify_slice(&sent).is_ok()
}

fn mac(key: &[u8], string_to_sign: &str) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(string_to_sign.as_bytes());
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = b"secret key";
        let sig = sign(key, "hello");
        assert!(verify(key, "hello", &sig));
        assert!(!verify(key, "hellO", &sig));
        assert!(!verify(b"other", "hello", &sig));
        assert!(!verify(key, "hello", "not base64!"));
    }
}
