//! The model registry: names, versions, provenance, lifecycle and its gates.

use crate::support::{error_code, error_message};
use serde_json::json;

const CREATE_VERSION: &str = "mutation($i: CreateVersionInput!) { createVersion(input: $i) { model version status provenance { authorizedBy trainingData { source sha256 } validations { name passed } runtimeDependencies { package version } } } }";
const TRANSITION: &str = "mutation($m: String!, $v: String!, $to: LifecycleStatus!, $j: String) { transitionVersion(model: $m, version: $v, to: $to, justification: $j) { version status } }";

on_both_backends! {
    async fn an_owner_registers_a_model_and_versions_with_provenance(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let created = app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        assert_eq!(created["createModel"]["tier"], "HIGH");

        let digest = "A".repeat(64);
        let data = app.gql_ok(&owner, CREATE_VERSION, json!({ "i": {
            "model": "fraud-scorer", "version": "1.0.0",
            "trainingData": [{ "source": "s3://corpora/fraud.parquet", "sha256": format!("sha256:{digest}") }],
            "validations": [{ "name": "auc", "passed": true, "score": 0.93, "threshold": 0.9 }],
            "runtimeDependencies": [{ "package": "torch", "version": "2.5.1" }],
        }})).await;
        let v = &data["createVersion"];
        assert_eq!(v["status"], "DEVELOPMENT");
        assert_eq!(v["provenance"]["authorizedBy"], "owner-a");
        assert_eq!(v["provenance"]["trainingData"][0]["sha256"], "a".repeat(64));
        assert_eq!(v["provenance"]["runtimeDependencies"][0]["package"], "torch");

        let read = app.gql_ok(&owner, "{ model(name: \"fraud-scorer\") { name contacts versions { edges { node { version } } } } }", json!({})).await;
        assert_eq!(read["model"]["versions"]["edges"][0]["node"]["version"], "1.0.0");
        assert_eq!(read["model"]["contacts"], json!(["ml@example.org"]));
    }
}

on_both_backends! {
    async fn a_version_not_greater_than_every_existing_one_is_refused_and_nothing_is_written(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        app.gql_ok(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "1.10.0" } })).await;
        let records_before = app.audit_count().await;

        for (version, code) in [("1.9.9", "CONFLICT"), ("1.10.0", "CONFLICT"), ("1.2", "VALIDATION"), ("01.2.3", "VALIDATION"), ("2.0.0-rc1", "VALIDATION")] {
            let body = app.gql(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": version } })).await;
            assert_eq!(error_code(&body), code, "{version}: {body}");
            assert!(error_message(&body).contains(version.split('-').next().unwrap_or(version)) || code == "VALIDATION", "{body}");
        }
        let body = app.gql(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "1.9.9" } })).await;
        assert!(error_message(&body).contains("1.10.0"), "names the latest version: {body}");
        assert_eq!(app.audit_count().await, records_before, "a refused change leaves no audit record");
        let read = app.gql_ok(&owner, "{ model(name: \"fraud-scorer\") { versions { edges { node { version } } } } }", json!({})).await;
        assert_eq!(read["model"]["versions"]["edges"].as_array().map(Vec::len), Some(1));
        // 1.10.0 orders above 1.9.x numerically, not as text.
        app.gql_ok(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "1.11.0" } })).await;
    }
}

on_both_backends! {
    async fn bad_input_gets_an_error_naming_the_problem(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        let q = "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }";
        let cases = [
            (json!({ "name": "fraud-scorer", "ownerTeam": "payments-ml", "tier": "HIGH" }), "CONFLICT", "already exists"),
            (json!({ "name": "Fraud", "ownerTeam": "payments-ml", "tier": "HIGH" }), "VALIDATION", "model name"),
            (json!({ "name": "../etc", "ownerTeam": "payments-ml", "tier": "HIGH" }), "VALIDATION", "model name"),
            (json!({ "name": "ok-name", "ownerTeam": "payments-ml", "tier": "HIGH", "contacts": ["not-an-email"] }), "VALIDATION", "contact"),
            (json!({ "name": "ok-name", "ownerTeam": "payments-ml", "tier": "HIGH", "description": "x".repeat(4001) }), "VALIDATION", "description"),
        ];
        for (input, code, needle) in cases {
            let body = app.gql(&owner, q, json!({ "i": input })).await;
            assert_eq!(error_code(&body), code, "{body}");
            assert!(error_message(&body).contains(needle), "{body}");
        }
        let body = app.gql(&owner, CREATE_VERSION, json!({ "i": { "model": "no-such-model", "version": "1.0.0" } })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        assert!(error_message(&body).contains("no-such-model"));
        let body = app.gql(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "1.0.0", "trainingData": [{ "source": "x", "sha256": "abc" }] } })).await;
        assert_eq!(error_code(&body), "VALIDATION");
        assert!(error_message(&body).contains("SHA-256"), "{body}");
        let read = app.gql_ok(&owner, "{ model(name: \"ok-name\") { name } }", json!({})).await;
        assert!(read["model"].is_null(), "nothing half-written");
    }
}

on_both_backends! {
    async fn owners_manage_only_their_own_teams_models(app) {
        let payments = app.token("owner-payments", "owner", Some("payments-ml")).await;
        let search = app.token("owner-search", "owner", Some("search")).await;
        let body = app.gql(&search, "mutation { createModel(input: { name: \"x\", ownerTeam: \"payments-ml\", tier: HIGH }) { name } }", json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        assert!(error_message(&body).contains("search"), "{body}");
        app.create_model(&payments, "fraud-scorer", "payments-ml").await;
        let body = app.gql(&search, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "1.0.0" } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app.gql(&search, "mutation { updateModel(name: \"fraud-scorer\", input: { description: \"mine now\" }) { name } }", json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let updated = app.gql_ok(&payments, "mutation { updateModel(name: \"fraud-scorer\", input: { description: \"scores card payments\", tier: CRITICAL }) { description tier } }", json!({})).await;
        assert_eq!(updated["updateModel"]["tier"], "CRITICAL");
    }
}

on_both_backends! {
    async fn the_lifecycle_allows_only_its_transitions(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let governance = app.token("gov", "governance", None).await;
        app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        app.gql_ok(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "1.0.0" } })).await;

        let body = app.gql(&owner, TRANSITION, json!({ "m": "fraud-scorer", "v": "1.0.0", "to": "PRODUCTION" })).await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert!(error_message(&body).contains("staging"), "says where it can go: {body}");

        for to in ["STAGING", "PRODUCTION"] {
            let data = app.gql_ok(&owner, TRANSITION, json!({ "m": "fraud-scorer", "v": "1.0.0", "to": to })).await;
            assert_eq!(data["transitionVersion"]["status"], to);
        }
        app.gql_ok(&governance, TRANSITION, json!({ "m": "fraud-scorer", "v": "1.0.0", "to": "DEPRECATED" })).await;
        let body = app.gql(&governance, TRANSITION, json!({ "m": "fraud-scorer", "v": "1.0.0", "to": "STAGING" })).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        // Retirement owns `retired`: no role reaches it by a plain transition, from any status.
        let security = app.token("sec", "security", None).await;
        for token in [&owner, &governance, &security] {
            let body = app.gql(token, TRANSITION, json!({ "m": "fraud-scorer", "v": "1.0.0", "to": "RETIRED" })).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
            let message = error_message(&body);
            assert!(message.contains("scheduleRetirement") && message.contains("emergencyRetirement"), "{body}");
        }
        let version = app.gql_ok(&owner, "{ modelVersion(model: \"fraud-scorer\", version: \"1.0.0\") { status retirement { id } } }", json!({})).await;
        assert_eq!(version["modelVersion"]["status"], "DEPRECATED");
        assert!(version["modelVersion"]["retirement"].is_null());
    }
}

on_both_backends! {
    async fn promotion_with_failed_validations_is_blocked_and_no_one_overrides_it_alone(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let security = app.token("sec", "security", None).await;
        app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        app.gql_ok(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": "2.0.0",
            "validations": [{ "name": "toxicity", "passed": false }, { "name": "auc", "passed": true }] } })).await;
        app.gql_ok(&owner, TRANSITION, json!({ "m": "fraud-scorer", "v": "2.0.0", "to": "STAGING" })).await;

        let body = app.gql(&owner, TRANSITION, json!({ "m": "fraud-scorer", "v": "2.0.0", "to": "PRODUCTION" })).await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert!(error_message(&body).contains("toxicity"), "names the failed validation: {body}");

        // A security actor alone, however justified, is sent to an emergency deployment
        // (tests/it/emergency_deployments.rs), which a second one approves.
        let justification = "Toxicity eval flaky on the new harness; manual review INC-4411 passed.";
        let body = app.gql(&security, TRANSITION, json!({ "m": "fraud-scorer", "v": "2.0.0", "to": "PRODUCTION", "j": justification })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        assert!(error_message(&body).contains("only through an emergency deployment"), "{body}");
        let status = app.gql_ok(&owner, "{ modelVersion(model: \"fraud-scorer\", version: \"2.0.0\") { status } }", json!({})).await;
        assert_eq!(status["modelVersion"]["status"], "STAGING");
    }
}

on_both_backends! {
    async fn promoting_a_version_deprecates_the_previous_production_version(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        for v in ["1.0.0", "1.1.0"] {
            app.gql_ok(&owner, CREATE_VERSION, json!({ "i": { "model": "fraud-scorer", "version": v } })).await;
            app.gql_ok(&owner, TRANSITION, json!({ "m": "fraud-scorer", "v": v, "to": "STAGING" })).await;
            app.gql_ok(&owner, TRANSITION, json!({ "m": "fraud-scorer", "v": v, "to": "PRODUCTION" })).await;
        }
        let read = app.gql_ok(&owner, "{ model(name: \"fraud-scorer\") { versions { edges { node { version status } } } } }", json!({})).await;
        let statuses: Vec<(String, String)> = read["model"]["versions"]["edges"].as_array().expect("edges").iter()
            .map(|e| (e["node"]["version"].as_str().unwrap_or("").to_owned(), e["node"]["status"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(statuses, vec![("1.0.0".into(), "DEPRECATED".into()), ("1.1.0".into(), "PRODUCTION".into())]);
    }
}

on_both_backends! {
    async fn models_page_with_cursors(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        for i in 0..5 {
            app.create_model(&owner, &format!("model-{i}"), "payments-ml").await;
        }
        let q = "query($after: String) { models(first: 2, after: $after) { pageInfo { hasNextPage endCursor } edges { node { name } } } }";
        let mut names = Vec::new();
        let mut after = serde_json::Value::Null;
        loop {
            let page = app.gql_ok(&owner, q, json!({ "after": after })).await;
            for e in page["models"]["edges"].as_array().expect("edges") {
                names.push(e["node"]["name"].as_str().unwrap_or("").to_owned());
            }
            if !page["models"]["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
                break;
            }
            after = page["models"]["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(names, (0..5).map(|i| format!("model-{i}")).collect::<Vec<_>>());
        let body = app.gql(&owner, "{ models(first: 101) { edges { node { name } } } }", json!({})).await;
        assert_eq!(error_code(&body), "VALIDATION");
    }
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys_enforced() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = crate::support::TestApp::spawn(crate::support::Backend::Sqlite).await;
    let db = app.services.store().reader();
    let pragma = |name: &'static str| async move {
        let row = db
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                format!("PRAGMA {name}"),
            ))
            .await
            .expect("pragma")
            .expect("row");
        row.try_get_by_index::<String>(0)
            .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
            .expect("value")
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("foreign_keys").await, "1");
    let orphan = db
        .execute_unprepared("INSERT INTO model_versions (model_id, major, minor, patch, status, provenance, created_by, created_at, status_changed_at) VALUES (999, 1, 0, 0, 'development', '{}', 'x', '2026-01-01', '2026-01-01')")
        .await;
    assert!(
        orphan.is_err(),
        "a version of a model that does not exist is refused"
    );
}
