//! Sealing of secrets the service must use again later: the `whsec_` secrets that
//! authenticate registration webhooks and sign notices to consumers. A hash would not
//! do (an HMAC needs the secret itself), so they are encrypted with AES-256-GCM under a
//! key derived from the service key, bound to what they belong to. The database holds
//! only the sealed form; the key folder is needed to open it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Sealed values start with this, so a format change can be recognised.
const PREFIX: &str = "v1:";

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretSealer([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a sealed secret could not be opened: it is damaged, or bound to something else")]
pub struct UnsealError;

impl SecretSealer {
    /// Derives the sealing key from the service key's seed (domain-separated, one-way).
    pub fn derive(seed: &[u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(seed)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"sunset/secret-sealing-key/v1");
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac.finalize().into_bytes());
        Self(key)
    }

    fn cipher(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.0)
                .unwrap_or_else(|_| unreachable!("a 32-byte key fits AES-256-GCM")),
        )
    }

    /// Encrypts `secret` for `binding` (what it belongs to, e.g. `webhook-source:ci`).
    pub fn seal(&self, binding: &str, secret: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut buf = secret.to_vec();
        let tag = self
            .cipher()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding.as_bytes()),
                &mut buf,
            )
            .unwrap_or_else(|_| unreachable!("a secret is far below GCM's length limit"));
        let mut out = nonce.to_vec();
        out.append(&mut buf);
        out.extend_from_slice(tag.as_ref());
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, binding: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .ok_or(UnsealError)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(UnsealError);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| UnsealError)?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let len = self
            .cipher()
            .open_in_place(nonce, Aad::from(binding.as_bytes()), &mut buf)
            .map_err(|_| UnsealError)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_binding_and_hides_the_plaintext() {
        let s = SecretSealer::derive(&[7; 32]);
        let sealed = s.seal("webhook-source:ci", b"whsec_c2VjcmV0");
        assert!(!sealed.contains("whsec_"));
        assert_eq!(
            s.open("webhook-source:ci", &sealed).unwrap().as_slice(),
            b"whsec_c2VjcmV0"
        );
        assert_eq!(s.open("webhook-source:cd", &sealed), Err(UnsealError));
        assert_eq!(
            SecretSealer::derive(&[8; 32]).open("webhook-source:ci", &sealed),
            Err(UnsealError)
        );
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(
            s.open("webhook-source:ci", &String::from_utf8(flipped).unwrap())
                .is_err()
        );
    }
}
