//! The soak's world, made through the library before the replicas start: models with
//! artifacts in object storage, waves of dependents with webhooks, tokens, a webhook
//! source, and the configuration every replica shares (its service key in a file of its
//! own, as a Secret would hold it). Then the events the soak makes over HTTP.

use super::fleet::Fleet;
use super::load;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sunset::auth::Actor;
use sunset::clock::SystemClock;
use sunset::config::Settings;
use sunset::service::{ConsumerInput, EdgeSpec, Services};

pub const MODELS: usize = 40;
pub const WAVE_DEPENDENTS: usize = 100;
const ARTIFACT_BYTES: usize = 256 * 1024;

pub struct Seeded {
    pub config: PathBuf,
    pub load: Arc<load::World>,
    pub waves: Vec<String>,
    pub db: DatabaseConnection,
    pub governance: String,
    pub security: [String; 2],
    /// SHA-256 of each model's artifact (all alike in size, random in content).
    pub digests: HashMap<String, String>,
    /// Emergency retirements made, and the model each erased.
    pub erased: Mutex<Vec<(String, String)>>,
    hot: Vec<String>,
}

/// Makes the world on the database `settings` name, with files under `root`.
/// Seeds the fleet's database with `waves` waves of dependents (one retirement each).
pub async fn seed(settings: &Settings, root: &Path, receiver: &str, waves: usize) -> Seeded {
    let settings = fleet_settings(settings, root);
    let services = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open the fleet's database");
    services.inventory().load_inventory().await.expect("load");
    let operator = Actor::local_operator();
    let token = |name: &'static str, role: &'static str| {
        let services = services.clone();
        let operator = operator.clone();
        async move {
            let (_, secret) = services
                .admin()
                .create_token(&operator, name, role, None, None)
                .await
                .expect("token");
            secret.expose().to_owned()
        }
    };
    let (reader, governance) = (
        token("soak-reader", "reader").await,
        token("soak-governance", "governance").await,
    );
    let security = [
        token("soak-security-1", "security").await,
        token("soak-security-2", "security").await,
    ];
    let (_, hook_secret) = services
        .inventory()
        .create_webhook_source(&operator, "soak-ci")
        .await
        .expect("source");
    let mut digests = HashMap::new();
    let models: Vec<String> = (0..MODELS).map(|i| format!("m{i:02}")).collect();
    let hot: Vec<String> = (0..4).map(|i| format!("hot-{i}")).collect();
    for name in models.iter().chain(&hot) {
        digests.insert(name.clone(), model_with_artifact(&services, name).await);
    }
    let waves: Vec<String> = (0..waves).map(|k| format!("wave-{k:02}")).collect();
    for (k, wave) in waves.iter().enumerate() {
        wave_of_dependents(&services, wave, k, receiver).await;
    }
    let config = root.join("sunset.toml");
    std::fs::write(&config, toml::to_string(&settings).expect("toml")).expect("config");
    let db = sea_orm::Database::connect(settings.database_url().expose())
        .await
        .expect("database");
    let load = Arc::new(load::World {
        client: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        reader,
        hook_secret: sunset::ingest::standard_webhooks::Secret::parse(&hook_secret)
            .expect("secret"),
        downloadable: Mutex::new(models.iter().chain(&hot).cloned().collect()),
        models,
        gateway_log: root.join("gateway.jsonl"),
        samples: Mutex::default(),
        sent: Default::default(),
    });
    Seeded {
        config,
        load,
        waves,
        db,
        governance,
        security,
        digests,
        erased: Mutex::default(),
        hot,
    }
}

/// The settings every replica shares: the bench database, S3 and the HSM token, a
/// service key file, loopback receivers, and a gateway log scanned every 5 s.
fn fleet_settings(base: &Settings, root: &Path) -> Settings {
    let mut settings = base.clone();
    settings.vault = sunset::testing::fleet_vault(root);
    let key = root.join("service.key");
    assert!(sunset::attest::ServiceKey::create_at(&key).expect("service key"));
    settings.service_key_file = Some(key);
    settings.notifications.concurrency = 16;
    settings.notifications.webhook_timeout_secs = 5;
    settings.scan.sources = vec![sunset::config::ScanSourceSettings {
        name: "gateway".into(),
        paths: vec![root.join("gateway.jsonl").display().to_string()],
        schedule: "*/5 * * * * *".into(),
        caller_field: "client".into(),
        path_field: "path".into(),
        path_pattern:
            r"^/v1/models/(?P<model>[a-z0-9._-]+)/versions/(?P<version>[0-9]+\.[0-9]+\.[0-9]+)(/|$)"
                .into(),
        time_field: None,
    }];
    settings
}

/// A model at 1.0.0 with a random 256 KiB artifact; returns its SHA-256.
async fn model_with_artifact(services: &Services, name: &str) -> String {
    let seed = sunset::testing::Seed {
        model: name,
        team: "soak",
        tier: "standard",
        contacts: &[],
        versions: &["1.0.0"],
    };
    let owner = sunset::testing::seed(services, seed).await;
    let bytes: Vec<u8> = (0..ARTIFACT_BYTES).map(|_| rand::random::<u8>()).collect();
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let chunk: Result<Vec<u8>, std::io::Error> = Ok(bytes);
    services
        .artifacts()
        .upload_artifact(
            &owner,
            name,
            "1.0.0",
            "model.bin",
            None,
            futures_util::stream::iter([chunk]),
        )
        .await
        .expect("artifact");
    digest
}

/// A model with `WAVE_DEPENDENTS` consumers taking webhooks at the receiver.
async fn wave_of_dependents(services: &Services, wave: &str, k: usize, receiver: &str) {
    let seed = sunset::testing::Seed {
        model: wave,
        team: "soak",
        tier: "standard",
        contacts: &[],
        versions: &["1.0.0"],
    };
    sunset::testing::seed(services, seed).await;
    let operator = Actor::local_operator();
    for j in 0..WAVE_DEPENDENTS {
        let name = format!("w{k:02}-c{j:03}");
        services
            .inventory()
            .declare_consumer(
                &operator,
                ConsumerInput {
                    name: name.clone(),
                    kind: "service".into(),
                    owner_team: "soak".into(),
                    environment: "prod".into(),
                    contacts: vec![],
                    webhook_url: Some(format!("{receiver}/hook/{name}")),
                },
            )
            .await
            .expect("consumer");
        let edge = EdgeSpec::Uses {
            consumer: name,
            model: wave.into(),
            version: "^1".into(),
        };
        services
            .inventory()
            .declare_edge(&operator, edge)
            .await
            .expect("edge");
    }
}

impl Seeded {
    /// A GraphQL call through one serving replica; panics on errors.
    pub async fn gql(&self, fleet: &Fleet, token: &str, query: &str, variables: Value) -> Value {
        let serving = fleet.serving();
        let base = fleet.base(serving[rand::random::<u32>() as usize % serving.len()]);
        let body: Value = self
            .load
            .client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert!(body["errors"].is_null(), "{query}: {body}");
        body["data"].clone()
    }

    /// Schedules the retirement of wave `k`: a notice to each of its dependents.
    pub async fn schedule_wave(&self, fleet: &Fleet, k: usize) {
        let effective = chrono::Utc::now() + chrono::Duration::days(60);
        let input = json!({ "model": self.waves[k], "versions": "1.0.0", "reason": "superseded (soak)", "effectiveAt": effective.to_rfc3339() });
        self.gql(
            fleet,
            &self.governance,
            "mutation($i: ScheduleRetirementInput!) { scheduleRetirement(input: $i) { id } }",
            json!({ "i": input }),
        )
        .await;
    }

    /// An emergency retirement of hot model `k`, approved for erasure by a second
    /// security officer through (likely) another replica.
    pub async fn emergency(&self, fleet: &Fleet, k: usize) {
        let Some(model) = self.hot.get(k) else { return };
        self.load
            .downloadable
            .lock()
            .expect("lock")
            .retain(|m| m != model);
        let cut = self
            .gql(fleet, &self.security[0], "mutation($m: String!) { emergencyRetirement(model: $m, versions: \"1.0.0\", riskAssessment: \"the weights leak training records (soak)\") { id } }", json!({ "m": model }))
            .await;
        let id = cut["emergencyRetirement"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        self.gql(fleet, &self.security[1], "mutation($id: ID!) { approveEmergencyErasure(id: $id, note: \"forensic image taken (soak)\") { state } }", json!({ "id": id }))
            .await;
        self.erased.lock().expect("lock").push((id, model.clone()));
    }

    /// The serving replica holding the most notice claims now (waiting up to 2 s for
    /// the wave's first claims), and the notices it holds.
    pub async fn busiest_replica(&self, fleet: &Fleet) -> (usize, HashSet<String>) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let claims = self.rows("SELECT id, claimed_by FROM notices WHERE state = 'pending' AND claimed_by IS NOT NULL").await;
            let killable = fleet.killable();
            let mut best: (usize, HashSet<String>) = (
                killable[rand::random::<u32>() as usize % killable.len()],
                HashSet::new(),
            );
            for i in killable {
                let tag = format!(":{}/", fleet.pid(i));
                let held: HashSet<String> = claims
                    .iter()
                    .filter(|(_, by)| by.contains(&tag))
                    .map(|(id, _)| id.clone())
                    .collect();
                if held.len() > best.1.len() {
                    best = (i, held);
                }
            }
            if !best.1.is_empty() || Instant::now() > deadline {
                return best;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two text columns of every row `sql` returns.
    pub async fn rows(&self, sql: &str) -> Vec<(String, String)> {
        let backend = self.db.get_database_backend();
        self.db
            .query_all_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("query")
            .into_iter()
            .map(|r| {
                let text = |i: usize| {
                    r.try_get_by_index::<String>(i)
                        .or_else(|_| r.try_get_by_index::<i64>(i).map(|n| n.to_string()))
                        .unwrap_or_default()
                };
                (text(0), text(1))
            })
            .collect()
    }
}
