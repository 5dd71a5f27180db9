//! Set-up the benchmarks share; each includes this file with `#[path]`.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use std::path::Path;
use sunset::config::{DatabaseUrl, Settings};

/// A PostgreSQL database of the benchmark's own, on the server at `SUNSET_TEST_PG_URL`
/// (which `tests/run` starts and exports), dropped by [`BenchDatabase::drop_database`].
/// (The console's bench, whose pages read the graph in memory, runs on SQLite only.)
#[allow(dead_code)]
pub struct BenchDatabase {
    admin: DatabaseConnection,
    name: String,
    /// Settings for the service on it, with its files under the given folder.
    pub settings: Settings,
}

#[allow(dead_code)]
impl BenchDatabase {
    pub async fn create(data_dir: &Path) -> Self {
        let (name, url) = sunset::testing::create_scratch_database("sunset_bench").await;
        let admin = Database::connect(&sunset::testing::postgres_admin_url())
            .await
            .expect("PostgreSQL reachable (run `bash tests/run` once, or pass --sqlite-only)");
        let mut settings = Settings {
            data_dir: data_dir.to_path_buf(),
            database: sunset::config::DatabaseSettings {
                url: Some(DatabaseUrl::new(url)),
            },
            ..Settings::default()
        };
        admit_loopback_receivers(&mut settings);
        Self {
            admin,
            name,
            settings,
        }
    }

    pub async fn drop_database(self) {
        let dropped = self
            .admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
        // Right after a bulk load an autovacuum worker (a superuser's process, which our
        // role may not end) can hold the database; the figures are printed by then, and
        // tests/run drops leftover `sunset_bench_%` databases.
        if let Err(e) = dropped {
            eprintln!("could not drop {} yet ({e}); tests/run drops it", self.name);
        }
    }
}

/// Lets webhooks reach the benchmarks' receivers: plain HTTP on loopback.
#[allow(dead_code)]
pub fn admit_loopback_receivers(settings: &mut Settings) {
    settings.notifications.webhook_allow_http = true;
    settings.notifications.webhook_allow = vec!["127.0.0.0/8".into()];
}

/// A free loopback port (for a `sunset serve` started by the benchmark).
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A memory figure of process `pid` from `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in
/// KiB; 0 when the process is gone.
#[allow(dead_code)]
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The `p` quantile (0 to 1) of `sorted` times; zero when there are none.
#[allow(dead_code)]
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Makes model `name` at version 1.0.0 through the service, as a `bench-owner` token of
/// team `bench`, and returns the version's row: generators copy its provenance into the
/// rows they write straight into the tables, so registry reads of them parse.
#[allow(dead_code)]
pub async fn seed_version(
    services: &sunset::service::Services,
    name: &str,
) -> sunset::store::entities::model_version::Model {
    use sea_orm::EntityTrait;
    let operator = sunset::auth::Actor::local_operator();
    let (_, secret) = services
        .admin()
        .create_token(&operator, "bench-owner", "owner", Some("bench"), None)
        .await
        .expect("token");
    let owner = services
        .admin()
        .authenticate(secret.expose())
        .await
        .expect("auth")
        .expect("actor");
    services
        .registry()
        .create_model(
            &owner,
            sunset::service::ModelInput {
                name: name.into(),
                owner_team: "bench".into(),
                tier: "standard".into(),
                description: String::new(),
                contacts: vec![],
            },
        )
        .await
        .expect("seed model");
    services
        .registry()
        .create_version(
            &owner,
            sunset::service::VersionInput {
                model: name.into(),
                version: "1.0.0".into(),
                provenance: Default::default(),
            },
        )
        .await
        .expect("seed version");
    sunset::store::entities::model_version::Entity::find()
        .one(services.store().reader())
        .await
        .expect("read")
        .expect("the seed version")
}

/// Writes generated rows straight into their table, 1,000 to a statement and 50
/// statements to a transaction.
#[allow(dead_code)]
pub async fn insert_chunks<E, A>(db: &DatabaseConnection, rows: Vec<A>)
where
    E: sea_orm::EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    use sea_orm::TransactionTrait;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let txn = db.begin().await.expect("begin");
        for _ in 0..50 {
            let chunk: Vec<A> = rows.by_ref().take(1_000).collect();
            if chunk.is_empty() {
                break;
            }
            E::insert_many(chunk)
                .exec_without_returning(&txn)
                .await
                .expect("insert");
        }
        txn.commit().await.expect("commit");
    }
}

/// A token's actor of `role` (and `team`, for owners), without a token row: the
/// benchmarks call the use cases directly.
#[allow(dead_code)]
pub fn actor(name: &str, role: sunset::domain::Role, team: Option<&str>) -> sunset::auth::Actor {
    sunset::auth::Actor {
        name: name.into(),
        role,
        team: team.and_then(|t| sunset::domain::TeamName::parse(t).ok()),
        kind: sunset::auth::ActorKind::Token,
        consumer: None,
        client_ip: None,
    }
}

/// Model `name` of team `ml` at version 1.0.0, with a 4 KiB artifact `model.bin`.
#[allow(dead_code)]
pub async fn model_with_artifact(services: &sunset::service::Services, name: &str) {
    let seed = sunset::testing::Seed {
        model: name,
        team: "ml",
        tier: "standard",
        contacts: &[],
        versions: &["1.0.0"],
    };
    let owner = sunset::testing::seed(services, seed).await;
    let chunk: Result<Vec<u8>, std::io::Error> = Ok(vec![7u8; 4096]);
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
}
