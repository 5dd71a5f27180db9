//! Governance per model: grants of a role on models, model policies, and promotions a
//! policy makes wait for a second person.

use crate::artifacts::{model_with_version, signed_fixture_version};
use crate::registrations::{Post, post, source};
use crate::support::{TestApp, error_code, error_message};
use serde_json::{Value, json};

const GRANT: &str =
    "mutation($i: GrantRoleInput!) { grantRole(input: $i) { id model role token team expiresAt } }";
const POLICY: &str = "mutation($m: String!, $i: ModelPolicyInput!) { setModelPolicy(model: $m, input: $i) { productionApproval environments maxVersions retentionDays encryptionRequired signingRequired ownRules } }";
const SET_POLICY_ANALYST: &str = "mutation { setModelPolicy(model: \"fraud-scorer\", input: { retentionDays: 30 }) { retentionDays } }";
const UPDATE: &str = "mutation { updateModel(name: \"fraud-scorer\", input: { description: \"scores card payments\" }) { description } }";
const TRANSITION: &str = "mutation($v: String!, $to: LifecycleStatus!) { transitionVersion(model: \"fraud-scorer\", version: $v, to: $to) { status } }";
const REQUEST: &str = "mutation($r: String!) { requestPromotion(model: \"fraud-scorer\", version: \"1.0.0\", reference: $r) { reference requestedBy } }";
const APPROVE: &str =
    "mutation { approvePromotion(model: \"fraud-scorer\", version: \"1.0.0\") { status } }";

async fn audit_actions(app: &TestApp, action: &str) -> Vec<Value> {
    let auditor = app
        .token(
            &format!("aud-{}", action.replace(['.', '_'], "-")),
            "auditor",
            None,
        )
        .await;
    let log = app
        .gql_ok(&auditor, "query($a: String!) { auditLog(filter: { action: $a }) { edges { node { actor actorRole subject before after } } } }", json!({ "a": action }))
        .await;
    log["auditLog"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn grants_on(app: &TestApp, model: &str) -> Vec<Value> {
    let data = app
        .gql_ok(
            &app.admin,
            "query($m: String) { grants(model: $m) { id model role token team } }",
            json!({ "m": model }),
        )
        .await;
    data["grants"].as_array().cloned().unwrap_or_default()
}

on_both_backends! {
    /// A grant widens a reader to governance of a family, and only there, until it
    /// expires; a more specific grant fences a role in; a token's own grant beats its
    /// team's; owners grant only reader or owner on their own models by name.
    async fn grants_set_the_role_on_the_models_they_name(t: crate::support::Clocked = crate::support::clocked) {
        let app = &t.app;
        let owner = model_with_version(app).await;
        let ledger_owner = app.token("ledger-owner", "owner", Some("finance")).await;
        app.create_model(&ledger_owner, "pay-ledger", "finance").await;
        let analyst = app.token("analyst", "reader", None).await;

        let expires = (t.start + chrono::Duration::days(1)).to_rfc3339();
        let granted = app.gql_ok(&app.admin, GRANT, json!({ "i": { "model": "fraud-*", "role": "GOVERNANCE", "token": "analyst", "expiresAt": expires } })).await;
        assert_eq!(granted["grantRole"]["model"], "fraud-*");
        let set = app.gql(&analyst, SET_POLICY_ANALYST, json!({})).await;
        assert!(set.get("errors").is_none(), "governance by grant on fraud-*: {set}");
        let elsewhere = app.gql(&analyst, &SET_POLICY_ANALYST.replace("fraud-scorer", "pay-ledger"), json!({})).await;
        assert_eq!(error_code(&elsewhere), "FORBIDDEN", "the grant does not reach pay-ledger: {elsewhere}");
        let changed = audit_actions(app, "model.policy_changed").await;
        assert_eq!((changed[0]["actor"].as_str(), changed[0]["actorRole"].as_str()), (Some("analyst"), Some("governance")), "recorded with the role it acted with");

        // Fenced: a governance token held to reader on fraud-*.
        let gov = app.token("gov", "governance", None).await;
        app.gql_ok(&app.admin, GRANT, json!({ "i": { "model": "fraud-*", "role": "READER", "token": "gov" } })).await;
        let fenced = app.gql(&gov, SET_POLICY_ANALYST, json!({})).await;
        assert!(error_message(&fenced).contains("has role reader on model fraud-scorer (by a grant)"), "{fenced}");
        assert!(app.gql(&gov, &SET_POLICY_ANALYST.replace("fraud-scorer", "pay-ledger"), json!({})).await.get("errors").is_none(), "its own role elsewhere");

        // Decisions on a retirement by its id count the role on its model too.
        let at = (t.start + chrono::Duration::days(60)).to_rfc3339();
        let scheduled = app.gql_ok(&analyst, "mutation($at: DateTime!) { scheduleRetirement(input: { model: \"fraud-scorer\", versions: \"*\", reason: \"superseded by fraud-scorer-v2\", effectiveAt: $at }) { id } }", json!({ "at": at })).await;
        let retirement = scheduled["scheduleRetirement"]["id"].as_str().expect("id").to_owned();
        let cancel = "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"no longer needed, plans changed\") { state } }";
        let fenced = app.gql(&gov, cancel, json!({ "id": retirement })).await;
        assert!(error_message(&fenced).contains("has role reader on the model of retirement"), "{fenced}");
        assert_eq!(app.gql_ok(&analyst, cancel, json!({ "id": retirement })).await["cancelRetirement"]["state"], "CANCELLED");

        // A team's reader grant on the exact name beats the owner role; the token's own grant beats the team's.
        app.gql_ok(&app.admin, GRANT, json!({ "i": { "model": "fraud-scorer", "role": "READER", "team": "payments-ml" } })).await;
        assert_eq!(error_code(&app.gql(&owner, UPDATE, json!({})).await), "FORBIDDEN");
        let own = app.gql_ok(&app.admin, GRANT, json!({ "i": { "model": "fraud-scorer", "role": "OWNER", "token": "owner-a" } })).await;
        assert_eq!(app.gql_ok(&owner, UPDATE, json!({})).await["updateModel"]["description"], "scores card payments");
        let id = own["grantRole"]["id"].as_str().expect("id").to_owned();
        app.gql_ok(&app.admin, "mutation($id: ID!) { revokeGrant(id: $id) { id } }", json!({ "id": id })).await;
        assert_eq!(error_code(&app.gql(&owner, UPDATE, json!({})).await), "FORBIDDEN", "revoked: the team's grant decides again");

        // What owners may grant, and bad grants: refused, and none written.
        let before = grants_on(app, "fraud-scorer").await.len();
        let ledger = app.gql(&ledger_owner, GRANT, json!({ "i": { "model": "pay-ledger", "role": "OWNER", "token": "analyst" } })).await;
        assert!(ledger.get("errors").is_none(), "an owner grants owner on its model: {ledger}");
        for (who, input, code) in [
            (&ledger_owner, json!({ "model": "pay-ledger", "role": "GOVERNANCE", "token": "analyst" }), "FORBIDDEN"),
            (&ledger_owner, json!({ "model": "pay-*", "role": "READER", "token": "analyst" }), "FORBIDDEN"),
            (&ledger_owner, json!({ "model": "fraud-scorer", "role": "READER", "token": "analyst" }), "FORBIDDEN"),
            (&app.admin, json!({ "model": "fraud-scorer", "role": "ADMIN", "token": "analyst" }), "VALIDATION"),
            (&app.admin, json!({ "model": "fraud-scorer", "role": "READER", "token": "analyst", "team": "x" }), "VALIDATION"),
            (&app.admin, json!({ "model": "fraud-scorer", "role": "READER", "token": "nobody" }), "NOT_FOUND"),
            (&app.admin, json!({ "model": "Fraud*", "role": "READER", "token": "analyst" }), "VALIDATION"),
            (&app.admin, json!({ "model": "fraud-scorer", "role": "READER", "token": "analyst", "expiresAt": (t.start - chrono::Duration::hours(1)).to_rfc3339() }), "VALIDATION"),
        ] {
            let body = app.gql(who, GRANT, json!({ "i": input })).await;
            assert_eq!(error_code(&body), code, "{input}: {body}");
        }
        assert_eq!(grants_on(app, "fraud-scorer").await.len(), before, "refused grants write nothing");
        let listed = app.gql(&analyst, "{ grants { id } }", json!({})).await;
        assert_eq!(error_code(&listed), "FORBIDDEN", "every grant is for overseers: {listed}");
        let reaching = app.gql_ok(&analyst, "{ grants(model: \"fraud-scorer\") { model role token team } }", json!({})).await;
        assert_eq!(reaching["grants"].as_array().map(Vec::len), Some(3), "fraud-* twice and the team's: {reaching}");

        // Expired: the grant no longer counts, and is listed only when asked.
        t.clock.advance(chrono::Duration::days(2));
        let after = app.gql(&analyst, SET_POLICY_ANALYST, json!({})).await;
        assert!(error_message(&after).contains("needs the role governance"), "{after}");
        assert_eq!(grants_on(app, "fraud-scorer").await.len(), 2);
        let all = app.gql_ok(&app.admin, "{ grants(model: \"fraud-scorer\", withExpired: true) { id } }", json!({})).await;
        assert_eq!(all["grants"].as_array().map(Vec::len), Some(3));
        assert_eq!(audit_actions(app, "grant.created").await.len(), 5);
        let revoked = audit_actions(app, "grant.revoked").await;
        assert_eq!(revoked.len(), 1);
        assert!(revoked[0]["before"].as_str().unwrap_or("").contains("owner-a"), "{revoked:?}");
    }
}

on_both_backends! {
    /// A critical model's policy makes promotion to production wait for a second
    /// person, who approves a request that carries a change reference; the status change
    /// records both.
    async fn a_critical_model_reaches_production_only_with_a_second_persons_approval(app) {
        let owner = signed_fixture_version(&app).await;
        app.gql_ok(&owner, "mutation { updateModel(name: \"fraud-scorer\", input: { tier: CRITICAL }) { tier } }", json!({})).await;
        app.gql_ok(&owner, TRANSITION, json!({ "v": "1.0.0", "to": "STAGING" })).await;

        let direct = app.gql(&owner, TRANSITION, json!({ "v": "1.0.0", "to": "PRODUCTION" })).await;
        assert_eq!(error_code(&direct), "POLICY", "{direct}");
        assert!(error_message(&direct).starts_with("rule productionApproval:"), "{direct}");
        assert_eq!(error_code(&app.gql(&owner, APPROVE, json!({})).await), "NOT_FOUND", "nothing asked yet");
        assert_eq!(error_code(&app.gql(&owner, REQUEST, json!({ "r": "  " })).await), "VALIDATION", "a reference is required");

        let asked = app.gql_ok(&owner, REQUEST, json!({ "r": "CHG-1234" })).await;
        assert_eq!(asked["requestPromotion"]["requestedBy"], "owner-a");
        let waiting = app.gql_ok(&owner, "{ modelVersion(model: \"fraud-scorer\", version: \"1.0.0\") { status promotionRequest { reference requestedBy } } }", json!({})).await;
        assert_eq!(waiting["modelVersion"]["promotionRequest"]["reference"], "CHG-1234");
        let mut console = crate::console::Console::new(&app.address);
        console.sign_in(&owner).await;
        let page = console.get("/ui/models/fraud-scorer").await.body;
        assert!(page.contains("asked by owner-a (reference CHG-1234)") && page.contains("waiting for a second person"), "{page}");

        let self_approved = app.gql(&owner, APPROVE, json!({})).await;
        assert_eq!(error_code(&self_approved), "FORBIDDEN", "{self_approved}");
        assert!(error_message(&self_approved).contains("a second person approves it"), "{self_approved}");
        let outsider = app.token("owner-x", "owner", Some("other-team")).await;
        assert_eq!(error_code(&app.gql(&outsider, APPROVE, json!({})).await), "FORBIDDEN", "not an owner of the model");

        let second = app.token("owner-b", "owner", Some("payments-ml")).await;
        let approved = app.gql_ok(&second, APPROVE, json!({})).await;
        assert_eq!(approved["approvePromotion"]["status"], "PRODUCTION");
        let after = app.gql_ok(&owner, "{ modelVersion(model: \"fraud-scorer\", version: \"1.0.0\") { status promotionRequest { reference } } }", json!({})).await;
        assert!(after["modelVersion"]["promotionRequest"].is_null(), "{after}");

        let changes = audit_actions(&app, "version.status_changed").await;
        let last: Value = serde_json::from_str(changes.last().and_then(|c| c["after"].as_str()).unwrap_or("{}")).expect("json");
        assert_eq!(last["status"], "production");
        assert_eq!(last["approval"]["reference"], "CHG-1234");
        assert_eq!(last["approval"]["requestedBy"], "owner-a");
        assert_eq!(last["approval"]["approvedBy"], "owner-b");
        assert_eq!(audit_actions(&app, "version.promotion_requested").await.len(), 1);
    }
}

on_both_backends! {
    /// Governance sets a model's own rules over its tier's; declarations and new
    /// versions that break them are refused with the rule, and write nothing.
    async fn a_models_policy_refuses_what_breaks_it_and_names_the_rule(app) {
        let owner = model_with_version(&app).await;
        let gov = app.token("gov", "governance", None).await;
        let read = "{ model(name: \"fraud-scorer\") { policy { productionApproval environments maxVersions retentionDays encryptionRequired signingRequired ownRules } } }";
        let tiers = app.gql_ok(&owner, read, json!({})).await;
        assert_eq!(tiers["model"]["policy"], json!({ "productionApproval": false, "environments": [], "maxVersions": null, "retentionDays": 180, "encryptionRequired": true, "signingRequired": true, "ownRules": [] }), "the high tier's defaults");

        let records = app.audit_count().await;
        for (token, input, code) in [
            (&owner, json!({ "maxVersions": 2 }), "FORBIDDEN"),
            (&gov, json!({ "encryptionRequired": false }), "VALIDATION"),
            (&gov, json!({ "signingRequired": false, "maxVersions": 2 }), "VALIDATION"),
            (&gov, json!({ "maxVersions": 0 }), "VALIDATION"),
            (&gov, json!({ "retentionDays": 4000 }), "VALIDATION"),
            (&gov, json!({ "environments": ["prod", "prod"] }), "VALIDATION"),
        ] {
            let body = app.gql(token, POLICY, json!({ "m": "fraud-scorer", "i": input })).await;
            assert_eq!(error_code(&body), code, "{input}: {body}");
        }
        assert_eq!(app.gql_ok(&owner, read, json!({})).await, tiers, "refused changes change nothing");
        assert!(app.audit_count().await - records <= 1, "at most the owner's refusal is recorded");

        let set = app.gql_ok(&gov, POLICY, json!({ "m": "fraud-scorer", "i": { "environments": ["prod"], "maxVersions": 2, "encryptionRequired": true } })).await;
        assert_eq!(set["setModelPolicy"]["ownRules"], json!(["environments", "maxVersions"]));
        assert_eq!(set["setModelPolicy"]["retentionDays"], 180, "still the tier's");

        let create = "mutation($v: String!) { createVersion(input: { model: \"fraud-scorer\", version: $v }) { version } }";
        app.gql_ok(&owner, create, json!({ "v": "1.1.0" })).await;
        let third = app.gql(&owner, create, json!({ "v": "1.2.0" })).await;
        assert_eq!(error_code(&third), "POLICY", "{third}");
        assert!(error_message(&third).contains("rule maxVersions: at most 2 versions"), "{third}");
        let versions = app.gql_ok(&owner, "{ model(name: \"fraud-scorer\") { versions { edges { node { version } } } } }", json!({})).await;
        assert_eq!(versions["model"]["versions"]["edges"].as_array().map(Vec::len), Some(2));

        let declare = "mutation($n: String!, $e: String!) { declareConsumer(input: { name: $n, kind: SERVICE, ownerTeam: \"payments-ml\", environment: $e }) { created } }";
        app.gql_ok(&owner, declare, json!({ "n": "checkout-dev", "e": "dev" })).await;
        app.gql_ok(&owner, declare, json!({ "n": "checkout", "e": "prod" })).await;
        let uses = "mutation($c: String!) { declareUse(consumer: $c, model: \"fraud-scorer\", version: \"^1\") { kind } }";
        let refused = app.gql(&owner, uses, json!({ "c": "checkout-dev" })).await;
        assert_eq!(error_code(&refused), "POLICY", "{refused}");
        assert!(error_message(&refused).contains("rule environments: consumers may declare use from prod only, not dev"), "{refused}");
        app.gql_ok(&owner, uses, json!({ "c": "checkout" })).await;
        let deps = app.gql_ok(&owner, "{ dependents(model: \"fraud-scorer\", version: \"1.0.0\") { nodes { name } } }", json!({})).await;
        assert_eq!(deps["dependents"]["nodes"], json!([{ "name": "checkout" }]), "the refused use was not written");

        // A registration webhook declaring use from another environment: refused, with
        // the rule, and nothing of it written.
        let secret = source(&app, "ci").await;
        let message = |env: &str| json!({ "registrations": [
            { "type": "consumer", "name": format!("batch-{env}"), "kind": "service", "ownerTeam": "growth",
              "environment": env, "uses": [{ "model": "fraud-scorer", "version": "^1" }] }
        ] });
        let at = chrono::Utc::now().timestamp();
        let refused = post(&app, Post { secret: &secret, id: "msg_dev", at }, &message("dev")).await;
        assert_eq!(refused.status(), 422);
        let body = refused.text().await.unwrap_or_default();
        assert!(body.contains("rule environments: consumers may declare use from prod only, not dev"), "{body}");
        let written = app.gql(&owner, "{ consumer(name: \"batch-dev\") { name } }", json!({})).await;
        assert_eq!(error_code(&written), "NOT_FOUND", "nothing of the message is written: {written}");
        assert_eq!(post(&app, Post { secret: &secret, id: "msg_prod", at }, &message("prod")).await.status(), 200);

        let changed = audit_actions(&app, "model.policy_changed").await;
        assert_eq!(changed.len(), 1);
        let after: Value = serde_json::from_str(changed[0]["after"].as_str().unwrap_or("{}")).expect("json");
        assert_eq!(after["own"], json!({ "environments": ["prod"], "maxVersions": 2 }));
        assert_eq!(after["inForce"]["retentionDays"], 180);
        // Back to the tier's rules: an empty set.
        let reset = app.gql_ok(&gov, POLICY, json!({ "m": "fraud-scorer", "i": {} })).await;
        assert_eq!(reset["setModelPolicy"]["ownRules"], json!([]));
        app.gql_ok(&owner, create, json!({ "v": "1.2.0" })).await;
    }
}
