//! `modelAsOf`: a model's past rebuilt from the audit trail, checked against snapshots
//! of the live state taken at those instants.

use crate::retirements::{World, t0, world_with};
use crate::support::{Backend, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use sunset::auth::Actor;
use sunset::service::{ConsumerInput, EdgeSpec};

const LIVE: &str = "{ model(name: \"fraud\") { description contacts versions { edges { node { version status artifacts { path sha256 } signature { signer } } } } } }";
const PAST: &str = "query($at: DateTime!) { modelAsOf(name: \"fraud\", at: $at) { at registered description contacts versions { version status artifacts { path sha256 erased } signature { signer revoked } } consumers { consumer kind target } restsOn } }";
const DIRECT: &str = "query($v: String!) { dependents(model: \"fraud\", version: $v, transitive: false) { nodes { kind name } } }";

/// What is compared: facts, each version's status and artifacts, direct consumers.
#[derive(Debug, PartialEq)]
struct Shape {
    description: Value,
    contacts: Value,
    versions: BTreeMap<String, (String, BTreeSet<(String, String)>)>,
    consumers: BTreeSet<String>,
}

fn pairs(artifacts: &Value) -> BTreeSet<(String, String)> {
    // The live API lists an erased artifact's row as it lists any other (downloads of it
    // are refused); the past marks it erased, which is asserted on its own below.
    artifacts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["path"].as_str().unwrap_or("").to_owned(),
                a["sha256"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The live state, read through the API now.
async fn snapshot(w: &World, auditor: &str) -> Shape {
    let live = w.app.gql_ok(auditor, LIVE, json!({})).await["model"].clone();
    let mut versions = BTreeMap::new();
    let mut consumers = BTreeSet::new();
    for e in live["versions"]["edges"].as_array().expect("edges") {
        let n = &e["node"];
        let v = n["version"].as_str().expect("v").to_owned();
        versions.insert(
            v.clone(),
            (
                n["status"].as_str().expect("s").to_lowercase(),
                pairs(&n["artifacts"]),
            ),
        );
        let direct = w.app.gql_ok(auditor, DIRECT, json!({ "v": v })).await;
        for node in direct["dependents"]["nodes"].as_array().expect("nodes") {
            consumers.insert(node["name"].as_str().expect("name").to_owned());
        }
    }
    Shape {
        description: live["description"].clone(),
        contacts: live["contacts"].clone(),
        versions,
        consumers,
    }
}

/// The same, as `modelAsOf` rebuilds it for `at`.
async fn rebuilt(w: &World, auditor: &str, at: DateTime<Utc>) -> (Shape, Value) {
    let past = w
        .app
        .gql_ok(auditor, PAST, json!({ "at": at.to_rfc3339() }))
        .await["modelAsOf"]
        .clone();
    let versions = past["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_str().expect("v").to_owned(),
                (
                    v["status"].as_str().expect("s").to_owned(),
                    pairs(&v["artifacts"]),
                ),
            )
        })
        .collect();
    let consumers = past["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .map(|c| c["consumer"].as_str().expect("c").to_owned())
        .collect();
    (
        Shape {
            description: past["description"].clone(),
            contacts: past["contacts"].clone(),
            versions,
            consumers,
        },
        past,
    )
}

async fn life(backend: Backend) {
    let w = world_with(backend, |_| {}).await;
    let auditor = w.app.token("aud", "auditor", None).await;
    let owner = w.app.token("ml-owner-2", "owner", Some("ml")).await;
    let mut snapshots = vec![(t0(), snapshot(&w, &auditor).await)];

    // A day on: the model's facts change, one consumer comes and another goes.
    w.clock.set(t0() + Duration::days(1));
    w.app.gql_ok(&owner, "mutation { updateModel(name: \"fraud\", input: { description: \"fraud scores, v2 line\", contacts: [\"ml@example.org\", \"oncall@example.org\"] }) { name } }", json!({})).await;
    let admin = Actor::local_operator();
    let inventory = w.app.services.inventory();
    inventory
        .declare_consumer(
            &admin,
            ConsumerInput {
                name: "reports".into(),
                kind: "pipeline".into(),
                owner_team: "finance".into(),
                environment: "prod".into(),
                contacts: vec!["bi@example.org".into()],
                webhook_url: None,
            },
        )
        .await
        .expect("consumer");
    inventory
        .declare_edge(
            &admin,
            EdgeSpec::Uses {
                consumer: "reports".into(),
                model: "fraud".into(),
                version: "3.0.0".into(),
            },
        )
        .await
        .expect("edge");
    inventory
        .remove_edge(
            &admin,
            EdgeSpec::Uses {
                consumer: "analytics".into(),
                model: "fraud".into(),
                version: "3.0.0".into(),
            },
        )
        .await
        .expect("removed");

    // Artifacts uploaded the same day; ^2's retirement scheduled, acknowledged, and
    // ready thirty days on.
    for v in ["2.1.0", "3.0.0"] {
        let put = w
            .app
            .client
            .put(format!(
                "{}/v1/models/fraud/versions/{v}/artifacts/model.bin",
                w.app.address
            ))
            .bearer_auth(&owner)
            .body(vec![7u8; 64])
            .send()
            .await
            .expect("put");
        assert_eq!(put.status(), 201);
    }
    snapshots.push((t0() + Duration::days(1), snapshot(&w, &auditor).await));
    let effective = t0() + Duration::days(31);
    let scheduled = w.app.gql_ok(&w.governance, "mutation($i: ScheduleRetirementInput!) { scheduleRetirement(input: $i) { id } }", json!({ "i": {
        "model": "fraud", "versions": "^2", "reason": "superseded by 3.0", "effectiveAt": effective.to_rfc3339(),
    }})).await;
    let id = scheduled["scheduleRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for c in ["billing", "checkout"] {
        w.app.gql_ok(&w.governance, "mutation($id: ID!, $c: String!) { acknowledgeRetirement(id: $id, consumer: $c) { consumer } }", json!({ "id": id, "c": c })).await;
    }
    w.clock.set(effective);
    w.app
        .services
        .retirements()
        .check_retirements(sunset::domain::FoundBy::GraphChange)
        .await
        .expect("check");
    snapshots.push((effective, snapshot(&w, &auditor).await));

    // Executed the day after: 2.x retired, its artifact erased.
    let executed = effective + Duration::days(1);
    w.clock.set(executed);
    let done = w
        .app
        .gql_ok(
            &w.governance,
            "mutation($id: ID!) { executeRetirement(id: $id) { state } }",
            json!({ "id": id }),
        )
        .await;
    if done["executeRetirement"]["state"] != "RETIRED" {
        let steps = w
            .app
            .gql_ok(
                &w.governance,
                "query($id: ID!) { retirement(id: $id) { steps { step outcome finishedAt } } }",
                json!({ "id": id }),
            )
            .await;
        panic!("the execution stopped short of RETIRED: {done} after {steps}");
    }
    snapshots.push((executed, snapshot(&w, &auditor).await));
    // Later changes do not leak into the past.
    w.clock.set(executed + Duration::days(1));
    w.app
        .gql_ok(
            &owner,
            "mutation { updateModel(name: \"fraud\", input: { description: \"later\" }) { name } }",
            json!({}),
        )
        .await;

    for (at, live) in &snapshots {
        let (past, raw) = rebuilt(&w, &auditor, *at).await;
        assert_eq!(&past, live, "at {at}: {raw:#}");
        let rests: Vec<i64> = raw["restsOn"]
            .as_array()
            .expect("restsOn")
            .iter()
            .map(|s| s.as_i64().expect("seq"))
            .collect();
        assert!(
            !rests.is_empty() && rests.windows(2).all(|p| p[0] < p[1]),
            "{rests:?}"
        );
    }
    // The retirement's traces: 2.1.0's artifact erased, not merely gone.
    let (_, after) = rebuilt(&w, &auditor, executed).await;
    let v210 = after["versions"]
        .as_array()
        .expect("v")
        .iter()
        .find(|v| v["version"] == "2.1.0")
        .expect("2.1.0")
        .clone();
    assert_eq!(v210["status"], "retired");
    assert_eq!(v210["artifacts"][0]["erased"], true, "{v210:#}");
    // Before it existed, the model was not registered.
    let (_, before) = rebuilt(&w, &auditor, t0() - Duration::days(1)).await;
    assert_eq!(
        (
            before["registered"].as_bool(),
            before["versions"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );

    // Only auditors and governance; every reconstruction is recorded.
    let reader = w.app.token("reader", "reader", None).await;
    let refused = w
        .app
        .gql(&reader, PAST, json!({ "at": t0().to_rfc3339() }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let reads = crate::console::count(
        &w.app,
        "SELECT COUNT(*) FROM audit_records WHERE subject = 'audit_log:model_as_of:fraud'",
    )
    .await;
    assert_eq!(reads, 6, "four instants compared, then two more reads");
    let refusals = crate::console::count(
        &w.app,
        "SELECT COUNT(*) FROM audit_records WHERE action = 'access.refused' AND actor = 'reader'",
    )
    .await;
    assert_eq!(refusals, 1);

    if backend == Backend::Sqlite {
        // The CLI gives the same past, as the operator at the host.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
            .args([
                "model",
                "as-of",
                "fraud",
                "--at",
                &snapshots[1].0.to_rfc3339(),
                "--data-dir",
            ])
            .arg(&w.app.settings.data_dir)
            .env_remove("DATABASE_URL")
            .output()
            .expect("sunset model as-of");
        assert!(out.status.success(), "{out:?}");
        let cli: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(cli["model"]["description"], "fraud scores, v2 line");
        let names: BTreeSet<&str> = cli["consumers"]
            .as_array()
            .expect("c")
            .iter()
            .map(|c| c["consumer"].as_str().expect("n"))
            .collect();
        assert_eq!(
            names,
            snapshots[1]
                .1
                .consumers
                .iter()
                .map(String::as_str)
                .collect()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_past_is_rebuilt_from_the_audit_trail_as_it_was_sqlite() {
    life(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_past_is_rebuilt_from_the_audit_trail_as_it_was_postgres() {
    life(Backend::Postgres).await;
}

const SIGNED_LIVE: &str = "{ model(name: \"fraud-scorer\") { versions { edges { node { version status signature { signer } } } } } }";
const SIGNED_PAST: &str = "query($at: DateTime!) { modelAsOf(name: \"fraud-scorer\", at: $at) { versions { version status signature { signer revoked } } } }";

/// Each version's status and signer, live.
async fn signed_now(
    app: &crate::support::TestApp,
    token: &str,
) -> BTreeMap<String, (String, Option<String>)> {
    let live = app.gql_ok(token, SIGNED_LIVE, json!({})).await;
    live["model"]["versions"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["version"].as_str().expect("v").to_owned(),
                (
                    n["status"].as_str().expect("s").to_lowercase(),
                    n["signature"]["signer"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

/// The same, as `modelAsOf` rebuilds it for `at`.
async fn signed_then(
    app: &crate::support::TestApp,
    token: &str,
    at: DateTime<Utc>,
) -> BTreeMap<String, (String, Option<String>)> {
    let past = app
        .gql_ok(token, SIGNED_PAST, json!({ "at": at.to_rfc3339() }))
        .await;
    past["modelAsOf"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            assert!(!v["signature"]["revoked"].as_bool().unwrap_or(false));
            (
                v["version"].as_str().expect("v").to_owned(),
                (
                    v["status"].as_str().expect("s").to_owned(),
                    v["signature"]["signer"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

on_both_backends! {
    /// Signatures and promotions: two signed versions promoted in turn, then a rollback;
    /// the past at each instant has the statuses and signers the live state had then.
    /// On the injected clock, so each instant lies strictly between the records before
    /// it and those after, whatever the machine's clock does.
    async fn signatures_and_promotions_are_rebuilt_as_they_were(backend: Backend = crate::support::backend) {
        let clock = std::sync::Arc::new(sunset::clock::ManualClock::new(t0()));
        let app = crate::support::TestApp::spawn_with(backend, clock.clone(), |_| {}).await;
        let now = || sunset::clock::Clock::now(&*clock);
        let owner = crate::rollback::two_production_versions(&app).await;
        let auditor = app.token("aud", "auditor", None).await;
        clock.advance(Duration::minutes(1));
        let promoted = (now(), signed_now(&app, &auditor).await);
        assert_eq!(promoted.1["1.1.0"], ("production".to_owned(), Some("release-bot".to_owned())), "{:?}", promoted.1);
        clock.advance(Duration::minutes(1));
        app.gql_ok(&owner, "mutation { rollbackModel(model: \"fraud-scorer\", reason: \"1.1.0 doubled p99 latency (INC-5120)\") { version } }", json!({})).await;
        clock.advance(Duration::minutes(1));
        let rolled_back = (now(), signed_now(&app, &auditor).await);
        assert_eq!(rolled_back.1["1.0.0"].0, "production", "{:?}", rolled_back.1);
        for (at, live) in [&promoted, &rolled_back] {
            assert_eq!(&signed_then(&app, &auditor, *at).await, live, "at {at}");
        }
    }
}
