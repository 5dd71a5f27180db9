//! Rollback: production goes back to the previous production version, verified first.

use crate::artifacts::{blob_ids, fill_with_fixture, signed_fixture_version};
use crate::support::{TestApp, error_code, error_message};
use serde_json::json;

const ROLLBACK: &str = "mutation($r: String!) { rollbackModel(model: \"fraud-scorer\", reason: $r) { version status } }";
pub(crate) const REASON: &str = "1.1.0 doubled p99 latency in checkout (INC-5120)";

async fn promote(app: &TestApp, owner: &str, version: &str) {
    for to in ["STAGING", "PRODUCTION"] {
        app.gql_ok(owner, "mutation($v: String!, $to: LifecycleStatus!) { transitionVersion(model: \"fraud-scorer\", version: $v, to: $to) { status } }", json!({ "v": version, "to": to })).await;
    }
}

async fn statuses(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let data = app
        .gql_ok(
            token,
            "{ model(name: \"fraud-scorer\") { versions { edges { node { version status } } } } }",
            json!({}),
        )
        .await;
    data["model"]["versions"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["node"]["version"].as_str().unwrap_or("").to_owned(),
                e["node"]["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// 1.0.0 then 1.1.0 in production, both signed; returns the owner token.
pub(crate) async fn two_production_versions(app: &TestApp) -> String {
    let owner = signed_fixture_version(app).await;
    promote(app, &owner, "1.0.0").await;
    app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud-scorer\", version: \"1.1.0\" }) { version } }", json!({})).await;
    fill_with_fixture(app, &owner, "1.1.0").await;
    promote(app, &owner, "1.1.0").await;
    owner
}

on_both_backends! {
    async fn rollback_restores_the_previous_production_version_and_records_why(app) {
        let owner = two_production_versions(&app).await;
        let body = app.gql(&owner, ROLLBACK, json!({ "r": "bad" })).await;
        assert_eq!(error_code(&body), "VALIDATION", "a reason must say something");

        let data = app.gql_ok(&owner, ROLLBACK, json!({ "r": REASON })).await;
        assert_eq!(data["rollbackModel"]["version"], "1.0.0");
        assert_eq!(statuses(&app, &owner).await, vec![("1.0.0".into(), "PRODUCTION".into()), ("1.1.0".into(), "DEPRECATED".into())]);

        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"model.rolled_back\" }) { edges { node { actor after } } } }", json!({})).await;
        let after: serde_json::Value = serde_json::from_str(log["auditLog"]["edges"][0]["node"]["after"].as_str().unwrap_or("{}")).expect("json");
        assert_eq!(after["reason"], REASON);
        assert_eq!(after["production"], "1.0.0");

        // 1.1.0 was production before 1.0.0 came back, so a second rollback goes there.
        let again = app.gql_ok(&owner, ROLLBACK, json!({ "r": "the incident was elsewhere after all" })).await;
        assert_eq!(again["rollbackModel"]["version"], "1.1.0");
    }
}

on_both_backends! {
    async fn rollback_to_a_damaged_version_is_refused_and_changes_nothing(app) {
        let owner = two_production_versions(&app).await;
        // The first three blobs are 1.0.0's.
        let blob = blob_ids(&app).await[1].clone();
        let mut bytes = app.blob_at_rest(&blob).await.expect("blob");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        app.put_blob_at_rest(&blob, &bytes).await;
        let body = app.gql(&owner, ROLLBACK, json!({ "r": REASON })).await;
        assert_eq!(error_code(&body), "INTEGRITY", "{body}");
        assert!(error_message(&body).contains("1.0.0"), "{body}");
        assert_eq!(statuses(&app, &owner).await, vec![("1.0.0".into(), "DEPRECATED".into()), ("1.1.0".into(), "PRODUCTION".into())]);
        let auditor = app.token("aud", "auditor", None).await;
        let refused = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"model.rollback_refused\" }) { edges { node { subject after } } } }", json!({})).await;
        assert_eq!(refused["auditLog"]["edges"][0]["node"]["subject"], "fraud-scorer@1.0.0", "the refusal is recorded: {refused}");
    }
}

on_both_backends! {
    async fn rollback_without_an_earlier_production_version_is_refused(app) {
        let owner = signed_fixture_version(&app).await;
        promote(&app, &owner, "1.0.0").await;
        let body = app.gql(&owner, ROLLBACK, json!({ "r": REASON })).await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert!(error_message(&body).contains("no earlier production version"), "{body}");
    }
}

on_both_backends! {
    async fn rollback_never_targets_a_retired_version(app) {
        let owner = two_production_versions(&app).await;
        let security = app.token("sec", "security", None).await;
        app.gql_ok(&security, "mutation { emergencyRetirement(model: \"fraud-scorer\", versions: \"1.0.0\", riskAssessment: \"the weights leak training records when prompted\") { state } }", json!({})).await;
        assert_eq!(statuses(&app, &owner).await[0], ("1.0.0".into(), "RETIRED".into()));
        let body = app.gql(&owner, ROLLBACK, json!({ "r": REASON })).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert!(error_message(&body).contains("no earlier production version"), "{body}");
        assert_eq!(statuses(&app, &owner).await[1], ("1.1.0".into(), "PRODUCTION".into()));
    }
}
