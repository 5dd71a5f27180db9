//! The key that authenticates each audit record.
//!
//! Every record carries HMAC-SHA256(key, record hash). The key is derived from the
//! service key, so it too lives only in the key folder: someone who can write the
//! database can neither forge a record nor rewrite the chain and re-hash it. An HMAC
//! costs about a microsecond where an Ed25519 signature costs about twenty, and the
//! records still become publicly verifiable through signed checkpoints: a checkpoint
//! signs a head hash, and the public hash chain ties every earlier record to it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AuditMacKey([u8; 32]);

impl AuditMacKey {
    /// Derives the audit key from the service key's seed (domain-separated, one-way).
    pub fn derive(seed: &[u8; 32]) -> Self {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(seed).unwrap_or_else(|_| unreachable_key());
        mac.update(b"sunset/audit-mac-key/v1");
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac.finalize().into_bytes());
        Self(key)
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_key())
    }

    /// Hex HMAC of a record hash.
    pub fn tag(&self, record_hash: &str) -> String {
        let mut mac = self.mac();
        mac.update(record_hash.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Checks a hex tag in constant time.
    pub fn verify(&self, record_hash: &str, tag_hex: &str) -> bool {
        let Ok(tag) = hex::decode(tag_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(record_hash.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

impl std::fmt::Debug for AuditMacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditMacKey([redacted])")
    }
}

/// HMAC accepts keys of any length, so construction cannot fail.
#[cold]
fn unreachable_key() -> HmacSha256 {
    panic!("HMAC-SHA256 rejected a 32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_only_under_the_same_key_and_hash() {
        let key = AuditMacKey::derive(&[1u8; 32]);
        let tag = key.tag("abc");
        assert!(key.verify("abc", &tag));
        assert!(!key.verify("abd", &tag));
        assert!(!AuditMacKey::derive(&[2u8; 32]).verify("abc", &tag));
        assert!(!key.verify("abc", "not hex"));
    }
}
