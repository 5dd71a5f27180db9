//! Signatures made by the real OpenSSF `model_signing` tool (installed by `tests/run`).

use crate::artifacts::model_with_version;
use crate::support::{Backend, TestApp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool() -> PathBuf {
    let path =
        std::env::var("SUNSET_TEST_MODEL_SIGNING").unwrap_or_else(|_| "model_signing".into());
    let found = Command::new(&path)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the model_signing tool is not at {path:?}; run the suite with `bash tests/run`, which installs it"
    );
    PathBuf::from(path)
}

fn ec_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    assert!(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out"
            ])
            .arg(&private)
            .status()
            .expect("openssl")
            .success()
    );
    assert!(
        Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl")
            .success()
    );
    (
        private,
        std::fs::read_to_string(public).expect("public key"),
    )
}

fn sign(model_dir: &Path, private_key: &Path, bundle: &Path) {
    let out = Command::new(tool())
        .args(["sign", "key", "--private_key"])
        .arg(private_key)
        .arg("--signature")
        .arg(bundle)
        .arg(model_dir)
        .output()
        .expect("model_signing runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn put(
    app: &TestApp,
    token: &str,
    version: &str,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .put(format!(
            "{}/v1/models/fraud-scorer/versions/{version}/{path}",
            app.address
        ))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("put")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_signed_with_the_model_signing_tool_verifies_and_a_changed_or_foreign_one_does_not()
{
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (model, files) = model_folder(dir.path());
    let (release_key, release_pub) = ec_key(dir.path(), "release");
    let bundle = dir.path().join("model.sig");
    sign(&model, &release_key, &bundle);
    app.gql_ok(
        &app.admin,
        "mutation($k: String!) { addSigner(name: \"release-bot\", publicKeyPem: $k) { name } }",
        json!({ "k": release_pub }),
    )
    .await;

    let owner = model_with_version(&app).await;
    for (name, bytes) in &files {
        assert_eq!(
            put(
                &app,
                &owner,
                "1.0.0",
                &format!("artifacts/{name}"),
                bytes.clone()
            )
            .await
            .status(),
            201
        );
    }
    let r = put(
        &app,
        &owner,
        "1.0.0",
        "signature",
        std::fs::read(&bundle).expect("bundle"),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    app.gql_ok(&owner, "mutation { transitionVersion(model: \"fraud-scorer\", version: \"1.0.0\", to: STAGING) { status } }", json!({})).await;

    // The same bundle over a version where one artifact differs.
    app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud-scorer\", version: \"1.0.1\" }) { version } }", json!({})).await;
    for (name, bytes) in &files {
        let mut bytes = bytes.clone();
        if *name == "config.json" {
            bytes = b"{\"layers\": 3}".to_vec();
        }
        assert_eq!(
            put(&app, &owner, "1.0.1", &format!("artifacts/{name}"), bytes)
                .await
                .status(),
            201
        );
    }
    let r = put(
        &app,
        &owner,
        "1.0.1",
        "signature",
        std::fs::read(&bundle).expect("bundle"),
    )
    .await;
    assert_eq!(r.status(), 422);
    let err: Value = r.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("config.json differs"),
        "{err}"
    );

    // A correct bundle, signed by a key nobody registered.
    let (stranger_key, _) = ec_key(dir.path(), "stranger");
    let foreign = dir.path().join("foreign.sig");
    std::fs::write(model.join("config.json"), b"{\"layers\": 3}").expect("write");
    sign(&model, &stranger_key, &foreign);
    let r = put(
        &app,
        &owner,
        "1.0.1",
        "signature",
        std::fs::read(&foreign).expect("bundle"),
    )
    .await;
    assert_eq!(r.status(), 422);
    let err: Value = r.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no enabled signer"),
        "{err}"
    );
}

/// A model folder of three files under `dir`; returns its path and the files.
fn model_folder(dir: &std::path::Path) -> (std::path::PathBuf, [(&'static str, Vec<u8>); 3]) {
    let model = dir.join("model");
    std::fs::create_dir_all(model.join("tokenizer")).expect("mkdir");
    let files = [
        ("model.safetensors", vec![7u8; 200_000]),
        ("config.json", b"{\"layers\": 2}".to_vec()),
        ("tokenizer/vocab.json", b"{\"a\": 0}".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(model.join(name), bytes).expect("write");
    }
    (model, files)
}
