//! Test support: a real application per test, on its own port, data folder and database.

#![allow(dead_code)]

mod at_rest;
pub mod postgres;

use serde_json::{Value, json};
use std::sync::Arc;
use sunset::app::Application;
use sunset::auth::Actor;
use sunset::clock::{Clock, SystemClock};
use sunset::config::{DatabaseUrl, Settings};
use sunset::service::Services;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend: `name::sqlite` and `name::postgres`. The test is
/// given a fresh `TestApp`, or what `setup(backend)` makes when it names one:
/// `async fn name(w: World = world) { … }`.
macro_rules! on_both_backends {
    ($(#[doc = $doc:literal])* async fn $name:ident($arg:ident) $body:block) => {
        on_both_backends! {
            $(#[doc = $doc])*
            async fn $name($arg: crate::support::TestApp = crate::support::TestApp::spawn) $body
        }
    };
    ($(#[doc = $doc:literal])* async fn $name:ident($arg:ident: $ty:ty = $setup:path) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($arg: $ty) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($setup(crate::support::Backend::Sqlite).await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run($setup(crate::support::Backend::Postgres).await).await
            }
        }
    };
}

/// The backend itself, for a two-backend test that builds its own worlds (several, or
/// with settings of its own).
pub async fn backend(backend: Backend) -> Backend {
    backend
}

/// An app on a clock the test moves, and where that clock started.
pub struct Clocked {
    pub app: TestApp,
    pub clock: Arc<sunset::clock::ManualClock>,
    pub start: chrono::DateTime<chrono::Utc>,
}

pub async fn clocked(backend: Backend) -> Clocked {
    let start = chrono::Utc::now();
    let clock = Arc::new(sunset::clock::ManualClock::new(start));
    let app = TestApp::spawn_with(backend, clock.clone(), |_| {}).await;
    Clocked { app, clock, start }
}

pub struct TestApp {
    pub address: String,
    /// Where `/metrics` is served, apart from the API.
    pub metrics_address: Option<String>,
    pub backend: Backend,
    pub services: Services,
    pub settings: Settings,
    pub client: reqwest::Client,
    /// A token with the admin role.
    pub admin: String,
    pub data_dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    database: Option<postgres::TestDatabase>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Arc::new(SystemClock), |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        clock: Arc<dyn Clock>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            metrics: sunset::config::MetricsSettings {
                listen: "127.0.0.1:0".parse().expect("addr"),
                enabled: true,
            },
            data_dir: data_dir.path().join("data"),
            ..Settings::default()
        };
        admit_loopback_receivers(&mut settings);
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = postgres::TestDatabase::create().await;
                settings.database.url = Some(DatabaseUrl::new(db.url.clone()));
                // The PostgreSQL half runs as a fleet does: blobs in S3, KEKs in the HSM.
                settings.vault = sunset::testing::fleet_vault(data_dir.path());
                Some(db)
            }
        };
        adjust(&mut settings);
        let application = Application::build(settings.clone(), clock)
            .await
            .expect("application builds");
        let address = format!("http://127.0.0.1:{}", application.port());
        let metrics_address = application
            .metrics_port()
            .map(|p| format!("http://127.0.0.1:{p}"));
        let services = application.services();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(application.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let (_, admin) = services
            .admin()
            .create_token(&Actor::local_operator(), "test-admin", "admin", None, None)
            .await
            .expect("admin token");
        Self {
            address,
            metrics_address,
            backend,
            services,
            settings,
            client: loopback_client(),
            admin: admin.expose().to_owned(),
            data_dir,
            shutdown: Some(tx),
            database,
        }
    }

    /// Creates a token with `role` (and `team`) and returns its secret.
    pub async fn token(&self, name: &str, role: &str, team: Option<&str>) -> String {
        let (_, secret) = self
            .services
            .admin()
            .create_token(&Actor::local_operator(), name, role, team, None)
            .await
            .expect("token");
        secret.expose().to_owned()
    }

    /// Creates a token bound to `consumer`: its downloads are observed usage.
    pub async fn consumer_token(&self, name: &str, role: &str, consumer: &str) -> String {
        let (_, secret) = self
            .services
            .admin()
            .create_token(&Actor::local_operator(), name, role, None, Some(consumer))
            .await
            .expect("token");
        secret.expose().to_owned()
    }

    /// A second instance of the service on the same database and key folder, as a
    /// scaled-out deployment runs it.
    pub async fn spawn_sibling(&self) -> Sibling {
        self.spawn_sibling_on(Arc::new(SystemClock)).await
    }

    /// [`TestApp::spawn_sibling`] on `clock` (the first instance's, when a test drives
    /// time: replicas of one deployment share the time of day).
    pub async fn spawn_sibling_on(&self, clock: Arc<dyn Clock>) -> Sibling {
        let application = Application::build(self.settings.clone(), clock)
            .await
            .expect("second instance builds");
        let address = format!("http://127.0.0.1:{}", application.port());
        let services = application.services();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(application.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Sibling {
            address,
            services,
            _shutdown: tx,
        }
    }

    /// A replica in an operating-system process of its own: `sunset serve` started on
    /// this instance's PostgreSQL database and data folder, with its settings. Nothing
    /// is shared with this process but the database and the folder, as in a fleet.
    pub async fn spawn_replica_process(&self) -> ReplicaProcess {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "replicas share a PostgreSQL database"
        );
        let config = self.data_dir.path().join(format!(
            "replica-{}.toml",
            hex::encode(rand::random::<[u8; 4]>())
        ));
        let text = toml::to_string(&self.settings).expect("settings as TOML");
        std::fs::write(&config, text).expect("replica config");
        let data = self.settings.data_dir.clone();
        let (child, address) =
            tokio::task::spawn_blocking(move || crate::crash::serve_with(&data, &config, None))
                .await
                .expect("replica started");
        assert!(!address.is_empty(), "the replica process did not start");
        ReplicaProcess { address, child }
    }

    /// Posts a GraphQL operation and returns the whole JSON response.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            200,
            "GraphQL answers 200 with errors in the body"
        );
        response.json().await.expect("json")
    }

    /// Like [`TestApp::gql`], but fails the test on any error and returns `data`.
    pub async fn gql_ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Creates `name` owned by `team` through GraphQL with an owner token of that team.
    pub async fn create_model(&self, owner: &str, name: &str, team: &str) -> Value {
        self.gql_ok(
            owner,
            "mutation($i: CreateModelInput!) { createModel(input: $i) { name ownerTeam tier } }",
            json!({ "i": { "name": name, "ownerTeam": team, "tier": "HIGH", "contacts": ["ml@example.org"] } }),
        )
        .await
    }

    pub async fn audit_count(&self) -> i64 {
        sunset::store::audit::head(self.services.store().reader())
            .await
            .expect("head")
            .0
    }
}

/// A `sunset serve` process, killed when dropped.
pub struct ReplicaProcess {
    pub address: String,
    child: std::process::Child,
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Sibling {
    pub address: String,
    pub services: Services,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Sibling {
    /// Waits, a second at most, until this instance has followed every inventory change
    /// `app` has committed; returns that revision.
    pub async fn caught_up_with(&self, app: &TestApp) -> i64 {
        let expected = app
            .services
            .inventory()
            .refresh_inventory()
            .await
            .expect("refresh");
        let mut revision = self.services.inventory().inventory_revision();
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            revision.wait_for(|r| *r >= expected),
        )
        .await
        .expect("the other instance caught up within a second")
        .expect("revision channel open");
        expected
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Lets webhooks reach the tests' receivers: plain HTTP on loopback, which the default
/// policy refuses (see `notifiers::outbound`).
pub fn admit_loopback_receivers(settings: &mut Settings) {
    settings.notifications.webhook_allow_http = true;
    settings.notifications.webhook_allow = vec!["127.0.0.0/8".into()];
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("<none>")
}

/// A plain HTTP client for loopback. reqwest is built with rustls but no crypto provider
/// (the notifiers crate hands it a whole TLS config), so this process installs ring first.
pub fn loopback_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A loopback port free at the time of asking, for a helper process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
