//! Authorised signers' public keys (AISVS 3.1.1).
//!
//! A key arrives as a PEM SubjectPublicKeyInfo, the form `openssl pkey -pubout` and the
//! OpenSSF `model_signing` tool use. Two algorithms are accepted: ECDSA on P-256 (the
//! tool's default for key-based signing) and Ed25519. Their SPKI encodings have a fixed
//! prefix followed by the key itself, so parsing is an exact match, not a general ASN.1
//! decoder: anything else (other curves, RSA, trailing bytes) is refused by name.

use super::{ParseError, SignerName};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes) }
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// SEQUENCE { SEQUENCE { id-Ed25519 }, BIT STRING (32 bytes) }
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const MAX_PEM_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureAlgorithm {
    EcdsaP256,
    Ed25519,
}

impl SignatureAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::EcdsaP256 => "ecdsa-p256",
            SignatureAlgorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "ecdsa-p256" => Ok(SignatureAlgorithm::EcdsaP256),
            "ed25519" => Ok(SignatureAlgorithm::Ed25519),
            other => Err(ParseError::new(
                "signature algorithm",
                format!("{other:?} is not supported; ecdsa-p256 or ed25519 is accepted"),
            )),
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a signer's signatures count for: a model's artifacts (OpenSSF model signing),
/// or validation results of them (in-toto attestations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignerPurpose {
    ModelSigning,
    Validator,
}

impl SignerPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SignerPurpose::ModelSigning => "model-signing",
            SignerPurpose::Validator => "validator",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "model-signing" => Ok(SignerPurpose::ModelSigning),
            "validator" => Ok(SignerPurpose::Validator),
            other => Err(ParseError::new(
                "purpose",
                format!("{other:?} is not a signer purpose; model-signing or validator is"),
            )),
        }
    }

    /// Stored as a comma-separated list.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, ParseError> {
        let mut list: Vec<Self> = raw
            .split(',')
            .filter(|p| !p.is_empty())
            .map(Self::parse)
            .collect::<Result<_, _>>()?;
        list.sort();
        list.dedup();
        Ok(list)
    }

    pub fn list_text(list: &[Self]) -> String {
        list.iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A signer's public key, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKey {
    pub algorithm: SignatureAlgorithm,
    /// The raw key: a 65-byte uncompressed point for P-256, 32 bytes for Ed25519.
    pub raw: Vec<u8>,
    /// The DER SubjectPublicKeyInfo it was parsed from.
    pub spki_der: Vec<u8>,
}

impl SignerKey {
    pub fn parse_pem(pem: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "public key";
        if pem.len() > MAX_PEM_BYTES {
            return Err(ParseError::new(
                FIELD,
                format!("is longer than {MAX_PEM_BYTES} bytes"),
            ));
        }
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or_else(|| ParseError::new(FIELD, "must be a PEM block from -----BEGIN PUBLIC KEY----- to -----END PUBLIC KEY----- (as `openssl pkey -pubout` writes it)"))?;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| ParseError::new(FIELD, format!("holds invalid base64: {e}")))?;
        Self::from_spki_der(&der)
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, ParseError> {
        let (algorithm, raw) = if let Some(raw) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            if raw.len() != 65 || raw[0] != 0x04 {
                return Err(ParseError::new(
                    "public key",
                    "is a P-256 key but not an uncompressed point",
                ));
            }
            (SignatureAlgorithm::EcdsaP256, raw)
        } else if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            if raw.len() != 32 {
                return Err(ParseError::new(
                    "public key",
                    "is an Ed25519 key of the wrong length",
                ));
            }
            (SignatureAlgorithm::Ed25519, raw)
        } else {
            return Err(ParseError::new(
                "public key",
                "is neither an ECDSA P-256 nor an Ed25519 key; only those are accepted",
            ));
        };
        Ok(Self {
            algorithm,
            raw: raw.to_vec(),
            spki_der: der.to_vec(),
        })
    }

    /// The key as PEM, normalised.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.spki_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// Hex SHA-256 of the DER SubjectPublicKeyInfo: the key's stable identity.
    pub fn key_id(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&self.spki_der))
    }
}

/// A registered signer, parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signer {
    pub name: SignerName,
    /// What its signatures count for.
    pub purposes: Vec<SignerPurpose>,
    pub algorithm: SignatureAlgorithm,
    pub public_key_pem: String,
    pub key_id: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl Signer {
    /// This signer disabled at `at`: its signatures stop counting from then on.
    pub fn disabled(&self, at: DateTime<Utc>) -> Self {
        Self {
            enabled: false,
            disabled_at: Some(at),
            ..self.clone()
        }
    }
}

/// A version's stored signature bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSignature {
    #[serde(skip)]
    pub bundle: String,
    pub bundle_sha256: String,
    pub signer: String,
    pub uploaded_at: DateTime<Utc>,
    pub uploaded_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA8T1jGJj3Zhx1fWQMGGUfQ84cytj1Ypj8tMJSVHydKV4=\n-----END PUBLIC KEY-----\n";
    pub const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8NOVjyoaMnNtJF4g0iPYWhWq/i0D\ngkXlv6KJxXMcupsfikYtTN1nJshjKPCZxFFrhufTyDNnszW9+1UmF/aaeA==\n-----END PUBLIC KEY-----\n";
    const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEDabhIg2mYP0quuHLHIb/jh2MJnI9rBZ+\nkhMC/Q38wz+JQlKUkC6paA2dOyEVFPN++b5ReDS6QM5MvpKcBas/2Xz4If9YrGhL\nm1tnR42IPymQjsH3MLtduJiBKptONRNE\n-----END PUBLIC KEY-----\n";

    #[test]
    fn openssl_keys_of_both_algorithms_parse_and_round_trip() {
        let ed = SignerKey::parse_pem(ED25519_PEM).unwrap();
        assert_eq!(
            (ed.algorithm, ed.raw.len()),
            (SignatureAlgorithm::Ed25519, 32)
        );
        assert_eq!(ed.to_pem(), ED25519_PEM);
        let p = SignerKey::parse_pem(P256_PEM).unwrap();
        assert_eq!(
            (p.algorithm, p.raw.len()),
            (SignatureAlgorithm::EcdsaP256, 65)
        );
        assert_eq!(SignerKey::parse_pem(&p.to_pem()).unwrap(), p);
        assert_ne!(ed.key_id(), p.key_id());
    }

    #[test]
    fn other_keys_and_garbage_are_refused_by_name() {
        assert!(
            SignerKey::parse_pem(P384_PEM)
                .unwrap_err()
                .message
                .contains("neither")
        );
        assert!(
            SignerKey::parse_pem("hello")
                .unwrap_err()
                .message
                .contains("PEM")
        );
        assert!(
            SignerKey::parse_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----")
                .unwrap_err()
                .message
                .contains("base64")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_and_der_never_panic(s in ".*", der in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = SignerKey::parse_pem(&s);
            let _ = SignerKey::from_spki_der(&der);
        }
    }
}
