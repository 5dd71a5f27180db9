//! Signed validation results (AISVS 3.2.3): attestations made by securesystemslib,
//! verified against the validators and the version's artifacts, read by the gate.

use crate::artifacts::{fill_with_fixture, fixture_dir, signed_fixture_version};
use crate::support::{TestApp, error_code, error_message};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CREATE: &str = "mutation($v: String!, $ok: Boolean!) { createVersion(input: { model: \"fraud-scorer\", version: $v, validations: [{ name: \"auc\", passed: $ok }] }) { version } }";
const TRANSITION: &str = "mutation($v: String!, $to: LifecycleStatus!) { transitionVersion(model: \"fraud-scorer\", version: $v, to: $to) { status } }";
const ATTEST: &str = "mutation($v: String!, $e: String!) { attestValidation(model: \"fraud-scorer\", version: $v, envelope: $e) { signer suite results { name passed score } } }";
const ATTESTED: &str = "query($v: String!) { modelVersion(model: \"fraud-scorer\", version: $v) { attestedValidations { signer suite } } }";

fn python() -> String {
    std::env::var("SUNSET_TEST_CYCLONEDX_PYTHON")
        .expect("SUNSET_TEST_CYCLONEDX_PYTHON: the test venv's python (tests/run sets it)")
}

fn attest_py(args: &[&std::ffi::OsStr]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attest.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A validator's key pair made by `cryptography`, in `dir`.
pub(crate) fn keygen(dir: &std::path::Path) -> String {
    attest_py(&[std::ffi::OsStr::new("keygen"), dir.as_os_str()]);
    std::fs::read_to_string(dir.join("validator.pub.pem")).expect("pem")
}

/// The fixture's files by SHA-256, as a statement names them.
pub(crate) fn fixture_subjects() -> Vec<Value> {
    ["config.json", "model.safetensors", "tokenizer/vocab.json"]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(fixture_dir().join("model").join(name)).expect("fixture");
            json!({ "name": name, "digest": { "sha256": hex::encode(Sha256::digest(&bytes)) } })
        })
        .collect()
}

/// `subjects` and `auc` signed by the key in `dir`, by securesystemslib.
pub(crate) fn attestation(dir: &std::path::Path, subjects: Vec<Value>, auc_passed: bool) -> String {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://sunset.invalid/validation-results/v1",
        "predicate": { "suite": "fraud-eval 2026.12", "results": [{ "name": "auc", "passed": auc_passed, "score": 0.93, "threshold": 0.9 }] },
    });
    let file = dir.join("statement.json");
    std::fs::write(&file, serde_json::to_vec(&statement).expect("json")).expect("write");
    attest_py(&[
        std::ffi::OsStr::new("sign"),
        dir.join("validator.key").as_os_str(),
        file.as_os_str(),
    ])
}

async fn attested_count(app: &TestApp, token: &str, v: &str) -> usize {
    let data = app.gql_ok(token, ATTESTED, json!({ "v": v })).await;
    data["modelVersion"]["attestedValidations"]
        .as_array()
        .map_or(0, Vec::len)
}

on_both_backends! {
    /// A version whose own provenance says a validation failed is promoted once a
    /// validator's signed result says it passed; a signed failure blocks one whose
    /// provenance claimed a pass. Unsigned by a validator, about other files, or changed
    /// after signing, an attestation is refused and kept nowhere.
    async fn signed_results_bound_to_the_artifacts_gate_promotion(app) {
        let owner = signed_fixture_version(&app).await;
        let dir = tempfile::tempdir().expect("dir");
        let pem = keygen(dir.path());
        app.gql_ok(&app.admin, "mutation($k: String!) { addSigner(name: \"eval-bot\", publicKeyPem: $k, purposes: [\"validator\"]) { purposes } }", json!({ "k": pem })).await;
        let other = tempfile::tempdir().expect("dir");
        let model_signer = keygen(other.path());
        let added = app.gql_ok(&app.admin, "mutation($k: String!) { addSigner(name: \"release-bot-2\", publicKeyPem: $k) { purposes } }", json!({ "k": model_signer })).await;
        assert_eq!(added["addSigner"]["purposes"], json!(["model-signing"]));

        app.gql_ok(&owner, CREATE, json!({ "v": "1.1.0", "ok": false })).await;
        fill_with_fixture(&app, &owner, "1.1.0").await;
        app.gql_ok(&owner, TRANSITION, json!({ "v": "1.1.0", "to": "STAGING" })).await;
        let blocked = app.gql(&owner, TRANSITION, json!({ "v": "1.1.0", "to": "PRODUCTION" })).await;
        assert_eq!(error_code(&blocked), "CONFLICT", "{blocked}");

        // Refused: signed by a signer without the validator purpose; about other files;
        // changed after signing. Nothing is kept.
        let wrong_signer = attestation(other.path(), fixture_subjects(), true);
        let body = app.gql(&owner, ATTEST, json!({ "v": "1.1.0", "e": wrong_signer })).await;
        assert_eq!(error_code(&body), "VALIDATION");
        assert!(error_message(&body).contains("validator purpose"), "{body}");
        let mut foreign = fixture_subjects();
        foreign[0]["digest"]["sha256"] = json!("00".repeat(32));
        let body = app.gql(&owner, ATTEST, json!({ "v": "1.1.0", "e": attestation(dir.path(), foreign, true) })).await;
        assert!(error_message(&body).contains("not exactly the version's artifacts"), "{body}");
        let mut changed: Value = serde_json::from_str(&attestation(dir.path(), fixture_subjects(), false)).expect("json");
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut statement: Value = serde_json::from_slice(&b64.decode(changed["payload"].as_str().expect("p")).expect("b64")).expect("json");
        statement["predicate"]["results"][0]["passed"] = json!(true);
        changed["payload"] = json!(b64.encode(serde_json::to_vec(&statement).expect("json")));
        let body = app.gql(&owner, ATTEST, json!({ "v": "1.1.0", "e": changed.to_string() })).await;
        assert!(error_message(&body).contains("no signature verifies"), "{body}");
        assert_eq!(attested_count(&app, &owner, "1.1.0").await, 0);

        // The validator's signed pass stands over the version's own failed claim.
        let kept = app.gql_ok(&owner, ATTEST, json!({ "v": "1.1.0", "e": attestation(dir.path(), fixture_subjects(), true) })).await;
        assert_eq!(kept["attestValidation"]["signer"], "eval-bot");
        assert_eq!(kept["attestValidation"]["results"][0]["passed"], true);
        app.gql_ok(&owner, TRANSITION, json!({ "v": "1.1.0", "to": "PRODUCTION" })).await;

        // A signed failure blocks a version whose provenance claimed a pass.
        app.gql_ok(&owner, CREATE, json!({ "v": "1.2.0", "ok": true })).await;
        fill_with_fixture(&app, &owner, "1.2.0").await;
        app.gql_ok(&owner, TRANSITION, json!({ "v": "1.2.0", "to": "STAGING" })).await;
        app.gql_ok(&owner, ATTEST, json!({ "v": "1.2.0", "e": attestation(dir.path(), fixture_subjects(), false) })).await;
        let blocked = app.gql(&owner, TRANSITION, json!({ "v": "1.2.0", "to": "PRODUCTION" })).await;
        assert_eq!(error_code(&blocked), "CONFLICT", "{blocked}");
        assert!(error_message(&blocked).contains("auc"), "{blocked}");

        // Another team's owner may not attach results; every attestation kept is audited.
        let stranger = app.token("owner-b", "owner", Some("search")).await;
        let body = app.gql(&stranger, ATTEST, json!({ "v": "1.2.0", "e": attestation(dir.path(), fixture_subjects(), true) })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        let audited = crate::console::count(&app, "SELECT COUNT(*) FROM audit_records WHERE action = 'validation.attested'").await;
        assert_eq!(audited, 2);
    }
}
