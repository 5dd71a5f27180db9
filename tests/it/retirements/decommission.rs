//! Decommissioning after the kill switch: derived-store purges, crypto-erasure with KEK
//! rotation (checked against a restored backup), signature revocation, the signed
//! destruction certificate (checked by `sunset certificate verify` and by an
//! independent DSSE implementation), and crash-resume at every step boundary.

use super::*;
use sunset::domain::RetirementId;
use sunset::failpoints::FailAction;
use sunset::vault::{Vault, WrappedKey};

pub(super) const EXECUTE: &str =
    "mutation($id: ID!) { executeRetirement(id: $id) { state steps { step outcome finishedAt } } }";
const FIXTURE_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer/vocab.json"];

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).expect("fixture")
}

async fn put_file(w: &World, token: &str, version: &str, path: &str, body: Vec<u8>) -> u16 {
    w.app
        .client
        .put(format!(
            "{}/v1/models/fraud/versions/{version}/{path}",
            w.app.address
        ))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("put")
        .status()
        .as_u16()
}

pub(super) async fn download(
    w: &World,
    token: &str,
    version: &str,
    name: &str,
) -> reqwest::Response {
    w.app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/{version}/artifacts/{name}",
            w.app.address
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

/// The world of `retirements`, plus: the fixture model signed by `release-bot` as
/// fraud@2.1.0 (to be retired), a 256 KiB `weights.bin` in fraud@3.0.0 (to survive), and
/// `embeddings`, a derived store of team `search` built from fraud ^2. The retirement of
/// ^2 is scheduled, acknowledged by all and ready. Returns (world, retirement id,
/// search owner's token, the surviving bytes).
pub(super) async fn ready_world(backend: Backend) -> (World, String, String, Vec<u8>) {
    let w = world(backend).await;
    accept_webhooks(&w).await;
    let owner = w.app.token("ml-owner-up", "owner", Some("ml")).await;
    w.app
        .gql_ok(
            &w.app.admin,
            "mutation($k: String!) { addSigner(name: \"release-bot\", publicKeyPem: $k) { name } }",
            json!({ "k": String::from_utf8(fixture("signer.pub.pem")).expect("pem") }),
        )
        .await;
    for name in FIXTURE_FILES {
        let status = put_file(
            &w,
            &owner,
            "2.1.0",
            &format!("artifacts/{name}"),
            fixture(&format!("model/{name}")),
        )
        .await;
        assert_eq!(status, 201, "{name}");
    }
    assert_eq!(
        put_file(&w, &owner, "2.1.0", "signature", fixture("model.sig")).await,
        200
    );
    let surviving: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        put_file(
            &w,
            &owner,
            "3.0.0",
            "artifacts/weights.bin",
            surviving.clone()
        )
        .await,
        201
    );
    w.app
        .services
        .inventory()
        .declare_consumer(
            &Actor::local_operator(),
            ConsumerInput {
                name: "embeddings".into(),
                kind: "derived_store".into(),
                owner_team: "search".into(),
                environment: "prod".into(),
                contacts: vec!["search@example.org".into()],
                webhook_url: None,
            },
        )
        .await
        .expect("embeddings");
    declare_use(&w, "embeddings", "fraud", "^2").await;
    let effective = t0() + Duration::days(30);
    let id = scheduled(&w, effective).await;
    for c in ["billing", "checkout", "embeddings"] {
        w.app.gql_ok(&w.governance, "mutation($id: ID!, $c: String!) { acknowledgeRetirement(id: $id, consumer: $c) { consumer } }", json!({ "id": id, "c": c })).await;
    }
    w.clock.set(effective);
    check(&w).await;
    assert_eq!(detail(&w, &id).await["state"], "READY");
    let search = w.app.token("search-owner", "owner", Some("search")).await;
    (w, id, search, surviving)
}

fn key_dir(w: &World) -> std::path::PathBuf {
    w.app.settings.key_dir()
}

/// The KEK epochs whose keys exist: files in the key folder, or objects on the token.
fn kek_epochs(w: &World) -> Vec<u32> {
    w.app.kek_epochs_at_rest()
}

async fn blob_count(w: &World) -> usize {
    w.app.blobs_at_rest().await.len()
}

pub(super) async fn state_and_steps(w: &World, id: &str) -> (String, Vec<Value>) {
    let r = w
        .app
        .gql_ok(
            &w.governance,
            "query($id: ID!) { retirement(id: $id) { state steps { step outcome finishedAt } } }",
            json!({ "id": id }),
        )
        .await;
    (
        r["retirement"]["state"].as_str().expect("state").to_owned(),
        r["retirement"]["steps"].as_array().expect("steps").clone(),
    )
}

/// Saves the certificate of retirement `id` (through GraphQL, as an auditor) to a file.
async fn certificate_file(w: &World, id: &str) -> (std::path::PathBuf, Value) {
    let name = format!("auditor-{}", hex::encode(rand::random::<[u8; 4]>()));
    let auditor = w.app.token(&name, "auditor", None).await;
    let c = w
        .app
        .gql_ok(
            &auditor,
            "query($r: ID!) { certificate(retirementId: $r) { id sha256 envelope } }",
            json!({ "r": id }),
        )
        .await["certificate"]
        .clone();
    let path = w.app.data_dir.path().join(format!("certificate-{id}.json"));
    std::fs::write(&path, c["envelope"].as_str().expect("envelope")).expect("write");
    (path, c)
}

fn cli(w: &World, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(args)
        .arg("--data-dir")
        .arg(&w.app.settings.data_dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run sunset")
}

/// The statement inside a DSSE envelope, verified with the service's key.
fn statement(w: &World, envelope: &[u8], payload_type: &str) -> Value {
    let payload = sunset::attest::dsse::verify(
        envelope,
        payload_type,
        &w.app.services.service_key().verifying_key(),
    )
    .expect("verifies with the service key");
    serde_json::from_slice(&payload).expect("json")
}

on_both_backends! {
    async fn executing_waits_for_derived_stores_then_erases_revokes_and_certifies(backend: Backend = crate::support::backend) {
        let (w, id, search, surviving) = ready_world(backend).await;
        let reader = w.app.token("reader", "reader", None).await;
        assert_eq!(
            download(&w, &reader, "2.1.0", "config.json").await.status(),
            200
        );
        assert_eq!(kek_epochs(&w), [1]);
        let blobs_before = blob_count(&w).await;
        the_switch_holds_while_a_derived_store_waits(&w, &id, &reader).await;
        its_team_settles_the_store_and_the_run_finishes(&w, &id, &search).await;
        // Crypto-erasure: epoch 1 is gone, the survivor was re-wrapped under epoch 2 and
        // still downloads intact; the erased ciphertext is gone.
        assert_eq!(kek_epochs(&w), [2]);
        assert_eq!(blob_count(&w).await, blobs_before - FIXTURE_FILES.len());
        let kept = download(&w, &reader, "3.0.0", "weights.bin").await;
        assert_eq!(kept.status(), 200);
        assert_eq!(
            kept.bytes().await.expect("body").as_ref(),
            surviving.as_slice()
        );
        let (bytes, listed) = the_certificate_verifies_and_any_change_fails(&w, &id).await;
        the_certificate_states_what_was_done(&w, &bytes, &id);
        auditors_alone_fetch_it_as_issued(&w, &listed, &bytes, &reader).await;
        let auditor = the_revocation_list_names_the_bundle_and_stands(&w).await;
        // Executing again changes nothing: still one certificate.
        w.app
            .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
            .await;
        assert_eq!(
            w.app
                .services
                .decommission()
                .certificate_count(id.parse().expect("id"))
                .await
                .expect("count"),
            1
        );

        // Every step left its audit record.
        let log = w.app.gql_ok(&auditor, "query($s: String!) { auditLog(first: 100, filter: { subject: $s }) { edges { node { action } } } }", json!({ "s": id })).await;
        let actions: Vec<&str> = log["auditLog"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["action"].as_str().expect("a"))
            .collect();
        for a in [
            "retirement.versions_disabled",
            "retirement.purge_recorded",
            "retirement.keys_erased",
            "vault.kek_rotated",
            "vault.kek_destroyed",
            "retirement.ciphertext_deleted",
            "retirement.erasure_verified",
            "signature.revoked",
            "certificate.issued",
        ] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }
        // Two re-wrapping passes, each recorded even when it re-wrapped nothing (the
        // record is what orders it after uploads on other instances).
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == "vault.kek_rotated")
                .count(),
            2,
            "{actions:?}"
        );
    }
}

async fn the_switch_holds_while_a_derived_store_waits(w: &World, id: &str, reader: &str) {
    // The kill switch holds at once; the run then waits for the derived store.
    let ran = w
        .app
        .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
        .await;
    assert_eq!(ran["executeRetirement"]["state"], "EXECUTING");
    let steps = ran["executeRetirement"]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert_eq!(steps[1]["outcome"], "no enforcement points are registered");
    assert_eq!(steps[2]["step"], "derived-data");
    assert!(steps[2]["finishedAt"].is_null());
    assert!(
        steps[2]["outcome"]
            .as_str()
            .expect("why")
            .contains("embeddings"),
        "{steps:#?}"
    );
    assert_eq!(
        download(w, reader, "2.1.0", "config.json").await.status(),
        410
    );
    // Who still reaches for a retired version is recorded.
    let auditor = w.app.token("refusal-auditor", "auditor", None).await;
    let log = w.app.gql_ok(&auditor, "{ auditLog(filter: { action: \"artifact.download_refused\" }) { edges { node { subject after } } } }", json!({})).await;
    let refused = &log["auditLog"]["edges"][0]["node"];
    assert_eq!(refused["subject"], "fraud@2.1.0/config.json", "{log:#}");
    assert!(
        refused["after"]
            .as_str()
            .unwrap_or("")
            .contains("was retired"),
        "{log:#}"
    );
    assert_eq!(kek_epochs(w), [1], "nothing erased yet");
}

async fn its_team_settles_the_store_and_the_run_finishes(w: &World, id: &str, search: &str) {
    // Only the store's own team (or governance, by waiver) settles it.
    let outsider = w.app.token("finance-owner", "owner", Some("finance")).await;
    let confirm = "mutation($id: ID!) { confirmPurge(id: $id, consumer: \"embeddings\") { consumer outcome by } }";
    let refused = w.app.gql(&outsider, confirm, json!({ "id": id })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused:#}"
    );
    let confirmed = w.app.gql_ok(search, confirm, json!({ "id": id })).await;
    assert_eq!(confirmed["confirmPurge"][0]["outcome"], "confirmed");

    // That let the run finish.
    let (state, steps) = state_and_steps(w, id).await;
    assert_eq!(state, "RETIRED");
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s["step"].as_str().expect("name"))
        .collect();
    let every: Vec<&str> = sunset::domain::DecommissionStep::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(names, every);
    assert!(
        steps.iter().all(|s| s["finishedAt"].is_string()),
        "{steps:#?}"
    );
}

/// Verified by the CLI with the public key the CLI prints, and by an independent DSSE
/// implementation; returns the certificate's bytes and its listing.
async fn the_certificate_verifies_and_any_change_fails(w: &World, id: &str) -> (Vec<u8>, Value) {
    // The certificate: CLI verification with the public key the CLI prints.
    let (file, listed) = certificate_file(w, id).await;
    let pem = cli(w, &["keys", "public"]);
    assert!(pem.status.success(), "{pem:?}");
    let pem_file = w.app.data_dir.path().join("service.pem");
    std::fs::write(&pem_file, &pem.stdout).expect("pem");
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(["certificate", "verify"])
        .arg(&file)
        .arg("--public-key")
        .arg(&pem_file)
        .output()
        .expect("verify");
    let out = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(verified.status.success(), "{out} {verified:?}");
    assert!(out.contains("certificate VERIFIED"), "{out}");
    assert!(out.contains("fraud@2.1.0/model.safetensors"), "{out}");

    // Any one-byte change fails it (a sample of positions across the file).
    let bytes = std::fs::read(&file).expect("read");
    let tampered = w.app.data_dir.path().join("tampered.json");
    for i in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        std::fs::write(&tampered, &changed).expect("write");
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
            .args(["certificate", "verify"])
            .arg(&tampered)
            .arg("--public-key")
            .arg(&pem_file)
            .output()
            .expect("verify");
        // A flip in the envelope's key id hint or in insignificant whitespace leaves
        // the signed bytes alone; everything else must fail.
        let insignificant = {
            let text = String::from_utf8_lossy(&bytes);
            let hint = text.find("\"keyid\"").expect("keyid");
            (hint..hint + 80).contains(&i) || bytes[i].is_ascii_whitespace()
        };
        if !insignificant {
            assert_eq!(
                r.status.code(),
                Some(1),
                "byte {i} changed and it still verified"
            );
        }
    }

    // An independent DSSE implementation accepts it with the same public key.
    independent_dsse_check(&file, &pem_file);
    (bytes, listed)
}

fn the_certificate_states_what_was_done(w: &World, bytes: &[u8], id: &str) {
    // What it certifies.
    let s = statement(w, bytes, sunset::service::CERTIFICATE_PAYLOAD_TYPE);
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(s["predicateType"], sunset::service::DESTRUCTION_PREDICATE);
    let mut subjects: Vec<(String, String)> = s["subject"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|x| {
            (
                x["name"].as_str().expect("n").to_owned(),
                x["digest"]["sha256"].as_str().expect("d").to_owned(),
            )
        })
        .collect();
    subjects.sort();
    let mut expected: Vec<(String, String)> = FIXTURE_FILES
        .iter()
        .map(|n| {
            use sha2::Digest;
            (
                format!("fraud@2.1.0/{n}"),
                hex::encode(sha2::Sha256::digest(fixture(&format!("model/{n}")))),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(subjects, expected);
    let p = &s["predicate"];
    assert_eq!(p["retirement"]["id"], id.parse::<i64>().expect("id"));
    assert_eq!(p["sanitization"]["technique"], "cryptographic erase");
    assert_eq!(p["sanitization"]["method"], "purge");
    assert_eq!(p["sanitization"]["performedBy"]["name"], "gov");
    assert_eq!(p["sanitization"]["kekEpochsRetired"], json!([1]));
    assert_eq!(p["sanitization"]["kekEpochCurrent"], 2);
    assert_eq!(p["sanitization"]["survivingKeysRewrapped"], 1);
    assert_eq!(p["sanitization"]["verification"]["result"], "passed");
    assert_eq!(
        p["sanitization"]["keysDestroyed"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(p["derivedData"]["stores"][0]["consumer"], "embeddings");
    assert_eq!(p["derivedData"]["stores"][0]["outcome"], "confirmed");
    assert_eq!(p["noticeSummary"]["dependents"], 3);
    assert_eq!(p["noticeSummary"]["acknowledged"], 3);
    assert_eq!(p["revocation"]["serial"], 1);
    assert!(p["killSwitch"]["responseMs"].as_f64().is_some(), "{p:#}");
    assert_eq!(p["killSwitch"]["allowedMs"], 1000);
    assert!(p["auditChainHead"]["seq"].as_i64().expect("seq") > 0);
}

async fn auditors_alone_fetch_it_as_issued(w: &World, listed: &Value, bytes: &[u8], reader: &str) {
    // Auditors fetch it over HTTP too, exactly as issued; others may not.
    let auditor = w.app.token("auditor-2", "auditor", None).await;
    let url = format!(
        "{}/v1/certificates/{}",
        w.app.address,
        listed["id"].as_str().expect("id")
    );
    let got = w
        .app
        .client
        .get(&url)
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), bytes);
    let denied = w
        .app
        .client
        .get(&url)
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert_eq!(denied.status(), 403);
}

/// The public, signed revocation list names the bundle, which stays refused for other
/// versions even after its row is deleted; returns an auditor's token.
async fn the_revocation_list_names_the_bundle_and_stands(w: &World) -> String {
    // The revocation list: public, signed, naming the bundle.
    let list = w
        .app
        .client
        .get(format!("{}/v1/revocations", w.app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(list.status(), 200);
    let list = statement(
        w,
        &list.bytes().await.expect("body"),
        sunset::service::REVOCATIONS_PAYLOAD_TYPE,
    );
    assert_eq!(list["serial"], 1);
    let bundle_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(fixture("model.sig")))
    };
    assert_eq!(list["revoked"][0]["bundleSha256"], bundle_sha);
    assert_eq!(list["revoked"][0]["version"], "2.1.0");

    // The revoked bundle is refused for another version holding the very same files.
    let owner = w.app.token("ml-owner-again", "owner", Some("ml")).await;
    w.app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud\", version: \"3.1.0\" }) { version } }", json!({})).await;
    for name in FIXTURE_FILES {
        assert_eq!(
            put_file(
                w,
                &owner,
                "3.1.0",
                &format!("artifacts/{name}"),
                fixture(&format!("model/{name}"))
            )
            .await,
            201
        );
    }
    let refused = w
        .app
        .client
        .put(format!(
            "{}/v1/models/fraud/versions/3.1.0/signature",
            w.app.address
        ))
        .bearer_auth(&owner)
        .body(fixture("model.sig"))
        .send()
        .await
        .expect("put");
    assert_eq!(refused.status(), 422);
    let err: Value = refused.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("revoked"),
        "{err}"
    );

    // Lists chain, and the first has nothing before it.
    assert!(list["previous"].is_null(), "{list}");
    assert_eq!(list["issuedAt"], list["revoked"][0]["revokedAt"]);

    a_deleted_revocation_is_refused_not_forgotten(w, &owner).await
}

/// Someone with the database deletes the revocation: the list is refused and the
/// refusal recorded, not signed without it, and the bundle stays revoked. Returns an
/// auditor's token.
async fn a_deleted_revocation_is_refused_not_forgotten(w: &World, owner: &str) -> String {
    {
        use sea_orm::ConnectionTrait;
        let db = w.app.services.store().reader();
        db.execute_unprepared("DELETE FROM revocations")
            .await
            .expect("tamper");
    }
    let refused_list = w
        .app
        .client
        .get(format!("{}/v1/revocations", w.app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(refused_list.status(), 500);
    let body: Value = refused_list.json().await.expect("json");
    assert_eq!(body["error"]["code"], "INTEGRITY", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("missing from the database"),
        "{body}"
    );
    let again = w
        .app
        .client
        .put(format!(
            "{}/v1/models/fraud/versions/3.1.0/signature",
            w.app.address
        ))
        .bearer_auth(owner)
        .body(fixture("model.sig"))
        .send()
        .await
        .expect("put");
    assert_eq!(again.status(), 422, "still revoked");
    let auditor = w.app.token("auditor-r", "auditor", None).await;
    let refusals = w
        .app
        .gql_ok(
            &auditor,
            "{ auditLog(filter: { action: \"integrity.refused\" }) { edges { node { after } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusals["auditLog"]["edges"].as_array().map(Vec::len),
        Some(1),
        "{refusals}"
    );
    auditor
}

/// Verifies the envelope with securesystemslib (Python, from PyPI), which implements
/// DSSE and Ed25519 on its own; `tests/run` installs it into the test venv.
pub(crate) fn independent_dsse_check(envelope: &std::path::Path, pem: &std::path::Path) {
    let python = std::env::var("SUNSET_TEST_CYCLONEDX_PYTHON")
        .expect("SUNSET_TEST_CYCLONEDX_PYTHON: the test venv's python (tests/run sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dsse_verify.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(envelope)
        .arg(pem)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "securesystemslib refused the certificate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of the database taken before the erasure, with the key folder as it is after:
/// the erased artifact's key opens under nothing that remains, even with a copy of its
/// ciphertext; the live service still serves every surviving artifact intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_before_the_erasure_cannot_decrypt_the_erased_artifact() {
    let (w, id, search, surviving) = ready_world(Backend::Sqlite).await;
    let data = w.app.settings.data_dir.clone();
    let backup = w.app.data_dir.path().join("backup");
    std::fs::create_dir_all(&backup).expect("dir");
    let sqlite = |db: &std::path::Path, sql: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(db)
            .arg(sql)
            .output()
            .expect("sqlite3 (tests/run installs it)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf8")
    };
    sqlite(
        &data.join("sunset.db"),
        &format!(".backup '{}'", backup.join("sunset.db").display()),
    );
    copy_dir(&data.join("blobs"), &backup.join("blobs"));

    // The erased artifact's wrapping as the backup holds it.
    let row = sqlite(
        &backup.join("sunset.db"),
        "SELECT a.blob_id, a.kek_epoch, a.wrapped_key FROM artifacts a JOIN model_versions v ON v.id = a.version_id WHERE v.major = 2 AND v.minor = 1 AND v.patch = 0 AND a.path = 'model.safetensors'",
    );
    let fields: Vec<&str> = row.trim().split('|').collect();
    let (blob, epoch) = (
        fields[0].to_owned(),
        fields[1].parse::<u32>().expect("epoch"),
    );
    let wrapped = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(fields[2])
            .expect("b64")
    };
    // Before the erasure the backup's wrapping opens: the check below would notice if
    // erasure left it openable.
    let before = Vault::open_default(&key_dir(&w), &backup).expect("vault");
    assert!(
        before
            .kek
            .unwrap(
                &WrappedKey {
                    epoch,
                    bytes: wrapped.clone()
                },
                &blob
            )
            .is_ok()
    );

    w.app
        .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
        .await;
    w.app
        .gql_ok(
            &search,
            "mutation($id: ID!) { confirmPurge(id: $id, consumer: \"embeddings\") { consumer } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(state_and_steps(&w, &id).await.0, "RETIRED");

    // Restored: the backup's database and ciphertext, today's key folder.
    let after = Vault::open_default(&key_dir(&w), &backup).expect("vault");
    assert_eq!(after.kek.epochs(), vec![2]);
    for e in after.kek.epochs().into_iter().chain([epoch]) {
        assert!(
            after
                .kek
                .unwrap(
                    &WrappedKey {
                        epoch: e,
                        bytes: wrapped.clone()
                    },
                    &blob
                )
                .is_err(),
            "the backup's wrapping opened under epoch {e}"
        );
    }
    assert!(
        after.blobs.open(&blob).await.is_ok(),
        "the backup kept the ciphertext, and it is useless"
    );

    // Live: every surviving artifact downloads intact.
    let reader = w.app.token("reader", "reader", None).await;
    let kept = download(&w, &reader, "3.0.0", "weights.bin").await;
    assert_eq!(kept.status(), 200);
    assert_eq!(
        kept.bytes().await.expect("body").as_ref(),
        surviving.as_slice()
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("dir");
    for e in std::fs::read_dir(from).expect("read") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// Every step boundary, and two points inside steps: the run dies there (an armed
/// failpoint), and the next run reaches the same end as an uninterrupted one. No
/// certificate exists before the run that issues it.
const FAILPOINTS: [&str; 12] = [
    "before:enforcement",
    "before:derived-data",
    "before:erasure-approval",
    "before:erase-keys",
    "before:rotate-kek",
    "inside:rotate-kek",
    "before:destroy-kek",
    "before:delete-ciphertext",
    "inside:delete-ciphertext",
    "before:verify-erasure",
    "before:revoke-signatures",
    "before:certificate",
];

on_both_backends! {
    async fn an_execution_cut_at_any_step_boundary_resumes_to_the_same_end(backend: Backend = crate::support::backend) {
        {
            for point in FAILPOINTS {
                let (w, id, _search, surviving) = ready_world(backend).await;
                let rid: i64 = id.parse().expect("id");
                w.app
                    .gql_ok(&w.governance, "mutation($id: ID!) { waivePurge(id: $id, consumer: \"embeddings\", justification: \"index rebuilt from 3.0 already\") { consumer } }", json!({ "id": id }))
                    .await;
                w.app.services.failpoints().arm(point, FailAction::Error);
                let ran = w
                    .app
                    .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
                    .await;
                assert_eq!(ran["executeRetirement"]["state"], "EXECUTING", "{point}");
                let failed = ran["executeRetirement"]["steps"]
                    .as_array()
                    .expect("steps")
                    .iter()
                    .any(|s| s["outcome"].as_str().is_some_and(|o| o.contains(point)));
                assert!(
                    failed,
                    "{point}: the failure is recorded on its step: {ran:#}"
                );
                assert_eq!(
                    w.app
                        .services
                        .decommission()
                        .certificate_count(RetirementId(rid))
                        .await
                        .expect("count"),
                    0,
                    "{point}"
                );

                w.app.services.failpoints().clear();
                assert_eq!(
                    w.app
                        .services
                        .decommission()
                        .resume_decommissions()
                        .await
                        .expect("resume"),
                    1,
                    "{point}"
                );
                let (state, steps) = state_and_steps(&w, &id).await;
                assert_eq!(state, "RETIRED", "{point}");
                assert!(
                    steps.iter().all(|s| s["finishedAt"].is_string()),
                    "{point}: {steps:#?}"
                );
                assert_eq!(
                    w.app
                        .services
                        .decommission()
                        .certificate_count(RetirementId(rid))
                        .await
                        .expect("count"),
                    1,
                    "{point}"
                );
                assert_eq!(kek_epochs(&w), [2], "{point}");
                let (file, _) = certificate_file(&w, &id).await;
                let s = statement(
                    &w,
                    &std::fs::read(&file).expect("read"),
                    sunset::service::CERTIFICATE_PAYLOAD_TYPE,
                );
                assert_eq!(s["subject"].as_array().map(Vec::len), Some(3), "{point}");
                assert_eq!(
                    s["predicate"]["sanitization"]["verification"]["result"], "passed",
                    "{point}"
                );
                assert_eq!(
                    s["predicate"]["derivedData"]["stores"][0]["outcome"], "waived",
                    "{point}"
                );
                let reader = w.app.token("reader", "reader", None).await;
                let kept = download(&w, &reader, "3.0.0", "weights.bin").await;
                assert_eq!(
                    kept.bytes().await.expect("body").as_ref(),
                    surviving.as_slice(),
                    "{point}"
                );
            }
        }
    }
}

/// Registers enforcement point `name` (admin only), with a webhook at `/{name}` on the
/// world's receiver when `webhook`; returns its secret.
pub(super) async fn enforcement_point(w: &World, name: &str, webhook: bool) -> Option<String> {
    let declared = w
        .app
        .gql_ok(
            &w.app.admin,
            "mutation($i: ConsumerInputGql!) { declareConsumer(input: $i) { webhookSecret } }",
            json!({ "i": {
                "name": name, "kind": "GATEWAY", "ownerTeam": "platform",
                "environment": "prod", "contacts": ["platform@example.org"],
                "webhookUrl": webhook.then(|| format!("{}/{name}", w.receiver.uri())),
            }}),
        )
        .await;
    declared["declareConsumer"]["webhookSecret"]
        .as_str()
        .map(str::to_owned)
}

on_both_backends! {
    async fn enforcement_points_are_told_and_confirm_and_a_silent_one_is_escalated_and_named(backend: Backend = crate::support::backend) {
        let (w, id, _search, _) = ready_world(backend).await;
        // Only an admin registers one.
        let owner = w
            .app
            .token("platform-owner", "owner", Some("platform"))
            .await;
        let refused = w
            .app
            .gql(
                &owner,
                "mutation { declareConsumer(input: { name: \"gw-rogue\", kind: GATEWAY, ownerTeam: \"platform\", environment: \"prod\", contacts: [] }) { webhookSecret } }",
                json!({}),
            )
            .await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused:#}"
        );

        let (signed_secret, silent_secret, poll_token) = three_enforcement_points(&w, &id).await;
        let etag = the_kill_switch_tells_all_three_and_waits(&w, &id).await;
        two_confirm_one_by_signed_webhook_one_by_polling(
            &w,
            &etag,
            &signed_secret,
            &silent_secret,
            &poll_token,
        )
        .await;
        the_silent_one_is_escalated_and_the_run_ends(&w, &id).await;
        // The certificate names each, the silent one as never confirmed.
        let (file, _) = certificate_file(&w, &id).await;
        let s = statement(
            &w,
            &std::fs::read(&file).expect("read"),
            sunset::service::CERTIFICATE_PAYLOAD_TYPE,
        );
        let named: Vec<(&str, &str)> = s["predicate"]["killSwitch"]["enforcementPoints"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                (
                    p["point"].as_str().expect("p"),
                    p["status"].as_str().expect("s"),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("gw-poll", "confirmed"),
                ("gw-signed", "confirmed"),
                ("gw-silent", "never confirmed")
            ]
        );
    }
}

/// gw-signed and gw-silent take signed notices, gw-poll polls with a bound token; the
/// derived store is waived so that only the points hold the run. Returns the two
/// secrets and the poller's token.
async fn three_enforcement_points(w: &World, id: &str) -> (String, String, String) {
    let signed_secret = enforcement_point(w, "gw-signed", true)
        .await
        .expect("secret");
    let silent_secret = enforcement_point(w, "gw-silent", true)
        .await
        .expect("secret");
    enforcement_point(w, "gw-poll", false).await;
    let poll_token = w
        .app
        .consumer_token("gw-poll-token", "reader", "gw-poll")
        .await;
    for (name, secret) in [("gw-signed", &signed_secret), ("gw-silent", &silent_secret)] {
        Mock::given(method("POST"))
            .and(path(format!("/{name}")))
            .and(SignedWith {
                secret: secret.clone(),
                clock: w.clock.clone(),
            })
            .respond_with(ResponseTemplate::new(204))
            .mount(&w.receiver)
            .await;
    }
    w.app.gql_ok(&w.governance, "mutation($id: ID!) { waivePurge(id: $id, consumer: \"embeddings\", justification: \"index rebuilt from 3.0 already\") { consumer } }", json!({ "id": id })).await;

    (signed_secret, silent_secret, poll_token)
}

/// Returns the ETag of the disabled list the points were told.
async fn the_kill_switch_tells_all_three_and_waits(w: &World, id: &str) -> String {
    // The kill switch tells all three; the execution waits for them.
    let ran = w
        .app
        .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
        .await;
    assert_eq!(ran["executeRetirement"]["state"], "EXECUTING");
    let waiting = &ran["executeRetirement"]["steps"][1];
    assert_eq!(waiting["step"], "enforcement");
    assert!(waiting["finishedAt"].is_null());
    for p in ["gw-poll", "gw-signed", "gw-silent"] {
        assert!(
            waiting["outcome"].as_str().expect("why").contains(p),
            "{waiting}"
        );
    }
    deliver(w).await;
    let told: Vec<Value> = w
        .receiver
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.url.path() == "/gw-signed")
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["type"], "model.versions.disabled");
    assert_eq!(
        told[0]["data"]["affectedVersions"],
        json!(["2.0.0", "2.1.0"])
    );

    told[0]["data"]["etag"].as_str().expect("etag").to_owned()
}

async fn two_confirm_one_by_signed_webhook_one_by_polling(
    w: &World,
    etag: &str,
    signed_secret: &str,
    silent_secret: &str,
    poll_token: &str,
) {
    use notifiers::standard_webhooks::Secret;
    // gw-signed confirms with a signed acknowledgement; a forged one is refused.
    let confirm = |secret: &str| {
        let body =
            serde_json::to_vec(&json!({ "point": "gw-signed", "etag": etag })).expect("json");
        let ts = sunset::clock::Clock::now(&*w.clock).timestamp();
        let signature = Secret::parse(secret)
            .expect("secret")
            .sign("msg_1", ts, &body);
        w.app
            .client
            .post(format!("{}/v1/enforcement/confirmations", w.app.address))
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
    };
    let forged = confirm(silent_secret).send().await.expect("post");
    assert_eq!(forged.status(), 403);
    let ok = confirm(signed_secret).send().await.expect("post");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.expect("json")["confirmed"], 1);

    // gw-poll confirms by polling the list with its bound token.
    let polled = w
        .app
        .client
        .get(format!("{}/v1/disabled-versions", w.app.address))
        .bearer_auth(poll_token)
        .send()
        .await
        .expect("get");
    assert_eq!(polled.headers()["etag"].to_str().expect("etag"), etag);
}

async fn the_silent_one_is_escalated_and_the_run_ends(w: &World, id: &str) {
    // gw-silent never does: after the window, governance hears of it and the run ends.
    w.clock.advance(Duration::seconds(301));
    w.app
        .services
        .retirements()
        .run_scheduled_retirement_check(sunset::clock::Clock::now(&*w.clock), "instance-a")
        .await
        .expect("check");
    let (state, steps) = state_and_steps(w, id).await;
    assert_eq!(state, "RETIRED", "{steps:#?}");
    assert_eq!(
        steps[1]["outcome"],
        "2 of 3 enforcement point(s) confirmed; never confirmed (escalated): gw-silent"
    );
    let detail = w
        .app
        .gql_ok(
            &w.governance,
            "query($id: ID!) { retirement(id: $id) { enforcementPoints { point via confirmedAt escalatedAt } } }",
            json!({ "id": id }),
        )
        .await;
    let points = detail["retirement"]["enforcementPoints"]
        .as_array()
        .expect("points");
    let via: Vec<(&str, Option<&str>, bool)> = points
        .iter()
        .map(|p| {
            (
                p["point"].as_str().expect("p"),
                p["via"].as_str(),
                p["escalatedAt"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        via,
        [
            ("gw-poll", Some("poll"), false),
            ("gw-signed", Some("webhook"), false),
            ("gw-silent", None, true)
        ]
    );
    deliver(w).await;
    let escalations: Vec<ReceivedMail> = mails(&w.mail)
        .into_iter()
        .filter(|m| m.data.contains("gw-silent"))
        .collect();
    assert!(
        escalations
            .iter()
            .any(|m| m.to.iter().any(|t| t.contains("governance@example.org"))),
        "governance told of the silent point"
    );
}

/// Two instances on one PostgreSQL database: a kill switch pulled through one is pushed
/// to the other's `disabledVersionsChanged` subscribers within a second, and its
/// downloads are refused from the commit on; the steps run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_reaches_subscribers_of_another_instance_within_a_second() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (w, id, search, _) = ready_world(Backend::Postgres).await;
    w.app
        .gql_ok(
            &search,
            "mutation($id: ID!) { confirmPurge(id: $id, consumer: \"embeddings\") { consumer } }",
            json!({ "id": id }),
        )
        .await;
    let other = w.app.spawn_sibling().await;
    let reader = w.app.token("reader", "reader", None).await;
    let mut socket = crate::subscriptions::connect(&other.address, &reader).await;
    assert_eq!(
        crate::subscriptions::next(&mut socket).await["type"],
        "connection_ack"
    );
    socket
        .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { disabledVersionsChanged { etag versions { model version } } }" } }).to_string()))
        .await
        .expect("subscribe");
    let first = crate::subscriptions::next(&mut socket).await;
    assert_eq!(
        first["payload"]["data"]["disabledVersionsChanged"]["versions"],
        json!([])
    );

    let pulled = std::time::Instant::now();
    w.app
        .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
        .await;
    let refused = w
        .app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/2.1.0/artifacts/config.json",
            other.address
        ))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("get");
    assert_eq!(
        refused.status(),
        410,
        "the other instance refuses from the commit on"
    );
    let pushed = tokio::time::timeout(
        std::time::Duration::from_secs(1).saturating_sub(pulled.elapsed()),
        crate::subscriptions::next(&mut socket),
    )
    .await
    .expect("pushed by the other instance within a second of the kill switch");
    let list = &pushed["payload"]["data"]["disabledVersionsChanged"];
    assert_eq!(
        list["versions"],
        json!([{ "model": "fraud", "version": "2.0.0" }, { "model": "fraud", "version": "2.1.0" }])
    );
    let (_, etag) = other
        .services
        .decommission()
        .disabled_list()
        .await
        .expect("list");
    assert_eq!(list["etag"], etag);
    assert_eq!(
        other
            .services
            .decommission()
            .resume_decommissions()
            .await
            .expect("resume"),
        0
    );
    assert_eq!(
        w.app
            .services
            .decommission()
            .certificate_count(id.parse().expect("id"))
            .await
            .expect("count"),
        1
    );
}

/// A step's record edited in the database before the certificate is issued (one erased
/// artifact dropped from the list): the certificate is refused, and the refusal recorded,
/// rather than signed over what the audit trail contradicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_not_signed_over_step_records_edited_in_the_database() {
    let (w, id, _search, _) = ready_world(Backend::Sqlite).await;
    let rid: i64 = id.parse().expect("id");
    w.app
        .gql_ok(&w.governance, "mutation($id: ID!) { waivePurge(id: $id, consumer: \"embeddings\", justification: \"index rebuilt from 3.0 already\") { consumer } }", json!({ "id": id }))
        .await;
    w.app
        .services
        .failpoints()
        .arm("before:certificate", FailAction::Error);
    w.app
        .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
        .await;
    w.app.services.failpoints().clear();
    // What an attacker with sqlite3 does to hide one erased artifact from the record.
    let db = w.app.settings.data_dir.join("sunset.db");
    let edited = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(format!(
            "UPDATE decommission_steps SET data = json_remove(data, '$[0]') \
             WHERE retirement_id = {rid} AND step = 'erase-keys'"
        ))
        .output()
        .expect("sqlite3");
    assert!(edited.status.success(), "{edited:?}");
    w.app
        .services
        .decommission()
        .resume_decommissions()
        .await
        .expect("resume");
    assert_eq!(
        w.app
            .services
            .decommission()
            .certificate_count(RetirementId(rid))
            .await
            .expect("count"),
        0
    );
    let (state, steps) = state_and_steps(&w, &id).await;
    assert_eq!(state, "EXECUTING");
    let certificate = steps
        .iter()
        .find(|s| s["step"] == "certificate")
        .expect("certificate step");
    assert!(
        certificate["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("differ from its audit record")),
        "{steps:#?}"
    );
    let auditor = w.app.token("auditor-x", "auditor", None).await;
    let refusals = w
        .app
        .gql_ok(
            &auditor,
            "{ auditLog(filter: { action: \"integrity.refused\" }) { edges { node { subject } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusals["auditLog"]["edges"][0]["node"]["subject"],
        "the destruction certificate"
    );
}

/// The whole GraphQL response to `query` posted to the instance at `address`.
async fn gql_at(w: &World, address: &str, token: &str, query: &str, variables: Value) -> Value {
    w.app
        .client
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json")
}

/// Two replicas on one PostgreSQL database execute the same retirement at the same
/// moment: the lease lets one run the steps, each step's record is written once, and
/// exactly one certificate is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_executing_one_retirement_at_once_issue_one_certificate() {
    let (w, id, _search, surviving) = ready_world(Backend::Postgres).await;
    let rid: i64 = id.parse().expect("id");
    w.app
        .gql_ok(&w.governance, "mutation($id: ID!) { waivePurge(id: $id, consumer: \"embeddings\", justification: \"index rebuilt from 3.0 already\") { consumer } }", json!({ "id": id }))
        .await;
    let other = w.app.spawn_sibling_on(w.clock.clone()).await;
    let vars = json!({ "id": id });
    let (a, b) = tokio::join!(
        gql_at(&w, &w.app.address, &w.governance, EXECUTE, vars.clone()),
        gql_at(&w, &other.address, &w.governance, EXECUTE, vars.clone())
    );
    assert!(
        a.get("errors").is_none() && b.get("errors").is_none(),
        "{a:#} {b:#}"
    );
    // Whichever replica lost the lease left the run to the other; a later run finishes
    // whatever is left, on either.
    w.app
        .services
        .decommission()
        .resume_decommissions()
        .await
        .expect("resume");
    other
        .services
        .decommission()
        .resume_decommissions()
        .await
        .expect("resume");
    assert_eq!(state_and_steps(&w, &id).await.0, "RETIRED");
    assert_eq!(
        w.app
            .services
            .decommission()
            .certificate_count(RetirementId(rid))
            .await
            .expect("count"),
        1
    );
    let auditor = w.app.token("auditor-once", "auditor", None).await;
    for action in [
        "retirement.keys_erased",
        "vault.kek_destroyed",
        "retirement.ciphertext_deleted",
        "retirement.erasure_verified",
        "certificate.issued",
    ] {
        let log = w
            .app
            .gql_ok(
                &auditor,
                "query($a: String!) { auditLog(filter: { action: $a }) { edges { node { seq } } } }",
                json!({ "a": action }),
            )
            .await;
        assert_eq!(
            log["auditLog"]["edges"].as_array().map(Vec::len),
            Some(1),
            "{action} once: {log}"
        );
    }
    let kept = download(
        &w,
        &w.app.token("reader-once", "reader", None).await,
        "3.0.0",
        "weights.bin",
    )
    .await;
    assert_eq!(
        kept.bytes().await.expect("body").as_ref(),
        surviving.as_slice()
    );
}

/// Two replicas erase two different retirements at the same moment (two emergencies,
/// approved through each replica at once): their KEK rotations take the fleet's lease in
/// turn, so every survivor stays readable from both replicas and one epoch is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_erasing_two_retirements_at_once_keep_every_survivor_readable() {
    let w = with_artifacts(Backend::Postgres, |_| {}).await;
    let owner = w.app.token("ml-owner-three", "owner", Some("ml")).await;
    let survivors: Vec<(String, Vec<u8>)> = ["3.0.0", "3.1.0", "3.2.0"]
        .iter()
        .enumerate()
        .map(|(i, v)| (v.to_string(), vec![i as u8 + 7; 8192]))
        .collect();
    for (v, bytes) in &survivors {
        if v != "3.0.0" {
            w.app.gql_ok(&owner, "mutation($v: String!) { createVersion(input: { model: \"fraud\", version: $v }) { version } }", json!({ "v": v })).await;
        }
        assert_eq!(
            put_file(&w, &owner, v, "artifacts/extra.bin", bytes.clone()).await,
            201
        );
    }
    assert_eq!(
        put_file(&w, &owner, "2.0.0", "artifacts/model.bin", vec![9u8; 4096]).await,
        201
    );
    let other = w.app.spawn_sibling_on(w.clock.clone()).await;
    let first = w.app.token("sec-a", "security", None).await;
    let second = w.app.token("sec-b", "security", None).await;
    let mut ids = Vec::new();
    for v in ["2.0.0", "2.1.0"] {
        let cut = w
            .app
            .gql_ok(&first, EMERGENCY, json!({ "v": v, "r": RISK }))
            .await;
        ids.push(
            cut["emergencyRetirement"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let approve = "mutation($id: ID!) { approveEmergencyErasure(id: $id, note: \"forensic image taken\") { state } }";
    let (a, b) = tokio::join!(
        gql_at(
            &w,
            &w.app.address,
            &second,
            approve,
            json!({ "id": ids[0] })
        ),
        gql_at(
            &w,
            &other.address,
            &second,
            approve,
            json!({ "id": ids[1] })
        )
    );
    assert!(
        a.get("errors").is_none() && b.get("errors").is_none(),
        "{a:#} {b:#}"
    );
    w.app
        .services
        .decommission()
        .resume_decommissions()
        .await
        .expect("resume");
    other
        .services
        .decommission()
        .resume_decommissions()
        .await
        .expect("resume");
    for id in &ids {
        assert_eq!(state_and_steps(&w, id).await.0, "RETIRED", "{id}");
    }
    assert_eq!(
        kek_epochs(&w).len(),
        1,
        "one epoch left: {:?}",
        kek_epochs(&w)
    );
    let reader = w.app.token("reader-two", "reader", None).await;
    for address in [w.app.address.clone(), other.address.clone()] {
        for (v, bytes) in &survivors {
            let got = w
                .app
                .client
                .get(format!(
                    "{address}/v1/models/fraud/versions/{v}/artifacts/extra.bin"
                ))
                .bearer_auth(&reader)
                .send()
                .await
                .expect("get");
            assert_eq!(got.status(), 200, "{address} {v}");
            assert_eq!(got.bytes().await.expect("body").as_ref(), bytes.as_slice());
        }
    }
}

/// Databases written before retirement owned `retired` (an executed retirement left its
/// versions in their old status) are repaired by migration 15: taken back below it, the
/// disabled version reads `development` again; migrated, `retired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_retires_versions_an_executed_retirement_left_in_another_status() {
    use migrations::MigratorTrait;
    let w = with_artifacts(Backend::Sqlite, |_| {}).await;
    let security = w.app.token("sec-m", "security", None).await;
    let reader = w.app.token("reader-m", "reader", None).await;
    w.app
        .gql_ok(&security, EMERGENCY, json!({ "v": "2.1.0", "r": RISK }))
        .await;
    assert_eq!(
        version_shown(&w, &reader, "2.1.0").await["status"],
        "RETIRED"
    );
    let db = w.app.services.store().reader();
    // Back to just below migration 15, however many came after it.
    let applied = migrations::Migrator::get_applied_migrations(db)
        .await
        .expect("applied");
    let steps = applied
        .iter()
        .rev()
        .position(|m| m.name() == "m20261206_000015_retired_by_kill_switch")
        .expect("migration 15 applied")
        + 1;
    migrations::Migrator::down(db, Some(steps as u32))
        .await
        .expect("down");
    let status = |db: &sea_orm::DatabaseConnection| {
        let db = db.clone();
        async move {
            use sea_orm::ConnectionTrait;
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT status FROM model_versions WHERE major = 2 AND minor = 1",
                ))
                .await
                .expect("query")
                .expect("row");
            row.try_get::<String>("", "status").expect("status")
        }
    };
    assert_eq!(
        status(db).await,
        "development",
        "as an old database holds it"
    );
    migrations::Migrator::up(db, None).await.expect("up");
    assert_eq!(status(db).await, "retired");
}

/// The KEK epochs `/readyz` says an instance holds.
async fn epochs_held(w: &World, address: &str) -> Value {
    let ready: Value = w
        .app
        .client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    ready["kek"]["epochs"].clone()
}

/// Two instances on one PostgreSQL database and key folder: an erasure through one
/// completes on both. The other forgets the destroyed epoch within its poll interval
/// (as `/readyz` shows), and serves the survivors re-wrapped under the new epoch,
/// without a restart and without a false integrity refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_through_one_instance_completes_on_the_other_and_survivors_stay_served() {
    let (w, id, search, surviving) = ready_world(Backend::Postgres).await;
    // The other replica is a `sunset serve` process of its own: nothing in memory shared.
    let other = w.app.spawn_replica_process().await;
    let reader = w.app.token("reader", "reader", None).await;
    let from_other = |version: &str, name: &str| {
        w.app
            .client
            .get(format!(
                "{}/v1/models/fraud/versions/{version}/artifacts/{name}",
                other.address
            ))
            .bearer_auth(&reader)
            .send()
    };
    assert_eq!(
        from_other("3.0.0", "weights.bin")
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(epochs_held(&w, &other.address).await, json!([1]));

    w.app
        .gql_ok(&w.governance, EXECUTE, json!({ "id": id }))
        .await;
    w.app
        .gql_ok(
            &search,
            "mutation($id: ID!) { confirmPurge(id: $id, consumer: \"embeddings\") { consumer } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(state_and_steps(&w, &id).await.0, "RETIRED");
    assert_eq!(kek_epochs(&w), [2]);
    assert_eq!(epochs_held(&w, &w.app.address).await, json!([2]));

    // Within the poll interval (250 ms) the other instance holds epoch 2 alone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while epochs_held(&w, &other.address).await != json!([2]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the other instance still holds a destroyed epoch: {}",
            epochs_held(&w, &other.address).await
        );
        tokio::task::yield_now().await;
    }
    let kept = from_other("3.0.0", "weights.bin").await.expect("get");
    assert_eq!(
        kept.status(),
        200,
        "survivors are served by the other instance"
    );
    assert_eq!(
        kept.bytes().await.expect("body").as_ref(),
        surviving.as_slice()
    );
    assert_eq!(
        from_other("2.1.0", "config.json")
            .await
            .expect("get")
            .status(),
        410
    );
    let auditor = w.app.token("auditor", "auditor", None).await;
    let refusals = w
        .app
        .gql_ok(
            &auditor,
            "{ auditLog(filter: { action: \"artifact.download_refused\" }) { edges { node { after } } } }",
            json!({}),
        )
        .await;
    let edges = refusals["auditLog"]["edges"].as_array().expect("edges");
    assert!(
        edges
            .iter()
            .all(|e| !e.to_string().contains("INTEGRITY") && !e.to_string().contains("epoch")),
        "no false integrity refusal: {edges:#?}"
    );
}

/// `fraud@version` as the registry shows it, with its retirement.
async fn version_shown(w: &World, token: &str, version: &str) -> Value {
    w.app
        .gql_ok(
            token,
            "query($v: String!) { modelVersion(model: \"fraud\", version: $v) { status retirement { id state certificateId } } }",
            json!({ "v": version }),
        )
        .await["modelVersion"]
        .clone()
}

/// fraud@2.1.0 and fraud@3.0.0 each hold a small artifact.
async fn with_artifacts(
    backend: Backend,
    adjust: impl FnOnce(&mut sunset::config::Settings),
) -> World {
    let w = world_with(backend, adjust).await;
    accept_webhooks(&w).await;
    let owner = w.app.token("ml-owner-up", "owner", Some("ml")).await;
    for v in ["2.1.0", "3.0.0"] {
        assert_eq!(
            put_file(&w, &owner, v, "artifacts/model.bin", vec![3u8; 4096]).await,
            201
        );
    }
    w
}

const EMERGENCY: &str = "mutation($v: String!, $r: String!) { emergencyRetirement(model: \"fraud\", versions: $v, riskAssessment: $r) { id state } }";
const RISK: &str = "the weights reproduce training records verbatim when prompted";

on_both_backends! {
    async fn an_emergency_cuts_access_at_once_can_be_lifted_and_erases_only_after_a_second_approval(backend: Backend = crate::support::backend) {
        let w = with_artifacts(backend, |_| {}).await;
        let security = w.app.token("sec-1", "security", None).await;
        let second = w.app.token("sec-2", "security", None).await;
        let reader = w.app.token("reader", "reader", None).await;

        // A planned retirement of ^2 is superseded by the emergency below.
        let planned = scheduled(&w, t0() + Duration::days(30)).await;
        let vague = w
            .app
            .gql(&security, EMERGENCY, json!({ "v": "2.1.0", "r": "bad" }))
            .await;
        assert_eq!(
            vague["errors"][0]["extensions"]["code"], "VALIDATION",
            "{vague:#}"
        );

        let id = an_emergency_cuts_at_once(&w, &security, &reader, &planned).await;
        a_false_alarm_is_lifted(&w, &security, &reader, &planned, &id).await;
        let id = a_second_person_approves_the_erasure(&w, &security, &second, &reader).await;
        nothing_brings_it_back(&w, &security, &reader, &id).await;
        the_certificate_says_it_was_an_emergency(&w, &id).await;
    }
}

const LIFT: &str = "mutation($id: ID!) { liftKillSwitch(id: $id, justification: \"the alert was a test by the red team\") { state } }";

/// What version 2.1.0 was before the emergency cut it.
const BEFORE_CUT: &str = "DEVELOPMENT";

async fn an_emergency_cuts_at_once(
    w: &World,
    security: &str,
    reader: &str,
    planned: &str,
) -> String {
    // At once: disabled, dependents told it is an emergency, erasure waiting.
    let cut = w
        .app
        .gql_ok(security, EMERGENCY, json!({ "v": "2.1.0", "r": RISK }))
        .await;
    let id = cut["emergencyRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(cut["emergencyRetirement"]["state"], "EXECUTING");
    assert_eq!(detail(w, planned).await["state"], "CANCELLED");
    let shown = version_shown(w, reader, "2.1.0").await;
    assert_eq!(
        shown["status"], "RETIRED",
        "the registry agrees at once: {shown}"
    );
    assert_eq!(shown["retirement"]["id"], id.as_str());
    assert!(shown["retirement"]["certificateId"].is_null());
    assert_eq!(
        version_shown(w, reader, "3.0.0").await["status"],
        BEFORE_CUT
    );
    assert_eq!(
        download(w, reader, "2.1.0", "model.bin").await.status(),
        410
    );
    assert_eq!(
        download(w, reader, "3.0.0", "model.bin").await.status(),
        200
    );
    let (_, steps) = state_and_steps(w, &id).await;
    assert_eq!(
        steps[0]["outcome"],
        "emergency: 1 version(s) disabled: 2.1.0"
    );
    let waiting = steps
        .iter()
        .find(|s| s["step"] == "erasure-approval")
        .expect("approval step");
    assert!(waiting["finishedAt"].is_null(), "{steps:#?}");
    assert!(
        steps.iter().all(|s| s["step"] != "erase-keys"),
        "nothing erased yet"
    );
    deliver(w).await;
    let told: Vec<Value> = w
        .receiver
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.url.path() == "/checkout")
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert!(
        told.iter()
            .any(|n| n["type"] == "model.retirement.emergency"),
        "{told:#?}"
    );

    id
}

async fn a_false_alarm_is_lifted(w: &World, security: &str, reader: &str, planned: &str, id: &str) {
    // A false alarm: security lifts it, and the version is served again.
    let lifted = w.app.gql_ok(security, LIFT, json!({ "id": id })).await;
    assert_eq!(lifted["liftKillSwitch"]["state"], "CANCELLED");
    assert_eq!(
        download(w, reader, "2.1.0", "model.bin").await.status(),
        200
    );
    assert_eq!(
        version_shown(w, reader, "2.1.0").await["status"],
        BEFORE_CUT,
        "a lifted kill switch puts back what the version was"
    );
    let restored = detail(w, planned).await;
    assert_eq!(
        restored["state"], "SCHEDULED",
        "and the planned retirement it superseded: {restored:#}"
    );
}

async fn a_second_person_approves_the_erasure(
    w: &World,
    security: &str,
    second: &str,
    reader: &str,
) -> String {
    // A real one: whoever pulled it may not approve the erasure; a second person may.
    let again = w
        .app
        .gql_ok(security, EMERGENCY, json!({ "v": "2.1.0", "r": RISK }))
        .await;
    let id = again["emergencyRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let approve = "mutation($id: ID!) { approveEmergencyErasure(id: $id, note: \"forensic image taken\") { state } }";
    let short = "mutation($id: ID!) { approveEmergencyErasure(id: $id, note: \"ok\") { state } }";
    let own_short = w.app.gql(security, short, json!({ "id": id })).await;
    assert_eq!(
        own_short["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "the two-person rule is said before the note's length: {own_short:#}"
    );
    let own = w.app.gql(security, approve, json!({ "id": id })).await;
    assert_eq!(
        own["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{own:#}"
    );
    let approved = w.app.gql_ok(second, approve, json!({ "id": id })).await;
    assert_eq!(approved["approveEmergencyErasure"]["state"], "RETIRED");
    let (_, cert) = certificate_file(w, &id).await;
    let signed = statement(
        w,
        cert["envelope"].as_str().expect("envelope").as_bytes(),
        sunset::service::CERTIFICATE_PAYLOAD_TYPE,
    );
    let predicate = &signed["predicate"];
    assert_eq!(
        predicate["certificateSerial"],
        format!("sunset-dc-{:08}", id.parse::<i64>().expect("id"))
    );
    let approver = &predicate["sanitization"]["approvedBy"];
    assert_eq!(
        (approver["name"].as_str(), approver["role"].as_str()),
        (Some("sec-2"), Some("security")),
        "the real approver and role: {approver}"
    );
    let reads = w
        .app
        .gql_ok(
            &w.app.token("auditor-reads", "auditor", None).await,
            "{ auditLog(filter: { action: \"certificate.read\" }) { edges { node { actor subject } } } }",
            json!({}),
        )
        .await;
    assert!(
        reads["auditLog"]["edges"][0]["node"]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("auditor-")),
        "the read is recorded with its reader: {reads}"
    );
    let shown = version_shown(w, reader, "2.1.0").await;
    assert_eq!(shown["status"], "RETIRED", "{shown}");
    assert_eq!(shown["retirement"]["state"], "RETIRED");
    assert!(shown["retirement"]["certificateId"].is_string(), "{shown}");
    let governance = w.app.token("gov-2", "governance", None).await;
    let owner = w.app.token("ml-owner-2", "owner", Some("ml")).await;
    for token in [&governance, &owner] {
        let revived = w
            .app
            .gql(
                token,
                "mutation { transitionVersion(model: \"fraud\", version: \"2.1.0\", to: STAGING) { status } }",
                json!({}),
            )
            .await;
        assert_eq!(
            revived["errors"][0]["extensions"]["code"], "CONFLICT",
            "{revived:#}"
        );
    }
    let (_, steps) = state_and_steps(w, &id).await;
    let approval = steps
        .iter()
        .find(|s| s["step"] == "erasure-approval")
        .expect("step");
    assert_eq!(
        approval["outcome"],
        "approved by sec-2 (security): forensic image taken"
    );

    id
}

async fn nothing_brings_it_back(w: &World, security: &str, reader: &str, id: &str) {
    // Retired versions cannot be scheduled for retirement again.
    let twice = schedule(w, t0() + Duration::days(30)).await;
    assert_eq!(
        twice["errors"][0]["extensions"]["code"], "CONFLICT",
        "{twice:#}"
    );
    assert!(
        twice["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("disabled already"),
        "{twice:#}"
    );

    // After erasure nothing brings it back.
    let too_late = w.app.gql(security, LIFT, json!({ "id": id })).await;
    assert_eq!(
        too_late["errors"][0]["extensions"]["code"], "CONFLICT",
        "{too_late:#}"
    );
    assert_eq!(
        download(w, reader, "2.1.0", "model.bin").await.status(),
        410
    );
    assert_eq!(
        download(w, reader, "3.0.0", "model.bin").await.status(),
        200
    );
}

async fn the_certificate_says_it_was_an_emergency(w: &World, id: &str) {
    // The certificate says it was an emergency, why, who approved, and how fast.
    let (file, _) = certificate_file(w, id).await;
    let s = statement(
        w,
        &std::fs::read(&file).expect("read"),
        sunset::service::CERTIFICATE_PAYLOAD_TYPE,
    );
    let k = &s["predicate"]["killSwitch"];
    assert_eq!(k["emergency"]["riskAssessment"], RISK);
    assert_eq!(k["emergency"]["trigger"], "manual");
    assert_eq!(k["emergency"]["erasureApprovedBy"], "sec-2");
    assert!(k["responseMs"].as_f64().is_some());

    let auditor = w.app.token("auditor-log", "auditor", None).await;
    for action in [
        "retirement.emergency",
        "retirement.kill_switch_lifted",
        "retirement.erasure_approved",
    ] {
        let log = w.app.gql_ok(&auditor, "query($a: String!) { auditLog(filter: { action: $a }) { edges { node { actor } } } }", json!({ "a": action })).await;
        assert!(
            !log["auditLog"]["edges"]
                .as_array()
                .expect("edges")
                .is_empty(),
            "{action}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_signed_alert_trips_the_circuit_breaker_when_policy_allows() {
    use notifiers::standard_webhooks::Secret;
    let w = with_artifacts(Backend::Sqlite, |s| {
        s.retirement.circuit_breaker_sources = vec!["siem".into()];
    })
    .await;
    let reader = w.app.token("reader", "reader", None).await;
    let mut secrets = alert_sources(&w, &["siem", "scanner"]).await;
    let mut n = 0;
    secrets.insert(
        "forger",
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
    );
    let mut alert = |source: &str, severity: &str| {
        n += 1;
        let id = format!("alert-{n}");
        let body = serde_json::to_vec(&json!({
            "severity": severity, "model": "fraud", "version": "2.1.0",
            "summary": "model weights exfiltrated from the build cache",
        }))
        .expect("json");
        let ts = sunset::clock::Clock::now(&*w.clock).timestamp();
        let signature = Secret::parse(&secrets[source])
            .expect("secret")
            .sign(&id, ts, &body);
        w.app
            .client
            .post(format!("{}/v1/hooks/security-alerts", w.app.address))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
    };
    let outcome = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("json")
    };

    let first = alert("siem", "high");
    let redelivered = first.try_clone().expect("a body of bytes clones");
    let high = outcome(first.send().await.expect("post")).await;
    assert_eq!(high["action"], "recorded");
    // The same message again (same webhook-id): answered, not recorded a second time.
    let again = outcome(redelivered.send().await.expect("post")).await;
    assert_eq!(again["action"], "duplicate", "{again}");
    let not_allowed = outcome(alert("scanner", "critical").send().await.expect("post")).await;
    assert_eq!(not_allowed["action"], "recorded");
    assert!(
        not_allowed["note"]
            .as_str()
            .expect("note")
            .contains("policy"),
        "{not_allowed}"
    );
    assert_eq!(
        download(&w, &reader, "2.1.0", "model.bin").await.status(),
        200
    );

    let tripped = outcome(alert("siem", "critical").send().await.expect("post")).await;
    assert_eq!(tripped["action"], "kill-switch", "{tripped}");
    assert!(tripped["responseMs"].as_f64().is_some());
    assert_eq!(
        download(&w, &reader, "2.1.0", "model.bin").await.status(),
        410
    );
    let id = tripped["retirementId"].as_i64().expect("id").to_string();
    let (state, steps) = state_and_steps(&w, &id).await;
    assert_eq!(state, "EXECUTING", "erasure waits for a person's approval");
    assert!(
        steps[0]["outcome"]
            .as_str()
            .expect("o")
            .starts_with("emergency")
    );

    let repeat = outcome(alert("siem", "critical").send().await.expect("post")).await;
    assert_eq!(repeat["action"], "already-disabled");

    // A forged alert is refused and changes nothing.
    let forged = alert("forger", "critical").send().await.expect("post");
    assert_eq!(forged.status(), 401);

    let auditor = w.app.token("auditor", "auditor", None).await;
    let log = w.app.gql_ok(&auditor, "{ auditLog(filter: { action: \"security_alert.received\" }) { edges { node { actor } } } }", json!({})).await;
    // high, not allowed, tripped, repeat (a new message); not the redelivery or the forgery.
    assert_eq!(log["auditLog"]["edges"].as_array().map(Vec::len), Some(4));
}

/// Webhook sources of these names; returns each one's secret.
async fn alert_sources(
    w: &World,
    names: &[&'static str],
) -> std::collections::HashMap<&'static str, String> {
    let mut secrets = std::collections::HashMap::new();
    for &source in names {
        let created = w
            .app
            .gql_ok(
                &w.app.admin,
                "mutation($n: String!) { createWebhookSource(name: $n) { secret } }",
                json!({ "n": source }),
            )
            .await;
        secrets.insert(
            source,
            created["createWebhookSource"]["secret"]
                .as_str()
                .expect("secret")
                .to_owned(),
        );
    }
    secrets
}
