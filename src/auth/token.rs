//! API token secrets: 256 random bits, shown once, stored only as SHA-256.
//!
//! A plain (unsalted, fast) hash is right here: the secret has 256 bits of entropy, so
//! there is nothing to brute-force, and a deterministic hash lets us find the token by
//! an indexed lookup instead of trying every row.

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const PREFIX: &str = "sunset_";

/// A freshly generated token. Its `Debug` never shows the secret.
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref());
        Self(Zeroizing::new(format!("{PREFIX}{encoded}")))
    }

    /// The secret, to be shown to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two token hashes in constant time.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_bits_and_are_never_printed() {
        let t = TokenSecret::generate();
        let body = t.expose().strip_prefix(PREFIX).unwrap();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap()
                .len(),
            32
        );
        assert!(!format!("{t:?}").contains(body));
        assert_ne!(t.expose(), TokenSecret::generate().expose());
    }

    #[test]
    fn hashes_compare_equal_only_when_identical() {
        let h = hash_token("sunset_x");
        assert!(hashes_equal(&h, &hash_token("sunset_x")));
        assert!(!hashes_equal(&h, &hash_token("sunset_y")));
        assert!(!hashes_equal(&h, "short"));
    }
}
