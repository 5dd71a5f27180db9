//! Notices to 10,000 dependents, delivered to local receivers: webhooks and emails
//! separately (targets: 10,000 webhooks in under 10 s, 10,000 emails in under 30 s).
//!
//! Run: `cargo bench --bench notices` (SQLite in a temp folder; `-- --postgres` runs the
//! same on a fresh database at `SUNSET_TEST_PG_URL` as well). It generates its own
//! inventory: 10,000 consumers with a notice webhook using one model, 10,000 with contact
//! emails using another. The receivers are real servers on loopback: an axum endpoint
//! that verifies every Standard Webhooks signature against the consumer's own secret,
//! and the in-process SMTP server of `notifiers::testing` (every connection served at
//! once). The delivery worker's own pass (`deliver_due_notices`) is run until the outbox
//! is empty; the time from the first pass to the last is the figure. Scheduling (the
//! graph walk, 10,000 dependents and their notices written in one transaction) is timed
//! apart.

#[path = "common/mod.rs"]
mod common;

use common::actor;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{Duration as Days, Utc};
use futures_util::StreamExt;
use notifiers::standard_webhooks::{Headers, Message, Secret};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use sunset::clock::SystemClock;
use sunset::config::Settings;
use sunset::domain::Role;
use sunset::service::{ConsumerInput, RetirementInput, Services};

const DEPENDENTS: usize = 10_000;
/// Registrations per webhook message (the service's default maximum).
const PER_MESSAGE: usize = 1_000;

/// What the webhook receiver saw.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    bad_signatures: usize,
}

struct Receiver {
    secrets: HashMap<String, Secret>,
    seen: Mutex<Seen>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(consumer): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let h = Headers {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let ok = match (
        Message::parse(&h, Utc::now(), 300),
        r.secrets.get(&consumer),
    ) {
        (Ok(m), Some(secret)) if m.verify(secret, &body) => Some(m.id.to_owned()),
        _ => None,
    };
    let mut seen = r.seen.lock().unwrap_or_else(|p| p.into_inner());
    match ok {
        Some(id) => {
            seen.ids.insert(id);
            StatusCode::NO_CONTENT
        }
        None => {
            seen.bad_signatures += 1;
            StatusCode::UNAUTHORIZED
        }
    }
}

async fn model(services: &Services, name: &str) {
    let seed = sunset::testing::Seed {
        model: name,
        team: "ml",
        tier: "standard",
        contacts: &["ml@example.org"],
        versions: &["1.0.0"],
    };
    sunset::testing::seed(services, seed).await;
}

/// Consumer registrations through the signed webhook, a thousand per message.
async fn register(services: &Services, secret: &Secret, regs: Vec<serde_json::Value>) {
    for (n, chunk) in regs.chunks(PER_MESSAGE).enumerate() {
        let body =
            serde_json::to_vec(&serde_json::json!({ "registrations": chunk })).expect("json");
        let id = format!("msg_{}_{n}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
        let ts = Utc::now().timestamp();
        let signature = secret.sign(&id, ts, &body);
        let ts = ts.to_string();
        services
            .inventory()
            .receive_registrations(
                Headers {
                    id: Some(&id),
                    timestamp: Some(&ts),
                    signature: Some(&signature),
                },
                &body,
            )
            .await
            .expect("registrations applied");
    }
}

async fn schedule(services: &Services, model: &str) -> (f64, usize) {
    let governance = actor("bench-governance", Role::Governance, None);
    let started = Instant::now();
    let (_, dependents) = services
        .retirements()
        .schedule_retirement(
            &governance,
            RetirementInput {
                model: model.into(),
                versions: "*".into(),
                reason: "benchmark".into(),
                effective_at: Utc::now() + Days::days(8),
                replacement_model: None,
                replacement_version: None,
                levers: Default::default(),
            },
        )
        .await
        .expect("scheduled");
    (started.elapsed().as_secs_f64(), dependents.len())
}

/// Runs delivery passes until the outbox is empty; seconds from first to last.
async fn drain(services: &Services) -> (f64, usize, usize) {
    let started = Instant::now();
    let (mut delivered, mut failed) = (0, 0);
    loop {
        let r = services
            .retirements()
            .deliver_due_notices()
            .await
            .expect("delivery pass");
        if r.attempted == 0 {
            break;
        }
        delivered += r.delivered;
        failed += r.retrying + r.dead;
    }
    (started.elapsed().as_secs_f64(), delivered, failed)
}

async fn run(label: &str, mut settings: Settings) {
    let (smtp_port, mails) = notifiers::testing::smtp_sink().await.expect("smtp");
    settings.notifications.deliver = false;
    settings.notifications.public_url = Some("https://sunset.bench".into());
    settings.notifications.smtp = Some(sunset::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp_port,
        security: notifiers::email::Security::Plain,
        username: None,
        password: None,
        from: "sunset <sunset@example.org>".into(),
        timeout_secs: 10,
    });
    let services = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open");
    services.inventory().load_inventory().await.expect("load");
    model(&services, "hooked").await;
    model(&services, "mailed").await;

    // The webhook receiver, on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));

    let setup = Instant::now();
    let admin = actor("bench-admin", Role::Admin, None);
    let declared: Vec<(String, String)> = futures_util::stream::iter(0..DEPENDENTS)
        .map(|i| {
            let services = services.clone();
            let admin = admin.clone();
            let base = base.clone();
            async move {
                let name = format!("hook-{i:05}");
                let d = services
                    .inventory()
                    .declare_consumer(
                        &admin,
                        ConsumerInput {
                            name: name.clone(),
                            kind: "service".into(),
                            owner_team: "apps".into(),
                            environment: "prod".into(),
                            contacts: vec![],
                            webhook_url: Some(format!("{base}/hooks/{name}")),
                        },
                    )
                    .await
                    .expect("consumer");
                (name, d.webhook_secret.expect("secret"))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let secrets: HashMap<String, Secret> = declared
        .iter()
        .map(|(n, s)| (n.clone(), Secret::parse(s).expect("whsec")))
        .collect();
    let (_, source_secret) = services
        .inventory()
        .create_webhook_source(&admin, "bench-ci")
        .await
        .expect("source");
    let source_secret = Secret::parse(&source_secret).expect("whsec");
    let hooks = declared.iter().map(|(name, _)| {
        serde_json::json!({
            "type": "consumer", "name": name, "kind": "service", "ownerTeam": "apps",
            "environment": "prod", "uses": [{ "model": "hooked", "version": "^1" }],
        })
    });
    let mailed = (0..DEPENDENTS).map(|i| {
        serde_json::json!({
            "type": "consumer", "name": format!("mail-{i:05}"), "kind": "job", "ownerTeam": "apps",
            "environment": "prod", "contacts": [format!("team-{i:05}@example.org")],
            "uses": [{ "model": "mailed", "version": "^1" }],
        })
    });
    register(&services, &source_secret, hooks.chain(mailed).collect()).await;
    println!(
        "[{label}] inventory of {} consumers set up in {:.1} s",
        2 * DEPENDENTS,
        setup.elapsed().as_secs_f64()
    );

    let receiver = Arc::new(Receiver {
        secrets,
        seen: Mutex::new(Seen::default()),
    });
    let app = axum::Router::new()
        .route("/hooks/{consumer}", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (scheduled, dependents) = schedule(&services, "hooked").await;
    let (secs, delivered, failed) = drain(&services).await;
    let (ids, bad) = {
        let seen = receiver.seen.lock().unwrap_or_else(|p| p.into_inner());
        (seen.ids.len(), seen.bad_signatures)
    };
    assert_eq!((dependents, delivered, failed), (DEPENDENTS, DEPENDENTS, 0));
    assert_eq!((ids, bad), (DEPENDENTS, 0));
    println!(
        "[{label}] webhooks: {DEPENDENTS} dependents scheduled in {scheduled:.2} s; \
         {DEPENDENTS} signed notices delivered and verified in {secs:.2} s ({:.0}/s; target: under 10 s)",
        DEPENDENTS as f64 / secs
    );

    let (scheduled, dependents) = schedule(&services, "mailed").await;
    let (secs, delivered, failed) = drain(&services).await;
    let got: Vec<_> = mails.try_iter().collect();
    assert_eq!((dependents, delivered, failed), (DEPENDENTS, DEPENDENTS, 0));
    assert_eq!(got.len(), DEPENDENTS);
    println!(
        "[{label}] emails: {DEPENDENTS} dependents scheduled in {scheduled:.2} s; \
         {DEPENDENTS} mails accepted by the SMTP server in {secs:.2} s ({:.0}/s; target: under 30 s)",
        DEPENDENTS as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
