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
use sunset::service::{ConsumerInput, EdgeSpec, RetirementInput};
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
    serve_with(data, config, None).0
}

/// Starts `sunset serve` on `data`, with `failpoints` armed (`SUNSET_TEST_FAILPOINTS`), and
/// returns it and its base URL once it listens.
pub fn serve_with(data: &Path, config: &Path, failpoints: Option<&str>) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sunset"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("SUNSET_METRICS__LISTEN", "127.0.0.1:0")
        .arg(data)
        .arg("--config")
        .arg(config)
        .env_remove("DATABASE_URL")
        .env_remove("SUNSET_TEST_FAILPOINTS")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(points) = failpoints {
        command.env("SUNSET_TEST_FAILPOINTS", points);
    }
    let mut child = command.spawn().expect("spawn sunset");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut address = String::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        eprintln!("[sunset] {line}");
        if line.contains("sunset is listening") {
            address = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .map(|a| format!("http://{}", a.trim_matches('"')))
                .unwrap_or_default();
            break;
        }
    }
    // Keep reading its log, so a full pipe never blocks it; shown when a test fails.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("[sunset] {line}");
        }
    });
    (child, address)
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
    let mut settings = sunset::config::Settings {
        data_dir: data.clone(),
        ..sunset::config::Settings::default()
    };
    crate::support::admit_loopback_receivers(&mut settings);
    let secrets = notices_waiting_in_the_outbox(&settings, &receiver).await;

    // Slow receivers and few slots, so the kill lands mid-delivery; a long timeout, so
    // the claims' leases (125 s) outlast the test: the restarted process must take the
    // dead one's claims as it starts, not wait them out.
    let signed = SignedPerConsumer(secrets.clone());
    Mock::given(method("POST"))
        .and(SignedPerConsumer(secrets.clone()))
        .respond_with(ResponseTemplate::new(204).set_delay(std::time::Duration::from_millis(40)))
        .mount(&receiver)
        .await;
    let config = dir.path().join("sunset.toml");
    std::fs::write(
        &config,
        "[notifications]\nconcurrency = 4\nwebhook_timeout_secs = 120\n\
         webhook_allow_http = true\nwebhook_allow = [\"127.0.0.0/8\"]\n",
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
    let first_pid = first.id();
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let (at_kill, _) = received(&receiver, &signed).await;
    assert!(
        at_kill.len() < DEPENDENTS,
        "killed mid-delivery, with {} of {DEPENDENTS} told",
        at_kill.len()
    );

    let mut second = serve(&data, &config);
    // As it started, the new process forgot the dead one (same host, process gone), so
    // the claims the dead one held are free now, not when its heartbeat goes stale.
    let replicas = sql_lines(&data, "SELECT instance FROM replicas");
    assert!(
        !replicas
            .iter()
            .any(|r| r.contains(&format!(":{first_pid}/"))),
        "the killed process still counts as running: {replicas:?}"
    );
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let (by_path, _) = received(&receiver, &signed).await;
            if by_path.len() == DEPENDENTS && pending(&data).is_empty() {
                return by_path;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    second.kill().expect("stop");
    second.wait().expect("reaped");
    let by_path = outcome.unwrap_or_else(|_| {
        panic!(
            "not every notice delivered after the restart: {:?}",
            pending(&data)
        )
    });
    // None lost, and a repeat is always the same notice (same webhook-id).
    for (path, ids) in &by_path {
        assert_eq!(ids.len(), 1, "{path} got different notices: {ids:?}");
    }
    // Outcomes are stored as attempts complete: only the attempts in flight at the kill
    // (at most `concurrency` = 4, and those completing with them) reach a receiver twice;
    // and every attempt is counted, those whose outcome the kill lost included.
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for r in receiver.received_requests().await.expect("recording") {
        if wiremock::Match::matches(&signed, &r) {
            *sent
                .entry(r.headers["webhook-id"].to_str().expect("id").to_owned())
                .or_default() += 1;
        }
    }
    let repeats: usize = sent.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 8,
        "{repeats} notices were sent again after the kill"
    );
    let attempts: HashMap<String, usize> = sql_lines(&data, "SELECT id, attempts FROM notices")
        .iter()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, n)| (id.to_owned(), n.parse().expect("attempts")))
        .collect();
    for (id, times) in &sent {
        assert!(
            attempts.get(id).is_some_and(|a| a >= times),
            "{id} was sent {times} times, counted {:?}",
            attempts.get(id)
        );
    }
}

/// The notices of the database in `data` not yet delivered, with who claimed them.
fn pending(data: &Path) -> Vec<String> {
    sql_lines(
        data,
        "SELECT id, claimed_by FROM notices WHERE state = 'pending'",
    )
}

/// The rows `query` returns from the database in `data`, as the `sqlite3` tool prints them.
fn sql_lines(data: &Path, query: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(data.join("sunset.db"))
        .arg(query)
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A model, `DEPENDENTS` consumers with webhooks at `receiver`, and a retirement whose
/// notices wait in the outbox. Returns each receiver path's webhook secret.
async fn notices_waiting_in_the_outbox(
    settings: &sunset::config::Settings,
    receiver: &MockServer,
) -> HashMap<String, String> {
    let services = sunset::app::open(settings, Arc::new(SystemClock))
        .await
        .expect("open");
    services.inventory().load_inventory().await.expect("load");
    let admin = Actor::local_operator();
    sunset::testing::seed(&services, seed("fraud", &["1.0.0"])).await;
    let mut secrets = HashMap::new();
    for i in 0..DEPENDENTS {
        let name = format!("svc-{i:03}");
        let declared = services
            .inventory()
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
            .inventory()
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
        .retirements()
        .schedule_retirement(
            &governance,
            RetirementInput {
                model: "fraud".into(),
                versions: "*".into(),
                reason: "superseded".into(),
                effective_at: Utc::now() + Duration::days(8),
                replacement_model: None,
                replacement_version: None,
                levers: Default::default(),
            },
        )
        .await
        .expect("scheduled");
    assert_eq!(dependents.len(), DEPENDENTS);
    secrets
}

/// The real binary executes a retirement and dies (abort, no clean-up) between the KEK
/// rotation and the destruction of the old epoch: both epochs are on disk, the
/// retirement is executing. Started again, it resumes on its own and reaches the same
/// end as an uninterrupted run: old epoch destroyed, one certificate, the surviving
/// artifact intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_killed_mid_erasure_finishes_on_the_next_start() {
    use sunset::clock::ManualClock;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut settings = sunset::config::Settings {
        data_dir: data.clone(),
        ..sunset::config::Settings::default()
    };
    crate::support::admit_loopback_receivers(&mut settings);
    // Prepared through the library, on a clock moved past the notice period.
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (retirement, gov_token, reader_token, surviving) =
        a_ready_retirement_with_a_survivor(&settings, clock).await;

    let config = dir.path().join("sunset.toml");
    std::fs::write(&config, "").expect("config");
    let kek_dir = data.join("keys").join("kek");
    let keks = || {
        let mut names: Vec<String> = std::fs::read_dir(&kek_dir)
            .expect("kek dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let client = crate::support::loopback_client();
    let execute = serde_json::json!({
        "query": "mutation($id: ID!) { executeRetirement(id: $id) { state } }",
        "variables": { "id": retirement.id.to_string() },
    });

    let (mut first, address) = serve_with(&data, &config, Some("before:destroy-kek=abort"));
    let cut = client
        .post(format!("{address}/graphql"))
        .bearer_auth(gov_token.expose())
        .json(&execute)
        .send()
        .await;
    assert!(cut.is_err(), "the process died mid-request: {cut:?}");
    let status = first.wait().expect("reaped");
    assert!(!status.success(), "aborted: {status:?}");
    assert_eq!(
        keks(),
        ["kek-00000001.key", "kek-00000002.key"],
        "rotated, old epoch not yet destroyed"
    );

    let (mut second, address) = serve_with(&data, &config, None);
    let reader = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open");
    let finished = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let r = reader
                .retirements()
                .retirement(retirement.id)
                .await
                .expect("r");
            if r.state == sunset::domain::RetirementState::Retired {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let kept = client
        .get(format!(
            "{address}/v1/models/fraud/versions/2.0.0/artifacts/model.bin"
        ))
        .bearer_auth(reader_token.expose())
        .send()
        .await
        .expect("get");
    let gone = client
        .get(format!(
            "{address}/v1/models/fraud/versions/1.0.0/artifacts/model.bin"
        ))
        .bearer_auth(reader_token.expose())
        .send()
        .await
        .expect("get");
    second.kill().expect("stop");
    second.wait().expect("reaped");
    finished.expect("the restarted service finished the execution by itself");
    assert_eq!(keks(), ["kek-00000002.key"]);
    assert_eq!(
        reader
            .decommission()
            .certificate_count(retirement.id)
            .await
            .expect("count"),
        1
    );
    assert_eq!(kept.status(), 200);
    assert_eq!(
        kept.bytes().await.expect("body").as_ref(),
        surviving.as_slice()
    );
    assert_eq!(gone.status(), 410);
}

/// Through the library, on `clock` moved past the notice: fraud 1.0.0 and 2.0.0 with an
/// artifact each, 1.0.0's retirement ready. Returns the retirement, a governance and a
/// reader token, and the surviving artifact's bytes.
async fn a_ready_retirement_with_a_survivor(
    settings: &sunset::config::Settings,
    clock: Arc<sunset::clock::ManualClock>,
) -> (
    sunset::domain::Retirement,
    sunset::auth::TokenSecret,
    sunset::auth::TokenSecret,
    Vec<u8>,
) {
    let services = sunset::app::open(settings, clock.clone())
        .await
        .expect("open");
    services.inventory().load_inventory().await.expect("load");
    let owner = sunset::testing::seed(&services, seed("fraud", &["1.0.0", "2.0.0"])).await;
    let surviving: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    for (version, bytes) in [("1.0.0", vec![9u8; 50_000]), ("2.0.0", surviving.clone())] {
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        services
            .artifacts()
            .upload_artifact(&owner, "fraud", version, "model.bin", None, body)
            .await
            .expect("upload");
    }
    let governance = Actor {
        name: "gov".into(),
        role: sunset::domain::Role::Governance,
        ..Actor::system()
    };
    let (retirement, _) = services
        .retirements()
        .schedule_retirement(
            &governance,
            RetirementInput {
                model: "fraud".into(),
                versions: "1.0.0".into(),
                reason: "a flaw in its weights".into(),
                effective_at: Utc::now() + Duration::days(8),
                replacement_model: None,
                replacement_version: None,
                levers: Default::default(),
            },
        )
        .await
        .expect("scheduled");
    clock.set(Utc::now() + Duration::days(8) + Duration::minutes(1));
    services
        .retirements()
        .check_retirements(sunset::domain::FoundBy::GraphChange)
        .await
        .expect("check");
    let (_, gov_token) = services
        .admin()
        .create_token(&Actor::local_operator(), "gov", "governance", None, None)
        .await
        .expect("token");
    let (_, reader_token) = services
        .admin()
        .create_token(&Actor::local_operator(), "reader", "reader", None, None)
        .await
        .expect("token");
    assert_eq!(
        services
            .retirements()
            .retirement(retirement.id)
            .await
            .expect("r")
            .state,
        sunset::domain::RetirementState::Ready
    );
    (retirement, gov_token, reader_token, surviving)
}

/// Model `model` of team ml, standard tier, with `versions`.
fn seed<'a>(model: &'a str, versions: &'a [&'a str]) -> sunset::testing::Seed<'a> {
    sunset::testing::Seed {
        model,
        team: "ml",
        tier: "standard",
        contacts: &[],
        versions,
    }
}
