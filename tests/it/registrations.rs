//! Registration webhooks: Standard Webhooks signatures per source, replay protection,
//! exactly-once application per message id, and whole-batch failure with a named error.

use crate::support::TestApp;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sunset::ingest::standard_webhooks::Secret;

pub(crate) async fn source(app: &TestApp, name: &str) -> String {
    let data = app
        .gql_ok(&app.admin, "mutation($n: String!) { createWebhookSource(name: $n) { secret source { name enabled } } }", json!({ "n": name }))
        .await;
    data["createWebhookSource"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

pub(crate) struct Post<'a> {
    pub(crate) secret: &'a str,
    pub(crate) id: &'a str,
    pub(crate) at: i64,
}

pub(crate) async fn post(app: &TestApp, p: Post<'_>, body: &Value) -> reqwest::Response {
    post_to(app, &app.address, p, body).await
}

/// Posts to the instance at `address` (the app's own, or a sibling's).
async fn post_to(app: &TestApp, address: &str, p: Post<'_>, body: &Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).expect("json");
    let signature = Secret::parse(p.secret)
        .expect("secret")
        .sign(p.id, p.at, &bytes);
    app.client
        .post(format!("{address}/v1/hooks/registrations"))
        .header("content-type", "application/json")
        .header("webhook-id", p.id)
        .header("webhook-timestamp", p.at.to_string())
        .header("webhook-signature", signature)
        .body(bytes)
        .send()
        .await
        .expect("post")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn batch() -> Value {
    json!({ "registrations": [
        { "type": "consumer", "name": "checkout-api", "kind": "service", "ownerTeam": "payments",
          "environment": "production", "contacts": ["payments@example.org"],
          "uses": [{ "model": "fraud-scorer", "version": "^1" }], "dependsOn": ["gateway"] },
        { "type": "consumer", "name": "gateway", "kind": "service", "ownerTeam": "platform", "environment": "production" },
        { "type": "consumer", "name": "web", "kind": "service", "ownerTeam": "platform", "environment": "production",
          "dependsOn": ["checkout-api"] }
    ] })
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let db = app.services.store().reader();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .expect("count");
    rows[0].try_get::<i64>("", "n").expect("n")
}

const DEPENDENTS: &str = "{ dependents(model: \"fraud-scorer\", version: \"1.0.0\") { nodes { name depth path { evidence { origin originName observations } } } } }";

on_both_backends! {
    async fn a_signed_batch_is_applied_once_and_answers_name_its_source(app) {
        crate::artifacts::model_with_version(&app).await;
        let secret = source(&app, "ci-deployer").await;
        assert!(secret.starts_with("whsec_"));
        let first = post(&app, Post { secret: &secret, id: "msg_1", at: now() }, &batch()).await;
        assert_eq!(first.status(), 200);
        let answer: Value = first.json().await.expect("json");
        assert_eq!(answer["applied"], 3);
        assert_eq!(answer["edges"], 3);
        assert_eq!(answer["duplicate"], false);

        let data = app.gql_ok(&app.admin, DEPENDENTS, json!({})).await;
        let nodes = data["dependents"]["nodes"].as_array().expect("nodes");
        let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap_or("")).collect();
        assert_eq!(names, vec!["checkout-api", "web"]);
        let evidence = &nodes[0]["path"][0]["evidence"][0];
        assert_eq!(evidence["origin"], "WEBHOOK");
        assert_eq!(evidence["originName"], "ci-deployer");

        // The same message again (a sender's retry) is acknowledged and not applied twice.
        let audit = app.audit_count().await;
        let again = post(&app, Post { secret: &secret, id: "msg_1", at: now() }, &batch()).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<Value>().await.expect("json")["duplicate"], true);
        assert_eq!(app.audit_count().await, audit);
        let data = app.gql_ok(&app.admin, DEPENDENTS, json!({})).await;
        assert_eq!(data["dependents"]["nodes"][0]["path"][0]["evidence"][0]["observations"], 1);

        // A new message confirms the same edges: counted, not duplicated.
        assert_eq!(post(&app, Post { secret: &secret, id: "msg_2", at: now() }, &batch()).await.status(), 200);
        let data = app.gql_ok(&app.admin, DEPENDENTS, json!({})).await;
        assert_eq!(data["dependents"]["nodes"][0]["path"][0]["evidence"][0]["observations"], 2);
        assert_eq!(count(&app, "inventory_edges").await, 3);

        let log = app.gql_ok(&app.token("aud", "auditor", None).await, "{ auditLog(filter: { action: \"inventory.registrations_applied\" }) { edges { node { actor after } } } }", json!({})).await;
        assert_eq!(log["auditLog"]["edges"].as_array().map(Vec::len), Some(2));
        assert_eq!(log["auditLog"]["edges"][0]["node"]["actor"], "webhook:ci-deployer");
    }
}

on_both_backends! {
    async fn unsigned_stale_tampered_and_disabled_messages_are_refused(app) {
        crate::artifacts::model_with_version(&app).await;
        let secret = source(&app, "ci").await;
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let audit = app.audit_count().await;

        let wrong_key = post(&app, Post { secret: other, id: "m1", at: now() }, &batch()).await;
        assert_eq!(wrong_key.status(), 401);
        let stale = post(&app, Post { secret: &secret, id: "m2", at: now() - 600 }, &batch()).await;
        assert_eq!(stale.status(), 401);
        assert!(stale.text().await.expect("text").contains("outside the accepted window"));
        let future = post(&app, Post { secret: &secret, id: "m3", at: now() + 600 }, &batch()).await;
        assert_eq!(future.status(), 401);

        // A valid signature over another body does not carry over.
        let bytes = serde_json::to_vec(&batch()).expect("json");
        let at = now();
        let signature = Secret::parse(&secret).expect("secret").sign("m4", at, b"{}");
        let tampered = app.client.post(format!("{}/v1/hooks/registrations", app.address))
            .header("webhook-id", "m4").header("webhook-timestamp", at.to_string())
            .header("webhook-signature", signature).body(bytes).send().await.expect("post");
        assert_eq!(tampered.status(), 401);
        let unsigned = app.client.post(format!("{}/v1/hooks/registrations", app.address))
            .body(serde_json::to_vec(&batch()).expect("json")).send().await.expect("post");
        assert_eq!(unsigned.status(), 401);

        app.gql_ok(&app.admin, "mutation { disableWebhookSource(name: \"ci\") { enabled } }", json!({})).await;
        let disabled = post(&app, Post { secret: &secret, id: "m5", at: now() }, &batch()).await;
        assert_eq!(disabled.status(), 401);

        assert_eq!(count(&app, "consumers").await, 0);
        assert_eq!(app.audit_count().await, audit + 1, "only the disabling was recorded");
    }
}

on_both_backends! {
    async fn one_invalid_registration_fails_the_whole_batch_and_is_named(app) {
        crate::artifacts::model_with_version(&app).await;
        let secret = source(&app, "ci").await;
        let audit = app.audit_count().await;
        let revision = app.services.inventory().refresh_inventory().await.expect("revision");
        let mut bad = batch();
        bad["registrations"][2]["dependsOn"] = json!(["no-such-service"]);
        let refused = post(&app, Post { secret: &secret, id: "m1", at: now() }, &bad).await;
        assert_eq!(refused.status(), 422);
        let body: Value = refused.json().await.expect("json");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("registration 3 (consumer web): ") && message.contains("no-such-service"), "numbered from 1, said once: {message}");

        let mut unparsable = batch();
        unparsable["registrations"][1]["kind"] = json!("mainframe");
        let refused = post(&app, Post { secret: &secret, id: "m2", at: now() }, &unparsable).await;
        assert_eq!(refused.status(), 422);
        let body: Value = refused.json().await.expect("json");
        assert!(body["error"]["message"].as_str().expect("message").contains("registration 2 (gateway)"), "{body}");

        assert_eq!(count(&app, "consumers").await, 0, "nothing of a failed batch is kept");
        assert_eq!(count(&app, "inventory_edges").await, 0);
        assert_eq!(app.audit_count().await, audit);
        assert_eq!(app.services.inventory().refresh_inventory().await.expect("revision"), revision);

        // A failed message id is not burnt: the corrected batch under the same id applies.
        let fixed = post(&app, Post { secret: &secret, id: "m1", at: now() }, &batch()).await;
        assert_eq!(fixed.status(), 200);
    }
}

on_both_backends! {
    async fn source_secrets_are_stored_sealed(app) {
        let secret = source(&app, "ci").await;
        let db = app.services.store().reader();
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT secret FROM webhook_sources")).await.expect("rows");
        let stored: String = rows[0].try_get("", "secret").expect("secret");
        assert!(!stored.contains(secret.trim_start_matches("whsec_")));
    }
}

on_both_backends! {
    async fn concurrent_messages_commit_together_yet_fail_alone_and_apply_once(app) {
        crate::artifacts::model_with_version(&app).await;
        let secret = source(&app, "ci").await;
        let mut sends = Vec::new();
        for i in 0..40 {
            let body = if i == 17 {
                json!({ "registrations": [{ "type": "consumer", "name": "broken", "kind": "service", "ownerTeam": "t", "environment": "e", "uses": [{ "model": "no-such-model", "version": "1.0.0" }] }] })
            } else {
                json!({ "registrations": [{ "type": "consumer", "name": format!("svc-{i}"), "kind": "service", "ownerTeam": "t", "environment": "e", "uses": [{ "model": "fraud-scorer", "version": "1.0.0" }] }] })
            };
            // Every message is sent twice at once, as an impatient sender would.
            for _ in 0..2 {
                let (app, secret, body) = (&app, secret.clone(), body.clone());
                sends.push(async move {
                    let id = format!("msg-{i}");
                    let r = post(app, Post { secret: &secret, id: &id, at: now() }, &body).await;
                    (i, r.status().as_u16(), r.json::<Value>().await.expect("json"))
                });
            }
        }
        let results = futures_util::future::join_all(sends).await;
        for (i, status, body) in &results {
            if *i == 17 {
                assert_eq!(*status, 422, "{body}");
            } else {
                assert_eq!(*status, 200, "{body}");
            }
        }
        let applied = results.iter().filter(|(_, s, b)| *s == 200 && b["duplicate"] == false).count();
        let duplicates = results.iter().filter(|(_, _, b)| b["duplicate"] == true).count();
        assert_eq!((applied, duplicates), (39, 39), "each good message applied once, its twin acknowledged as a duplicate");
        assert_eq!(count(&app, "consumers").await, 39);
        assert_eq!(count(&app, "inventory_edges").await, 39);
        let data = app.gql_ok(&app.admin, "{ dependents(model: \"fraud-scorer\", version: \"1.0.0\") { total } }", json!({})).await;
        assert_eq!(data["dependents"]["total"], 39);
    }
}

on_both_backends! {
    /// Receipts are kept while a replay could still pass the timestamp check, and dropped
    /// after: a message accepted at R carried a timestamp within the tolerance (300 s) of R,
    /// so from R + 600 s on it is refused as stale before its id is looked up.
    async fn receipts_are_pruned_once_no_replay_could_pass(t: crate::support::Clocked = crate::support::clocked) {
        use sunset::clock::Clock;
        let (app, clock, start) = (t.app, t.clock, t.start);
        crate::artifacts::model_with_version(&app).await;
        let secret = source(&app, "ci").await;
        let sent = |id: &'static str| {
            let (secret, app, at) = (secret.clone(), &app, clock.now().timestamp());
            async move {
                post(
                    app,
                    Post {
                        secret: &secret,
                        id,
                        at,
                    },
                    &batch(),
                )
                .await
                .status()
            }
        };
        assert_eq!(sent("old").await, 200);
        clock.advance(chrono::Duration::seconds(500));
        assert_eq!(sent("mid").await, 200);
        // 500 s on, a replay of "old" could still be inside the window: kept.
        assert_eq!(count(&app, "webhook_receipts").await, 2);

        clock.advance(chrono::Duration::seconds(500));
        assert_eq!(sent("new").await, 200);
        // 1000 s on, "old" is gone; "mid" (500 s) and "new" stay.
        assert_eq!(count(&app, "webhook_receipts").await, 2);
        let replay = post(
            &app,
            Post {
                secret: &secret,
                id: "old",
                at: start.timestamp(),
            },
            &batch(),
        )
        .await;
        assert_eq!(
            replay.status(),
            401,
            "a replay that late is refused by its timestamp"
        );
        // "mid" is still known, so its retry is a duplicate, not applied again.
        let retry = post(
            &app,
            Post {
                secret: &secret,
                id: "mid",
                at: clock.now().timestamp(),
            },
            &batch(),
        )
        .await;
        assert_eq!(
            retry.json::<Value>().await.expect("json")["duplicate"],
            true
        );
    }
}

/// Source secrets are cached per instance; creating or disabling a source through one
/// instance reaches the others through the inventory change sequence, not by reloading
/// on every message that matches nothing (which a flood of forgeries would exploit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_created_or_disabled_through_one_instance_hold_in_another() {
    let app = TestApp::spawn(crate::support::Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    crate::artifacts::model_with_version(&app).await;
    let first = source(&app, "ci").await;
    other.caught_up_with(&app).await;
    let at_other = |secret: String, id: &'static str| {
        let (app, address) = (&app, other.address.clone());
        async move {
            post_to(
                app,
                &address,
                Post {
                    secret: &secret,
                    id,
                    at: now(),
                },
                &batch(),
            )
            .await
            .status()
        }
    };
    // The other instance opens the secrets it knows on its first message.
    assert_eq!(at_other(first.clone(), "m1").await, 200);

    // A source created afterwards through the first instance is known to the other.
    let second = source(&app, "cd").await;
    other.caught_up_with(&app).await;
    assert_eq!(at_other(second, "m2").await, 200);

    // A source disabled through the first instance is refused by the other.
    app.gql_ok(
        &app.admin,
        "mutation { disableWebhookSource(name: \"ci\") { enabled } }",
        json!({}),
    )
    .await;
    other.caught_up_with(&app).await;
    assert_eq!(at_other(first, "m3").await, 401);
}

on_both_backends! {
    async fn derivations_that_close_a_circle_within_one_message_are_refused_whole(app) {
        let owner = crate::artifacts::model_with_version(&app).await;
        app.create_model(&owner, "fraud-scorer-eu", "payments-ml").await;
        app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud-scorer-eu\", version: \"1.0.0\" }) { version } }", json!({})).await;
        let secret = source(&app, "ci-deployer").await;
        let edges = count(&app, "inventory_edges").await;
        let circle = json!({ "registrations": [
            { "type": "derivation", "model": "fraud-scorer-eu", "version": "1.0.0",
              "from": { "model": "fraud-scorer", "version": "1.0.0" }, "derivation": "fine-tune" },
            { "type": "derivation", "model": "fraud-scorer", "version": "1.0.0",
              "from": { "model": "fraud-scorer-eu", "version": "1.0.0" }, "derivation": "distillation" }
        ] });
        let refused = post(&app, Post { secret: &secret, id: "msg_circle", at: now() }, &circle).await;
        assert_eq!(refused.status(), 422);
        let text = refused.text().await.expect("body");
        assert!(text.contains("registration 2") && text.contains("circle"), "{text}");
        assert_eq!(count(&app, "inventory_edges").await, edges, "nothing of the batch is kept");

        // Either derivation alone is fine.
        let one = json!({ "registrations": [circle["registrations"][0].clone()] });
        assert_eq!(post(&app, Post { secret: &secret, id: "msg_one", at: now() }, &one).await.status(), 200);
        assert_eq!(count(&app, "inventory_edges").await, edges + 1);
    }
}

on_both_backends! {
    async fn derivations_and_consumers_sent_together_commit_as_one_path_and_never_close_a_circle(app) {
        let owner = crate::artifacts::model_with_version(&app).await;
        app.create_model(&owner, "fraud-scorer-eu", "payments-ml").await;
        app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud-scorer-eu\", version: \"1.0.0\" }) { version } }", json!({})).await;
        let secret = source(&app, "ci").await;
        let derive = |model: &str, from: &str| json!({ "registrations": [
            { "type": "derivation", "model": model, "version": "1.0.0",
              "from": { "model": from, "version": "1.0.0" }, "derivation": "fine-tune" } ] });
        // Two derivations that would close a circle together, sent at once among consumer
        // registrations and one naming a version that does not exist: whichever commits
        // first stands, in one group or in two.
        let mut bodies = vec![
            ("msg-eu".to_owned(), derive("fraud-scorer-eu", "fraud-scorer")),
            ("msg-back".to_owned(), derive("fraud-scorer", "fraud-scorer-eu")),
            (
                "msg-missing".to_owned(),
                json!({ "registrations": [
                    { "type": "derivation", "model": "fraud-scorer", "version": "9.9.9",
                      "from": { "model": "fraud-scorer-eu", "version": "1.0.0" } } ] }),
            ),
        ];
        for i in 0..12 {
            bodies.push((
                format!("msg-c{i}"),
                json!({ "registrations": [{ "type": "consumer", "name": format!("svc-{i}"), "kind": "service", "ownerTeam": "t", "environment": "e", "uses": [{ "model": "fraud-scorer", "version": "1.0.0" }] }] }),
            ));
        }
        let sends = bodies.iter().map(|(id, body)| {
            let (app, secret) = (&app, secret.clone());
            async move {
                let r = post(app, Post { secret: &secret, id, at: now() }, body).await;
                (id.as_str(), r.status().as_u16(), r.text().await.expect("body"))
            }
        });
        let results = futures_util::future::join_all(sends).await;
        let refused: Vec<&(&str, u16, String)> = results.iter().filter(|(_, s, _)| *s != 200).collect();
        assert_eq!(refused.len(), 2, "{results:#?}");
        let circle: Vec<_> = refused.iter().filter(|(_, _, t)| t.contains("circle")).collect();
        assert_eq!(circle.len(), 1, "exactly one of the two derivations is refused: {results:#?}");
        assert!(["msg-eu", "msg-back"].contains(&circle[0].0));
        assert!(refused.iter().any(|(id, s, t)| *id == "msg-missing" && *s == 422 && t.contains("no version fraud-scorer@9.9.9")), "{results:#?}");
        assert_eq!(count(&app, "inventory_edges").await, 13, "twelve uses and one derivation");
        assert_eq!(
            app.services.inventory().inventory_snapshot(),
            app.services.inventory().inventory_snapshot_from_database().await.expect("db")
        );
    }
}

/// A registration naming `name` with `team` and `kind`, using fraud-scorer ^1.
fn declaring(name: &str, kind: &str, team: &str) -> Value {
    json!({ "registrations": [
        { "type": "consumer", "name": name, "kind": kind, "ownerTeam": team,
          "environment": "production", "contacts": [format!("{team}@example.org")],
          "uses": [{ "model": "fraud-scorer", "version": "^1" }] }
    ] })
}

async fn consumer_facts(app: &TestApp, name: &str) -> Value {
    app.gql_ok(
        &app.admin,
        "query($n: String!) { consumer(name: $n) { kind ownerTeam contacts } }",
        json!({ "n": name }),
    )
    .await["consumer"]
        .clone()
}

on_both_backends! {
    async fn a_source_changes_only_consumers_it_created_and_never_a_gateway(app) {
        crate::artifacts::model_with_version(&app).await;
        let ci = source(&app, "ci").await;
        let rogue = source(&app, "rogue").await;
        let declare = "mutation($i: ConsumerInputGql!) { declareConsumer(input: $i) { consumer { name } } }";
        app.gql_ok(&app.admin, declare, json!({ "i": { "name": "edge-gw", "kind": "GATEWAY", "ownerTeam": "platform", "environment": "production", "contacts": ["platform@example.org"] } })).await;
        app.gql_ok(&app.admin, declare, json!({ "i": { "name": "web", "kind": "SERVICE", "ownerTeam": "platform", "environment": "production", "contacts": ["platform@example.org"] } })).await;

        // A consumer the API declared keeps its facts; the source's usage is still recorded.
        let answer: Value = post(&app, Post { secret: &ci, id: "m1", at: now() }, &declaring("web", "pipeline", "attackers")).await.json().await.expect("json");
        assert_eq!(answer["applied"], 1, "{answer}");
        assert_eq!(answer["edges"], 1, "{answer}");
        let kept = answer["kept"][0].as_str().expect("kept");
        assert!(kept.contains("web") && kept.contains("ownerTeam") && kept.contains("test-admin"), "{kept}");
        assert_eq!(consumer_facts(&app, "web").await, json!({ "kind": "SERVICE", "ownerTeam": "platform", "contacts": ["platform@example.org"] }));
        let data = app.gql_ok(&app.admin, DEPENDENTS, json!({})).await;
        assert_eq!(data["dependents"]["nodes"][0]["name"], "web");
        assert_eq!(data["dependents"]["nodes"][0]["path"][0]["evidence"][0]["originName"], "ci");

        // An enforcement point is never turned into something the kill switch skips.
        let answer: Value = post(&app, Post { secret: &ci, id: "m2", at: now() }, &declaring("edge-gw", "service", "platform")).await.json().await.expect("json");
        assert!(answer["kept"][0].as_str().expect("kept").contains("enforcement point"), "{answer}");
        assert_eq!(consumer_facts(&app, "edge-gw").await["kind"], "GATEWAY");

        // A source changes what it created, with before and after in the audit trail;
        // another source cannot.
        post(&app, Post { secret: &ci, id: "m3", at: now() }, &declaring("batch-scorer", "job", "risk")).await;
        let answer: Value = post(&app, Post { secret: &ci, id: "m4", at: now() }, &declaring("batch-scorer", "pipeline", "risk-ops")).await.json().await.expect("json");
        assert_eq!(answer["kept"], json!([]), "{answer}");
        assert_eq!(consumer_facts(&app, "batch-scorer").await["ownerTeam"], "risk-ops");
        let answer: Value = post(&app, Post { secret: &rogue, id: "m5", at: now() }, &declaring("batch-scorer", "job", "rogue")).await.json().await.expect("json");
        assert!(answer["kept"][0].as_str().expect("kept").contains("webhook:ci"), "{answer}");
        assert_eq!(consumer_facts(&app, "batch-scorer").await["ownerTeam"], "risk-ops");

        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { action: \"consumer.updated\", subject: \"batch-scorer\" }) { edges { node { actor before after } } } }", json!({})).await;
        let edges = log["auditLog"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), 1, "{log}");
        assert_eq!(edges[0]["node"]["actor"], "webhook:ci");
        assert!(edges[0]["node"]["before"].to_string().contains("\\\"ownerTeam\\\":\\\"risk\\\""), "{log}");
        assert!(edges[0]["node"]["after"].to_string().contains("risk-ops"), "{log}");
    }
}

on_both_backends! {
    async fn the_group_commit_worker_is_started_again_after_it_dies(app) {
        use sunset::failpoints::FailAction;
        crate::artifacts::model_with_version(&app).await;
        let secret = source(&app, "ci").await;
        app.services.failpoints().arm("registration-group", FailAction::Panic);
        let died = post(&app, Post { secret: &secret, id: "m1", at: now() }, &batch()).await;
        assert_eq!(died.status(), 500, "the message its worker died with is not applied");
        app.services.failpoints().clear();
        let applied = post(&app, Post { secret: &secret, id: "m2", at: now() }, &batch()).await;
        assert_eq!(applied.status(), 200, "a new worker takes the next message");
        assert_eq!(applied.json::<Value>().await.expect("json")["applied"], 3);
        let again = post(&app, Post { secret: &secret, id: "m1", at: now() }, &batch()).await;
        assert_eq!(again.status(), 200, "the lost message can be sent again");
        assert_eq!(again.json::<Value>().await.expect("json")["duplicate"], false);
    }
}
