//! Signed checkpoints of the chain head.
//!
//! A checkpoint is `(seq, head hash, signed at)` signed with the service's Ed25519 key.
//! Checkpoints are kept in the database *and* appended to `audit-checkpoints.jsonl` in the
//! data folder, and can be exported and kept anywhere: whoever keeps one can later prove
//! that the log still holds every record up to it, unchanged.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub seq: i64,
    pub head_hash: String,
    pub signed_at: DateTime<Utc>,
    /// Hex SHA-256 of the raw public key that signed it.
    pub key_id: String,
    /// Base64 Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {0} was signed by key {1}, not by the key given")]
    UnknownKey(String, String),
    #[error("checkpoint {0} has an invalid signature")]
    BadSignature(String),
}

impl Checkpoint {
    fn message(seq: i64, head_hash: &str, signed_at: DateTime<Utc>) -> Vec<u8> {
        let mut m = b"sunset/audit-checkpoint/v1\n".to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(head_hash.as_bytes());
        m.extend_from_slice(&signed_at.timestamp_micros().to_be_bytes());
        m
    }

    pub fn sign(key: &SigningKey, seq: i64, head_hash: &str, signed_at: DateTime<Utc>) -> Self {
        use base64::Engine;
        let signed_at = super::chain::truncate_to_micros(signed_at);
        let signature = key.sign(&Self::message(seq, head_hash, signed_at));
        Self {
            seq,
            head_hash: head_hash.to_owned(),
            signed_at,
            key_id: key_id(&key.verifying_key()),
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }

    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        use base64::Engine;
        if self.key_id != key_id(key) {
            return Err(CheckpointError::UnknownKey(
                self.key_and_seq(),
                self.key_id.clone(),
            ));
        }
        let bad = || CheckpointError::BadSignature(self.key_and_seq());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| bad())?;
        let signature = Signature::from_slice(&bytes).map_err(|_| bad())?;
        key.verify(
            &Self::message(self.seq, &self.head_hash, self.signed_at),
            &signature,
        )
        .map_err(|_| bad())
    }

    /// A short human name: `seq 42 @ 2026-11-22T19:00:00Z`.
    pub fn key_and_seq(&self) -> String {
        format!(
            "seq {} @ {}",
            self.seq,
            self.signed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// Hex SHA-256 of a raw Ed25519 public key.
pub fn key_id(key: &VerifyingKey) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_not_after_any_change() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let cp = Checkpoint::sign(&key, 42, &"ab".repeat(32), Utc::now());
        cp.verify_signature(&key.verifying_key()).unwrap();
        let mut moved = cp.clone();
        moved.seq = 41;
        assert!(moved.verify_signature(&key.verifying_key()).is_err());
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(matches!(
            cp.verify_signature(&other.verifying_key()),
            Err(CheckpointError::UnknownKey(..))
        ));
    }
}
