//! Signed validation results (AISVS 3.2.3): an in-toto Statement in a DSSE envelope,
//! signed by a registered signer with the `validator` purpose, whose subjects are exactly
//! a version's stored artifacts by SHA-256 and whose predicate carries the suite and its
//! results. What the gate may read; anything unsigned, unverified or about other files
//! is refused, and so counts as no result.

use super::model_signature::{Envelope, pae, signature_valid};
use crate::domain::{SignerKey, SignerName, ValidationResult};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// An attestation is a few kilobytes; more is not one.
pub const MAX_ATTESTATION_BYTES: usize = 256 * 1024;
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate sunset reads.
pub const VALIDATION_PREDICATE: &str = "https://sunset.invalid/validation-results/v1";
const MAX_RESULTS: usize = 200;

/// A verified attestation's content.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedValidation {
    pub signer: SignerName,
    pub suite: String,
    pub results: Vec<ValidationResult>,
    /// SHA-256 of the envelope as received.
    pub envelope_sha256: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Deserialize)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Predicate {
    suite: String,
    results: Vec<ValidationResult>,
}

/// Checks `envelope` against `validators` (enabled signers with the validator purpose)
/// and `artifacts` (the version's stored files: path to SHA-256), in that order: the
/// content is read only once a signature has authenticated it.
pub fn verify_attestation(
    envelope: &[u8],
    validators: &[(SignerName, SignerKey)],
    artifacts: &BTreeMap<String, String>,
) -> Result<VerifiedValidation, String> {
    if envelope.len() > MAX_ATTESTATION_BYTES {
        return Err(format!("larger than {MAX_ATTESTATION_BYTES} bytes"));
    }
    let parsed: Envelope =
        serde_json::from_slice(envelope).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    if parsed.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "payload type is {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
            parsed.payload_type
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&parsed.payload)
        .map_err(|e| format!("payload is not base64: {e}"))?;
    let message = pae(&parsed.payload_type, &payload);
    let signer = parsed
        .signatures
        .iter()
        .take(16)
        .filter_map(|s| b64.decode(&s.sig).ok())
        .find_map(|sig| {
            validators
                .iter()
                .find(|(_, key)| signature_valid(key, &message, &sig))
        })
        .map(|(name, _)| name.clone())
        .ok_or("no signature verifies under an enabled signer with the validator purpose")?;
    let statement: Statement = serde_json::from_slice(&payload).map_err(|e| {
        format!("the payload is not an in-toto statement with validation results: {e}")
    })?;
    check_statement(&statement, artifacts)?;
    Ok(VerifiedValidation {
        signer,
        suite: statement.predicate.suite,
        results: statement.predicate.results,
        envelope_sha256: hex::encode(Sha256::digest(envelope)),
    })
}

fn check_statement(s: &Statement, artifacts: &BTreeMap<String, String>) -> Result<(), String> {
    if !s
        .statement_type
        .starts_with("https://in-toto.io/Statement/")
    {
        return Err(format!(
            "{:?} is not an in-toto statement type",
            s.statement_type
        ));
    }
    if s.predicate_type != VALIDATION_PREDICATE {
        return Err(format!(
            "predicate type is {:?}, expected {VALIDATION_PREDICATE:?}",
            s.predicate_type
        ));
    }
    let suite = s.predicate.suite.trim();
    if suite.is_empty() || suite.len() > 200 || suite.chars().any(char::is_control) {
        return Err("the suite must be named (1 to 200 characters, no control characters)".into());
    }
    let results = &s.predicate.results;
    if results.is_empty() || results.len() > MAX_RESULTS {
        return Err(format!(
            "1 to {MAX_RESULTS} results are accepted, not {}",
            results.len()
        ));
    }
    if let Some(r) = results.iter().find(|r| {
        r.name.trim().is_empty() || r.name.len() > 200 || r.name.chars().any(char::is_control)
    }) {
        return Err(format!(
            "result name {:?} is empty, too long or holds control characters",
            r.name
        ));
    }
    let subjects: BTreeMap<String, String> = s
        .subject
        .iter()
        .map(|x| {
            (
                x.name.clone(),
                x.digest.get("sha256").cloned().unwrap_or_default(),
            )
        })
        .collect();
    if subjects.len() != s.subject.len() {
        return Err("a subject is named twice".into());
    }
    if &subjects != artifacts {
        return Err(format!(
            "its subjects are not exactly the version's artifacts (the statement names {}; the version holds {})",
            names(&subjects),
            names(artifacts)
        ));
    }
    Ok(())
}

fn names(m: &BTreeMap<String, String>) -> String {
    m.keys().cloned().collect::<Vec<_>>().join(", ")
}
