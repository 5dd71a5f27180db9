//! Emergency deployments (AISVS 3.2.4): past the validation gate only on a risk
//! assessment approved by a security actor who did not ask, for a limited time; then
//! validated, or rolled back with `rollbackModel`'s checks. The model's contacts are
//! told by email (an in-process SMTP server), and time is the injected clock's.

use crate::artifacts::{fill_with_fixture, signed_fixture_version};
use crate::retirements::{mails, toml_smtp};
use crate::support::{Backend, TestApp, error_code, error_message};
use chrono::Duration;
use notifiers::testing::{ReceivedMail, smtp_sink};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use sunset::clock::ManualClock;

const TRANSITION: &str = "mutation($v: String!, $to: LifecycleStatus!, $j: String) { transitionVersion(model: \"fraud-scorer\", version: $v, to: $to, justification: $j) { status } }";
const REQUEST: &str = "mutation($v: String!, $r: String!, $h: Int!) { requestEmergencyDeployment(model: \"fraud-scorer\", version: $v, riskAssessment: $r, validHours: $h) { id state requestedBy } }";
const APPROVE: &str = "mutation($v: String!) { approveEmergencyDeployment(model: \"fraud-scorer\", version: $v) { status } }";
const STATE: &str = "query($v: String!) { modelVersion(model: \"fraud-scorer\", version: $v) { status emergencyDeployment { state approvedBy expiresAt outcome } } }";
const RISK: &str = "A fraud ring exploits 1.0.0 since this morning (INC-7731); 1.2.0 stops it. Its toxicity eval needs a day on the new harness.";

struct World {
    app: TestApp,
    clock: Arc<ManualClock>,
    mail: Receiver<ReceivedMail>,
    owner: String,
}

/// fraud-scorer 1.0.0 in production; `version` signed, in staging, its own `auc`
/// failed.
async fn world(backend: Backend, version: &str) -> World {
    let clock = Arc::new(ManualClock::new(crate::retirements::t0()));
    let (port, mail) = smtp_sink().await.expect("an SMTP server");
    let app = TestApp::spawn_with(backend, clock.clone(), |s| {
        s.notifications.deliver = false;
        s.retirement.check_schedule = "0 0 0 1 1 * 2099".into();
        s.notifications.smtp = Some(toml_smtp(port));
    })
    .await;
    let owner = signed_fixture_version(&app).await;
    for to in ["STAGING", "PRODUCTION"] {
        app.gql_ok(&owner, TRANSITION, json!({ "v": "1.0.0", "to": to }))
            .await;
    }
    app.gql_ok(&owner, "mutation($v: String!) { createVersion(input: { model: \"fraud-scorer\", version: $v, validations: [{ name: \"auc\", passed: false }] }) { version } }", json!({ "v": version })).await;
    fill_with_fixture(&app, &owner, version).await;
    app.gql_ok(&owner, TRANSITION, json!({ "v": version, "to": "STAGING" }))
        .await;
    World {
        app,
        clock,
        mail,
        owner,
    }
}

/// Mails with their folded header lines joined again (RFC 5322 folding).
fn unfolded(mails: Vec<ReceivedMail>) -> Vec<ReceivedMail> {
    mails
        .into_iter()
        .map(|m| ReceivedMail {
            data: m.data.replace("\n ", " "),
            ..m
        })
        .collect()
}

async fn state(w: &World, v: &str) -> Value {
    w.app.gql_ok(&w.owner, STATE, json!({ "v": v })).await["modelVersion"].clone()
}

on_both_backends! {
    /// Past the gate only this way: a security override on its own is refused; the
    /// requester cannot approve; a second security actor can. Not validated in time, the
    /// model is rolled back, and the contacts hear of both.
    async fn an_emergency_deployment_not_validated_in_time_is_rolled_back(backend: Backend = crate::support::backend) {
        let w = world(backend, "1.2.0").await;
        let app = &w.app;
        let blocked = app.gql(&w.owner, TRANSITION, json!({ "v": "1.2.0", "to": "PRODUCTION" })).await;
        assert_eq!(error_code(&blocked), "CONFLICT", "{blocked}");
        let sec_a = app.token("sec-a", "security", None).await;
        let alone = app.gql(&sec_a, TRANSITION, json!({ "v": "1.2.0", "to": "PRODUCTION", "j": "I accept the risk on my own, INC-7731" })).await;
        assert_eq!(error_code(&alone), "FORBIDDEN", "{alone}");
        assert!(error_message(&alone).contains("only through an emergency deployment"), "{alone}");

        for (r, h, code) in [("short", 24, "VALIDATION"), (RISK, 0, "VALIDATION"), (RISK, 169, "VALIDATION")] {
            let body = app.gql(&sec_a, REQUEST, json!({ "v": "1.2.0", "r": r, "h": h })).await;
            assert_eq!(error_code(&body), code, "{r} {h}: {body}");
        }
        let asked = app.gql_ok(&sec_a, REQUEST, json!({ "v": "1.2.0", "r": RISK, "h": 24 })).await;
        assert_eq!(asked["requestEmergencyDeployment"]["state"], "REQUESTED");
        assert_eq!(error_code(&app.gql(&w.owner, REQUEST, json!({ "v": "1.2.0", "r": RISK, "h": 24 })).await), "CONFLICT", "one open request per version");
        assert_eq!(error_code(&app.gql(&w.owner, APPROVE, json!({ "v": "1.2.0" })).await), "FORBIDDEN", "owners do not approve");
        let self_approved = app.gql(&sec_a, APPROVE, json!({ "v": "1.2.0" })).await;
        assert!(error_message(&self_approved).contains("a security actor who did not ask approves it"), "{self_approved}");
        assert_eq!(state(&w, "1.2.0").await["status"], "STAGING", "nothing moved");

        let sec_b = app.token("sec-b", "security", None).await;
        assert_eq!(app.gql_ok(&sec_b, APPROVE, json!({ "v": "1.2.0" })).await["approveEmergencyDeployment"]["status"], "PRODUCTION");
        assert_eq!(state(&w, "1.0.0").await["status"], "DEPRECATED");
        let active = state(&w, "1.2.0").await["emergencyDeployment"].clone();
        assert_eq!((active["state"].as_str(), active["approvedBy"].as_str()), (Some("ACTIVE"), Some("sec-b")));
        let started = unfolded(mails(&w.mail));
        assert_eq!(started.len(), 1, "the contacts are told once");
        assert_eq!(started[0].to, vec!["ml@example.org".to_owned()]);
        assert!(started[0].data.contains("fraud-scorer@1.2.0 is in production by emergency deployment"), "{}", started[0].data);
        assert!(started[0].data.contains("INC-7731"), "with the risk assessment");

        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { subject: \"fraud-scorer@1.2.0\", action: \"version.status_changed\" }) { edges { node { actor after } } } }", json!({})).await;
        let last = log["auditLog"]["edges"].as_array().and_then(|e| e.last()).cloned().expect("a record");
        let after: Value = serde_json::from_str(last["node"]["after"].as_str().unwrap_or("{}")).expect("json");
        assert_eq!(after["overriddenValidations"], json!(["auc"]));
        assert_eq!(after["emergency"]["requestedBy"], "sec-a");
        assert_eq!(after["emergency"]["approvedBy"], "sec-b");

        w.clock.advance(Duration::hours(23));
        assert_eq!(app.services.registry().settle_emergency_deployments().await.expect("settle"), 0, "not yet due");
        w.clock.advance(Duration::hours(2));
        assert_eq!(app.services.registry().settle_emergency_deployments().await.expect("settle"), 1);
        assert_eq!(state(&w, "1.0.0").await["status"], "PRODUCTION", "rolled back");
        let ended = state(&w, "1.2.0").await;
        assert_eq!(ended["status"], "DEPRECATED");
        assert_eq!(ended["emergencyDeployment"]["state"], "ROLLED_BACK");
        assert!(ended["emergencyDeployment"]["outcome"].as_str().unwrap_or("").contains("without passed validations (auc); rolled back to 1.0.0"), "{ended}");
        let told = unfolded(mails(&w.mail));
        assert_eq!(told.len(), 1);
        assert!(told[0].data.contains("ended: rolled back"), "{}", told[0].data);
        let rolled = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"model.rolled_back\" }) { edges { node { actor } } } }", json!({})).await;
        assert_eq!(rolled["auditLog"]["edges"][0]["node"]["actor"], "system");
        assert_eq!(app.services.registry().settle_emergency_deployments().await.expect("settle"), 0, "settled once");
    }
}

on_both_backends! {
    /// A signed pass of the failed validation before the time is up keeps the version.
    async fn an_emergency_deployment_validated_in_time_stays(backend: Backend = crate::support::backend) {
        let w = world(backend, "1.1.0").await;
        let app = &w.app;
        app.gql_ok(&w.owner, REQUEST, json!({ "v": "1.1.0", "r": RISK, "h": 48 })).await;
        let sec = app.token("sec-b", "security", None).await;
        app.gql_ok(&sec, APPROVE, json!({ "v": "1.1.0" })).await;

        let dir = tempfile::tempdir().expect("dir");
        let pem = crate::validations::keygen(dir.path());
        app.gql_ok(&app.admin, "mutation($k: String!) { addSigner(name: \"eval-bot\", publicKeyPem: $k, purposes: [\"validator\"]) { name } }", json!({ "k": pem })).await;
        let envelope = crate::validations::attestation(dir.path(), crate::validations::fixture_subjects(), true);
        app.gql_ok(&w.owner, "mutation($e: String!) { attestValidation(model: \"fraud-scorer\", version: \"1.1.0\", envelope: $e) { signer } }", json!({ "e": envelope })).await;

        w.clock.advance(Duration::hours(49));
        assert_eq!(app.services.registry().settle_emergency_deployments().await.expect("settle"), 1);
        let kept = state(&w, "1.1.0").await;
        assert_eq!(kept["status"], "PRODUCTION");
        assert_eq!(kept["emergencyDeployment"]["state"], "VALIDATED");
        assert_eq!(state(&w, "1.0.0").await["status"], "DEPRECATED");
        let told: Vec<String> = unfolded(mails(&w.mail)).into_iter().map(|m| m.data).collect();
        assert_eq!(told.len(), 2, "started and ended");
        assert!(told[1].contains("ended: validated"), "{}", told[1]);
    }
}
