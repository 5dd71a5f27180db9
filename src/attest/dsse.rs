//! DSSE envelopes signed with the service key: the revocation list and destruction
//! certificates. The envelope is the one of the DSSE specification (v1.0): `payload`
//! base64, `payloadType`, and `signatures` of `{keyid, sig}` where `sig` is Ed25519 over
//! the pre-authentication encoding (PAE), so any DSSE verifier with the service's public
//! key accepts it. The `keyid` is the SHA-256 of the raw public key (the same id audit
//! checkpoints carry); verifiers may ignore it.

use super::model_signature::pae;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Certificates and lists are small; anything bigger is not one of ours.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("payload type is {found:?}, expected {expected:?}")]
    PayloadType { found: String, expected: String },
    #[error("no signature in the envelope verifies under the given public key")]
    BadSignature,
}

/// Signs `payload` as a DSSE envelope of `payload_type`.
pub fn sign(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Envelope {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = key.sign(&pae(payload_type, payload));
    Envelope {
        payload: b64.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: crate::audit::checkpoint_key_id(&key.verifying_key()),
            sig: b64.encode(signature.to_bytes()),
        }],
    }
}

/// Checks `envelope` (JSON bytes) is of `payload_type` and signed by `key`; returns the
/// payload. Strict: one changed byte anywhere that matters makes it fail.
pub fn verify(
    envelope: &[u8],
    payload_type: &str,
    key: &VerifyingKey,
) -> Result<Vec<u8>, DsseError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(DsseError::Malformed(format!(
            "larger than {MAX_ENVELOPE_BYTES} bytes"
        )));
    }
    let parsed: Envelope =
        serde_json::from_slice(envelope).map_err(|e| DsseError::Malformed(e.to_string()))?;
    if parsed.payload_type != payload_type {
        return Err(DsseError::PayloadType {
            found: parsed.payload_type,
            expected: payload_type.to_owned(),
        });
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&parsed.payload)
        .map_err(|e| DsseError::Malformed(format!("payload is not base64: {e}")))?;
    let message = pae(&parsed.payload_type, &payload);
    let valid = parsed.signatures.iter().any(|s| {
        b64.decode(&s.sig)
            .ok()
            .and_then(|sig| ed25519_dalek::Signature::from_slice(&sig).ok())
            .is_some_and(|sig| key.verify(&message, &sig).is_ok())
    });
    if valid {
        Ok(payload)
    } else {
        Err(DsseError::BadSignature)
    }
}

/// Parses an Ed25519 public key from PEM (SubjectPublicKeyInfo), as `sunset keys public`
/// prints it.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, String> {
    let key = crate::domain::SignerKey::parse_pem(pem).map_err(|e| e.to_string())?;
    if key.algorithm != crate::domain::SignatureAlgorithm::Ed25519 {
        return Err("the service key is Ed25519; this is another kind of key".into());
    }
    let raw: [u8; 32] = key
        .raw
        .as_slice()
        .try_into()
        .map_err(|_| "an Ed25519 key is 32 bytes".to_owned())?;
    VerifyingKey::from_bytes(&raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_verifies_and_any_one_byte_change_breaks_it() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let envelope = sign(&key, "application/x-test", b"{\"a\":1}");
        let bytes = serde_json::to_vec(&envelope).unwrap();
        assert_eq!(
            verify(&bytes, "application/x-test", &key.verifying_key()).unwrap(),
            b"{\"a\":1}"
        );
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            verify(&bytes, "application/x-test", &other),
            Err(DsseError::BadSignature)
        );
        // The key id is a hint a DSSE verifier may ignore; every other byte counts.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let keyid_at = text.find(&envelope.signatures[0].keyid).unwrap();
        let hint = keyid_at..keyid_at + envelope.signatures[0].keyid.len();
        for i in (0..bytes.len()).filter(|i| !hint.contains(i)) {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            assert!(
                verify(&changed, "application/x-test", &key.verifying_key()).is_err(),
                "byte {i} changed and it still verified"
            );
        }
    }
}
