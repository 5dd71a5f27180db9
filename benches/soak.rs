//! The soak: three replicas on one PostgreSQL database, artifacts in the S3 server and
//! KEKs on the SoftHSM2 token that `bash tests/run` starts, driven at half their
//! measured peak with the users' mix (registration webhooks, `dependents` questions,
//! downloads, gateway log lines the replicas scan), while retirements are scheduled
//! (notices to loopback receivers) and emergencies retire models (two-person erasure),
//! and one replica is SIGKILLed and restarted every minute: of the second and third,
//! the one holding the most notice claims, so the takeover of a dead replica's claims
//! is measured.
//!
//! Run: `cargo bench --bench soak` (10 minutes) or `-- --minutes 3`; with the
//! environment `tests/run` exports (`SUNSET_TEST_PG_URL`, `SUNSET_TEST_S3_*`,
//! `SOFTHSM2_CONF`, `SUNSET_TEST_PKCS11_*`, `SUNSET_PKCS11_PIN`). It prints its figures
//! and exits 1 if any promise fails:
//! - no notice lost, none delivered under two ids;
//! - exactly one destruction certificate per erased retirement;
//! - every erased artifact refused by every replica, every survivor served whole by each;
//! - no 5xx and no failed request but those in flight on a replica as it was killed;
//! - RSS grows under 10% after a 3-minute warm-up (median of the minute after it against
//!   the median of the last minute) in every process that lived 5 minutes: the first
//!   replica is never killed, so at least it is judged in a run of 5 minutes or more;
//! - each operation's p99 in the last kill period within twice the first one's (+5 ms),
//!   each period holding one kill and one retirement (they start half a period in).

#[path = "common/mod.rs"]
mod common;
#[path = "soak/fleet.rs"]
mod fleet;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/receiver.rs"]
mod receiver;
#[path = "soak/seed.rs"]
mod seed;
#[path = "soak/verdict.rs"]
mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;

struct Args {
    minutes: u64,
    kill_every: Duration,
}

fn args() -> Args {
    let mut args = Args {
        minutes: 10,
        kill_every: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok());
        match a.as_str() {
            "--minutes" => args.minutes = value().expect("--minutes N").max(2),
            "--kill-every-secs" => {
                args.kill_every =
                    Duration::from_secs(value().expect("--kill-every-secs N").max(10));
            }
            _ => {}
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = args();
    let dir = tempfile::tempdir().expect("tmp");
    let db = common::BenchDatabase::create(&dir.path().join("seed")).await;
    let (receiver, receiver_url) = receiver::Receiver::start(Duration::from_millis(100)).await;
    // One wave of dependents per kill period, and a spare.
    let waves = (args.minutes * 60 / args.kill_every.as_secs()) as usize + 1;
    let world = seed::seed(&db.settings, dir.path(), &receiver_url, waves).await;
    let fleet = Arc::new(fleet::Fleet::start(&world.config, dir.path(), REPLICAS).await);
    println!(
        "soak: {REPLICAS} replicas on PostgreSQL, S3 and SoftHSM2; {} models, {} waves of {} dependents",
        world.load.models.len(),
        world.waves.len(),
        seed::WAVE_DEPENDENTS
    );
    let peak = load::peak(
        world.load.clone(),
        fleet.clone(),
        32,
        Duration::from_secs(10),
    )
    .await;
    world.load.samples.lock().expect("lock").clear();
    let rate = (peak / 2.0).max(1.0);
    println!(
        "peak {peak:.0} operations/s (32 closed loops, 10 s); driving at {rate:.0}/s for {} min",
        args.minutes
    );

    let started = Instant::now();
    let until = started + Duration::from_secs(args.minutes * 60);
    let driver = tokio::spawn(load::drive(
        world.load.clone(),
        fleet.clone(),
        rate,
        until,
        512,
    ));
    let sampler = {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                fleet.sample_rss();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let takeovers = events(&world, &fleet, &receiver, args.kill_every, until).await;
    driver.await.expect("driver");
    sampler.await.expect("sampler");

    let report = verdict::judge(
        &world,
        &fleet,
        &receiver,
        &takeovers,
        started,
        until,
        args.kill_every,
    )
    .await;
    fleet.stop();
    db.drop_database().await;
    println!("{}", report.text);
    std::process::exit(i32::from(!report.passed));
}

/// Every `kill_every`, from half of it in: a retirement is scheduled (notices to its wave of dependents),
/// every third an emergency retirement erased by two people, then the replica holding
/// the most notice claims is killed and restarted. Returns, per kill, the time from the
/// kill to the first delivery of a notice the dead replica had claimed, and to its
/// restart serving.
async fn events(
    world: &seed::Seeded,
    fleet: &Arc<fleet::Fleet>,
    receiver: &receiver::Receiver,
    kill_every: Duration,
    until: Instant,
) -> Vec<(Option<Duration>, Duration)> {
    let mut takeovers = Vec::new();
    let mut wave = 0;
    // Mid-minute, so every minute of the run holds one kill and the first and last
    // minutes compare like with like.
    let mut next = Instant::now() + kill_every / 2;
    while next + Duration::from_secs(5) < until && wave < world.waves.len() {
        tokio::time::sleep_until(next.into()).await;
        world.schedule_wave(fleet, wave).await;
        if wave % 3 == 0 {
            world.emergency(fleet, wave / 3).await;
        }
        // Deliveries of the wave are in flight now (each receiver answers in 100 ms).
        let (victim, claimed) = world.busiest_replica(fleet).await;
        let kill = fleet.kill_and_restart(victim).await;
        let taken = verdict::first_delivery_after(receiver, &claimed, kill.at).await;
        takeovers.push((taken, kill.back - kill.at));
        wave += 1;
        next += kill_every;
    }
    takeovers
}
