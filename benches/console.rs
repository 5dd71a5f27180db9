//! The console's dependents page for a hub with 50,000 dependents, rendered by a real
//! `sunset serve` (this build) and fetched whole over loopback by a signed-in session,
//! next to the API's answer to the same question (GraphQL `dependents`) and the health
//! check, measured in the same run.
//!
//! Run: `cargo bench --bench console` (SQLite, in a temporary folder);
//! `-- --dependents N` for another size. The target: the page under a second.
//!
//! Shape: one version, `hub@1.0.0`; 60% of the dependents use it directly, 30% depend on
//! one of those (depth 2), 10% on one of those (depth 3); five kinds and three
//! environments; 20 models fine-tuned from it. The service may list up to 100,000 nodes
//! (`inventory.max_results`), so the page can be asked for every one.

#[path = "common/mod.rs"]
mod common;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sunset::auth::Actor;
use sunset::clock::SystemClock;
use sunset::config::Settings;
use sunset::service::Services;
use sunset::store::entities::{consumer, inventory_change, inventory_edge, model, model_version};

const REQUESTS: usize = 30;
const DERIVED: usize = 20;
const KINDS: [&str; 5] = ["service", "pipeline", "job", "notebook", "derived_store"];
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];

/// The hub and its owner's token, through the service; the dependents straight into the
/// tables (50,000 audited declarations would take the bench minutes).
async fn generate(services: &Services, dependents: usize) -> String {
    let seed = common::seed_version(services, "hub").await;
    let db = services.store().reader();
    let now = chrono::Utc::now();
    let consumers: Vec<consumer::ActiveModel> = (0..dependents)
        .map(|i| consumer::ActiveModel {
            id: Set(10_000 + i as i64),
            name: Set(format!("consumer-{i:05}")),
            kind: Set(KINDS[i % KINDS.len()].into()),
            owner_team: Set(format!("team-{}", i % 300)),
            environment: Set(ENVIRONMENTS[i % ENVIRONMENTS.len()].into()),
            contacts: Set("[]".into()),
            webhook_url: Set(None),
            webhook_secret: Set(None),
            discovered: Set(false),
            created_at: Set(now),
            created_by: Set("bench".into()),
            updated_at: Set(now),
        })
        .collect();
    let edge = |id: i64, key: String, kind: &str| inventory_edge::ActiveModel {
        id: Set(id),
        edge_key: Set(key),
        kind: Set(kind.into()),
        consumer_id: Set(None),
        target_consumer_id: Set(None),
        model_id: Set(None),
        version_range: Set(None),
        version_id: Set(None),
        parent_version_id: Set(None),
        derivation: Set(None),
        origin: Set("api".into()),
        origin_name: Set("bench".into()),
        first_seen: Set(now),
        last_seen: Set(now),
        observations: Set(1),
    };
    let direct = dependents * 6 / 10;
    let second = dependents * 9 / 10;
    let mut edges = Vec::with_capacity(dependents + DERIVED);
    for i in 0..dependents {
        let me = 10_000 + i as i64;
        let id = 100_000 + i as i64;
        edges.push(if i < direct {
            inventory_edge::ActiveModel {
                consumer_id: Set(Some(me)),
                model_id: Set(Some(seed.model_id)),
                version_range: Set(Some("1.0.0".into())),
                ..edge(id, format!("uses:{me}:{}:1.0.0", seed.model_id), "uses")
            }
        } else {
            // Depth 2 depends on a direct user, depth 3 on a depth-2 one.
            let target = if i < second {
                10_000 + (i % direct) as i64
            } else {
                10_000 + (direct + i % (second - direct)) as i64
            };
            inventory_edge::ActiveModel {
                consumer_id: Set(Some(me)),
                target_consumer_id: Set(Some(target)),
                ..edge(id, format!("depends_on:{me}:{target}"), "depends_on")
            }
        });
    }
    let mut models = Vec::new();
    let mut versions = Vec::new();
    for d in 0..DERIVED {
        let (model_id, version_id) = (1_000 + d as i64, 1_000 + d as i64);
        models.push(model::ActiveModel {
            id: Set(model_id),
            name: Set(format!("hub-tuned-{d:02}")),
            owner_team: Set("bench".into()),
            tier: Set("standard".into()),
            description: Set(String::new()),
            contacts: Set("[]".into()),
            created_at: Set(now),
            updated_at: Set(now),
        });
        versions.push(model_version::ActiveModel {
            id: Set(version_id),
            model_id: Set(model_id),
            major: Set(1),
            minor: Set(0),
            patch: Set(0),
            status: Set("production".into()),
            provenance: Set(seed.provenance.clone()),
            created_by: Set("bench".into()),
            created_at: Set(now),
            status_changed_at: Set(now),
            promoted_at: Set(None),
        });
        edges.push(inventory_edge::ActiveModel {
            version_id: Set(Some(version_id)),
            parent_version_id: Set(Some(seed.id)),
            derivation: Set(Some("fine-tune".into())),
            ..edge(
                500_000 + d as i64,
                format!("derived_from:{version_id}:{}", seed.id),
                "derived_from",
            )
        });
    }
    common::insert_chunks(db, models).await;
    common::insert_chunks(db, versions).await;
    common::insert_chunks(db, consumers).await;
    common::insert_chunks(db, edges).await;
    inventory_change::Entity::insert(inventory_change::ActiveModel {
        revision: Set(1_000_000),
        at: Set(now),
        entity: Set("model".into()),
        entity_id: Set(seed.model_id),
    })
    .exec_without_returning(db)
    .await
    .expect("change");
    db.execute_unprepared("ANALYZE").await.expect("analyze");
    let (_, reader) = services
        .admin()
        .create_token(
            &Actor::local_operator(),
            "bench-reader",
            "reader",
            None,
            None,
        )
        .await
        .expect("reader token");
    reader.expose().to_owned()
}

/// Signs in through the console's form as a browser does; returns the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str, token: &str) -> String {
    let form = client
        .get(format!("{base}/ui/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let nonce_cookie = form
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sunset_signin="))
        .and_then(|v| v.split(';').next())
        .expect("nonce cookie")
        .to_owned();
    let body = form.text().await.expect("page");
    let marker = "name=\"csrf\" value=\"";
    let at = body.find(marker).expect("csrf field") + marker.len();
    let nonce = body[at..].split('"').next().expect("nonce");
    let answer = client
        .post(format!("{base}/ui/sign-in"))
        .header(reqwest::header::COOKIE, nonce_cookie)
        .form(&[("token", token), ("csrf", nonce), ("next", "/ui/models")])
        .send()
        .await
        .expect("sign in");
    let session = answer
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sunset_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    match session {
        Some(cookie) => cookie,
        None => panic!(
            "no session: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        ),
    }
}

/// Fetches `request` `REQUESTS` times, whole; checks each answer; p50, p99 and the size.
async fn measure(
    what: &str,
    make: impl Fn() -> reqwest::RequestBuilder,
    check: impl Fn(&str) -> bool,
) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(REQUESTS);
    let mut size = 0;
    for _ in 0..REQUESTS {
        let start = Instant::now();
        let response = make().send().await.expect("request");
        let status = response.status();
        let body = response.text().await.expect("body");
        times.push(start.elapsed());
        assert!(status.is_success(), "{what}: {status}: {body}");
        assert!(check(&body), "{what}: unexpected answer: {body:.2000}");
        size = body.len();
    }
    times.sort();
    (
        common::percentile(&times, 0.5),
        common::percentile(&times, 0.99),
        size,
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dependents: usize = args
        .iter()
        .position(|a| a == "--dependents")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("tmp");
    let settings = Settings {
        data_dir: dir.path().join("sqlite"),
        ..Settings::default()
    };
    let services = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open");
    let started = Instant::now();
    let reader = generate(&services, dependents).await;
    drop(services);
    println!(
        "console benchmark: hub@1.0.0 with {dependents} consumers and {DERIVED} derived models, generated in {:.1} s ({} cores)",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let service = common::serve(
        &settings,
        port,
        &[("SUNSET_INVENTORY__MAX_RESULTS", "100000")],
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Redirects not followed: the sign-in's own answer carries the session cookie.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let session = sign_in(&client, &base, &reader).await;
    let total = dependents + DERIVED;
    let page = |query: &'static str| {
        let (client, base, session) = (client.clone(), base.clone(), session.clone());
        move || {
            client
                .get(format!(
                    "{base}/ui/models/hub/versions/1.0.0/dependents{query}"
                ))
                .header(reqwest::header::COOKIE, session.clone())
        }
    };
    let gql = |limit: usize| {
        let (client, base, reader) = (client.clone(), base.clone(), reader.clone());
        move || {
            client.post(format!("{base}/graphql")).bearer_auth(&reader).json(&serde_json::json!({
                "query": format!("{{ dependents(model: \"hub\", version: \"1.0.0\", limit: {limit}) {{ revision complete total consumersTotal omittedByLimit }} }}")
            }))
        }
    };
    let health = || client.get(format!("{base}/healthz"));
    let listed_all = format!("{total} dependents");
    let rows: Vec<(&str, (Duration, Duration, usize))> = vec![
        (
            "page, first 1,000 listed (default)",
            measure("default page", page(""), |b| {
                b.contains(&format!("{total} within the depth limit"))
            })
            .await,
        ),
        (
            "page, every dependent listed",
            measure("full page", page("?limit=100000"), |b| {
                b.contains(&listed_all) && b.contains("grouped by depth and kind")
            })
            .await,
        ),
        (
            "page, filtered (staging services, last page)",
            measure(
                "filtered page",
                page("?limit=100000&environment=staging&kind=service&page=9999"),
                |b| b.contains("Previous page"),
            )
            .await,
        ),
        (
            "GraphQL dependents, limit 1,000, counts only (the default page's question)",
            measure("graphql", gql(1_000), |b| b.contains("\"total\"")).await,
        ),
        (
            "/healthz (the floor)",
            measure("health", health, |_| true).await,
        ),
    ];
    println!("\n| request ({REQUESTS} each, sequential) | p50 | p99 | bytes |");
    println!("| --- | --- | --- | --- |");
    for (what, (p50, p99, size)) in &rows {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | {size} |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let worst = rows
        .iter()
        .take(3)
        .map(|(_, (_, p99, _))| *p99)
        .max()
        .unwrap_or_default();
    println!(
        "\nthe slowest page's p99: {:.1} ms, target under 1,000 ms: {}",
        worst.as_secs_f64() * 1e3,
        if worst < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(service);
}
