//! Replicas in step: three instances of sunset on one PostgreSQL database, and the time
//! from a commit through replica A to what replica C shows:
//! (a) its graph holding a new `uses` edge (`dependents` answers with the consumer),
//! (b) its `disabledVersionsChanged` feed publishing the kill switch's new list,
//! (c) its refusal of a download of the killed version.
//! p50 and p99 over 200 trials each, with `LISTEN`/`NOTIFY` (the default) and with the
//! polls alone (`inventory.listen = false`, every `inventory.poll_interval_ms`, 250 ms)
//! on a fresh database each, in the same run. Times run from the call on A (its commit
//! included) to C's observation. Target: p99 under 50 ms.
//!
//! Run: `cargo bench --bench replicas` (PostgreSQL at `SUNSET_TEST_PG_URL`, which
//! `tests/run` starts). The instances run in this process, each with its own pools,
//! graph, listener and workers, as separate processes would.

#[path = "common/mod.rs"]
mod common;

use common::actor;

use std::sync::Arc;
use std::time::{Duration, Instant};
use sunset::app::Application;
use sunset::auth::Actor;
use sunset::clock::SystemClock;
use sunset::config::Settings;
use sunset::domain::Role;
use sunset::service::{Ask, ConsumerInput, EdgeSpec, ServiceError, Services};

const TRIALS: usize = 200;
/// Longer than this and a trial counts as lost (and the run stops).
const GIVE_UP: Duration = Duration::from_secs(10);

/// Starts an instance on `settings`; returns its services (it serves until the process
/// ends).
async fn replica(settings: &Settings) -> Services {
    let app = Application::build(settings.clone(), Arc::new(SystemClock))
        .await
        .expect("replica starts");
    let services = app.services();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    services
}

/// `TRIALS` models with one version and an artifact each, through `a`.
async fn seed(a: &Services) {
    for i in 0..TRIALS {
        common::model_with_artifact(a, &format!("m{i:04}")).await;
    }
}

/// (a): a consumer declared on A, then timed: its `uses` edge declared on A until C's
/// graph has the revision, checked by asking C for the model's dependents.
async fn graph_trials(a: &Services, c: &Services) -> Vec<Duration> {
    let admin = Actor::local_operator();
    let mut times = Vec::with_capacity(TRIALS);
    for i in 0..TRIALS {
        let consumer = format!("c{i:04}");
        a.inventory()
            .declare_consumer(
                &admin,
                ConsumerInput {
                    name: consumer.clone(),
                    kind: "service".into(),
                    owner_team: "apps".into(),
                    environment: "prod".into(),
                    contacts: vec![],
                    webhook_url: None,
                },
            )
            .await
            .expect("consumer");
        let mut revisions = c.inventory().inventory_revision();
        let started = Instant::now();
        a.inventory()
            .declare_edge(
                &admin,
                EdgeSpec::Uses {
                    consumer: consumer.clone(),
                    model: "m0000".into(),
                    version: "1.0.0".into(),
                },
            )
            .await
            .expect("edge");
        let committed = *a.inventory().inventory_revision().borrow();
        tokio::time::timeout(GIVE_UP, revisions.wait_for(|&r| r >= committed))
            .await
            .expect("C follows within the give-up time")
            .expect("C's graph is alive");
        times.push(started.elapsed());
        let ask = Ask {
            transitive: false,
            max_depth: None,
            include_stale: true,
            limit: Some(10_000),
        };
        let answer = c
            .inventory()
            .dependents("m0000", "1.0.0", ask)
            .await
            .expect("dependents");
        assert_eq!(
            answer.consumers_total,
            i + 1,
            "C answers with the new consumer"
        );
    }
    times
}

/// (b) and (c): an emergency retirement of `m{i}` through A, timed until C's kill-switch
/// feed publishes the new list and until a downloader on C is refused.
async fn kill_switch_trials(a: &Services, c: &Services) -> (Vec<Duration>, Vec<Duration>) {
    let security = actor("bench-security", Role::Security, None);
    let reader = actor("bench-reader", Role::Reader, None);
    let (mut pushed, mut refused) = (Vec::new(), Vec::new());
    for i in 0..TRIALS {
        let name = format!("m{i:04}");
        let mut feed = c.decommission().kill_switch_changes();
        feed.borrow_and_update();
        let downloader = {
            let (c, reader, name) = (c.clone(), reader.clone(), name.clone());
            tokio::spawn(async move {
                loop {
                    match c
                        .artifacts()
                        .open_artifact(&reader, &name, "1.0.0", "model.bin")
                        .await
                    {
                        Ok(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                        Err(ServiceError::Gone(_)) => return Instant::now(),
                        Err(e) => panic!("download failed: {e}"),
                    }
                }
            })
        };
        let started = Instant::now();
        a.decommission()
            .emergency_retirement(
                &security,
                &name,
                "1.0.0",
                "benchmark: a critical flaw found in this version's weights",
                "bench",
            )
            .await
            .expect("emergency retirement");
        tokio::time::timeout(GIVE_UP, feed.changed())
            .await
            .expect("C publishes within the give-up time")
            .expect("C's feed is alive");
        pushed.push(started.elapsed());
        let at = tokio::time::timeout(GIVE_UP, downloader)
            .await
            .expect("C refuses within the give-up time")
            .expect("downloader");
        refused.push(at.saturating_duration_since(started));
    }
    (pushed, refused)
}

fn report(label: &str, what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!(
        "[{label}] {what}: p50 {} p99 {} max {} ({} trials; target p99 under 50 ms)",
        ms(common::percentile(&times, 0.5)),
        ms(common::percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        times.len()
    );
}

async fn run(label: &str, listen: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = common::BenchDatabase::create(dir.path()).await;
    let mut settings = db.settings.clone();
    settings.listen = "127.0.0.1:0".parse().expect("address");
    settings.metrics.enabled = false;
    settings.notifications.deliver = false;
    settings.inventory.listen = listen;
    let a = replica(&settings).await;
    let _b = replica(&settings).await;
    let c = replica(&settings).await;
    seed(&a).await;
    report(
        label,
        "(a) commit on A to C's graph holding the edge",
        graph_trials(&a, &c).await,
    );
    let (pushed, refused) = kill_switch_trials(&a, &c).await;
    report(
        label,
        "(b) kill switch on A to C's disabledVersionsChanged feed",
        pushed,
    );
    report(
        label,
        "(c) kill switch on A to C refusing the download",
        refused,
    );
    db.drop_database().await;
}

#[tokio::main]
async fn main() {
    run("LISTEN/NOTIFY", true).await;
    run("polling only, 250 ms", false).await;
}
