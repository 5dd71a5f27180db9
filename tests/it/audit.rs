//! The audit trail: what every change records, who may read it, and that tampering shows.

use crate::support::error_code;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sunset::audit::ChainBreak;
use sunset::auth::Actor;
use sunset::service::ModelInput;

const LOG: &str = "query($f: AuditFilter, $first: Int, $after: String) { auditLog(filter: $f, first: $first, after: $after) { pageInfo { hasNextPage endCursor } edges { node { seq recordedAt actor actorRole action subjectType subject before after prevHash hash } } } }";

fn nodes(data: &Value) -> Vec<Value> {
    data["auditLog"]["edges"]
        .as_array()
        .map(|e| e.iter().map(|x| x["node"].clone()).collect())
        .unwrap_or_default()
}

on_both_backends! {
    async fn every_change_records_actor_time_type_and_before_and_after(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let auditor = app.token("aud", "auditor", None).await;
        app.create_model(&owner, "fraud-scorer", "payments-ml").await;
        app.gql_ok(&owner, "mutation { updateModel(name: \"fraud-scorer\", input: { tier: CRITICAL }) { tier } }", json!({})).await;

        let data = app.gql_ok(&auditor, LOG, json!({ "f": { "subject": "fraud-scorer" } })).await;
        let records = nodes(&data);
        let actions: Vec<&str> = records.iter().filter_map(|r| r["action"].as_str()).collect();
        assert_eq!(actions, vec!["model.created", "model.updated"]);
        let update = &records[1];
        assert_eq!(update["actor"], "owner-a");
        assert_eq!(update["actorRole"], "owner");
        assert_eq!(update["subjectType"], "model");
        let before: Value = serde_json::from_str(update["before"].as_str().expect("before")).expect("json");
        let after: Value = serde_json::from_str(update["after"].as_str().expect("after")).expect("json");
        assert_eq!((before["tier"].as_str(), after["tier"].as_str()), (Some("high"), Some("critical")));
        assert!(records[0]["before"].is_null(), "a creation has no before state");
        assert_eq!(update["prevHash"], records[0]["hash"], "chained to the previous record of the log");

        let by_action = app.gql_ok(&auditor, LOG, json!({ "f": { "action": "token.created" } })).await;
        assert!(nodes(&by_action).iter().all(|r| r["action"] == "token.created") && !nodes(&by_action).is_empty());
        let future = app.gql_ok(&auditor, LOG, json!({ "f": { "from": "2999-01-01T00:00:00Z" } })).await;
        assert!(nodes(&future).is_empty());
        let body = app.gql(&auditor, LOG, json!({ "f": { "action": "model.exploded" } })).await;
        assert_eq!(error_code(&body), "VALIDATION");
    }
}

on_both_backends! {
    async fn reading_the_audit_log_needs_the_auditor_role_and_every_read_is_recorded(app) {
        let reader = app.token("curious", "reader", None).await;
        let auditor = app.token("aud", "auditor", None).await;
        let body = app.gql(&reader, LOG, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app.gql(&app.admin, LOG, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "not even admin reads the audit log");

        app.gql_ok(&auditor, LOG, json!({ "f": { "subject": "anything" } })).await;
        let data = app.gql_ok(&auditor, LOG, json!({ "f": { "subject": "audit_log" } })).await;
        let reads: Vec<(String, String)> = nodes(&data).iter()
            .map(|r| (r["actor"].as_str().unwrap_or("").to_owned(), r["action"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(reads, vec![
            ("curious".to_owned(), "audit.read_denied".to_owned()),
            ("test-admin".to_owned(), "audit.read_denied".to_owned()),
            ("aud".to_owned(), "audit.read".to_owned()),
        ]);
        let first_read: Value = serde_json::from_str(nodes(&data)[2]["after"].as_str().unwrap_or("{}")).expect("json");
        assert_eq!(first_read["query"]["subject"], "anything", "records what was asked");
    }
}

on_both_backends! {
    async fn the_audit_log_pages_and_exports_as_json_lines(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let auditor = app.token("aud", "auditor", None).await;
        for i in 0..7 {
            app.create_model(&owner, &format!("m{i}"), "payments-ml").await;
        }
        let mut seqs = Vec::new();
        let mut after = Value::Null;
        loop {
            let data = app.gql_ok(&auditor, LOG, json!({ "f": { "action": "model.created" }, "first": 3, "after": after })).await;
            seqs.extend(nodes(&data).iter().filter_map(|r| r["seq"].as_i64()));
            if !data["auditLog"]["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) { break; }
            after = data["auditLog"]["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seqs.len(), 7);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));

        let r = app.client.get(format!("{}/v1/audit/export?action=model.created", app.address)).bearer_auth(&auditor).send().await.expect("get");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        let text = r.text().await.expect("body");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
        assert_eq!(lines.len(), 7);
        assert!(lines.iter().all(|l| l["action"] == "model.created" && l["hash"].as_str().map(str::len) == Some(64)));

        let r = app.client.get(format!("{}/v1/audit/export", app.address)).bearer_auth(&owner).send().await.expect("get");
        assert_eq!(r.status(), 403);
        let data = app.gql_ok(&auditor, LOG, json!({ "f": { "subject": "audit_log" } })).await;
        let actions: Vec<&str> = nodes(&data).iter().filter_map(|r| r["action"].as_str()).map(|s| match s { "audit.exported" => "exported", "audit.read_denied" => "denied", _ => "read" }).collect::<Vec<_>>().into_iter().collect();
        assert!(actions.contains(&"exported") && actions.contains(&"denied"), "{actions:?}");
    }
}

on_both_backends! {
    async fn concurrent_writers_keep_one_unbroken_chain(app) {
        let owner_actor = Actor { name: "owner-a".into(), role: sunset::domain::Role::Owner, team: Some(sunset::domain::TeamName::parse("payments-ml").expect("team")), kind: sunset::auth::ActorKind::Token, consumer: None, client_ip: None };
        let before = app.audit_count().await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let services = app.services.clone();
            let actor = owner_actor.clone();
            tasks.push(tokio::spawn(async move {
                services.registry().create_model(&actor, ModelInput { name: format!("c{i}"), owner_team: "payments-ml".into(), tier: "standard".into(), description: String::new(), contacts: vec![] }).await
            }));
        }
        for t in tasks {
            t.await.expect("task").expect("create");
        }
        assert_eq!(app.audit_count().await, before + 40);
        let report = app.services.audit().verify_audit_chain(vec![]).await.expect("verify runs").expect("chain intact");
        assert_eq!(report.records, before + 40);
    }
}

on_both_backends! {
    async fn tampering_in_the_database_is_detected_and_a_kept_checkpoint_catches_truncation(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        for i in 0..4 {
            app.create_model(&owner, &format!("m{i}"), "payments-ml").await;
        }
        let cp = app.gql_ok(&app.admin, "mutation { signAuditCheckpoint { seq json } }", json!({})).await;
        let head = cp["signAuditCheckpoint"]["seq"].as_i64().expect("seq");
        let db = app.services.store().reader();
        app.services.audit().verify_audit_chain(vec![]).await.expect("runs").expect("intact before tampering");

        db.execute_unprepared("UPDATE audit_records SET actor = 'mallory' WHERE seq = 3").await.expect("tamper");
        let outcome = app.services.audit().verify_audit_chain(vec![]).await.expect("runs");
        assert_eq!(outcome, Err(ChainBreak::Edited { seq: 3 }));
        db.execute_unprepared("UPDATE audit_records SET actor = 'owner-a' WHERE seq = 3").await.expect("restore");
        app.services.audit().verify_audit_chain(vec![]).await.expect("runs").expect("intact once restored");

        // Cut the tail: only the signed checkpoint can tell.
        db.execute_unprepared(&format!("DELETE FROM audit_records WHERE seq = {head}")).await.expect("truncate");
        let outcome = app.services.audit().verify_audit_chain(vec![]).await.expect("runs");
        assert!(matches!(outcome, Err(ChainBreak::Truncated { seq, .. }) if seq == head), "{outcome:?}");
        // Removing the database's copy of the checkpoint does not help: the file in the data folder keeps one.
        db.execute_unprepared("DELETE FROM audit_checkpoints").await.expect("drop checkpoints");
        let outcome = app.services.audit().verify_audit_chain(vec![]).await.expect("runs");
        assert!(matches!(outcome, Err(ChainBreak::Truncated { .. })), "{outcome:?}");

    }
}

on_both_backends! {
    /// Two independent stores on one database stand for two service instances sharing
    /// PostgreSQL, or the CLI writing next to a running service on SQLite. Each caches
    /// its own chain head; neither may fork the chain or lose a change.
    async fn two_writers_with_their_own_head_caches_never_fork_the_chain(app) {
        let url = app.settings.database_url();
        let other_store = sunset::store::Store::connect(url.expose()).await.expect("second store");
        let key = sunset::attest::ServiceKey::load(&app.settings.key_dir().join(sunset::attest::service_key::FILE_NAME)).expect("key");
        let other = sunset::service::Services::new(other_store, std::sync::Arc::new(sunset::clock::SystemClock), key, None, &app.settings);
        let owner = Actor {
            name: "owner-a".into(),
            role: sunset::domain::Role::Owner,
            team: Some(sunset::domain::TeamName::parse("payments-ml").expect("team")),
            kind: sunset::auth::ActorKind::Token,
            consumer: None,
            client_ip: None,
        };
        let model = |name: String| ModelInput { name, owner_team: "payments-ml".into(), tier: "standard".into(), description: String::new(), contacts: vec![] };
        let before = app.audit_count().await;
        let mut tasks = Vec::new();
        for (i, services) in [app.services.clone(), other.clone()].into_iter().cycle().take(30).enumerate() {
            let actor = owner.clone();
            let input = model(format!("w{i}"));
            tasks.push(tokio::spawn(async move { services.registry().create_model(&actor, input).await }));
        }
        for t in tasks {
            t.await.expect("task").expect("every change lands, redone if another writer went first");
        }
        assert_eq!(app.audit_count().await, before + 30);
        app.services.audit().verify_audit_chain(vec![]).await.expect("runs").expect("one unbroken chain");
        // Each still writes after the other moved the head on behind its back.
        for (i, s) in [&app.services, &other, &app.services].into_iter().enumerate() {
            s.registry().create_model(&owner, model(format!("after{i}"))).await.expect("write");
        }
        app.services.audit().verify_audit_chain(vec![]).await.expect("runs").expect("still one chain");
    }
}

on_both_backends! {
    async fn a_refused_caller_is_recorded_with_what_was_refused_and_why(app) {
        let owner = crate::artifacts::model_with_version(&app).await;
        let reader = app.token("nosy", "reader", None).await;
        let auditor = app.token("aud", "auditor", None).await;
        let before = app.audit_count().await;

        // A GraphQL mutation beyond the role: one record naming the field and the rule.
        let body = app.gql(&reader, "mutation { createModel(input: { name: \"m-x\", ownerTeam: \"team-a\", tier: HIGH }) { name } }", json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        // An HTTP route beyond the role.
        let put = app.client
            .put(format!("{}/v1/models/fraud-scorer/versions/1.0.0/artifacts/x.bin", app.address))
            .bearer_auth(&reader).body("x").send().await.expect("put");
        assert_eq!(put.status(), 403);
        // Refusals of no one (no token) are logged, not written to the trail.
        let anonymous = app.client
            .put(format!("{}/v1/models/fraud-scorer/versions/1.0.0/artifacts/x.bin", app.address))
            .body("x").send().await.expect("put");
        assert_eq!(anonymous.status(), 401);
        // A refused audit read is recorded once, as audit.read_denied.
        assert_eq!(error_code(&app.gql(&reader, LOG, json!({})).await), "FORBIDDEN");
        // What is allowed leaves no refusal.
        app.gql_ok(&owner, "{ models { edges { node { name } } } }", json!({})).await;
        assert_eq!(app.audit_count().await, before + 3);

        let data = app.gql_ok(&auditor, LOG, json!({ "f": { "action": "access.refused" } })).await;
        let refused = nodes(&data);
        assert_eq!(refused.len(), 2, "{data:#}");
        for r in &refused {
            assert_eq!((r["actor"].as_str(), r["actorRole"].as_str(), r["subjectType"].as_str()), (Some("nosy"), Some("reader"), Some("operation")));
        }
        let why = |r: &Value| -> Value { serde_json::from_str(r["after"].as_str().unwrap_or("{}")).expect("json") };
        let graphql = why(&refused[0]);
        assert_eq!(refused[0]["subject"], "graphql");
        assert_eq!(graphql["refused"][0]["at"], "createModel", "{graphql}");
        assert!(graphql["refused"][0]["message"].as_str().unwrap_or("").contains("reader"), "{graphql}");
        assert_eq!(refused[1]["subject"], "PUT /v1/models/fraud-scorer/versions/1.0.0/artifacts/x.bin");
        assert!(why(&refused[1])["refused"][0]["message"].as_str().unwrap_or("").contains("owner role"));
    }
}

const CREATE: &str = "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }";
const WITH_ADDRESS: &str = "query($f: AuditFilter) { auditLog(filter: $f, first: 50) { edges { node { seq action actor clientIp } } } }";

on_both_backends! {
    /// Who, what, when, and from where: a change over HTTP records the connection's
    /// peer; a client's own X-Forwarded-For is not believed; the address is under the
    /// record's hash, so editing it in the database breaks the chain.
    async fn a_change_records_the_client_address_and_a_forged_header_is_not_believed(app) {
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let auditor = app.token("aud", "auditor", None).await;
        let response = app.client.post(format!("{}/graphql", app.address))
            .bearer_auth(&owner)
            .header("x-forwarded-for", "198.51.100.66")
            .json(&json!({ "query": CREATE, "variables": { "i": { "name": "fraud-scorer", "ownerTeam": "payments-ml", "tier": "HIGH", "contacts": ["ml@example.org"] } } }))
            .send().await.expect("request");
        assert_eq!(response.status(), 200);
        let data = app.gql_ok(&auditor, WITH_ADDRESS, json!({ "f": { "subject": "fraud-scorer" } })).await;
        let records = nodes(&data);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["clientIp"], "127.0.0.1", "the peer, not the header it sent");
        // Records by the service itself (token creation from the CLI) carry none.
        let tokens = app.gql_ok(&auditor, WITH_ADDRESS, json!({ "f": { "action": "token.created" } })).await;
        assert!(nodes(&tokens).iter().all(|r| r["clientIp"].is_null()));

        app.services.audit().verify_audit_chain(vec![]).await.expect("runs").expect("records with addresses verify");
        let seq = records[0]["seq"].as_i64().expect("seq");
        let db = app.services.store().reader();
        db.execute_unprepared(&format!("UPDATE audit_records SET client_ip = '10.0.0.1' WHERE seq = {seq}")).await.expect("tamper");
        let outcome = app.services.audit().verify_audit_chain(vec![]).await.expect("runs");
        assert_eq!(outcome, Err(ChainBreak::Edited { seq }));
        db.execute_unprepared(&format!("UPDATE audit_records SET client_ip = NULL WHERE seq = {seq}")).await.expect("tamper");
        let outcome = app.services.audit().verify_audit_chain(vec![]).await.expect("runs");
        assert_eq!(outcome, Err(ChainBreak::Edited { seq }), "removing the address shows too");
    }
}

on_both_backends! {
    /// Behind a trusted proxy the header names the client: the nearest hop that is not
    /// itself a trusted proxy, whatever the client wrote to its left.
    async fn behind_a_trusted_proxy_its_header_names_the_client(backend: crate::support::Backend = crate::support::backend) {
        let app = crate::support::TestApp::spawn_with(backend, std::sync::Arc::new(sunset::clock::SystemClock), |s| {
            s.http.trusted_proxies = vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()];
        }).await;
        let owner = app.token("owner-a", "owner", Some("payments-ml")).await;
        let auditor = app.token("aud", "auditor", None).await;
        let response = app.client.post(format!("{}/graphql", app.address))
            .bearer_auth(&owner)
            .header("x-forwarded-for", "1.1.1.1, 198.51.100.4")
            .header("x-forwarded-for", "10.2.3.4")
            .json(&json!({ "query": CREATE, "variables": { "i": { "name": "fraud-scorer", "ownerTeam": "payments-ml", "tier": "HIGH", "contacts": ["ml@example.org"] } } }))
            .send().await.expect("request");
        assert_eq!(response.status(), 200);
        let data = app.gql_ok(&auditor, WITH_ADDRESS, json!({ "f": { "subject": "fraud-scorer" } })).await;
        assert_eq!(nodes(&data)[0]["clientIp"], "198.51.100.4");
        app.services.audit().verify_audit_chain(vec![]).await.expect("runs").expect("intact");
    }
}
