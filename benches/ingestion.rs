//! Registration webhooks into one database: acknowledged messages per second from 64
//! concurrent senders, with 1, 2 and then 3 `sunset serve` processes on one PostgreSQL
//! database (the senders spread across them), and one `sunset serve` on SQLite as the
//! baseline, in the same run. Each message registers one new consumer using one version;
//! each is answered 200 only after its commit. Target: at least 10,000 messages per second
//! on PostgreSQL, growing with replicas.
//!
//! Run: `cargo bench --bench ingestion` (PostgreSQL at `SUNSET_TEST_PG_URL`, which
//! `tests/run` starts). `-- --messages N` changes the messages per measurement (default
//! 32,000); `-- --replicas N` measures 1 to N replicas (default 3); `-- --postgres-only`
//! skips SQLite.

#[path = "common/mod.rs"]
mod common;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use sunset::auth::Actor;
use sunset::clock::SystemClock;
use sunset::config::Settings;

/// Concurrent senders unless `--senders N` says otherwise.
const SENDERS: usize = 64;
const MODELS: usize = 50;

/// Seeds `MODELS` models at 1.0.0 and a webhook source on `settings`' database through
/// the service; returns the source's secret.
async fn seed(settings: &Settings) -> String {
    let services = sunset::app::open(settings, Arc::new(SystemClock))
        .await
        .expect("open");
    for i in 0..MODELS {
        let seed = sunset::testing::Seed {
            model: &format!("m{i:02}"),
            team: "ml",
            tier: "standard",
            contacts: &[],
            versions: &["1.0.0"],
        };
        sunset::testing::seed(&services, seed).await;
    }
    let (_, secret) = services
        .inventory()
        .create_webhook_source(&Actor::local_operator(), "bench-ci")
        .await
        .expect("source");
    secret
}

/// `n` messages, each registering consumer `hooked-{tag}-{i}` as using one version.
fn bodies(n: usize, tag: &str) -> Arc<Vec<Vec<u8>>> {
    Arc::new(
        (0..n)
            .map(|i| {
                serde_json::to_vec(&json!({ "registrations": [{
                    "type": "consumer", "name": format!("hooked-{tag}-{i}"), "kind": "service",
                    "ownerTeam": "bench", "environment": "production",
                    "uses": [{ "model": format!("m{:02}", i % MODELS), "version": "1.0.0" }]
                }] }))
                .expect("json")
            })
            .collect(),
    )
}

/// Sends `messages` across `replicas`; prints and returns the rate, with the CPU each
/// process used per message (each replica, PostgreSQL's server processes, the senders in
/// this process) and the rate their sum allows on this machine's cores: when the two are
/// close, the rate is bound by the machine's CPU, not by waiting.
async fn measure(
    label: &str,
    replicas: &[(u16, &common::Serving)],
    database: Option<&common::BenchDatabase>,
    secret: &str,
    messages: usize,
    senders: usize,
) -> f64 {
    let server_before = match database {
        Some(db) => db.backend_cpu().await,
        None => Duration::ZERO,
    };
    let client = common::loopback_client();
    let urls: Vec<String> = replicas
        .iter()
        .map(|(port, _)| format!("http://127.0.0.1:{port}/v1/hooks/registrations"))
        .collect();
    let before: Vec<_> = replicas
        .iter()
        .map(|(_, s)| common::cpu_time(s.child.id()))
        .collect();
    let senders_before = common::cpu_time(std::process::id());
    let tag = format!("{}-{}", label.to_lowercase(), replicas.len());
    let rate = common::send_webhooks(
        &client,
        &urls,
        Some(secret),
        bodies(messages, &tag),
        senders,
        &tag,
    )
    .await;
    let per_message = |used: Duration| used.as_secs_f64() * 1e6 / messages as f64;
    let senders_used = per_message(common::cpu_time(std::process::id()) - senders_before);
    let each: Vec<f64> = replicas
        .iter()
        .zip(before)
        .map(|((_, s), b)| per_message(common::cpu_time(s.child.id()) - b))
        .collect();
    let server = match database {
        Some(db) => per_message(db.backend_cpu().await.saturating_sub(server_before)),
        None => 0.0,
    };
    let total = each.iter().sum::<f64>() + server + senders_used;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let shown: Vec<String> = each.iter().map(|us| format!("{us:.0}")).collect();
    println!(
        "{label}, {} replica(s): {rate:.0} messages/s ({messages} messages). CPU per message: each replica {} µs{}, senders {senders_used:.0} µs; {total:.0} µs in all, which {cores} cores allow {:.0}/s",
        replicas.len(),
        shown.join(", "),
        if database.is_some() {
            format!(", PostgreSQL's server processes {server:.0} µs")
        } else {
            String::new()
        },
        cores * 1e6 / total
    );
    rate
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages: usize = common::arg(&args, "--messages").unwrap_or(32_000);
    let senders: usize = common::arg(&args, "--senders").unwrap_or(SENDERS);
    let most: usize = common::arg(&args, "--replicas").unwrap_or(3);
    println!(
        "ingestion benchmark: {senders} senders, one new consumer and edge per message (release build, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let dir = tempfile::tempdir().expect("tmp");
    let baseline = if args.iter().any(|a| a == "--postgres-only") {
        f64::NAN
    } else {
        let sqlite = Settings {
            data_dir: dir.path().join("sqlite"),
            ..Settings::default()
        };
        let secret = seed(&sqlite).await;
        let port = common::free_port();
        let service = common::serve(&sqlite, port, &[]);
        measure(
            "SQLite",
            &[(port, &service)],
            None,
            &secret,
            messages,
            senders,
        )
        .await
    };

    let pg = common::BenchDatabase::create(&dir.path().join("pg")).await;
    let secret = seed(&pg.settings).await;
    let ports: Vec<u16> = (0..most).map(|_| common::free_port()).collect();
    let services: Vec<common::Serving> = ports
        .iter()
        .map(|&p| common::serve(&pg.settings, p, &[]))
        .collect();
    let replicas: Vec<(u16, &common::Serving)> = ports.iter().copied().zip(&services).collect();
    let mut rates = Vec::new();
    for n in 1..=most {
        rates.push(
            measure(
                "PostgreSQL",
                &replicas[..n],
                Some(&pg),
                &secret,
                messages,
                senders,
            )
            .await,
        );
    }
    println!(
        "PostgreSQL against SQLite's {baseline:.0}/s: {}",
        rates
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{} replica(s) {:.2}x", i + 1, r / baseline))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(services);
    pg.drop_database().await;
}
