//! Set-up the benchmarks share; each includes this file with `#[path]`.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
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

    /// The CPU time the database's server processes have used so far (the server on
    /// this machine, as `tests/run` starts it): those serving this database now, so a
    /// connection closed between two readings takes its time with it.
    pub async fn backend_cpu(&self) -> Duration {
        let rows = self
            .admin
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT pid FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            ))
            .await
            .expect("pg_stat_activity");
        rows.iter()
            .filter_map(|r| r.try_get::<i32>("", "pid").ok())
            .map(|pid| cpu_time(pid as u32))
            .sum()
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

/// Writes generated rows of several tables straight into a SQLite file as a bulk load
/// does: one transaction, one prepared statement per table, the tables' secondary
/// indexes dropped first and built again once every row is in (building an index once
/// costs far less than keeping it through a million inserts). Values are encoded as the
/// service writes them (times as RFC 3339 text).
#[allow(dead_code)]
pub struct BulkLoad {
    conn: rusqlite::Connection,
    indexes: Vec<String>,
}

#[allow(dead_code)]
impl BulkLoad {
    /// Opens `file` (the service's database, migrated) and drops the secondary indexes of
    /// `tables`, to be built again by [`BulkLoad::finish`].
    pub fn start(file: &Path, tables: &[&str]) -> Self {
        let conn = rusqlite::Connection::open(file).expect("open the database file");
        // A page cache of up to 8 GiB for this connection (taken only as pages are
        // written), so the whole load stays in memory until its commit. A cache that
        // fills spills its pages into the write-ahead log mid-transaction, and every
        // page read after that searches the log's index, whose cost grows with the log:
        // at 10M edges, inserting them took 72 s with a 512 MiB cache. Sorts for the
        // indexes use both cores.
        conn.execute_batch(
            "PRAGMA synchronous = OFF; PRAGMA cache_size = -8388608; PRAGMA threads = 2; BEGIN",
        )
        .expect("begin");
        let mut indexes = Vec::new();
        for table in tables {
            let mut find = conn
                .prepare(
                    "SELECT name, sql FROM sqlite_master \
                     WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
                )
                .expect("indexes");
            let found: Vec<(String, String)> = find
                .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("indexes")
                .collect::<Result<_, _>>()
                .expect("indexes");
            for (name, sql) in found {
                conn.execute_batch(&format!("DROP INDEX \"{name}\""))
                    .expect("drop index");
                indexes.push(sql);
            }
        }
        Self { conn, indexes }
    }

    /// Inserts `count` rows of `columns` into `table`; `row(i, binder)` binds row `i`'s
    /// values in column order. Rows go many to a statement, and a row can be produced
    /// again from its number, so the rows past the last full statement take a statement
    /// of one row each.
    pub fn insert_rows(
        &self,
        table: &str,
        columns: &[&str],
        count: usize,
        mut row: impl FnMut(usize, &mut Binder<'_, '_>),
    ) {
        // SQLite takes at most 32,766 parameters to a statement.
        let per = (32_766 / columns.len()).min(64);
        let sql = |rows: usize| {
            let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
            format!(
                "INSERT INTO \"{table}\" ({}) VALUES {}",
                columns.join(", "),
                vec![tuple; rows].join(", ")
            )
        };
        let mut many = self.conn.prepare(&sql(per)).expect("insert");
        let mut one = self.conn.prepare(&sql(1)).expect("insert");
        let full = count / per * per;
        for first in (0..full).step_by(per) {
            let mut binder = Binder::new(&mut many);
            for i in first..first + per {
                row(i, &mut binder);
            }
            binder.execute(per * columns.len());
        }
        for i in full..count {
            let mut binder = Binder::new(&mut one);
            row(i, &mut binder);
            binder.execute(columns.len());
        }
    }

    /// Builds the dropped indexes again, commits, and moves the pages from the log into
    /// the database file, as a service that shut down cleanly leaves it, so the load that
    /// follows reads what a service starting would read rather than gigabytes of log.
    /// Returns how long the indexes took, and the commit and checkpoint.
    pub fn finish(self) -> (Duration, Duration) {
        let started = Instant::now();
        for sql in &self.indexes {
            self.conn.execute_batch(sql).expect("build an index");
        }
        let indexed = started.elapsed();
        self.conn.execute_batch("COMMIT").expect("commit");
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .expect("checkpoint");
        assert_eq!(busy, 0, "the checkpoint was blocked by a reader");
        (indexed, started.elapsed() - indexed)
    }
}

/// Binds a statement's parameters one after another.
#[allow(dead_code)]
pub struct Binder<'s, 'c> {
    statement: &'s mut rusqlite::Statement<'c>,
    next: usize,
}

#[allow(dead_code)]
impl<'s, 'c> Binder<'s, 'c> {
    fn new(statement: &'s mut rusqlite::Statement<'c>) -> Self {
        Self { statement, next: 1 }
    }

    /// Binds the next parameter (text is copied by SQLite, so a buffer may be reused).
    pub fn bind(&mut self, value: impl rusqlite::ToSql) -> &mut Self {
        self.statement
            .raw_bind_parameter(self.next, value)
            .expect("bind a value");
        self.next += 1;
        self
    }

    fn execute(self, values: usize) {
        assert_eq!(self.next - 1, values, "every value of every row is bound");
        self.statement.raw_execute().expect("insert rows");
    }
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

/// A `sunset serve` the benchmark started, killed when dropped (also when the benchmark
/// fails half-way).
#[allow(dead_code)]
pub struct Serving {
    pub child: Child,
    /// From the spawn to the port answering.
    pub startup: Duration,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sunset serve` on `settings`' data and database, listening on `port`, with
/// `env` added to its environment; returns once the port answers.
#[allow(dead_code)]
pub fn serve(settings: &Settings, port: u16, env: &[(&str, &str)]) -> Serving {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sunset"));
    cmd.arg("--data-dir")
        .arg(&settings.data_dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        // Metrics on a free port, so a sunset already running here does not collide.
        .env("SUNSET_METRICS__LISTEN", "127.0.0.1:0")
        .env_remove("SUNSET_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    match &settings.database.url {
        Some(url) => cmd.env("DATABASE_URL", url.expose()),
        None => cmd.env_remove("DATABASE_URL"),
    };
    let start = Instant::now();
    let child = cmd.spawn().expect("sunset serve");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Serving {
        child,
        startup: start.elapsed(),
    }
}

/// CPU time (user and system) a process has used so far, from `/proc/PID/stat`.
#[allow(dead_code)]
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // Linux reports in USER_HZ, which is 100 on every architecture it supports.
    Duration::from_millis(ticks * 10)
}

/// A plain HTTP client for loopback. reqwest is built with rustls but no crypto provider
/// (the notifiers crate hands it a whole TLS config), so this process installs ring first.
#[allow(dead_code)]
pub fn loopback_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Posts every one of `bodies` as a Standard Webhooks message (signed with `secret` when
/// given), from `senders` concurrent senders each sending its share one after another,
/// sender `s` to `urls[s % urls.len()]`; each must be answered 200. Returns messages per
/// second. Message ids are `msg-{tag}-{i}`.
#[allow(dead_code)]
pub async fn send_webhooks(
    client: &reqwest::Client,
    urls: &[String],
    secret: Option<&str>,
    bodies: Arc<Vec<Vec<u8>>>,
    senders: usize,
    tag: &str,
) -> f64 {
    let secret = secret
        .map(|s| Arc::new(sunset::ingest::standard_webhooks::Secret::parse(s).expect("secret")));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let client = client.clone();
        let url = urls[s % urls.len()].clone();
        let secret = secret.clone();
        let bodies = bodies.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (s..bodies.len()).step_by(senders) {
                let id = format!("msg-{tag}-{i}");
                let at = chrono::Utc::now().timestamp();
                let mut req = client
                    .post(&url)
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", at.to_string());
                if let Some(secret) = &secret {
                    req = req.header("webhook-signature", secret.sign(&id, at, &bodies[i]));
                }
                let r = req.body(bodies[i].clone()).send().await.expect("send");
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    bodies.len() as f64 / start.elapsed().as_secs_f64()
}

/// The value after `--name` among the benchmark's arguments, when there is one and it
/// parses.
#[allow(dead_code)]
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}
