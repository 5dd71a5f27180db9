//! Crypto-erasure: how long destroying a retired artifact takes, by size, next to
//! overwriting its ciphertext with `shred -n 3`; and how long the KEK rotation every
//! erasure runs takes with 100,000 surviving data keys.
//!
//! Run: `cargo bench --bench erasure` (SQLite in a temp folder; `-- --postgres` adds a
//! fresh database at `SUNSET_TEST_PG_URL`; `-- --small` uses 1 GiB instead of 4 GiB and
//! 20,000 keys, for a quick look). It needs about 9 GiB of free disk for the 4 GiB
//! artifact, its copy for `shred`, and their temporary files.
//!
//! What it does, per backend:
//! 1. Uploads a 64 MiB and a 4 GiB artifact (each the only one of its version) through the
//!    service, makes each version's retirement ready under a shifted clock, executes it,
//!    and reads the recorded steps: the crypto-erasure proper (`erase-keys`, `rotate-kek`
//!    over the few keys there are, `destroy-kek`: keys only), then the blob deletion and
//!    the verification, reported apart.
//! 2. Copies each ciphertext and times `shred -n 3 -u` on the copy.
//! 3. Adds 100,000 artifact rows with real wrapped data keys to a surviving version, and
//!    times the `rotate-kek` step of one more erasure (targets: erasure under 100 ms
//!    whatever the size; rotation with 100,000 keys under 2 s).

#[path = "common/mod.rs"]
mod common;

use common::actor;

use chrono::{Duration as Days, Utc};
use sea_orm::EntityTrait;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sunset::auth::Actor;
use sunset::config::Settings;
use sunset::domain::{ModelName, Role, Version};
use sunset::service::{RetirementInput, Services};

const MIB: u64 = 1024 * 1024;

/// Real time moved forward by an offset: the notice period passes at once, and the steps'
/// recorded start and end times are still real, so their durations are.
#[derive(Default)]
struct ShiftedClock(std::sync::Mutex<chrono::Duration>);

impl ShiftedClock {
    fn advance(&self, by: chrono::Duration) {
        *self.0.lock().expect("lock") += by;
    }
}

impl sunset::clock::Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + *self.0.lock().expect("lock")
    }
}

fn owner() -> Actor {
    actor("bench-owner", Role::Owner, Some("ml"))
}

fn governance() -> Actor {
    actor("bench-governance", Role::Governance, None)
}

async fn model_with_version(services: &Services, name: &str) {
    let seed = sunset::testing::Seed {
        model: name,
        team: "ml",
        tier: "standard",
        contacts: &[],
        versions: &["1.0.0"],
    };
    sunset::testing::seed(services, seed).await;
}

/// Uploads `size` bytes of generated data, streamed in 1 MiB frames.
async fn upload(services: &Services, model: &str, size: u64) {
    let frames = size.div_ceil(MIB);
    let body = futures_util::stream::iter((0..frames).map(move |i| {
        let len = (size - i * MIB).min(MIB) as usize;
        Ok::<_, std::io::Error>(vec![(i % 251) as u8; len])
    }));
    services
        .artifacts()
        .upload_artifact(&owner(), model, "1.0.0", "model.bin", None, body)
        .await
        .expect("upload");
}

/// Schedules the retirement of `model@1.0.0` and makes it ready; returns its id.
async fn ready(services: &Services, clock: &ShiftedClock, model: &str) -> i64 {
    let now = sunset::clock::Clock::now(clock);
    let (r, _) = services
        .retirements()
        .schedule_retirement(
            &governance(),
            RetirementInput {
                model: model.into(),
                versions: "1.0.0".into(),
                reason: "benchmark".into(),
                // A minute of slack: this clock moves on while the retirement is checked.
                effective_at: now + Days::days(7) + Days::minutes(1),
                replacement_model: None,
                replacement_version: None,
                levers: Default::default(),
            },
        )
        .await
        .expect("scheduled");
    clock.advance(Days::days(8));
    services
        .retirements()
        .check_retirements(sunset::domain::FoundBy::GraphChange)
        .await
        .expect("check");
    r.id.0
}

/// Executes retirement `id` and returns each step's recorded duration.
async fn execute(services: &Services, id: i64) -> Vec<(String, Duration)> {
    let (r, steps) = services
        .decommission()
        .execute_retirement(&governance(), sunset::domain::RetirementId(id))
        .await
        .expect("executed");
    assert_eq!(r.state.as_str(), "retired", "{steps:?}");
    steps
        .into_iter()
        .map(|s| {
            let took = s
                .finished_at
                .map(|f| (f - s.started_at).to_std().unwrap_or_default())
                .unwrap_or_default();
            (s.step.to_string(), took)
        })
        .collect()
}

fn took(steps: &[(String, Duration)], from: &str, to: &str) -> Duration {
    let start = steps.iter().position(|(s, _)| s == from).expect("from");
    let end = steps.iter().position(|(s, _)| s == to).expect("to");
    steps[start..=end].iter().map(|(_, d)| *d).sum()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Copies the one blob of `model` and times `shred -n 3 -u` on the copy.
fn shred(settings: &Settings, scratch: &Path, label: &str) -> Duration {
    let blobs = settings.data_dir.join("blobs");
    let newest = walk(&blobs)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("a blob");
    let copy = scratch.join(format!("shred-{label}"));
    std::fs::copy(&newest, &copy).expect("copy");
    let started = Instant::now();
    let status = std::process::Command::new("shred")
        .args(["-n", "3", "-u"])
        .arg(&copy)
        .status()
        .expect("shred (coreutils)");
    assert!(status.success());
    started.elapsed()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = e.path();
        if e.file_name() == "tmp" {
            continue;
        }
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Adds `n` artifact rows with real wrapped data keys (and no blobs: rotation touches
/// keys only) to `model@1.0.0`.
async fn add_surviving_keys(services: &Services, model: &str, n: usize) {
    use sunset::store::entities::artifact;
    let kek = services.vault_for_benchmarks().expect("vault").kek.clone();
    let name = ModelName::parse(model).expect("name");
    let db = services.store().reader();
    let (model_id, _) = sunset::store::registry::find_model(db, &name)
        .await
        .expect("find")
        .expect("model");
    let (version_id, _) = sunset::store::registry::find_version(
        db,
        model_id,
        &name,
        Version::parse("1.0.0").expect("v"),
    )
    .await
    .expect("find")
    .expect("version");
    let now = Utc::now();
    let rows: Vec<artifact::ActiveModel> = (0..n)
        .map(|i| {
            use base64::Engine;
            use sea_orm::Set;
            let blob_id = format!("{i:032x}");
            let wrapped = kek
                .wrap(&sunset::vault::DataKey::generate(), &blob_id)
                .expect("wrap");
            artifact::ActiveModel {
                version_id: Set(version_id.0),
                path: Set(format!("shards/{i:06}.bin")),
                kind: Set("weights".into()),
                size_bytes: Set(1),
                sha256: Set("0".repeat(64)),
                blob_id: Set(blob_id),
                kek_epoch: Set(wrapped.epoch as i32),
                wrapped_key: Set(base64::engine::general_purpose::STANDARD.encode(&wrapped.bytes)),
                created_at: Set(now),
                created_by: Set("bench".into()),
                erased_at: Set(None),
                ..Default::default()
            }
        })
        .collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        artifact::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await
            .expect("insert");
    }
}

async fn run(label: &str, mut settings: Settings, scratch: &Path, big: u64, keys: usize) {
    settings.notifications.deliver = false;
    let clock = Arc::new(ShiftedClock::default());
    let services = sunset::app::open(&settings, clock.clone())
        .await
        .expect("open");
    services.inventory().load_inventory().await.expect("load");
    // A model that survives every erasure; it will hold the 100,000 keys.
    model_with_version(&services, "survivor").await;
    upload(&services, "survivor", MIB).await;

    for (model, size) in [("small", 64 * MIB), ("large", big)] {
        model_with_version(&services, model).await;
        let started = Instant::now();
        upload(&services, model, size).await;
        let uploaded = started.elapsed();
        let shredded = shred(&settings, scratch, model);
        let id = ready(&services, &clock, model).await;
        let steps = execute(&services, id).await;
        println!(
            "[{label}] {} MiB artifact: crypto-erasure (erase-keys, rotate-kek, destroy-kek: keys only) {} [erase-keys {}]; then delete-ciphertext {}, verify-erasure {}; shred -n 3 of its ciphertext {} (upload took {:.1} s)",
            size / MIB,
            ms(took(&steps, "erase-keys", "destroy-kek")),
            ms(took(&steps, "erase-keys", "erase-keys")),
            ms(took(&steps, "delete-ciphertext", "delete-ciphertext")),
            ms(took(&steps, "verify-erasure", "verify-erasure")),
            ms(shredded),
            uploaded.as_secs_f64()
        );
    }

    let started = Instant::now();
    add_surviving_keys(&services, "survivor", keys).await;
    eprintln!(
        "[{label}] {keys} surviving data keys written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    model_with_version(&services, "rotated").await;
    upload(&services, "rotated", MIB).await;
    let id = ready(&services, &clock, "rotated").await;
    let steps = execute(&services, id).await;
    println!(
        "[{label}] KEK rotation with {} surviving data keys: rotate-kek {}; destroy-kek {} (its re-check for late keys); erase-keys to verify-erasure {} (targets: erasure under 100 ms, rotation under 2 s)",
        keys + 1,
        ms(took(&steps, "rotate-kek", "rotate-kek")),
        ms(took(&steps, "destroy-kek", "destroy-kek")),
        ms(took(&steps, "erase-keys", "verify-erasure"))
    );
}

#[tokio::main]
async fn main() {
    // `RUST_LOG=sunset=info` shows where a rotation's time goes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let small = std::env::args().any(|a| a == "--small");
    let postgres = std::env::args().any(|a| a == "--postgres");
    let (big, keys) = if small {
        (1024 * MIB, 20_000)
    } else {
        (4096 * MIB, 100_000)
    };
    let dir = tempfile::tempdir().expect("tmp");
    let settings = Settings {
        data_dir: dir.path().join("sqlite"),
        ..Settings::default()
    };
    run("sqlite", settings.clone(), dir.path(), big, keys).await;
    std::fs::remove_dir_all(&settings.data_dir).ok();
    if postgres {
        let db = common::BenchDatabase::create(&dir.path().join("postgres")).await;
        run("postgres", db.settings.clone(), dir.path(), big, keys).await;
        db.drop_database().await;
    }
}
