//! Replicas woken by PostgreSQL's notifications: with their polls set to a minute, a
//! change committed through one instance (an inventory edge, a kill switch, a retirement
//! change) reaches another without waiting for its poll.

use crate::support::{Backend, TestApp};
use std::sync::Arc;
use std::time::Duration;
use sunset::auth::Actor;
use sunset::clock::SystemClock;
use sunset::service::{ConsumerInput, EdgeSpec};

/// Far less than the poll: only a notification explains it.
const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_other_replica_without_waiting_for_its_poll() {
    let app = TestApp::spawn_with(Backend::Postgres, Arc::new(SystemClock), |s| {
        s.inventory.poll_interval_ms = 60_000;
    })
    .await;
    let other = app.spawn_sibling_on(Arc::new(SystemClock)).await;
    let mut listening = other.services.change_listening();
    tokio::time::timeout(WITHIN, listening.wait_for(|&on| on))
        .await
        .expect("the other replica listens")
        .expect("alive");

    // An inventory change.
    let owner = crate::artifacts::model_with_version(&app).await;
    let admin = Actor::local_operator();
    let consumer = ConsumerInput {
        name: "checkout".into(),
        kind: "service".into(),
        owner_team: "payments-ml".into(),
        environment: "prod".into(),
        contacts: vec![],
        webhook_url: None,
    };
    app.services
        .inventory()
        .declare_consumer(&admin, consumer)
        .await
        .expect("consumer");
    let mut revisions = other.services.inventory().inventory_revision();
    let edge = EdgeSpec::Uses {
        consumer: "checkout".into(),
        model: "fraud-scorer".into(),
        version: "1.0.0".into(),
    };
    app.services
        .inventory()
        .declare_edge(&admin, edge)
        .await
        .expect("edge");
    let committed = *app.services.inventory().inventory_revision().borrow();
    tokio::time::timeout(WITHIN, revisions.wait_for(|&r| r >= committed))
        .await
        .expect("the other replica's graph follows at once")
        .expect("alive");

    // A kill switch, and the retirement change announcing it.
    let mut feed = other.services.decommission().kill_switch_changes();
    feed.borrow_and_update();
    let mut events = other.services.retirements().retirement_events();
    let security = app.token("sec", "security", None).await;
    let _ = owner;
    app.gql_ok(&security, "mutation { emergencyRetirement(model: \"fraud-scorer\", versions: \"1.0.0\", riskAssessment: \"weights leaked in INC-9001; cut access now\") { id } }", serde_json::json!({})).await;
    tokio::time::timeout(WITHIN, feed.changed())
        .await
        .expect("the other replica's kill-switch feed moves at once")
        .expect("alive");
    let event = tokio::time::timeout(WITHIN, events.recv())
        .await
        .expect("the other replica hears of the retirement at once")
        .expect("event");
    assert_eq!(event.change, "executing", "{event:?}");
}

/// An instance takes its own commits in as it makes them: its listener passes over the
/// notifications its own connections send (they carry its name) and hears the others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_passes_over_its_own_instances_notifications() {
    use sunset::store::notify::{Listener, Topic, notify};
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.spawn_sibling_on(Arc::new(SystemClock)).await;
    let (own, theirs) = (app.services.store(), other.services.store());
    assert_ne!(own.instance(), theirs.instance());
    let mut listener = Listener::connect(own.reader(), own.instance())
        .await
        .expect("listen")
        .expect("PostgreSQL listens");
    // Delivered in the order sent: were its own heard, it would come first.
    notify(own.reader(), Topic::Inventory).await.expect("own");
    notify(theirs.reader(), Topic::KillSwitch)
        .await
        .expect("theirs");
    let heard = tokio::time::timeout(WITHIN, listener.next())
        .await
        .expect("a notification")
        .expect("listening");
    assert_eq!(heard, Topic::KillSwitch);
}
