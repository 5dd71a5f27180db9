//! Audited mutations per second, and what the audit chain costs.
//!
//! Run: `cargo bench --bench audit` (PostgreSQL at SUNSET_TEST_PG_URL, which `tests/run`
//! sets up; pass `-- --sqlite-only` to skip it). Generates its own data in a temp folder
//! and a fresh PostgreSQL database, and prints its figures.
//!
//! The mutation is `createModel`: parse, check for a duplicate, insert, commit. Three ways:
//! - "chained": the real service call, with a sealed, MAC'd, linked record in the same
//!   transaction;
//! - "record": the same mutation writing the same audit row (same columns, same indexes)
//!   into a plain table, with no chain: no head, no hash, no MAC, no ordering;
//! - "none": the same mutation with no audit record at all.
//!
//! The chain's cost is chained against record; auditing's whole cost is chained against
//! none. Both baselines are written here in the bench, so that the product itself has no
//! way to change state without a chained audit record.

#[path = "common/mod.rs"]
mod common;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use sunset::auth::{Actor, ActorKind};
use sunset::clock::SystemClock;
use sunset::config::Settings;
use sunset::domain::{Contacts, ModelName, RegisteredModel, Role, TeamName, Text, Tier};
use sunset::service::{ModelInput, Services};

const SEQUENTIAL: usize = 1_500;
const ROUNDS: usize = 5;
const CONCURRENT_TASKS: usize = 16;
const CONCURRENT_EACH: usize = 100;

static PLAIN_SEQ: AtomicI64 = AtomicI64::new(1);

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Chained,
    Record,
    None,
}

fn owner() -> Actor {
    Actor {
        name: "bench-owner".into(),
        role: Role::Owner,
        team: TeamName::parse("bench").ok(),
        kind: ActorKind::Token,
        consumer: None,
        client_ip: None,
    }
}

fn input(prefix: &str, i: usize) -> ModelInput {
    ModelInput {
        name: format!("{prefix}-{i}"),
        owner_team: "bench".into(),
        tier: "standard".into(),
        description: "a model created by the audit benchmark".into(),
        contacts: vec!["bench@example.org".into()],
    }
}

async fn create_plain_table(services: &Services) {
    let db = services.store().reader();
    let time = match db.get_database_backend() {
        DbBackend::Postgres => "TIMESTAMPTZ",
        _ => "TEXT",
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE bench_audit_plain (seq BIGINT PRIMARY KEY, recorded_at {time} NOT NULL, \
         actor VARCHAR(64) NOT NULL, actor_role VARCHAR(16) NOT NULL, action VARCHAR(64) NOT NULL, \
         subject_type VARCHAR(32) NOT NULL, subject VARCHAR(256) NOT NULL, before_state TEXT, after_state TEXT)"
    ))
    .await
    .expect("plain table");
    for column in ["subject", "actor", "recorded_at"] {
        db.execute_unprepared(&format!(
            "CREATE INDEX bench_plain_{column} ON bench_audit_plain ({column})"
        ))
        .await
        .expect("index");
    }
}

async fn mutate(services: &Services, way: Way, prefix: &str, n: usize) -> Duration {
    let actor = owner();
    let start = Instant::now();
    for i in 0..n {
        if way == Way::Chained {
            services
                .registry()
                .create_model(&actor, input(prefix, i))
                .await
                .expect("create");
        } else {
            baseline(services, way, input(prefix, i)).await;
        }
    }
    start.elapsed()
}

/// The same mutation without the chain: parse, duplicate check, insert, and for
/// `Way::Record` the same audit row in a plain table; one transaction.
async fn baseline(services: &Services, way: Way, raw: ModelInput) {
    let now = chrono::Utc::now();
    let model = RegisteredModel {
        name: ModelName::parse(&raw.name).expect("name"),
        owner_team: TeamName::parse(&raw.owner_team).expect("team"),
        tier: Tier::parse(&raw.tier).expect("tier"),
        description: Text::parse("description", &raw.description, 4000)
            .expect("text")
            .as_str()
            .to_owned(),
        contacts: Contacts::parse(&raw.contacts).expect("contacts"),
        created_at: now,
        updated_at: now,
    };
    let txn = services.store().reader().begin().await.expect("begin");
    let existing = sunset::store::registry::find_model(&txn, &model.name)
        .await
        .expect("find");
    assert!(existing.is_none());
    sunset::store::registry::insert_model(&txn, &model)
        .await
        .expect("insert");
    if way == Way::Record {
        let backend = txn.get_database_backend();
        let sql = "INSERT INTO bench_audit_plain (seq, recorded_at, actor, actor_role, action, \
                   subject_type, subject, before_state, after_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let sql = match backend {
            DbBackend::Postgres => sql.to_owned(),
            _ => sql.replace('$', "?"),
        };
        let values: Vec<sea_orm::Value> = vec![
            PLAIN_SEQ.fetch_add(1, Ordering::Relaxed).into(),
            now.into(),
            "bench-owner".into(),
            "owner".into(),
            "model.created".into(),
            "model".into(),
            model.name.to_string().into(),
            Option::<String>::None.into(),
            Some(serde_json::to_string(&model).expect("json")).into(),
        ];
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .expect("plain record");
    }
    txn.commit().await.expect("commit");
}

async fn concurrent(services: &Services, prefix: &str) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENT_TASKS {
        let services = services.clone();
        let prefix = format!("{prefix}-{t}");
        tasks.push(tokio::spawn(async move {
            mutate(&services, Way::Chained, &prefix, CONCURRENT_EACH).await
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

fn per_op_us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

async fn run(label: &str, services: Services) {
    create_plain_table(&services).await;
    // Warm up connections and caches.
    for (way, prefix) in [
        (Way::Chained, "warm-c"),
        (Way::Record, "warm-r"),
        (Way::None, "warm-n"),
    ] {
        mutate(&services, way, prefix, 50).await;
    }
    // Interleave the three so that disk or server noise hits all alike; keep the best round.
    let mut best = [Duration::MAX; 3];
    for round in 0..ROUNDS {
        for (slot, way) in [Way::None, Way::Record, Way::Chained]
            .into_iter()
            .enumerate()
        {
            let took = mutate(&services, way, &format!("r{round}-{slot}"), SEQUENTIAL).await;
            best[slot] = best[slot].min(took);
        }
    }
    let [none, record, chained] = best.map(|d| per_op_us(d, SEQUENTIAL));
    for (name, us) in [("chained", chained), ("record", record), ("none", none)] {
        println!(
            "{label:<9} {name:<8} sequential {:>7.0} mutations/s {us:>8.1} µs each",
            1e6 / us
        );
    }
    println!(
        "{label:<9} chain cost  (chained vs record) {:>5.1} % of a mutation ({:.1} µs)",
        (chained - record) / chained * 100.0,
        chained - record
    );
    println!(
        "{label:<9} audit cost  (chained vs none)   {:>5.1} % of a mutation ({:.1} µs)",
        (chained - none) / chained * 100.0,
        chained - none
    );
    let conc = concurrent(&services, "c").await;
    println!(
        "{label:<9} chained  {CONCURRENT_TASKS} writers {:>7.0} mutations/s",
        (CONCURRENT_TASKS * CONCURRENT_EACH) as f64 / conc.as_secs_f64()
    );
    let start = Instant::now();
    let report = services
        .audit()
        .verify_audit_chain(vec![])
        .await
        .expect("verify")
        .expect("the chain is intact after the run");
    println!(
        "{label:<9} verify   {:>7.0} records/s ({} records)",
        report.records as f64 / start.elapsed().as_secs_f64(),
        report.records
    );
}

#[tokio::main]
async fn main() {
    let sqlite_only = std::env::args().any(|a| a == "--sqlite-only");
    println!(
        "audit benchmark: {SEQUENTIAL} sequential createModel mutations per way, best of {ROUNDS} interleaved rounds; then {CONCURRENT_TASKS}×{CONCURRENT_EACH} concurrent"
    );

    let dir = tempfile::tempdir().expect("tmp");
    let settings = Settings {
        data_dir: dir.path().join("sqlite"),
        ..Settings::default()
    };
    let services = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open sqlite");
    run("sqlite", services).await;

    if sqlite_only {
        return;
    }
    let pg = common::BenchDatabase::create(&dir.path().join("pg")).await;
    let settings = pg.settings.clone();
    let services = sunset::app::open(&settings, Arc::new(SystemClock))
        .await
        .expect("open postgres");
    run("postgres", services.clone()).await;
    drop(services);
    pg.drop_database().await;
}
