//! Signature gates: promotion and downloads need a signature that verifies, now, under an
//! enabled signer, over exactly the stored artifacts.

use crate::artifacts::signed_fixture_version;
use crate::support::{TestApp, error_code, error_message};
use serde_json::{Value, json};

const TRANSITION: &str = "mutation($to: LifecycleStatus!, $j: String) { transitionVersion(model: \"fraud-scorer\", version: \"1.0.0\", to: $to, justification: $j) { status } }";

async fn put_raw(app: &TestApp, token: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .put(format!(
            "{}/v1/models/fraud-scorer/versions/1.0.0/{path}",
            app.address
        ))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("put")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model-signing")
            .join(name),
    )
    .expect("fixture")
}

on_both_backends! {
    async fn a_signed_version_is_promoted_and_served_and_an_unsigned_one_is_not(app) {
        let owner = signed_fixture_version(&app).await;
        for to in ["STAGING", "PRODUCTION"] {
            let data = app.gql_ok(&owner, TRANSITION, json!({ "to": to })).await;
            assert_eq!(data["transitionVersion"]["status"], to);
        }
        let reader = app.token("reader", "reader", None).await;
        let seen = app.gql_ok(&reader, "{ modelVersion(model: \"fraud-scorer\", version: \"1.0.0\") { artifacts { path kind sizeBytes sha256 } signature { signer bundleSha256 } } }", json!({})).await;
        let paths: Vec<&str> = seen["modelVersion"]["artifacts"].as_array().map(|a| a.iter().filter_map(|x| x["path"].as_str()).collect()).unwrap_or_default();
        assert_eq!(paths, vec!["config.json", "model.safetensors", "tokenizer/vocab.json"]);
        assert_eq!(seen["modelVersion"]["signature"]["signer"], "release-bot");
        let body = app.client.get(format!("{}/v1/models/fraud-scorer/versions/1.0.0/artifacts/config.json", app.address)).bearer_auth(&owner).send().await.expect("get");
        assert_eq!(body.status(), 200);
        assert_eq!(body.bytes().await.expect("body").as_ref(), fixture("model/config.json").as_slice());

        // An unsigned version with artifacts cannot be promoted, not even by a security override.
        app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud-scorer\", version: \"1.1.0\" }) { version } }", json!({})).await;
        let r = app.client.put(format!("{}/v1/models/fraud-scorer/versions/1.1.0/artifacts/w.bin", app.address)).bearer_auth(&owner).body("w").send().await.expect("put");
        assert_eq!(r.status(), 201);
        let body = app.gql(&owner, "mutation { transitionVersion(model: \"fraud-scorer\", version: \"1.1.0\", to: STAGING) { status } }", json!({})).await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert!(error_message(&body).contains("no signature"), "{body}");
    }
}

on_both_backends! {
    async fn signatures_that_do_not_verify_or_do_not_match_are_refused(app) {
        let owner = signed_fixture_version(&app).await;
        // Another file after signing: the signature no longer covers every artifact.
        assert_eq!(put_raw(&app, &owner, "artifacts/extra.bin", b"x".to_vec()).await.status(), 201);
        let body = app.gql(&owner, TRANSITION, json!({ "to": "STAGING" })).await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert!(error_message(&body).contains("extra.bin is not signed"), "{body}");
        let r = put_raw(&app, &owner, "signature", fixture("model.sig")).await;
        assert_eq!(r.status(), 422);
        let err: Value = r.json().await.expect("json");
        assert!(err["error"]["message"].as_str().unwrap_or("").contains("extra.bin"), "{err}");

        for (bundle, needle) in [(b"not json".to_vec(), "not valid"), (Vec::new(), "not valid")] {
            let r = put_raw(&app, &owner, "signature", bundle).await;
            assert_eq!(r.status(), 422);
            let err: Value = r.json().await.expect("json");
            assert!(err["error"]["message"].as_str().unwrap_or("").contains(needle), "{err}");
        }
        let r = put_raw(&app, &owner, "signature", vec![b' '; 2 * 1024 * 1024]).await;
        assert_eq!(r.status(), 413);
    }
}

on_both_backends! {
    async fn disabling_the_signer_stops_promotion_and_downloads_of_promoted_versions(app) {
        let owner = signed_fixture_version(&app).await;
        app.gql_ok(&owner, TRANSITION, json!({ "to": "STAGING" })).await;
        app.gql_ok(&app.admin, "mutation { disableSigner(name: \"release-bot\") { enabled } }", json!({})).await;

        let r = app.client.get(format!("{}/v1/models/fraud-scorer/versions/1.0.0/artifacts/config.json", app.address)).bearer_auth(&owner).send().await.expect("get");
        assert_eq!(r.status(), 500);
        let err: Value = r.json().await.expect("json");
        assert_eq!(err["error"]["code"], "INTEGRITY");
        assert!(err["error"]["message"].as_str().unwrap_or("").contains("no enabled signer"), "{err}");
        let security = app.token("sec", "security", None).await;
        let body = app.gql(&security, TRANSITION, json!({ "to": "PRODUCTION", "j": "overriding everything, which must not work" })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        // Not even an approved emergency deployment passes a signature that no longer verifies.
        app.gql_ok(&owner, "mutation { requestEmergencyDeployment(model: \"fraud-scorer\", version: \"1.0.0\", riskAssessment: \"an incident that this version fixes\", validHours: 24) { state } }", json!({})).await;
        let body = app.gql(&security, "mutation { approveEmergencyDeployment(model: \"fraud-scorer\", version: \"1.0.0\") { status } }", json!({})).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert!(error_message(&body).contains("cannot move to production"), "{body}");
        let asked = app.gql_ok(&owner, "{ modelVersion(model: \"fraud-scorer\", version: \"1.0.0\") { status emergencyDeployment { state } } }", json!({})).await;
        assert_eq!(asked["modelVersion"]["emergencyDeployment"]["state"], "REQUESTED", "nothing of the refused approval is kept: {asked}");

        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"artifact.download_refused\" }) { edges { node { subject } } } }", json!({})).await;
        assert_eq!(log["auditLog"]["edges"].as_array().map(Vec::len), Some(1));
    }
}
