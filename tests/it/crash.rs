//! Crash safety of notice delivery: the real binary is killed with SIGKILL while it
//! delivers a retirement's notices to many dependents, then started again on the same
//! data; every notice arrives, and a notice that arrives twice does so under the same
//! `webhook-id`.

use chrono::{Duration, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use sunset::auth::Actor;
use sunset::clock::SystemClock;
use sunset::service::{ConsumerInput, EdgeSpec, ModelInput, RetirementInput, VersionInput};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const DEPENDENTS: usize = 200;

/// Accepts only requests signed with the secret of the consumer their path names.
struct SignedPerConsumer(HashMap<String, String>);

impl wiremock::Match for SignedPerConsumer {
    fn matches(&self, request: &Request) -> bool {
        use notifiers::standard_webhooks::{Headers, Message, Secret};
        let Some(secret) = self.0.get(request.url.path()) else {
            return false;
        };
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let headers = Headers {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
        };
        let secret = Secret::parse(secret).expect("whsec");
        Message::parse(&headers, Utc::now(), 300).is_ok_and(|m| m.verify(&secret, &request.body))
    }
}

/// Starts `sunset serve` on `data` and returns it once it listens.
fn serve(data: &Path, config: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sunset");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    for line in lines.by_ref() {
        if line.expect("line").contains("sunset is listening") {
            break;
        }
    }
    // Keep reading its log, so a full pipe never blocks it.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Consumer path → the distinct webhook-ids it received correctly signed, and how many
/// such requests in all. (wiremock records unmatched requests too; those do not count.)
async fn received(
    receiver: &MockServer,
    signed: &SignedPerConsumer,
) -> (BTreeMap<String, BTreeSet<String>>, usize) {
    use wiremock::Match;
    let requests: Vec<Request> = receiver
        .received_requests()
        .await
        .expect("recording")
        .into_iter()
        .filter(|r| signed.matches(r))
        .collect();
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &requests {
        let id = r.headers["webhook-id"].to_str().expect("id").to_owned();
        by_path
            .entry(r.url.path().to_owned())
            .or_default()
            .insert(id);
    }
    (by_path, requests.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_survive_a_sigkill_mid_delivery() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let receiver = MockServer::start().await;

    // The world, written through the library: a model, 200 consumers with webhooks, and
    // a retirement whose 200 notices wait in the outbox (nothing delivers in-process).
    let settings = sunset::config::Settings {
        data_dir: data.clone(),
        ..sunset::config::Settings::default()
    };
    let services = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open");
    services.load_inventory().await.expect("load");
    let admin = Actor::local_operator();
    let owner = Actor {
        name: "ml-owner".into(),
        role: sunset::domain::Role::Owner,
        team: Some(sunset::domain::TeamName::parse("ml").expect("team")),
        ..Actor::system()
    };
    services
        .create_model(
            &owner,
            ModelInput {
                name: "fraud".into(),
                owner_team: "ml".into(),
                tier: "standard".into(),
                description: String::new(),
                contacts: vec![],
            },
        )
        .await
        .expect("model");
    services
        .create_version(
            &owner,
            VersionInput {
                model: "fraud".into(),
                version: "1.0.0".into(),
                provenance: Default::default(),
            },
        )
        .await
        .expect("version");
    let mut secrets = HashMap::new();
    for i in 0..DEPENDENTS {
        let name = format!("svc-{i:03}");
        let declared = services
            .declare_consumer(
                &admin,
                ConsumerInput {
                    name: name.clone(),
                    kind: "service".into(),
                    owner_team: "apps".into(),
                    environment: "prod".into(),
                    contacts: vec![],
                    webhook_url: Some(format!("{}/{name}", receiver.uri())),
                },
            )
            .await
            .expect("consumer");
        secrets.insert(format!("/{name}"), declared.webhook_secret.expect("secret"));
        services
            .declare_edge(
                &admin,
                EdgeSpec::Uses {
                    consumer: name,
                    model: "fraud".into(),
                    version: "^1".into(),
                },
            )
            .await
            .expect("edge");
    }
    let governance = Actor {
        name: "gov".into(),
        role: sunset::domain::Role::Governance,
        ..Actor::system()
    };
    let (_, dependents) = services
        .schedule_retirement(
            &governance,
            RetirementInput {
                model: "fraud".into(),
                versions: "*".into(),
                reason: "superseded".into(),
                effective_at: Utc::now() + Duration::days(8),
                replacement_model: None,
                replacement_version: None,
            },
        )
        .await
        .expect("scheduled");
    assert_eq!(dependents.len(), DEPENDENTS);
    drop(services);

    // Slow receivers and few slots, so the kill lands mid-delivery; short timeouts, so
    // the killed process's leases run out within seconds.
    let signed = SignedPerConsumer(secrets.clone());
    Mock::given(method("POST"))
        .and(SignedPerConsumer(secrets.clone()))
        .respond_with(ResponseTemplate::new(204).set_delay(std::time::Duration::from_millis(40)))
        .mount(&receiver)
        .await;
    let config = dir.path().join("sunset.toml");
    std::fs::write(
        &config,
        "[notifications]\nconcurrency = 4\nwebhook_timeout_secs = 1\n",
    )
    .expect("config");

    let mut first = serve(&data, &config);
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while received(&receiver, &signed).await.1 < 40 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("deliveries began");
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let (at_kill, _) = received(&receiver, &signed).await;
    assert!(
        at_kill.len() < DEPENDENTS,
        "killed mid-delivery, with {} of {DEPENDENTS} told",
        at_kill.len()
    );

    let mut second = serve(&data, &config);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let (by_path, _) = received(&receiver, &signed).await;
            if by_path.len() == DEPENDENTS {
                return by_path;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    second.kill().expect("stop");
    second.wait().expect("reaped");
    let by_path = outcome.expect("every dependent told after the restart");
    // None lost, and a repeat is always the same notice (same webhook-id).
    for (path, ids) in &by_path {
        assert_eq!(ids.len(), 1, "{path} got different notices: {ids:?}");
    }
}
