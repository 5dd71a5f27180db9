//! The consumer inventory: declared and observed edges, questions over GraphQL, and the
//! graph in memory kept equal to the database, across instances too.

use crate::support::{Backend, TestApp, error_code, error_message};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const DECLARE: &str = "mutation($i: ConsumerInputGql!) { declareConsumer(input: $i) { created webhookSecret consumer { name kind ownerTeam discovered } } }";
const USE: &str = "mutation($c: String!, $m: String!, $v: String!) { declareUse(consumer: $c, model: $m, version: $v) { kind from to range origin originName } }";
const DEPENDS: &str = "mutation($c: String!, $d: String!) { declareDependency(consumer: $c, dependsOn: $d) { kind from to } }";
const DERIVE: &str = "mutation($m: String!, $v: String!, $fm: String!, $fv: String!) { declareDerivation(model: $m, version: $v, fromModel: $fm, fromVersion: $fv, derivation: \"fine-tune\") { kind from to derivation } }";
const DEPENDENTS: &str = "query($m: String!, $v: String!, $d: Int, $l: Int, $t: Boolean = true) { dependents(model: $m, version: $v, maxDepth: $d, limit: $l, transitive: $t) { revision complete behind total omittedByDepth omittedByLimit cycles { consumers } nodes { kind name depth consumer { ownerTeam } path { kind from to range evidence { origin originName stale observations } } } } }";

async fn consumer(app: &TestApp, token: &str, name: &str, team: &str) -> Value {
    app.gql_ok(
        token,
        DECLARE,
        json!({ "i": { "name": name, "kind": "SERVICE", "ownerTeam": team, "environment": "production", "contacts": [format!("{team}@example.org")] } }),
    )
    .await
}

async fn version(app: &TestApp, owner: &str, model: &str, v: &str) {
    app.gql_ok(
        owner,
        "mutation($m: String!, $v: String!) { createVersion(input: { model: $m, version: $v }) { version } }",
        json!({ "m": model, "v": v }),
    )
    .await;
}

/// base@1.0.0 ← tuned@1.0.0 (fine-tune); checkout uses base ^1; search uses tuned 1.0.0;
/// frontend → search. Returns (ml owner, payments owner).
pub async fn landscape(app: &TestApp) -> (String, String) {
    let ml = app.token("ml-owner", "owner", Some("ml")).await;
    let pay = app.token("pay-owner", "owner", Some("payments")).await;
    app.create_model(&ml, "base", "ml").await;
    app.create_model(&ml, "tuned", "ml").await;
    version(app, &ml, "base", "1.0.0").await;
    version(app, &ml, "base", "2.0.0").await;
    version(app, &ml, "tuned", "1.0.0").await;
    consumer(app, &pay, "checkout", "payments").await;
    consumer(app, &ml, "search", "ml").await;
    consumer(app, &pay, "frontend", "payments").await;
    app.gql_ok(
        &pay,
        USE,
        json!({ "c": "checkout", "m": "base", "v": "^1" }),
    )
    .await;
    app.gql_ok(
        &ml,
        USE,
        json!({ "c": "search", "m": "tuned", "v": "1.0.0" }),
    )
    .await;
    app.gql_ok(&pay, DEPENDS, json!({ "c": "frontend", "d": "search" }))
        .await;
    app.gql_ok(
        &ml,
        DERIVE,
        json!({ "m": "tuned", "v": "1.0.0", "fm": "base", "fv": "1.0.0" }),
    )
    .await;
    (ml, pay)
}

fn names(answer: &Value) -> Vec<(String, i64)> {
    answer["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or("").to_owned(),
                n["depth"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let db = app.services.store().reader();
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT action FROM audit_records ORDER BY seq",
    ))
    .await
    .expect("query")
    .iter()
    .map(|r| r.try_get::<String>("", "action").expect("action"))
    .collect()
}

on_both_backends! {
    async fn dependents_are_found_through_derived_models_and_consumer_links_with_their_paths(app) {
        let (_, _) = landscape(&app).await;
        let reader = app.token("reader", "reader", None).await;
        let data = app.gql_ok(&reader, DEPENDENTS, json!({ "m": "base", "v": "1.0.0" })).await;
        let a = &data["dependents"];
        assert_eq!(a["complete"], true);
        assert!(a["revision"].as_i64().unwrap_or(0) > 0, "{a}");
        assert_eq!(
            names(a),
            vec![("checkout".into(), 1), ("tuned@1.0.0".into(), 1), ("search".into(), 2), ("frontend".into(), 3)]
        );
        let frontend = &a["nodes"][3];
        assert_eq!(frontend["consumer"]["ownerTeam"], "payments");
        let path: Vec<(String, String, String)> = frontend["path"].as_array().expect("present").iter()
            .map(|s| (s["kind"].as_str().expect("present").to_owned(), s["from"].as_str().expect("present").to_owned(), s["to"].as_str().expect("present").to_owned()))
            .collect();
        assert_eq!(path, vec![
            ("DEPENDS_ON".into(), "frontend".into(), "search".into()),
            ("USES".into(), "search".into(), "tuned@1.0.0".into()),
            ("DERIVED_FROM".into(), "tuned@1.0.0".into(), "base@1.0.0".into()),
        ]);
        assert_eq!(frontend["path"][0]["evidence"][0]["origin"], "API");
        assert_eq!(frontend["path"][0]["evidence"][0]["originName"], "pay-owner");

        // The range ^1 does not reach 2.0.0, and nothing derives from it.
        let v2 = app.gql_ok(&reader, DEPENDENTS, json!({ "m": "base", "v": "2.0.0" })).await;
        assert_eq!(names(&v2["dependents"]), vec![]);

        // Limits are reported, never passed off as complete.
        let cut = app.gql_ok(&reader, DEPENDENTS, json!({ "m": "base", "v": "1.0.0", "d": 2 })).await;
        assert_eq!(cut["dependents"]["complete"], false);
        assert_eq!(cut["dependents"]["omittedByDepth"], 1);
        let small = app.gql_ok(&reader, DEPENDENTS, json!({ "m": "base", "v": "1.0.0", "l": 1 })).await;
        assert_eq!(small["dependents"]["total"], 4);
        assert_eq!(small["dependents"]["omittedByLimit"], 3);
        let direct = app.gql_ok(&reader, DEPENDENTS, json!({ "m": "base", "v": "1.0.0", "t": false })).await;
        assert_eq!(names(&direct["dependents"]), vec![("checkout".into(), 1), ("tuned@1.0.0".into(), 1)]);
        assert_eq!(direct["dependents"]["complete"], true);

        let deps = app.gql_ok(&reader, "{ dependencies(consumer: \"frontend\") { complete nodes { name depth } } }", json!({})).await;
        assert_eq!(names(&deps["dependencies"]), vec![("search".into(), 1), ("tuned@1.0.0".into(), 2), ("base@1.0.0".into(), 3)]);

        let impact = app.gql_ok(&reader, "{ impact(model: \"base\", version: \"1.0.0\") { direct total derivedVersions byTeam { key count } } }", json!({})).await;
        assert_eq!(impact["impact"], json!({ "direct": 1, "total": 3, "derivedVersions": 1, "byTeam": [{ "key": "ml", "count": 1 }, { "key": "payments", "count": 2 }] }));

        let actions = audit_actions(&app).await;
        assert_eq!(actions.iter().filter(|a| *a == "consumer.declared").count(), 3);
        assert_eq!(actions.iter().filter(|a| *a == "inventory.edge_declared").count(), 4);
    }
}

on_both_backends! {
    /// The graph meets a change referring to a consumer it never heard of (written behind
    /// the service's back), so it must load again whole; that load fails on a row it
    /// cannot read. Every refresh tries the load again, and once the row is repaired the
    /// graph equals the database: it is not left at the new revision, short of what it
    /// missed.
    async fn a_graph_that_missed_a_change_is_loaded_again_even_after_a_failed_load(app) {
        let (ml, _) = landscape(&app).await;
        let db = app.services.store().reader();
        let insert = |name: &str, kind: &str| {
            format!(
                "INSERT INTO consumers (name, kind, owner_team, environment, contacts, \
                 discovered, created_at, created_by, updated_at) VALUES ('{name}', '{kind}', \
                 'ml', 'production', '[]', false, '2026-11-30T00:00:00+00:00', 'test', \
                 '2026-11-30T00:00:00+00:00')"
            )
        };
        db.execute_unprepared(&insert("ghost", "service")).await.expect("ghost");
        db.execute_unprepared(&insert("unreadable", "spaceship")).await.expect("unreadable");
        // The use commits; the graph cannot apply it, nor load afresh.
        app.gql_ok(&ml, USE, json!({ "c": "ghost", "m": "tuned", "v": "1.0.0" })).await;
        let failed = app.services.inventory().refresh_inventory().await;
        assert!(failed.is_err(), "the load is tried again, and fails: {failed:?}");
        let ask = json!({ "m": "tuned", "v": "1.0.0" });
        let before = app.gql_ok(&ml, DEPENDENTS, ask.clone()).await;
        assert!(!names(&before["dependents"]).iter().any(|(n, _)| n == "ghost"));
        // Meanwhile answers say so: the graph is behind, and they are not complete;
        // the replica is not ready.
        assert_eq!(before["dependents"]["behind"], true);
        assert_eq!(before["dependents"]["complete"], false);
        let ready = app.client.get(format!("{}/readyz", app.address)).send().await.expect("readyz");
        assert_eq!(ready.status(), 503);
        assert_eq!(ready.json::<Value>().await.expect("json")["inventory"]["behind"], true);
        let mut events = app.services.inventory().inventory_events();

        db.execute_unprepared("UPDATE consumers SET kind = 'service' WHERE name = 'unreadable'")
            .await
            .expect("repair");
        app.services.inventory().refresh_inventory().await.expect("loaded again");
        assert_eq!(
            app.services.inventory().inventory_snapshot(),
            app.services.inventory().inventory_snapshot_from_database().await.expect("db")
        );
        // Subscribers hear of the whole load as such.
        let mut whole = false;
        while let Ok(event) = events.try_recv() {
            whole |= event.entity == "graph";
        }
        assert!(whole, "a whole-graph load is pushed to subscribers");
        let after = app.gql_ok(&ml, DEPENDENTS, ask).await;
        assert!(names(&after["dependents"]).contains(&("ghost".to_owned(), 1)));
        assert_eq!(after["dependents"]["behind"], false);
        assert_eq!(after["dependents"]["complete"], true);
    }
}

on_both_backends! {
    /// Changes older than `inventory.change_retention_days` are pruned, the newest kept;
    /// an instance whose graph still needed pruned ones sees the gap and loads whole.
    async fn pruned_changes(t: crate::support::Clocked = crate::support::clocked) {
        let (app, clock) = (t.app, t.clock);
        let ml = app.token("ml-owner", "owner", Some("ml")).await;
        app.create_model(&ml, "base", "ml").await;
        version(&app, &ml, "base", "1.0.0").await;
        // An instance that loads now and then does not follow for a long while.
        let behind = sunset::app::open(&app.settings, clock.clone())
            .await
            .expect("second instance");
        behind.inventory().load_inventory().await.expect("load");
        consumer(&app, &ml, "early", "ml").await;
        app.gql_ok(&ml, USE, json!({ "c": "early", "m": "base", "v": "1.0.0" }))
            .await;

        clock.advance(chrono::Duration::days(8));
        consumer(&app, &ml, "late", "ml").await;
        // The follower may be pruning too (its hourly prune may even have run a moment
        // ago, which would skip a rate-limited call); either way, what is left is this.
        app.services
            .inventory().prune_inventory_changes_now()
            .await
            .expect("prune");
        let db = app.services.store().reader();
        let count = |sql: &str| {
            let sql = sql.to_owned();
            async move {
                db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                    .await
                    .expect("count")
                    .expect("row")
                    .try_get::<i64>("", "n")
                    .expect("n")
            }
        };
        assert_eq!(
            count("SELECT COUNT(*) AS n FROM inventory_changes").await,
            1
        );
        assert_eq!(
            count("SELECT MAX(revision) AS n FROM inventory_changes").await,
            *app.services.inventory().inventory_revision().borrow(),
            "the newest change is kept"
        );

        behind.inventory().refresh_inventory().await.expect("caught up");
        assert_eq!(
            behind.inventory().inventory_snapshot(),
            app.services
                .inventory().inventory_snapshot_from_database()
                .await
                .expect("db")
        );
        // Revisions go on from the kept head, and both instances follow them.
        app.gql_ok(&ml, USE, json!({ "c": "late", "m": "base", "v": "1.0.0" }))
            .await;
        behind.inventory().refresh_inventory().await.expect("followed");
        assert_eq!(
            behind.inventory().inventory_snapshot(),
            app.services.inventory().inventory_snapshot()
        );
    }
}

on_both_backends! {
    async fn cycles_in_declared_dependencies_end_and_are_reported(app) {
        let (ml, pay) = landscape(&app).await;
        consumer(&app, &ml, "ranker", "ml").await;
        app.gql_ok(&ml, DEPENDS, json!({ "c": "search", "d": "ranker" })).await;
        app.gql_ok(&ml, DEPENDS, json!({ "c": "ranker", "d": "search" })).await;
        app.gql_ok(&pay, USE, json!({ "c": "checkout", "m": "base", "v": "^1" })).await;
        let data = app.gql_ok(&ml, DEPENDENTS, json!({ "m": "tuned", "v": "1.0.0" })).await;
        assert_eq!(data["dependents"]["cycles"], json!([{ "consumers": ["ranker", "search"] }]));
        assert_eq!(names(&data["dependents"]), vec![("search".into(), 1), ("frontend".into(), 2), ("ranker".into(), 2)]);

        // A derivation may not close a circle either.
        let body = app.gql(&ml, DERIVE, json!({ "m": "base", "v": "1.0.0", "fm": "tuned", "fv": "1.0.0" })).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
    }
}

on_both_backends! {
    async fn only_owners_of_the_team_or_admins_change_consumers_and_bad_input_writes_nothing(app) {
        let (ml, pay) = landscape(&app).await;
        let reader = app.token("r", "reader", None).await;
        let before = app.audit_count().await;

        // An owner of another team may not declare or remove ml's consumer.
        let body = app.gql(&pay, DECLARE, json!({ "i": { "name": "search", "kind": "JOB", "ownerTeam": "ml", "environment": "dev" } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        let body = app.gql(&pay, "mutation { removeConsumer(name: \"search\") }", json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        let body = app.gql(&reader, DECLARE, json!({ "i": { "name": "x", "kind": "JOB", "ownerTeam": "ml", "environment": "dev" } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

        for (vars, field) in [
            (json!({ "c": "search", "m": "base", "v": "^two" }), "version range"),
            (json!({ "c": "search", "m": "base", "v": "9.9.9" }), "9.9.9"),
            (json!({ "c": "nobody", "m": "base", "v": "^1" }), "nobody"),
            (json!({ "c": "search", "m": "no-such-model", "v": "^1" }), "no-such-model"),
        ] {
            let body = app.gql(&ml, USE, vars.clone()).await;
            assert!(error_message(&body).contains(field), "{vars}: {body}");
        }
        let body = app.gql(&ml, DECLARE, json!({ "i": { "name": "Bad Name", "kind": "JOB", "ownerTeam": "ml", "environment": "dev" } })).await;
        assert_eq!(error_code(&body), "VALIDATION");
        let body = app.gql(&ml, DEPENDS, json!({ "c": "search", "d": "search" })).await;
        assert_eq!(error_code(&body), "VALIDATION");
        // Nothing written but the three refusals' records.
        assert_eq!(app.audit_count().await, before + 3, "refused changes leave no trace but their refusal");
        assert_eq!(refusals_recorded(&app).await, 3);

        // Removal takes the consumer's edges with it, is audited, and the answer moves.
        app.gql_ok(&ml, "mutation { removeConsumer(name: \"search\") }", json!({})).await;
        let data = app.gql_ok(&ml, DEPENDENTS, json!({ "m": "base", "v": "1.0.0" })).await;
        assert_eq!(names(&data["dependents"]), vec![("checkout".into(), 1), ("tuned@1.0.0".into(), 1)]);
        assert_eq!(audit_actions(&app).await.last().map(String::as_str), Some("consumer.removed"));
        let n = app.gql_ok(&pay, "mutation { removeUse(consumer: \"checkout\", model: \"base\", version: \"^1\") }", json!({})).await;
        assert_eq!(n["removeUse"], 1);
        let body = app.gql(&pay, "mutation { removeUse(consumer: \"checkout\", model: \"base\", version: \"^1\") }", json!({})).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
    }
}

on_both_backends! {
    async fn a_notice_webhook_secret_is_shown_once_and_stored_only_sealed(app) {
        let owner = app.token("o", "owner", Some("payments")).await;
        let data = app.gql_ok(&owner, DECLARE, json!({ "i": { "name": "checkout", "kind": "SERVICE", "ownerTeam": "payments", "environment": "production", "webhookUrl": "https://hooks.example.org/sunset" } })).await;
        let secret = data["declareConsumer"]["webhookSecret"].as_str().expect("secret").to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");
        // Declaring again keeps the secret and does not show it.
        let again = app.gql_ok(&owner, DECLARE, json!({ "i": { "name": "checkout", "kind": "SERVICE", "ownerTeam": "payments", "environment": "staging", "webhookUrl": "https://hooks.example.org/sunset" } })).await;
        assert_eq!(again["declareConsumer"]["created"], false);
        assert!(again["declareConsumer"]["webhookSecret"].is_null());

        let db = app.services.store().reader();
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT webhook_secret FROM consumers")).await.expect("present");
        let stored: String = rows[0].try_get("", "webhook_secret").expect("present");
        let b64 = secret.trim_start_matches("whsec_");
        assert!(!stored.contains(b64) && !stored.contains(&secret), "the secret is stored sealed");
        let audit = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT COALESCE(after_state, '') AS a FROM audit_records")).await.expect("present");
        assert!(audit.iter().all(|r| !r.try_get::<String>("", "a").expect("present").contains(b64)), "nor audited");
    }
}

on_both_backends! {
    async fn downloads_with_a_bound_token_are_recorded_as_observed_usage(app) {
        let owner = crate::artifacts::model_with_version(&app).await;
        let put = app.client.put(format!("{}/v1/models/fraud-scorer/versions/1.0.0/artifacts/model.bin", app.address))
            .bearer_auth(&owner).body(vec![7u8; 1000]).send().await.expect("present");
        assert_eq!(put.status(), 201);
        consumer(&app, &owner, "batch-scoring", "payments-ml").await;
        let bound = app.consumer_token("scoring-bot", "reader", "batch-scoring").await;
        for _ in 0..2 {
            let got = app.client.get(format!("{}/v1/models/fraud-scorer/versions/1.0.0/artifacts/model.bin", app.address))
                .bearer_auth(&bound).send().await.expect("present");
            assert_eq!(got.status(), 200);
            assert_eq!(got.bytes().await.expect("present").len(), 1000);
        }
        let data = app.gql_ok(&owner, DEPENDENTS, json!({ "m": "fraud-scorer", "v": "1.0.0" })).await;
        assert_eq!(names(&data["dependents"]), vec![("batch-scoring".into(), 1)]);
        let evidence = &data["dependents"]["nodes"][0]["path"][0]["evidence"][0];
        assert_eq!(evidence["origin"], "DOWNLOAD");
        assert_eq!(evidence["originName"], "scoring-bot");
        assert_eq!(evidence["observations"], 2);
        let actions = audit_actions(&app).await;
        assert_eq!(actions.iter().filter(|a| *a == "inventory.usage_observed").count(), 1, "new usage is audited once, repeats are counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_through_one_instance_is_answered_by_another_within_a_second() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    let (ml, _) = landscape(&app).await;
    // The other instance follows the change sequence; wait on its revision, bounded.
    other.caught_up_with(&app).await;
    let response: Value = app
        .client
        .post(format!("{}/graphql", other.address))
        .bearer_auth(&ml)
        .json(&json!({ "query": DEPENDENTS, "variables": { "m": "base", "v": "1.0.0" } }))
        .send()
        .await
        .expect("present")
        .json()
        .await
        .expect("present");
    assert_eq!(
        names(&response["data"]["dependents"]).len(),
        4,
        "{response}"
    );
    assert_eq!(
        other.services.inventory().inventory_snapshot(),
        app.services.inventory().inventory_snapshot()
    );
    // A removal reaches it too: the change names a row that is gone when it reads it.
    app.gql_ok(
        &ml,
        "mutation { removeConsumer(name: \"search\") }",
        json!({}),
    )
    .await;
    other.caught_up_with(&app).await;
    let mine = app.services.inventory().inventory_snapshot();
    assert_eq!(other.services.inventory().inventory_snapshot(), mine);
    assert!(
        !mine.consumers.values().any(|c| c.name.as_str() == "search"),
        "the removed consumer is gone: {mine:?}"
    );
}

mod equivalence {
    //! Random sequences of inventory operations: after each, the live graph must equal a
    //! graph rebuilt from the database.

    use crate::support::{Backend, TestApp};
    use proptest::prelude::*;
    use sunset::auth::Actor;
    use sunset::domain::{ConsumerName, EdgeOrigin, ModelName, Version};
    use sunset::service::{ConsumerInput, EdgeSpec, Services};

    const CONSUMERS: [&str; 3] = ["c0", "c1", "c2"];
    const MODELS: [&str; 3] = ["m0", "m1", "m2"];
    const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];
    /// Two ranges per use op; which pair varies with the model, so all four get used.
    const RANGES: [&str; 4] = ["1.0.0", "^1", "*", ">=1.1, <3"];

    #[derive(Debug, Clone)]
    enum Op {
        Declare(usize, usize),
        Remove(usize),
        Use(usize, usize, usize),
        Unuse(usize, usize, usize),
        Depend(usize, usize),
        Undepend(usize, usize),
        Derive(usize, usize, usize, usize),
        Underive(usize, usize, usize, usize),
        Observe(usize, usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let c = 0..CONSUMERS.len();
        let m = 0..MODELS.len();
        let v = 0..VERSIONS.len();
        // Weighted towards building, so removals usually find something to remove.
        prop_oneof![
            3 => (c.clone(), 0..2usize).prop_map(|(a, b)| Op::Declare(a, b)),
            1 => c.clone().prop_map(Op::Remove),
            3 => (c.clone(), m.clone(), 0..2usize).prop_map(|(a, b, r)| Op::Use(a, b, r)),
            2 => (c.clone(), m.clone(), 0..2usize).prop_map(|(a, b, r)| Op::Unuse(a, b, r)),
            2 => (c.clone(), c.clone()).prop_map(|(a, b)| Op::Depend(a, b)),
            1 => (c.clone(), c.clone()).prop_map(|(a, b)| Op::Undepend(a, b)),
            2 => (m.clone(), v.clone(), m.clone(), v.clone()).prop_map(|(a, b, x, y)| Op::Derive(a, b, x, y)),
            1 => (m.clone(), v.clone(), m.clone(), v.clone()).prop_map(|(a, b, x, y)| Op::Underive(a, b, x, y)),
            2 => (c, m, v).prop_map(|(a, b, x)| Op::Observe(a, b, x)),
        ]
    }

    async fn apply(s: &Services, op: &Op) {
        let admin = Actor::local_operator();
        let uses = |c: usize, m: usize, r: usize| EdgeSpec::Uses {
            consumer: CONSUMERS[c].into(),
            model: MODELS[m].into(),
            version: RANGES[(r + m) % RANGES.len()].into(),
        };
        let derive = |a: usize, b: usize, x: usize, y: usize| EdgeSpec::DerivedFrom {
            model: MODELS[a].into(),
            version: VERSIONS[b].into(),
            parent_model: MODELS[x].into(),
            parent_version: VERSIONS[y].into(),
            derivation: None,
        };
        // Refusals (unknown names, circles, self-links) are part of the sequence: they
        // must leave the graph and the database alike.
        let r = match op {
            Op::Declare(c, team) => s
                .inventory()
                .declare_consumer(
                    &admin,
                    ConsumerInput {
                        name: CONSUMERS[*c].into(),
                        kind: "service".into(),
                        owner_team: ["t-a", "t-b"][*team].into(),
                        environment: "prod".into(),
                        // The second team's consumers carry every optional fact, so the
                        // load's decoding of each is compared too.
                        contacts: match team {
                            0 => vec![],
                            _ => vec!["ops@example.org".into(), "on-call+ml@example.org".into()],
                        },
                        webhook_url: (*team == 1)
                            .then(|| "https://hooks.example.org/notice?team=b&x=%22q%22".into()),
                    },
                )
                .await
                .map(|_| ()),
            Op::Remove(c) => s.inventory().remove_consumer(&admin, CONSUMERS[*c]).await,
            Op::Use(c, m, r) => s
                .inventory()
                .declare_edge(&admin, uses(*c, *m, *r))
                .await
                .map(|_| ()),
            Op::Unuse(c, m, r) => s
                .inventory()
                .remove_edge(&admin, uses(*c, *m, *r))
                .await
                .map(|_| ()),
            Op::Depend(a, b) => s
                .inventory()
                .declare_edge(
                    &admin,
                    EdgeSpec::DependsOn {
                        consumer: CONSUMERS[*a].into(),
                        target: CONSUMERS[*b].into(),
                    },
                )
                .await
                .map(|_| ()),
            Op::Undepend(a, b) => s
                .inventory()
                .remove_edge(
                    &admin,
                    EdgeSpec::DependsOn {
                        consumer: CONSUMERS[*a].into(),
                        target: CONSUMERS[*b].into(),
                    },
                )
                .await
                .map(|_| ()),
            Op::Derive(a, b, x, y) => s
                .inventory()
                .declare_edge(&admin, derive(*a, *b, *x, *y))
                .await
                .map(|_| ()),
            Op::Underive(a, b, x, y) => s
                .inventory()
                .remove_edge(&admin, derive(*a, *b, *x, *y))
                .await
                .map(|_| ()),
            Op::Observe(c, m, v) => {
                s.inventory()
                    .observe_usage(
                        &ConsumerName::parse(CONSUMERS[*c]).expect("name"),
                        &ModelName::parse(MODELS[*m]).expect("model"),
                        Version::parse(VERSIONS[*v]).expect("version"),
                        EdgeOrigin::Scan,
                        "gateway",
                        3,
                    )
                    .await
            }
        };
        // Refusals are expected; tracing them helps read a shrunk failure.
        if let Err(e) = r {
            eprintln!("{op:?} refused: {e}");
        }
    }

    async fn run(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let app = TestApp::spawn(backend).await;
        let owner = app.token("o", "owner", Some("t-a")).await;
        for m in MODELS {
            app.create_model(&owner, m, "t-a").await;
            for v in VERSIONS {
                super::version(&app, &owner, m, v).await;
            }
        }
        for op in &ops {
            apply(&app.services, op).await;
            let live = app.services.inventory().inventory_snapshot();
            let rebuilt = app
                .services
                .inventory()
                .inventory_snapshot_from_database()
                .await
                .expect("load");
            prop_assert_eq!(&live.consumers, &rebuilt.consumers, "after {:?}", op);
            prop_assert_eq!(&live.edges, &rebuilt.edges, "after {:?}", op);
            prop_assert_eq!(live, rebuilt, "after {:?}", op);
        }
        Ok(())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_live_graph_equals_the_graph_rebuilt_from_sqlite(ops in prop::collection::vec(op(), 1..40)) {
            runtime().block_on(run(Backend::Sqlite, ops))?;
        }

        #[test]
        fn the_live_graph_equals_the_graph_rebuilt_from_postgres(ops in prop::collection::vec(op(), 1..25)) {
            runtime().block_on(run(Backend::Postgres, ops))?;
        }
    }
}

on_both_backends! {
    async fn a_models_owner_cannot_erase_another_teams_usage_and_removal_takes_only_ones_own_evidence(app) {
        let (ml, pay) = landscape(&app).await;
        // checkout's use of base ^1: declared by payments, and seen downloading.
        app.services
            .inventory().observe_usage(
                &sunset::domain::ConsumerName::parse("checkout").expect("name"),
                &sunset::domain::ModelName::parse("base").expect("name"),
                sunset::domain::Version::parse("1.0.0").expect("v"),
                sunset::domain::EdgeOrigin::Download,
                "checkout-token",
                1,
            )
            .await
            .expect("observed");
        // The model's owner vouches for the same use too: two declarations of one link.
        app.gql_ok(&ml, USE, json!({ "c": "checkout", "m": "base", "v": "^1" })).await;
        let remove = "mutation($v: String!) { removeUse(consumer: \"checkout\", model: \"base\", version: $v) }";
        let caret = json!({ "v": "^1" });
        assert_eq!(app.gql_ok(&ml, remove, caret.clone()).await["removeUse"], 1, "its own declaration");
        let before = app.audit_count().await;
        let refused = app.gql(&ml, remove, caret.clone()).await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
        assert!(error_message(&refused).contains("api from pay-owner"), "{refused}");
        assert_eq!(app.audit_count().await, before + 1, "refused: nothing written but the refusal's record");
        assert_eq!(refusals_recorded(&app).await, 1);
        let still = app.gql_ok(&ml, DEPENDENTS, json!({ "m": "base", "v": "1.0.0" })).await;
        assert!(names(&still["dependents"]).contains(&("checkout".into(), 1)), "{still}");

        // Observed usage is nobody's to erase but an admin's: it goes stale on its own.
        let exact = json!({ "v": "1.0.0" });
        for token in [&ml, &pay] {
            let body = app.gql(token, remove, exact.clone()).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
            assert!(error_message(&body).contains("download from checkout-token"), "{body}");
        }
        assert_eq!(app.gql_ok(&app.admin, remove, exact).await["removeUse"], 1);

        // The consumer's own team takes back its declaration, and the edge goes with it.
        assert_eq!(app.gql_ok(&pay, remove, caret.clone()).await["removeUse"], 1);
        let gone = app.gql_ok(&ml, DEPENDENTS, json!({ "m": "base", "v": "1.0.0" })).await;
        assert!(!names(&gone["dependents"]).contains(&("checkout".into(), 1)), "{gone}");
        assert_eq!(error_code(&app.gql(&pay, remove, caret).await), "NOT_FOUND");
    }
}

/// How many `access.refused` records the trail holds.
async fn refusals_recorded(app: &TestApp) -> usize {
    let auditor = app
        .token(
            &format!("aud-{}", hex::encode(rand::random::<[u8; 3]>())),
            "auditor",
            None,
        )
        .await;
    let data = app
        .gql_ok(&auditor, "{ auditLog(filter: { action: \"access.refused\" }, first: 500) { edges { node { seq } } } }", json!({}))
        .await;
    data["auditLog"]["edges"].as_array().map_or(0, Vec::len)
}
