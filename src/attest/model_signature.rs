//! Verifying OpenSSF model-signing signatures (AISVS 3.1.1, 3.1.2, 3.3.3).
//!
//! The `model_signing` tool (v1.x, key-based) writes a Sigstore bundle
//! (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding a DSSE envelope. Its payload
//! is an in-toto Statement v1 with predicate type `https://model_signing/signature/v1.0`,
//! whose `resources` list every file of the model by relative name with its SHA-256. The
//! statement's one subject digest is the SHA-256 of those digests, concatenated in order.
//!
//! A bundle verifies when one of its DSSE signatures, over the pre-authentication
//! encoding of payload type and payload, is valid under an enabled signer's key; and it
//! *matches* a version when its resources equal the stored artifacts exactly: same names,
//! same digests, none missing, none extra.

use crate::domain::{ArtifactPath, SignatureAlgorithm, SignerKey, SignerName};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const MODEL_SIGNING_PREDICATE: &str = "https://model_signing/signature/v1.0";
/// Bounds on what a client may send.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;
pub const MAX_RESOURCES: usize = 10_000;
const MAX_SIGNATURES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the signature bundle is not valid: {0}")]
    Malformed(String),
    #[error("no enabled signer's key verifies the signature")]
    NoValidSignature,
    #[error("the signature does not match the version's artifacts: {0}")]
    Mismatch(String),
}

fn malformed(why: impl Into<String>) -> SignatureError {
    SignatureError::Malformed(why.into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    dsse_envelope: Option<Envelope>,
}

/// A DSSE envelope as read, nothing in it authenticated yet (validation attestations
/// read the same form).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub(crate) payload: String,
    pub(crate) payload_type: String,
    pub(crate) signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
pub(crate) struct EnvelopeSignature {
    pub(crate) sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Deserialize)]
struct Subject {
    digest: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Predicate {
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    name: String,
    algorithm: String,
    digest: String,
}

/// A bundle whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub signer: SignerName,
    /// Every signed file and its SHA-256 (hex).
    pub resources: BTreeMap<ArtifactPath, String>,
    /// SHA-256 of the bundle as sent: how a revocation list names it.
    pub bundle_sha256: String,
    /// SHA-256 of the signed DSSE payload: how a revocation list names every copy of
    /// the bundle, however it is re-serialised.
    pub payload_sha256: String,
}

/// The two digests a revocation list names a bundle by, `(bundle, payload)`, read
/// without verifying it (its signer may have been disabled since).
pub fn bundle_digests(bundle: &[u8]) -> Result<(String, String), SignatureError> {
    let parsed: Bundle = serde_json::from_slice(bundle)
        .map_err(|e| malformed(format!("not a Sigstore bundle: {e}")))?;
    let envelope = parsed
        .dsse_envelope
        .ok_or_else(|| malformed("it holds no DSSE envelope"))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&envelope.payload)
        .map_err(|e| malformed(format!("payload is not base64: {e}")))?;
    Ok((
        hex::encode(Sha256::digest(bundle)),
        hex::encode(Sha256::digest(&payload)),
    ))
}

/// DSSE's pre-authentication encoding: what the signature actually covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

pub(crate) fn signature_valid(key: &SignerKey, message: &[u8], signature: &[u8]) -> bool {
    match key.algorithm {
        SignatureAlgorithm::EcdsaP256 => ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &key.raw,
        )
        .verify(message, signature)
        .is_ok(),
        SignatureAlgorithm::Ed25519 => {
            let Ok(raw) = <[u8; 32]>::try_from(key.raw.as_slice()) else {
                return false;
            };
            let Ok(verifying) = ed25519_dalek::VerifyingKey::from_bytes(&raw) else {
                return false;
            };
            let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                return false;
            };
            verifying.verify_strict(message, &sig).is_ok()
        }
    }
}

/// Checks the bundle's form and signature against `signers` (the enabled ones).
pub fn verify_bundle(
    bundle: &[u8],
    signers: &[(SignerName, SignerKey)],
) -> Result<VerifiedSignature, SignatureError> {
    if bundle.len() > MAX_BUNDLE_BYTES {
        return Err(malformed(format!(
            "it is larger than {MAX_BUNDLE_BYTES} bytes"
        )));
    }
    let envelope = envelope_of(bundle)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&envelope.payload)
        .map_err(|e| malformed(format!("payload is not base64: {e}")))?;
    let message = pae(&envelope.payload_type, &payload);
    let signer = envelope
        .signatures
        .iter()
        .filter_map(|s| b64.decode(&s.sig).ok())
        .find_map(|sig| {
            signers
                .iter()
                .find(|(_, key)| signature_valid(key, &message, &sig))
        })
        .map(|(name, _)| name.clone())
        .ok_or(SignatureError::NoValidSignature)?;
    // Only now, with the payload authenticated, is its content worth reading.
    let statement = statement_of(&payload)?;
    let resources = signed_resources(&statement)?;
    Ok(VerifiedSignature {
        signer,
        resources,
        bundle_sha256: hex::encode(Sha256::digest(bundle)),
        payload_sha256: hex::encode(Sha256::digest(&payload)),
    })
}

/// The bundle's DSSE envelope, checked for its media and payload types and for a sane
/// number of signatures; nothing in it is authenticated yet.
fn envelope_of(bundle: &[u8]) -> Result<Envelope, SignatureError> {
    let parsed: Bundle = serde_json::from_slice(bundle)
        .map_err(|e| malformed(format!("not a Sigstore bundle: {e}")))?;
    if !parsed.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        return Err(malformed(format!(
            "media type {:?} is not a Sigstore bundle",
            parsed.media_type
        )));
    }
    let envelope = parsed
        .dsse_envelope
        .ok_or_else(|| malformed("it holds no DSSE envelope"))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(malformed(format!(
            "payload type {:?}, expected {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    if envelope.signatures.is_empty() || envelope.signatures.len() > MAX_SIGNATURES {
        return Err(malformed(format!(
            "it must hold 1 to {MAX_SIGNATURES} signatures"
        )));
    }
    Ok(envelope)
}

/// The authenticated payload as an in-toto statement of the model-signing predicate.
fn statement_of(payload: &[u8]) -> Result<Statement, SignatureError> {
    let statement: Statement = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("payload is not an in-toto statement: {e}")))?;
    if statement.statement_type != STATEMENT_TYPE {
        return Err(malformed(format!(
            "statement type {:?}, expected {STATEMENT_TYPE}",
            statement.statement_type
        )));
    }
    if statement.predicate_type != MODEL_SIGNING_PREDICATE {
        return Err(malformed(format!(
            "predicate type {:?}, expected {MODEL_SIGNING_PREDICATE}",
            statement.predicate_type
        )));
    }
    Ok(statement)
}

/// The files the statement signs, by path with their SHA-256 (lower-case hex), once the
/// subject is seen to be the digest of their digests in order.
fn signed_resources(
    statement: &Statement,
) -> Result<BTreeMap<ArtifactPath, String>, SignatureError> {
    let resources = &statement.predicate.resources;
    if resources.is_empty() || resources.len() > MAX_RESOURCES {
        return Err(malformed(format!(
            "it must sign 1 to {MAX_RESOURCES} files"
        )));
    }
    let mut signed = BTreeMap::new();
    let mut concatenated = Sha256::new();
    for r in resources {
        if r.algorithm != "sha256" {
            return Err(malformed(format!(
                "{} is hashed with {:?}; only sha256 is accepted",
                r.name, r.algorithm
            )));
        }
        let digest = hex::decode(&r.digest)
            .ok()
            .filter(|d| d.len() == 32)
            .ok_or_else(|| malformed(format!("{} has no valid SHA-256 digest", r.name)))?;
        concatenated.update(&digest);
        let path = ArtifactPath::parse(&r.name).map_err(|e| malformed(e.to_string()))?;
        if signed.insert(path, r.digest.to_ascii_lowercase()).is_some() {
            return Err(malformed(format!("{} is listed twice", r.name)));
        }
    }
    let subject = statement
        .subject
        .first()
        .and_then(|s| s.digest.get("sha256"))
        .ok_or_else(|| malformed("the statement has no sha256 subject"))?;
    if !subject.eq_ignore_ascii_case(&hex::encode(concatenated.finalize())) {
        return Err(malformed(
            "the subject digest does not match the listed resources",
        ));
    }
    Ok(signed)
}

/// Checks that the signed resources are exactly the version's artifacts.
pub fn check_resources(
    verified: &VerifiedSignature,
    artifacts: &BTreeMap<ArtifactPath, String>,
) -> Result<(), SignatureError> {
    let mut problems = Vec::new();
    for (path, digest) in artifacts {
        match verified.resources.get(path) {
            None => problems.push(format!("{path} is not signed")),
            Some(signed) if signed != digest => {
                problems.push(format!("{path} differs from what was signed"))
            }
            Some(_) => {}
        }
    }
    for path in verified
        .resources
        .keys()
        .filter(|p| !artifacts.contains_key(*p))
    {
        problems.push(format!("{path} is signed but not stored"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.truncate(20);
        Err(SignatureError::Mismatch(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/model-signing/model.sig");
    const FIXTURE_KEY: &str = include_str!("../../tests/fixtures/model-signing/signer.pub.pem");

    fn signer(name: &str, pem: &str) -> (SignerName, SignerKey) {
        (
            SignerName::parse(name).unwrap(),
            SignerKey::parse_pem(pem).unwrap(),
        )
    }

    fn fixture_artifacts() -> BTreeMap<ArtifactPath, String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model-signing/model");
        ["config.json", "model.safetensors", "tokenizer/vocab.json"]
            .into_iter()
            .map(|name| {
                (
                    ArtifactPath::parse(name).unwrap(),
                    hex::encode(Sha256::digest(std::fs::read(dir.join(name)).unwrap())),
                )
            })
            .collect()
    }

    #[test]
    fn a_bundle_from_the_model_signing_tool_verifies_and_matches_its_files() {
        let verified = verify_bundle(FIXTURE, &[signer("release-bot", FIXTURE_KEY)]).unwrap();
        assert_eq!(verified.signer.as_str(), "release-bot");
        assert_eq!(verified.resources.len(), 3);
        check_resources(&verified, &fixture_artifacts()).unwrap();
    }

    #[test]
    fn an_unregistered_key_or_an_altered_payload_does_not_verify() {
        let other = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA8T1jGJj3Zhx1fWQMGGUfQ84cytj1Ypj8tMJSVHydKV4=\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            verify_bundle(FIXTURE, &[signer("someone", other)]),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            verify_bundle(FIXTURE, &[]),
            Err(SignatureError::NoValidSignature)
        );
        let mut bundle: serde_json::Value = serde_json::from_slice(FIXTURE).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = String::from_utf8(
            b64.decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        bundle["dsseEnvelope"]["payload"] = b64
            .encode(payload.replace("config.json", "config.jsom"))
            .into();
        let altered = serde_json::to_vec(&bundle).unwrap();
        assert_eq!(
            verify_bundle(&altered, &[signer("release-bot", FIXTURE_KEY)]),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn a_changed_missing_or_extra_artifact_is_a_mismatch_named_by_path() {
        let verified = verify_bundle(FIXTURE, &[signer("release-bot", FIXTURE_KEY)]).unwrap();
        let mut changed = fixture_artifacts();
        changed.insert(
            ArtifactPath::parse("model.safetensors").unwrap(),
            "00".repeat(32),
        );
        assert!(
            check_resources(&verified, &changed)
                .unwrap_err()
                .to_string()
                .contains("model.safetensors differs")
        );
        let mut extra = fixture_artifacts();
        extra.insert(
            ArtifactPath::parse("backdoor.bin").unwrap(),
            "11".repeat(32),
        );
        assert!(
            check_resources(&verified, &extra)
                .unwrap_err()
                .to_string()
                .contains("backdoor.bin is not signed")
        );
        let mut missing = fixture_artifacts();
        missing.remove(&ArtifactPath::parse("config.json").unwrap());
        assert!(
            check_resources(&verified, &missing)
                .unwrap_err()
                .to_string()
                .contains("config.json is signed but not stored")
        );
    }

    #[test]
    fn an_ed25519_signed_envelope_verifies_too() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(key.verifying_key().as_bytes());
        let public = SignerKey::from_spki_der(&der).unwrap();
        let digest = "ab".repeat(32);
        let subject = hex::encode(Sha256::digest(hex::decode(&digest).unwrap()));
        let statement = serde_json::json!({
            "_type": STATEMENT_TYPE, "subject": [{ "name": "m", "digest": { "sha256": subject } }],
            "predicateType": MODEL_SIGNING_PREDICATE,
            "predicate": { "resources": [{ "name": "w.bin", "algorithm": "sha256", "digest": digest }] }
        });
        let payload = serde_json::to_vec(&statement).unwrap();
        let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
        let b64 = base64::engine::general_purpose::STANDARD;
        let bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "dsseEnvelope": { "payload": b64.encode(&payload), "payloadType": IN_TOTO_PAYLOAD_TYPE, "signatures": [{ "sig": b64.encode(sig.to_bytes()), "keyid": "" }] }
        });
        let verified = verify_bundle(
            &serde_json::to_vec(&bundle).unwrap(),
            &[(SignerName::parse("ed").unwrap(), public)],
        )
        .unwrap();
        assert_eq!(verified.resources.values().next(), Some(&digest));
    }

    #[test]
    fn malformed_bundles_are_refused_with_the_reason() {
        let signers = [signer("release-bot", FIXTURE_KEY)];
        assert!(matches!(
            verify_bundle(b"not json", &signers),
            Err(SignatureError::Malformed(_))
        ));
        assert!(
            matches!(verify_bundle(br#"{"mediaType":"text/plain"}"#, &signers), Err(SignatureError::Malformed(m)) if m.contains("media type"))
        );
        assert!(
            matches!(verify_bundle(&vec![b' '; MAX_BUNDLE_BYTES + 1], &signers), Err(SignatureError::Malformed(m)) if m.contains("larger"))
        );
    }
}
