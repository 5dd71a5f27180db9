//! Compliance reports: what the audit trail says happened to a model in a period, signed
//! for a regulator and verified offline by `sunset report verify` and by securesystemslib.

use crate::retirements::decommission::independent_dsse_check;
use crate::rollback::two_production_versions;
use crate::support::{TestApp, error_code};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const GQL_REPORT: &str = "query($m: String!, $from: DateTime, $to: DateTime) { complianceReport(model: $m, from: $from, to: $to) { json envelope events promotions overrides integrityRefusals chainVerified checkpointSeq } }";
const ROLLBACK: &str = "mutation { rollbackModel(model: \"fraud-scorer\", reason: \"1.1.0 doubled p99 latency (INC-5120)\") { version } }";

async fn report(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.client
        .get(format!(
            "{}/v1/models/fraud-scorer/compliance-report{query}",
            app.address
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

/// Two promotions, a refused rollback (a tampered blob), then the report.
async fn a_model_with_a_history(app: &TestApp) -> String {
    let owner = two_production_versions(app).await;
    let blob = crate::artifacts::blob_ids(app).await[1].clone();
    let mut bytes = app.blob_at_rest(&blob).await.expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    app.put_blob_at_rest(&blob, &bytes).await;
    let refused = app.gql(&owner, ROLLBACK, json!({})).await;
    assert_eq!(error_code(&refused), "INTEGRITY", "{refused}");
    owner
}

on_both_backends! {
    async fn a_report_states_the_models_history_and_rests_on_a_verified_chain(app) {
        a_model_with_a_history(&app).await;
        let auditor = app.token("aud", "auditor", None).await;
        let response = report(&app, &auditor, "").await;
        assert_eq!(response.status(), 200);
        let r: Value = response.json().await.expect("json");
        assert_eq!(r["_type"], "https://sunset.invalid/compliance-report/v1");
        assert_eq!(r["model"]["name"], "fraud-scorer");
        assert_eq!(r["generatedBy"], "aud");
        let promotions: Vec<&Value> = r["statusChanges"].as_array().expect("changes").iter().filter(|c| c["to"] == "production").collect();
        let promoted: Vec<&str> = promotions.iter().map(|c| c["version"].as_str().expect("v")).collect();
        assert_eq!(promoted, ["1.0.0", "1.1.0"], "{r:#}");
        assert!(promotions.iter().all(|c| c["by"] == "owner-a"), "{promotions:?}");
        assert_eq!(r["versionsAffected"], json!(["1.0.0", "1.1.0"]));
        assert_eq!(r["integrityRefusals"][0]["action"], "model.rollback_refused", "{r:#}");
        assert_eq!(r["events"]["byType"]["model.created"], 1);
        assert_eq!(r["events"]["byType"]["version.status_changed"], 5, "{r:#}");
        let owner = r["actors"].as_array().expect("actors").iter().find(|a| a["name"] == "owner-a").expect("the owner").clone();
        assert_eq!(owner["clientIps"], json!(["127.0.0.1"]));
        assert_eq!(r["auditChain"]["verified"], true);
        let checkpoint = r["auditChain"]["checkpoint"]["seq"].as_i64().expect("a signed checkpoint");
        assert!(checkpoint >= r["events"]["lastSeq"].as_i64().expect("last"), "the checkpoint covers every record reported");

        // The same over GraphQL, and the read is recorded.
        let g = app.gql_ok(&auditor, GQL_REPORT, json!({ "m": "fraud-scorer" })).await["complianceReport"].clone();
        assert_eq!((g["promotions"].as_i64(), g["integrityRefusals"].as_i64(), g["chainVerified"].as_bool()), (Some(2), Some(1), Some(true)));
        let reads = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"compliance_report.issued\" }) { edges { node { actor subject clientIp } } } }", json!({})).await;
        let reads = reads["auditLog"]["edges"].as_array().expect("edges");
        assert_eq!(reads.len(), 2, "{reads:?}");
        assert!(reads.iter().all(|e| e["node"]["actor"] == "aud" && e["node"]["subject"] == "fraud-scorer"));

        // A period after everything holds nothing; a backwards one is refused.
        let later = report(&app, &auditor, "?from=2999-01-01T00:00:00Z&to=2999-02-01T00:00:00Z").await;
        let later: Value = later.json().await.expect("json");
        assert_eq!(later["events"]["total"], 0);
        let backwards = report(&app, &auditor, "?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z").await;
        assert_eq!(backwards.status(), 422);
        assert!(backwards.text().await.expect("body").contains("from"));
        assert_eq!(report(&app, &auditor, "?format=pdf").await.status(), 422);
    }
}

on_both_backends! {
    async fn only_auditors_and_governance_get_reports_and_refusals_are_recorded(app) {
        a_model_with_a_history(&app).await;
        let reader = app.token("reader", "reader", None).await;
        let owner = app.token("owner-b", "owner", Some("payments-ml")).await;
        let governance = app.token("gov", "governance", None).await;
        for token in [&reader, &owner] {
            assert_eq!(report(&app, token, "").await.status(), 403);
        }
        assert_eq!(report(&app, &governance, "").await.status(), 200);
        let auditor = app.token("aud", "auditor", None).await;
        let unknown = app.client.get(format!("{}/v1/models/nothing-here/compliance-report", app.address)).bearer_auth(&auditor).send().await.expect("get");
        assert_eq!(unknown.status(), 404);
        let refusals = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"access.refused\" }) { edges { node { actor } } } }", json!({})).await;
        let refused: Vec<&str> = refusals["auditLog"]["edges"].as_array().expect("edges").iter().map(|e| e["node"]["actor"].as_str().expect("actor")).collect();
        assert_eq!(refused, ["reader", "owner-b"]);
        let anonymous = app.client.get(format!("{}/v1/models/fraud-scorer/compliance-report", app.address)).send().await.expect("get");
        assert_eq!(anonymous.status(), 401);
    }
}

on_both_backends! {
    /// The signed report verifies offline with the public key alone, by sunset's CLI and
    /// by securesystemslib; any change to what was signed fails it.
    async fn the_signed_report_verifies_offline_and_a_changed_one_does_not(app) {
        a_model_with_a_history(&app).await;
        let auditor = app.token("aud", "auditor", None).await;
        let signed = report(&app, &auditor, "?format=dsse").await;
        assert_eq!(signed.status(), 200);
        assert!(signed.headers()[reqwest::header::CONTENT_DISPOSITION].to_str().expect("ascii").contains("compliance-report.dsse.json"));
        let bytes = signed.bytes().await.expect("body").to_vec();
        let dir = app.data_dir.path();
        let file = dir.join("report.dsse.json");
        std::fs::write(&file, &bytes).expect("write");
        let pem = dir.join("service.pem");
        std::fs::write(&pem, app.services.service_key().public_key_pem()).expect("pem");
        let verify = |path: &std::path::Path| {
            std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
                .args(["report", "verify"])
                .arg(path)
                .arg("--public-key")
                .arg(&pem)
                .output()
                .expect("sunset report verify")
        };
        let out = verify(&file);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text} {out:?}");
        assert!(text.contains("report VERIFIED: model fraud-scorer"), "{text}");
        assert!(text.contains("5 status changes") && text.contains("1 integrity refusals"), "{text}");
        independent_dsse_check(&file, &pem);

        // Changing the report (an event count) and re-encoding it fails the signature.
        let mut envelope: Value = serde_json::from_slice(&bytes).expect("json");
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = b64.decode(envelope["payload"].as_str().expect("payload")).expect("b64");
        let mut doc: Value = serde_json::from_slice(&payload).expect("report");
        doc["integrityRefusals"] = json!([]);
        envelope["payload"] = json!(b64.encode(serde_json::to_vec(&doc).expect("json")));
        let forged = dir.join("forged.dsse.json");
        std::fs::write(&forged, serde_json::to_vec(&envelope).expect("json")).expect("write");
        let out = verify(&forged);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("report NOT VERIFIED"));
        // A destruction certificate's verifier does not take a report for a certificate.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
            .args(["certificate", "verify"]).arg(&file).arg("--public-key").arg(&pem)
            .output().expect("sunset certificate verify");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
}

on_both_backends! {
    /// A report is never signed over a chain that does not verify: refused, and the
    /// refusal recorded.
    async fn a_broken_chain_refuses_the_report(app) {
        a_model_with_a_history(&app).await;
        let auditor = app.token("aud", "auditor", None).await;
        app.services.store().reader().execute_unprepared("UPDATE audit_records SET actor = 'mallory' WHERE seq = 3").await.expect("tamper");
        let refused = report(&app, &auditor, "?format=dsse").await;
        assert_eq!(refused.status(), 500);
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "INTEGRITY");
        assert!(body["error"]["message"].as_str().expect("message").contains("record 3"), "{body}");
        app.services.store().reader().execute_unprepared("UPDATE audit_records SET actor = 'owner-a' WHERE seq = 3").await.ok();
        let n = crate::console::count(&app, "SELECT COUNT(*) FROM audit_records WHERE action = 'integrity.refused' AND subject = 'fraud-scorer'").await;
        assert_eq!(n, 1);
        let issued = crate::console::count(&app, "SELECT COUNT(*) FROM audit_records WHERE action = 'compliance_report.issued'").await;
        assert_eq!(issued, 0, "nothing was issued");
    }
}

on_both_backends! {
    /// A retirement carried out in the period is in the report with its notices, the
    /// versions it retired, and its destruction certificate.
    async fn a_retirement_is_reported_with_its_notices_and_certificate(backend: crate::support::Backend = crate::support::backend) {
        use crate::retirements::{uploaded_and_ready, world_with};
        let w = world_with(backend, |_| {}).await;
        let (id, _) = uploaded_and_ready(&w).await;
        let done = w.app.gql_ok(&w.governance, "mutation($id: ID!) { executeRetirement(id: $id) { state } }", json!({ "id": id })).await;
        assert_eq!(done["executeRetirement"]["state"], "RETIRED");
        let auditor = w.app.token("aud", "auditor", None).await;
        let certificate = w.app.gql_ok(&auditor, "query($r: ID!) { certificate(retirementId: $r) { sha256 } }", json!({ "r": id })).await;
        let g = w.app.gql_ok(&auditor, GQL_REPORT, json!({ "m": "fraud" })).await["complianceReport"].clone();
        let r: Value = serde_json::from_str(g["json"].as_str().expect("json")).expect("report");
        let retirement = &r["retirements"][0];
        assert_eq!(retirement["id"], id.as_str(), "{r:#}");
        assert_eq!(retirement["state"], "retired");
        assert_eq!(retirement["versions"], json!(["2.0.0", "2.1.0"]));
        assert_eq!(retirement["certificate"]["sha256"], certificate["certificate"]["sha256"]);
        assert!(retirement["notices"].as_object().is_some_and(|n| !n.is_empty()), "{retirement:#}");
        let retired: Vec<&str> = r["statusChanges"].as_array().expect("changes").iter()
            .filter(|c| c["to"] == "retired" && !c["retirement"].is_null())
            .map(|c| c["version"].as_str().expect("v")).collect();
        assert_eq!(retired, ["2.0.0", "2.1.0"], "{r:#}");
        assert!(r["events"]["byType"]["certificate.issued"].as_i64() == Some(1), "{r:#}");
    }
}

on_both_backends! {
    /// The console shows the report as a printable page to auditors, with the signed
    /// report to download; a reader is refused.
    async fn the_console_prints_the_report_and_offers_it_signed(app) {
        a_model_with_a_history(&app).await;
        let auditor = app.token("aud", "auditor", None).await;
        let mut console = crate::console::Console::new(&app.address);
        assert_eq!(console.sign_in(&auditor).await.status, 303);
        let model = console.get("/ui/models/fraud-scorer").await;
        assert!(model.body.contains("/ui/models/fraud-scorer/compliance"), "the model page links the report");
        let page = console.get("/ui/models/fraud-scorer/compliance").await;
        assert_eq!(page.status, 200, "{}", page.body);
        for needle in ["verified from genesis", "<strong>production</strong>", "model.rollback_refused", "127.0.0.1", "compliance.dsse.json"] {
            assert!(page.body.contains(needle), "{needle} missing from the page");
        }
        let bad = console.get("/ui/models/fraud-scorer/compliance?from=yesterday").await;
        assert_eq!(bad.status, 422, "{}", bad.body);
        let signed = console.get("/ui/models/fraud-scorer/compliance.dsse.json?from=&to=").await;
        assert_eq!(signed.status, 200);
        let key = app.services.service_key().verifying_key();
        let report = sunset::service::verify_report(signed.body.as_bytes(), &key).expect("verifies");
        assert_eq!(report.model.name, "fraud-scorer");

        let reader = app.token("reader", "reader", None).await;
        let mut other = crate::console::Console::new(&app.address);
        assert_eq!(other.sign_in(&reader).await.status, 303);
        assert!(!other.get("/ui/models/fraud-scorer").await.body.contains("/compliance"));
        assert_eq!(other.get("/ui/models/fraud-scorer/compliance").await.status, 403);
    }
}
