//! Kill-switch latency: from the trigger (`executeRetirement` called) to enforcement, on
//! one instance (target: p99 under 250 ms): the first download of the retired version
//! refused with 410 Gone, and the enforcement point's signed `model.versions.disabled`
//! notice received by a gateway (an axum endpoint on loopback), delivered by the outbox
//! worker as in production.
//!
//! Run: `cargo bench --bench decommission` (SQLite in a temp folder; `-- --postgres` adds
//! a fresh database at `SUNSET_TEST_PG_URL`). It generates 200 models, each with one
//! version and an artifact and a retirement made ready under an injected clock; then, for
//! each, a downloader reads the artifact in a loop while the retirement is executed, and
//! the times from the call to the first refused download and to the gateway's receipt of
//! its notice are recorded. `executeRetirement` goes on to erase, revoke and certify; the
//! figures are about enforcement only.

#[path = "common/mod.rs"]
mod common;

use common::actor;

use chrono::{Duration as Days, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sunset::auth::Actor;
use sunset::clock::ManualClock;
use sunset::config::Settings;
use sunset::domain::RetirementId;
use sunset::domain::Role;
use sunset::service::{RetirementInput, ServiceError, Services};

const MODELS: usize = 200;

async fn prepare(services: &Services, clock: &ManualClock, i: usize) -> i64 {
    let name = format!("m{i:04}");
    common::model_with_artifact(services, &name).await;
    let (r, _) = services
        .retirements()
        .schedule_retirement(
            &actor("bench-governance", Role::Governance, None),
            RetirementInput {
                model: name,
                versions: "1.0.0".into(),
                reason: "benchmark".into(),
                effective_at: clock_now(clock) + Days::days(7),
                replacement_model: None,
                replacement_version: None,
                levers: Default::default(),
            },
        )
        .await
        .expect("scheduled");
    r.id.0
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    sunset::clock::Clock::now(clock)
}

/// A gateway on loopback: records when each retirement's notice arrived.
async fn gateway() -> (String, Arc<Mutex<HashMap<String, Instant>>>) {
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = arrived.clone();
    let app = axum::Router::new().route(
        "/gateway",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let at = Instant::now();
                let notice: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(id) = notice["data"]["retirementId"].as_str() {
                    seen.lock()
                        .expect("lock")
                        .entry(id.to_owned())
                        .or_insert(at);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/gateway", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrived)
}

async fn run(label: &str, mut settings: Settings) {
    settings.notifications.deliver = false;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let services = sunset::app::open(&settings, clock.clone())
        .await
        .expect("open");
    services.inventory().load_inventory().await.expect("load");
    let (url, arrived) = gateway().await;
    services
        .inventory()
        .declare_consumer(
            &Actor::local_operator(),
            sunset::service::ConsumerInput {
                name: "edge-gateway".into(),
                kind: "gateway".into(),
                owner_team: "platform".into(),
                environment: "prod".into(),
                contacts: vec![],
                webhook_url: Some(url),
            },
        )
        .await
        .expect("gateway");
    // The outbox worker, as a serving instance runs it.
    tokio::spawn(services.clone().run_delivery());
    let mut ids = Vec::with_capacity(MODELS);
    for i in 0..MODELS {
        ids.push(prepare(&services, &clock, i).await);
    }
    clock.advance(Days::days(8));
    let checked = services
        .retirements()
        .check_retirements(sunset::domain::FoundBy::GraphChange)
        .await
        .expect("check");
    assert_eq!(checked.state_changes, MODELS, "every retirement ready");

    let governance = actor("bench-governance", Role::Governance, None);
    let reader = actor("bench-reader", Role::Reader, None);
    let mut latencies = Vec::with_capacity(MODELS);
    let mut told = Vec::with_capacity(MODELS);
    for (i, &id) in ids.iter().enumerate() {
        let name = format!("m{i:04}");
        // A client downloading the version over and over, as traffic would.
        let downloader = {
            let (services, reader, name) = (services.clone(), reader.clone(), name.clone());
            tokio::spawn(async move {
                loop {
                    match services
                        .artifacts()
                        .open_artifact(&reader, &name, "1.0.0", "model.bin")
                        .await
                    {
                        Ok(_) => tokio::task::yield_now().await,
                        Err(ServiceError::Gone(_)) => return Instant::now(),
                        Err(e) => panic!("download failed: {e}"),
                    }
                }
            })
        };
        let trigger = Instant::now();
        services
            .decommission()
            .execute_retirement(&governance, RetirementId(id))
            .await
            .expect("executed");
        let enforced = downloader.await.expect("downloader");
        latencies.push(enforced.saturating_duration_since(trigger));
        let key = id.to_string();
        let received = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(at) = arrived.lock().expect("lock").get(&key) {
                    return *at;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the gateway was told");
        told.push(received.saturating_duration_since(trigger));
    }
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    for (what, mut times) in [
        ("first refused download", latencies),
        ("gateway told (signed webhook received)", told),
    ] {
        times.sort();
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "[{label}] kill switch, trigger to {what} ({MODELS} retirements): p50 {} p99 {} max {} (target: p99 under 250 ms)",
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(*times.last().unwrap_or(&Duration::ZERO))
        );
    }
}

#[tokio::main]
async fn main() {
    let postgres = std::env::args().any(|a| a == "--postgres");
    let dir = tempfile::tempdir().expect("tmp");
    let mut settings = Settings {
        data_dir: dir.path().join("sqlite"),
        ..Settings::default()
    };
    common::admit_loopback_receivers(&mut settings);
    run("sqlite", settings).await;
    if postgres {
        let db = common::BenchDatabase::create(&dir.path().join("postgres")).await;
        run("postgres", db.settings.clone()).await;
        db.drop_database().await;
    }
}
