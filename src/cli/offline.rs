//! Offline checks of what the service signed (destruction certificates, compliance
//! reports), with the public key alone: what an auditor runs on a machine of their own.

use super::load_service_key;
use crate::config::Settings;
use anyhow::Context;
use std::process::ExitCode;

/// The key a signed document is checked against: the PEM given, or this data folder's.
fn verification_key(
    settings: &Settings,
    public_key: Option<&std::path::Path>,
) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    Ok(match public_key {
        Some(pem) => {
            let text = std::fs::read_to_string(pem)
                .with_context(|| format!("reading the public key {}", pem.display()))?;
            crate::attest::dsse::public_key_from_pem(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", pem.display()))?
        }
        None => load_service_key(settings)?.verifying_key(),
    })
}

/// A DSSE envelope's bytes, refusing a file larger than any envelope sunset signs.
fn read_envelope(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    anyhow::ensure!(
        meta.len() <= crate::attest::dsse::MAX_ENVELOPE_BYTES as u64,
        "{} is larger than any envelope sunset signs",
        file.display()
    );
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

pub(super) fn verify_report(
    settings: &Settings,
    file: &std::path::Path,
    public_key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let key = verification_key(settings, public_key)?;
    let bytes = read_envelope(file)?;
    match crate::service::verify_report(&bytes, &key) {
        Ok(r) => {
            println!(
                "report VERIFIED: model {} from {} to {}",
                r.model.name,
                r.period.from.to_rfc3339(),
                r.period.to.to_rfc3339()
            );
            println!(
                "  generated {} for {}; {} audit records, {} status changes, {} retirements, {} integrity refusals",
                r.generated_at.to_rfc3339(),
                r.generated_by,
                r.events.total,
                r.status_changes.len(),
                r.retirements.len(),
                r.integrity_refusals.len()
            );
            let checkpoint = r.audit_chain.checkpoint.as_ref();
            println!(
                "  audit chain: {} records, {}; ends at signed checkpoint {}",
                r.audit_chain.records,
                if r.audit_chain.verified {
                    "verified"
                } else {
                    "NOT verified"
                },
                checkpoint.map_or("none".to_owned(), |c| format!(
                    "{} ({})",
                    c.seq, c.head_hash
                ))
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("report NOT VERIFIED: {why}");
            Ok(ExitCode::from(1))
        }
    }
}

pub(super) fn verify_certificate(
    settings: &Settings,
    file: &std::path::Path,
    public_key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let key = verification_key(settings, public_key)?;
    let bytes = read_envelope(file)?;
    match crate::service::verify_certificate(&bytes, &key) {
        Ok(statement) => {
            let p = &statement["predicate"];
            println!(
                "certificate VERIFIED: retirement {} of {} {}",
                p["retirement"]["id"],
                p["retirement"]["model"].as_str().unwrap_or("?"),
                p["retirement"]["versions"]
            );
            println!(
                "  method: {} by {}; completed {}",
                p["sanitization"]["technique"].as_str().unwrap_or("?"),
                p["sanitization"]["performedBy"]["name"]
                    .as_str()
                    .unwrap_or("?"),
                p["sanitization"]["completedAt"].as_str().unwrap_or("?")
            );
            println!(
                "  verification: {}",
                p["sanitization"]["verification"]["result"]
                    .as_str()
                    .unwrap_or("?")
            );
            for subject in statement["subject"].as_array().into_iter().flatten() {
                println!(
                    "  erased: {} sha256:{}",
                    subject["name"].as_str().unwrap_or("?"),
                    subject["digest"]["sha256"].as_str().unwrap_or("?")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("certificate NOT VERIFIED: {why}");
            Ok(ExitCode::from(1))
        }
    }
}
