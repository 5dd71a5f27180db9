//! Artifacts: streamed in, encrypted at rest under their own key, verified on the way out.

use crate::support::TestApp;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Plaintext bytes per sealed chunk of a new blob, so the tests below cross its boundaries.
const CHUNK: usize = sunset::vault::stream::DEFAULT_CHUNK_SIZE as usize;

/// Deterministic, incompressible-looking bytes.
fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn url(app: &TestApp, version: &str, path: &str) -> String {
    format!(
        "{}/v1/models/fraud-scorer/versions/{version}/artifacts/{path}",
        app.address
    )
}

async fn put(
    app: &TestApp,
    token: &str,
    version: &str,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .put(url(app, version, path))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("put")
}

/// A model `fraud-scorer` with version 1.0.0 in development; returns the owner token.
pub async fn model_with_version(app: &TestApp) -> String {
    let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
    app.create_model(&owner, "fraud-scorer", "payments-ml")
        .await;
    app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud-scorer\", version: \"1.0.0\" }) { version } }", json!({})).await;
    owner
}

pub async fn blob_ids(app: &TestApp) -> Vec<String> {
    let db = app.services.store().reader();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT blob_id FROM artifacts ORDER BY id",
        ))
        .await
        .expect("query");
    rows.iter()
        .map(|r| r.try_get::<String>("", "blob_id").expect("blob_id"))
        .collect()
}

on_both_backends! {
    async fn artifacts_round_trip_byte_identical_and_are_encrypted_at_rest(app) {
        let owner = model_with_version(&app).await;
        let weights = content(5 * CHUNK + 123, 1);
        let response = put(&app, &owner, "1.0.0", "model.safetensors?kind=weights", weights.clone()).await;
        assert_eq!(response.status(), 201);
        let info: Value = response.json().await.expect("json");
        assert_eq!(info["sizeBytes"], weights.len());
        assert_eq!(info["sha256"], hex::encode(Sha256::digest(&weights)));
        assert_eq!(info["kind"], "weights");
        for (path, body) in [("tokenizer/vocab.json", b"{\"a\": 1}".to_vec()), ("empty.txt", Vec::new()), ("exact.bin", content(2 * CHUNK, 2))] {
            assert_eq!(put(&app, &owner, "1.0.0", path, body).await.status(), 201, "{path}");
        }

        let reader = app.token("reader", "reader", None).await;
        let response = app.client.get(url(&app, "1.0.0", "model.safetensors")).bearer_auth(&reader).send().await.expect("get");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-length"], weights.len().to_string().as_str());
        assert!(response.headers()["repr-digest"].to_str().unwrap_or("").starts_with("sha-256=:"));
        assert!(response.bytes().await.expect("body") == weights, "byte-identical");
        for (path, expected) in [("empty.txt", Vec::new()), ("exact.bin", content(2 * CHUNK, 2))] {
            let body = app.client.get(url(&app, "1.0.0", path)).bearer_auth(&reader).send().await.expect("get").bytes().await.expect("body");
            assert!(body == expected, "{path}");
        }

        // At rest: neither the blob nor the database holds the plaintext or an unwrapped key.
        let blobs = blob_ids(&app).await;
        assert_eq!(blobs.len(), 4);
        assert_eq!(app.blobs_at_rest().await, { let mut b = blobs.clone(); b.sort(); b });
        let stored = app.blob_at_rest(&blobs[0]).await.expect("blob");
        assert!(!stored.windows(64).any(|w| weights.windows(64).take(64).any(|p| p == w)), "no plaintext in the blob");
        let db = app.services.store().reader();
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT wrapped_key FROM artifacts")).await.expect("q");
        for row in rows {
            use base64::Engine;
            let wrapped = base64::engine::general_purpose::STANDARD.decode(row.try_get::<String>("", "wrapped_key").expect("col")).expect("b64");
            assert_eq!(wrapped.len(), 12 + 32 + 16, "nonce, wrapped key and tag: never a bare 32-byte key");
        }
        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"artifact.uploaded\" }) { edges { node { subject after } } } }", json!({})).await;
        assert_eq!(log["auditLog"]["edges"].as_array().map(Vec::len), Some(4));
    }
}

on_both_backends! {
    async fn uploads_that_break_a_rule_are_refused_before_anything_is_kept(app) {
        let owner = model_with_version(&app).await;
        assert_eq!(put(&app, &owner, "1.0.0", "config.json", b"{}".to_vec()).await.status(), 201);
        let other_team = app.token("owner-b", "owner", Some("search")).await;
        let reader = app.token("reader", "reader", None).await;
        let cases: Vec<(&str, &str, &str, u16, &str)> = vec![
            (&owner, "1.0.0", "config.json", 409, "never overwritten"),
            (&owner, "1.0.0", "a%5Cb", 422, "artifact path"),
            (&owner, "1.0.0", "a%0Ab", 422, "artifact path"),
            (&owner, "1.0.0", "x.bin?kind=checkpoint", 422, "kind"),
            (&owner, "9.9.9", "x.bin", 404, "no version 9.9.9"),
            (&owner, "1.0", "x.bin", 422, "version"),
            (&other_team, "1.0.0", "x.bin", 403, "payments-ml"),
            (&reader, "1.0.0", "x.bin", 403, "owner role"),
        ];
        for (token, version, path, status, needle) in cases {
            let response = put(&app, token, version, path, content(1000, 3)).await;
            assert_eq!(response.status(), status, "{version}/{path}");
            let body: Value = response.json().await.expect("json");
            assert!(body["error"]["message"].as_str().unwrap_or("").contains(needle), "{path}: {body}");
        }
        let anonymous = app.client.put(url(&app, "1.0.0", "x.bin")).body("x").send().await.expect("put");
        assert_eq!(anonymous.status(), 401);

        assert_eq!(blob_ids(&app).await.len(), 1);
        let stored_blobs = app.blobs_at_rest().await;
        assert_eq!(stored_blobs.len(), 1, "refused uploads leave no blob: {stored_blobs:?}");
        assert_eq!(app.uploads_in_progress().await, 0, "nor a multipart upload");
    }
}

/// Registers the fixture's signer and fills fraud-scorer 1.0.0 with the files the
/// `model_signing` fixture signed, with its bundle. Returns the owner token.
pub async fn signed_fixture_version(app: &TestApp) -> String {
    let owner = model_with_version(app).await;
    let pem = std::fs::read_to_string(fixture_dir().join("signer.pub.pem")).expect("key");
    app.gql_ok(
        &app.admin,
        "mutation($k: String!) { addSigner(name: \"release-bot\", publicKeyPem: $k) { name } }",
        json!({ "k": pem }),
    )
    .await;
    fill_with_fixture(app, &owner, "1.0.0").await;
    owner
}

pub(crate) fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

/// Uploads the fixture files into an existing version in development, and its signature.
pub async fn fill_with_fixture(app: &TestApp, owner: &str, version: &str) {
    for name in ["config.json", "model.safetensors", "tokenizer/vocab.json"] {
        let bytes = std::fs::read(fixture_dir().join("model").join(name)).expect("fixture");
        assert_eq!(
            put(app, owner, version, name, bytes).await.status(),
            201,
            "{name}"
        );
    }
    let response = put_signature_of(
        app,
        owner,
        version,
        std::fs::read(fixture_dir().join("model.sig")).expect("bundle"),
    )
    .await;
    assert_eq!(response.status(), 200);
}

async fn put_signature(app: &TestApp, token: &str, bundle: Vec<u8>) -> reqwest::Response {
    put_signature_of(app, token, "1.0.0", bundle).await
}

async fn put_signature_of(
    app: &TestApp,
    token: &str,
    version: &str,
    bundle: Vec<u8>,
) -> reqwest::Response {
    app.client
        .put(format!(
            "{}/v1/models/fraud-scorer/versions/{version}/signature",
            app.address
        ))
        .bearer_auth(token)
        .body(bundle)
        .send()
        .await
        .expect("put signature")
}

on_both_backends! {
    /// A flipped byte (in the first or a later chunk), a dropped chunk, or a truncated blob
    /// is refused with an integrity error and recorded; the client never gets altered bytes.
    async fn a_damaged_blob_is_refused_and_the_refusal_recorded(app) {
        let owner = model_with_version(&app).await;
        let weights = content(4 * CHUNK + 500, 5);
        assert_eq!(put(&app, &owner, "1.0.0", "model.bin", weights.clone()).await.status(), 201);
        let blob = blob_ids(&app).await[0].clone();
        let pristine = app.blob_at_rest(&blob).await.expect("blob");
        let sealed_chunk = CHUNK + 16;
        let header = 12;
        let damages: Vec<(&str, Vec<u8>)> = vec![
            ("flip in the first chunk", { let mut b = pristine.clone(); b[header + 10] ^= 0x01; b }),
            ("flip in a later chunk", { let mut b = pristine.clone(); b[header + 3 * sealed_chunk + 7] ^= 0x80; b }),
            ("drop a chunk", { let mut b = pristine[..header + sealed_chunk].to_vec(); b.extend_from_slice(&pristine[header + 2 * sealed_chunk..]); b }),
            ("truncate at a chunk boundary", pristine[..header + 2 * sealed_chunk].to_vec()),
            ("truncate inside a chunk", pristine[..pristine.len() - 100].to_vec()),
        ];
        // A download refused part-way ends its connection, and a pooled connection the
        // server is closing can fail the next request before it is sent (hyper's
        // IncompleteMessage race, seen once in CI): each download opens its own.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        for (what, bytes) in damages {
            app.put_blob_at_rest(&blob, &bytes).await;
            let response = client.get(url(&app, "1.0.0", "model.bin")).bearer_auth(&owner).send().await.expect("get");
            let received = if response.status() == 200 { response.bytes().await.ok() } else {
                assert_eq!(response.status(), 500, "{what}");
                let body: Value = response.json().await.expect("json");
                assert_eq!(body["error"]["code"], "INTEGRITY", "{what}");
                None
            };
            assert!(received.is_none_or(|b| b.len() < weights.len()), "{what}: the client cannot read a complete body");
        }
        app.put_blob_at_rest(&blob, &pristine).await;
        let body = client.get(url(&app, "1.0.0", "model.bin")).bearer_auth(&owner).send().await.expect("get").bytes().await.expect("body");
        assert!(body == weights, "intact again once restored");

        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"artifact.download_refused\" }) { edges { node { actor subject after } } } }", json!({})).await;
        let refusals = log["auditLog"]["edges"].as_array().cloned().unwrap_or_default();
        assert_eq!(refusals.len(), 5, "{log}");
        assert_eq!(refusals[0]["node"]["subject"], "fraud-scorer@1.0.0/model.bin");
    }
}

on_both_backends! {
    async fn a_promoted_version_is_immutable(app) {
        let owner = signed_fixture_version(&app).await;
        app.gql_ok(&owner, "mutation { transitionVersion(model: \"fraud-scorer\", version: \"1.0.0\", to: STAGING) { status } }", json!({})).await;
        let response = put(&app, &owner, "1.0.0", "late.bin", content(10, 4)).await;
        assert_eq!(response.status(), 409, "promoted versions are immutable");
        let response = put_signature(&app, &owner, b"{}".to_vec()).await;
        assert_eq!(response.status(), 409, "so is their signature");
    }
}

on_both_backends! {
    /// An instance started on the same database with a key folder of its own (which
    /// creates its own epoch 1) refuses to start, naming the epoch; with a copy of the
    /// first instance's key folder it starts.
    async fn an_instance_whose_key_folder_does_not_open_the_stored_keys_refuses_to_start(app) {
        let owner = model_with_version(&app).await;
        assert_eq!(put(&app, &owner, "1.0.0", "model.bin", content(1000, 7)).await.status(), 201);

        let foreign = tempfile::tempdir().expect("tmp");
        let mut settings = app.settings.clone();
        settings.data_dir = foreign.path().to_path_buf();
        settings.database.url = Some(app.settings.database_url());
        let clock = std::sync::Arc::new(sunset::clock::SystemClock);
        // Without the service key it is refused for that first, naming the file.
        let refused = match sunset::app::open(&settings, clock.clone()).await {
            Ok(_) => panic!("an instance without the service key started"),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("service-ed25519.key was missing"), "{refused}");
        // With the service key but a KEK folder of its own (its own epoch 1).
        std::fs::create_dir_all(settings.key_dir()).expect("key dir");
        let copied = std::process::Command::new("cp")
            .arg("-p")
            .arg(app.settings.key_dir().join("service-ed25519.key"))
            .arg(settings.key_dir())
            .status()
            .expect("cp");
        assert!(copied.success());
        // On the token, KEKs of its own are a key label prefix of its own.
        let on_token = settings.vault.kek.backend == sunset::config::KekBackend::Pkcs11;
        let shared_prefix = settings.vault.kek.key_label_prefix.clone();
        if on_token {
            settings.vault.kek.key_label_prefix = format!("{shared_prefix}-other");
        }
        let refused = match sunset::app::open(&settings, clock.clone()).await {
            Ok(_) => panic!("an instance with KEKs of its own started"),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("KEK epoch 1"), "{refused}");
        let own_keys = if on_token { format!("keys {shared_prefix}-other-*") } else { settings.key_dir().join("kek").display().to_string() };
        assert!(refused.contains(&own_keys), "{refused}");
        assert!(refused.contains("refusing to start"), "{refused}");
        if on_token {
            settings.vault.kek.key_label_prefix = shared_prefix;
            sunset::app::open(&settings, clock).await.expect("an instance sharing the token's keys starts");
            return;
        }

        // The same instance given the first one's key folder starts and serves.
        let shared = tempfile::tempdir().expect("tmp");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(app.settings.key_dir())
            .arg(shared.path())
            .status()
            .expect("cp");
        assert!(copied.success());
        settings.data_dir = shared.path().to_path_buf();
        sunset::app::open(&settings, clock).await.expect("an instance sharing the key folder starts");
    }
}

on_both_backends! {
    /// An upload whose commit answer is lost (the commit went through, the error came
    /// after) keeps its blob: the row that names it exists, and the artifact downloads.
    async fn an_upload_whose_commit_answer_was_lost_keeps_its_blob(app) {
        use sunset::failpoints::FailAction;
        let owner = model_with_version(&app).await;
        app.services.failpoints().arm("after-commit:upload", FailAction::Error);
        let body = content(5000, 3);
        let lost = put(&app, &owner, "1.0.0", "model.bin", body.clone()).await;
        assert_eq!(lost.status(), 500, "the client was told it failed");
        app.services.failpoints().clear();
        let got = app.client.get(url(&app, "1.0.0", "model.bin")).bearer_auth(&owner).send().await.expect("get");
        assert_eq!(got.status(), 200, "the committed row still has its blob");
        assert_eq!(got.bytes().await.expect("body").as_ref(), body.as_slice());
    }
}

on_both_backends! {
    /// An upload cut after some of its parts reached the store (S3: a multipart upload
    /// with parts; the folder: a partial file) leaves nothing behind: no upload in
    /// progress, no blob, no row. The same body then uploads in several parts and reads
    /// back intact.
    async fn an_upload_cut_part_way_leaves_nothing_and_a_large_one_round_trips(app) {
        use sunset::failpoints::FailAction;
        let owner = model_with_version(&app).await;
        let weights = content(3 * sunset::vault::PART_SIZE + 4321, 9);
        app.services.failpoints().arm("inside:upload", FailAction::Error);
        let cut = put(&app, &owner, "1.0.0", "model.bin", weights.clone()).await;
        assert_eq!(cut.status(), 500);
        assert_eq!(app.uploads_in_progress().await, 0, "the multipart upload was aborted");
        assert_eq!(app.blobs_at_rest().await, Vec::<String>::new());
        assert_eq!(blob_ids(&app).await.len(), 0);
        let partial = std::fs::read_dir(app.settings.data_dir.join("blobs").join("tmp"))
            .map(|d| d.flat_map(|e| std::fs::read_dir(e.expect("entry").path()).into_iter().flatten()).count())
            .unwrap_or(0);
        assert_eq!(partial, 0, "no partial file in the folder store");

        app.services.failpoints().clear();
        assert_eq!(put(&app, &owner, "1.0.0", "model.bin", weights.clone()).await.status(), 201);
        assert_eq!(app.blobs_at_rest().await.len(), 1);
        let body = app.client.get(url(&app, "1.0.0", "model.bin")).bearer_auth(&owner).send().await.expect("get").bytes().await.expect("body");
        assert!(body == weights, "byte-identical across parts");
    }
}
