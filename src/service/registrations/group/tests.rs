//! The set-wise path judged message by message: on a real SQLite database, a group
//! whose messages refer to one another, repeat one another and fail alone.

use super::*;
use crate::auth::Actor;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{ConsumerName, ModelName};
use crate::graph::Link;
use crate::service::{ModelInput, VersionInput};
use crate::store::inventory::batch;
use crate::store::registry as registry_repo;
use crate::store::webhook_sources as repo;
use serde_json::json;

/// Services on SQLite in `dir`, or on a PostgreSQL database `url` names.
async fn services(dir: &std::path::Path, url: Option<String>) -> Services {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        database: crate::config::DatabaseSettings {
            url: url.map(crate::config::DatabaseUrl::new),
        },
        ..Settings::default()
    };
    let services = crate::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open");
    services.inventory().load_inventory().await.expect("load");
    let admin = Actor::local_operator();
    let fraud_scorer = crate::testing::Seed {
        model: "fraud-scorer",
        team: "t",
        tier: "standard",
        contacts: &[],
        versions: &["1.0.0"],
    };
    crate::testing::seed(&services, fraud_scorer).await;
    services
        .inventory()
        .create_webhook_source(&admin, "ci")
        .await
        .expect("source");
    services
}

/// An owner of team `t`, which owns the models here.
fn owner() -> Actor {
    Actor {
        name: "owner".into(),
        role: crate::domain::Role::Owner,
        team: Some(crate::domain::TeamName::parse("t").expect("team")),
        kind: crate::auth::ActorKind::Token,
        consumer: None,
        client_ip: None,
    }
}

fn consumer(name: &str, team: &str, uses: &[&str], depends_on: &[&str]) -> serde_json::Value {
    json!({ "type": "consumer", "name": name, "kind": "service", "ownerTeam": team,
            "environment": "prod",
            "uses": uses.iter().map(|m| json!({ "model": m, "version": "1.0.0" })).collect::<Vec<_>>(),
            "dependsOn": depends_on })
}

/// Queues the messages as one group and returns each one's outcome.
async fn group(
    services: &Services,
    messages: Vec<(&str, Vec<serde_json::Value>)>,
) -> Vec<Result<Received, ServiceError>> {
    let (finishes, replies) = committed(services, messages).await;
    for finish in finishes {
        services.finish(finish).await;
    }
    let mut outcomes = Vec::new();
    for r in replies {
        outcomes.push(r.await.expect("answered"));
    }
    outcomes
}

type Answer = tokio::sync::oneshot::Receiver<Result<Received, ServiceError>>;

/// Commits the messages as one group, leaving what is left to do (the graph, the
/// answers) to the caller, as the worker leaves it to its finisher.
async fn committed(
    services: &Services,
    messages: Vec<(&str, Vec<serde_json::Value>)>,
) -> (Vec<Finish>, Vec<Answer>) {
    let source = repo::find_by_name(services.store().reader(), "ci")
        .await
        .expect("read")
        .expect("source");
    let mut jobs = Vec::new();
    let mut replies = Vec::new();
    for (id, registrations) in messages {
        let body = serde_json::to_vec(&json!({ "registrations": registrations })).expect("json");
        let (reply, outcome) = tokio::sync::oneshot::channel();
        jobs.push(Job {
            message: Queued {
                source: source.clone(),
                message_id: id.to_owned(),
                batch: crate::ingest::registrations::parse(&body, 100)
                    .expect("parse")
                    .into(),
            },
            reply,
        });
        replies.push(outcome);
    }
    (services.apply_group(jobs).await, replies)
}

async fn model_id(db: &impl sea_orm::ConnectionTrait) -> crate::domain::ModelId {
    let name = ModelName::parse("fraud-scorer").expect("name");
    registry_repo::model_ids(db, &[&name]).await.expect("read")[&name]
}

fn revision(outcome: &Result<Received, ServiceError>) -> i64 {
    match outcome {
        Ok(Received::Applied { revision, .. }) => *revision,
        other => panic!("not applied: {other:?}"),
    }
}

#[tokio::test]
async fn a_group_is_judged_message_by_message_in_order_on_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    let services = services(dir.path(), None).await;
    // So the checks below are of the rows the writer thread's statements write.
    assert!(services.store().writes_groups_on_thread());
    judged_in_order(services).await;
}

/// A second model of team `t`, `fraud-scorer-eu`, with `versions`.
async fn seed_eu(services: &Services, versions: &[&str]) {
    let eu = crate::testing::Seed {
        model: "fraud-scorer-eu",
        team: "t",
        tier: "standard",
        contacts: &[],
        versions,
    };
    crate::testing::seed(services, eu).await;
}

#[tokio::test]
async fn derivations_in_one_group_are_judged_against_each_other_and_the_graph() {
    let dir = tempfile::tempdir().expect("tmp");
    let services = services(dir.path(), None).await;
    seed_eu(&services, &["1.0.0", "2.0.0"]).await;
    let derive = |model: &str, version: &str, from: &str| {
        json!({ "type": "derivation", "model": model, "version": version,
                "from": { "model": from, "version": "1.0.0" }, "derivation": "fine-tune" })
    };
    let outcomes = group(
        &services,
        vec![
            (
                "m0",
                vec![derive("fraud-scorer-eu", "1.0.0", "fraud-scorer")],
            ),
            // Closes a circle with m0, which the graph does not hold yet: refused.
            (
                "m1",
                vec![derive("fraud-scorer", "1.0.0", "fraud-scorer-eu")],
            ),
            // A version that does not exist, worded as a message applied alone.
            (
                "m2",
                vec![derive("fraud-scorer", "9.9.9", "fraud-scorer-eu")],
            ),
            // Beside a consumer in the same message, and after m0 in the same group.
            (
                "m3",
                vec![
                    consumer("a", "t", &["fraud-scorer"], &[]),
                    derive("fraud-scorer-eu", "2.0.0", "fraud-scorer-eu"),
                ],
            ),
        ],
    )
    .await;
    let refusal = |i: usize| match &outcomes[i] {
        Err(e) => e.to_string(),
        other => panic!("message {i} was not refused: {other:?}"),
    };
    assert!(
        refusal(1).contains("registration 1 (derivation of fraud-scorer@1.0.0)"),
        "{}",
        refusal(1)
    );
    assert!(refusal(1).contains("circle"), "{}", refusal(1));
    assert!(
        refusal(2).contains("no version fraud-scorer@9.9.9"),
        "{}",
        refusal(2)
    );
    assert!(revision(&outcomes[0]) < revision(&outcomes[3]));
    // After the commit, the graph holds both derivations and refuses the circle too.
    let again = group(
        &services,
        vec![(
            "m4",
            vec![derive("fraud-scorer", "1.0.0", "fraud-scorer-eu")],
        )],
    )
    .await;
    assert!(
        again[0]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("circle")),
        "{again:?}"
    );
    assert_eq!(
        services.inventory().inventory_snapshot(),
        services
            .inventory()
            .inventory_snapshot_from_database()
            .await
            .expect("db")
    );
}

#[tokio::test]
async fn a_derivation_is_judged_against_the_group_before_it_even_before_the_graph_has_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let services = services(dir.path(), None).await;
    seed_eu(&services, &["1.0.0"]).await;
    let derive = |model: &str, from: &str| {
        json!({ "type": "derivation", "model": model, "version": "1.0.0",
                "from": { "model": from, "version": "1.0.0" } })
    };
    // Committed; its finisher has not taken it into the graph yet.
    let (pending, _) = committed(
        &services,
        vec![("m0", vec![derive("fraud-scorer-eu", "fraud-scorer")])],
    )
    .await;
    let back = group(
        &services,
        vec![("m1", vec![derive("fraud-scorer", "fraud-scorer-eu")])],
    )
    .await;
    assert!(
        back[0]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("circle")),
        "{back:?}"
    );
    for finish in pending {
        services.finish(finish).await;
    }
}

/// On the server `tests/run` starts (`SUNSET_TEST_PG_URL`, or its default address):
/// fails, never passes, when there is none.
#[tokio::test]
async fn a_group_is_judged_message_by_message_in_order_on_postgres() {
    let (name, url) = crate::testing::create_scratch_database("sunset_test_group").await;
    let dir = tempfile::tempdir().expect("tmp");
    let services = services(dir.path(), Some(url)).await;
    assert!(!services.store().writes_groups_on_thread());
    judged_in_order(services).await;
    crate::testing::drop_scratch_database(&name).await;
}

/// A group applies its own rows to the graph only when the graph stands right before
/// them; a change committed in between through another instance sends it through the
/// refresh, which takes both in, in order.
#[tokio::test]
async fn a_group_after_another_instance_s_change_takes_that_change_in_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let here = services(dir.path(), None).await;
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let elsewhere = crate::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open");
    elsewhere.inventory().load_inventory().await.expect("load");
    elsewhere
        .inventory()
        .declare_consumer(
            &Actor::local_operator(),
            crate::service::ConsumerInput {
                name: "declared-elsewhere".into(),
                kind: "service".into(),
                owner_team: "t".into(),
                environment: "prod".into(),
                ..Default::default()
            },
        )
        .await
        .expect("declare");
    // A model and version this graph has not seen yet: found in the database.
    let owner = owner();
    let model = ModelInput {
        name: "made-elsewhere".into(),
        owner_team: "t".into(),
        tier: "standard".into(),
        description: "d".into(),
        contacts: vec![],
    };
    elsewhere
        .registry()
        .create_model(&owner, model)
        .await
        .expect("model");
    let version = VersionInput {
        model: "made-elsewhere".into(),
        version: "1.0.0".into(),
        provenance: Default::default(),
    };
    elsewhere
        .registry()
        .create_version(&owner, version)
        .await
        .expect("version");
    let unknown_pin = json!({ "type": "consumer", "name": "c", "kind": "service",
        "ownerTeam": "t", "environment": "prod",
        "uses": [{ "model": "made-elsewhere", "version": "2.0.0" }] });
    let outcomes = group(
        &here,
        vec![
            ("m0", vec![consumer("a", "t", &["fraud-scorer"], &[])]),
            ("m1", vec![consumer("b", "t", &["made-elsewhere"], &[])]),
            ("m2", vec![unknown_pin]),
        ],
    )
    .await;
    revision(&outcomes[1]);
    let refused = format!("{:?}", outcomes[2]);
    assert!(refused.contains("2.0.0"), "{refused}");
    let r0 = revision(&outcomes[1]);
    let snapshot = here.inventory().inventory_snapshot();
    assert!(
        snapshot
            .consumers
            .values()
            .any(|c| c.name.as_str() == "declared-elsewhere"),
        "the other instance's consumer is in this graph"
    );
    assert_eq!(
        snapshot,
        here.inventory()
            .inventory_snapshot_from_database()
            .await
            .expect("db")
    );
    assert_eq!(*here.inventory().inventory_revision().borrow(), r0);
}

async fn judged_in_order(services: Services) {
    let outcomes = group(
        &services,
        vec![
            ("m0", vec![consumer("a", "t", &["fraud-scorer"], &[])]),
            // Names a consumer an earlier message of the group declared.
            ("m1", vec![consumer("b", "t", &[], &["a"])]),
            // Names one only a later message declares: refused, and writes nothing.
            ("m2", vec![consumer("c", "t", &[], &["z"])]),
            // The same message again: applied once.
            ("m0", vec![consumer("a", "t", &["fraud-scorer"], &[])]),
            ("m4", vec![consumer("z", "t", &["no-such-model"], &[])]),
            // Names a consumer whose message was refused.
            ("m5", vec![consumer("d", "t", &[], &["c"])]),
            // Declares `a` again with another team: the later facts win.
            ("m6", vec![consumer("a", "u", &["fraud-scorer"], &[])]),
        ],
    )
    .await;
    let r6 = refused_and_ordered(&outcomes);
    let (a, edge) = only_what_was_applied_was_written(&services).await;
    // A later group finds `a` and its edge in the database: updated and counted again.
    let later = group(
        &services,
        vec![("m7", vec![consumer("a", "v", &["fraud-scorer"], &[])])],
    )
    .await;
    assert!(revision(&later[0]) > r6);
    let db = services.store().reader();
    let again = batch::consumers_by_id(db, &[a]).await.expect("read");
    assert_eq!(again[&a].owner_team.as_str(), "v");
    let edges = batch::edges_by_id(db, &[edge]).await.expect("read");
    assert_eq!(edges.values().next().expect("edge").observations, 3);
    // The graph followed each commit before the answers went out.
    assert_eq!(
        services.inventory().inventory_snapshot(),
        services
            .inventory()
            .inventory_snapshot_from_database()
            .await
            .expect("db")
    );
}

/// The refused messages name why, a repeat is a duplicate, and revisions follow the
/// messages; returns the last message's revision.
fn refused_and_ordered(outcomes: &[Result<Received, ServiceError>]) -> i64 {
    let message = |i: usize| match &outcomes[i] {
        Err(e) => e.to_string(),
        other => panic!("message {i} was not refused: {other:?}"),
    };
    assert!(
        message(2).contains("registration 1 (consumer c): no consumer named z"),
        "{}",
        message(2)
    );
    assert!(
        message(4).contains("no model named no-such-model"),
        "{}",
        message(4)
    );
    assert!(message(5).contains("no consumer named c"), "{}", message(5));
    assert!(
        matches!(outcomes[3], Ok(Received::Duplicate)),
        "{:?}",
        outcomes[3]
    );
    let (r0, r1, r6) = (
        revision(&outcomes[0]),
        revision(&outcomes[1]),
        revision(&outcomes[6]),
    );
    assert!(
        r0 < r1 && r1 < r6,
        "revisions follow the messages: {r0} {r1} {r6}"
    );
    r6
}

/// Only the applied messages' consumers, edge sightings, receipts and audit records are
/// in the database; returns consumer `a` and its edge.
async fn only_what_was_applied_was_written(
    services: &Services,
) -> (crate::domain::ConsumerId, crate::domain::EdgeId) {
    let db = services.store().reader();
    let names = |names: &[&str]| {
        names
            .iter()
            .map(|n| ConsumerName::parse(n).expect("name"))
            .collect::<Vec<_>>()
    };
    let all = names(&["a", "b", "c", "d", "z"]);
    let found = batch::find_consumers(db, &all.iter().collect::<Vec<_>>())
        .await
        .expect("read");
    let mut present: Vec<&str> = found.keys().map(|n| n.as_str()).collect();
    present.sort_unstable();
    assert_eq!(present, ["a", "b"]);
    assert_eq!(found[&all[0]].1.owner_team.as_str(), "u");
    // `a` uses the model once however often it was declared: one row, two sightings.
    let edges = crate::store::inventory::edges_of_link(
        db,
        &Link::Uses {
            consumer: found[&all[0]].0,
            model: model_id(db).await,
            range: Arc::new(crate::domain::VersionRange::parse("1.0.0").expect("range")),
        },
    )
    .await
    .expect("edges");
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0].observations, 2);
    // Three messages applied: three receipts, three audit records, a whole chain.
    let source = repo::find_by_name(db, "ci")
        .await
        .expect("read")
        .expect("source")
        .id;
    let sent = ["m0", "m1", "m2", "m4", "m5", "m6"].map(|id| (source, id));
    let receipts = repo::received_among(db, &sent).await.expect("receipts");
    let mut ids: Vec<&str> = receipts.iter().map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["m0", "m1", "m6"]);
    let verified = services
        .audit()
        .verify_audit_chain(vec![])
        .await
        .expect("verify");
    assert!(verified.is_ok(), "{verified:?}");
    (found[&all[0]].0, edges[0].id)
}
