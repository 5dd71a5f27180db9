//! What the soak found: its figures, and whether every promise held.

use super::fleet::Fleet;
use super::load::{Op, Outcome, Sample};
use super::receiver::Receiver;
use super::seed::Seeded;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

pub struct Report {
    pub text: String,
    pub passed: bool,
}

impl Report {
    fn check(&mut self, holds: bool, what: &str) {
        let _ = writeln!(
            self.text,
            "  [{}] {what}",
            if holds { "ok" } else { "FAILED" }
        );
        self.passed &= holds;
    }
}

/// The first arrival, after `killed`, of a notice in `claimed`; None when there were
/// no claims to take over (or none arrived within a minute). Arrivals in the first
/// 100 ms are the dead process's own requests, already on the wire.
pub async fn first_delivery_after(
    receiver: &Receiver,
    claimed: &HashSet<String>,
    killed: Instant,
) -> Option<Duration> {
    if claimed.is_empty() {
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let first = receiver
            .arrivals()
            .iter()
            .filter(|a| a.at > killed + Duration::from_millis(100) && claimed.contains(&a.id))
            .map(|a| a.at - killed)
            .min();
        if first.is_some() {
            return first;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

pub async fn judge(
    world: &Seeded,
    fleet: &Fleet,
    receiver: &Receiver,
    takeovers: &[(Option<Duration>, Duration)],
    started: Instant,
    until: Instant,
    period: Duration,
) -> Report {
    let mut report = Report {
        text: String::new(),
        passed: true,
    };
    let samples = world.load.samples.lock().expect("lock").clone();
    figures(&mut report, &samples, started, until);
    let _ = writeln!(
        report.text,
        "kills: from a replica's SIGKILL to the first delivery of a notice it had claimed, and to its restart serving:"
    );
    for (i, (taken, back)) in takeovers.iter().enumerate() {
        let taken = taken.map_or("no claims held".into(), |d| {
            format!("{:.2} s", d.as_secs_f64())
        });
        let _ = writeln!(
            report.text,
            "  kill {}: takeover {taken}, serving again after {:.2} s",
            i + 1,
            back.as_secs_f64()
        );
    }
    let _ = writeln!(report.text, "promises:");
    notices(&mut report, world, receiver).await;
    certificates(&mut report, world).await;
    artifacts(&mut report, world, fleet).await;
    failures(&mut report, &samples, fleet);
    memory(&mut report, fleet);
    stability(&mut report, &samples, started, until, period);
    report
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn p99(mut times: Vec<Duration>) -> Option<Duration> {
    times.sort();
    (!times.is_empty()).then(|| super::common::percentile(&times, 0.99))
}

fn figures(report: &mut Report, samples: &[Sample], started: Instant, until: Instant) {
    let secs = (until - started).as_secs_f64();
    let mut by_op: BTreeMap<Op, Vec<Duration>> = BTreeMap::new();
    for s in samples.iter().filter(|s| matches!(s.outcome, Outcome::Ok)) {
        by_op.entry(s.op).or_default().push(s.end - s.start);
    }
    let _ = writeln!(
        report.text,
        "operations over {:.0} s ({} requests, {:.0}/s):",
        secs,
        samples.len(),
        samples.len() as f64 / secs
    );
    for (op, mut times) in by_op {
        times.sort();
        let at = |p: f64| super::common::percentile(&times, p);
        let _ = writeln!(
            report.text,
            "  {:<22} {:>7} ok   p50 {:>9}   p99 {:>9}   max {:>9}",
            op.name(),
            times.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0))
        );
    }
}

/// Waits for the outbox to drain, then: every webhook notice delivered and received,
/// and each (dependent, notice) under one id.
async fn notices(report: &mut Report, world: &Seeded, receiver: &Receiver) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut pending = usize::MAX;
    while Instant::now() < deadline {
        pending = world
            .rows("SELECT id, state FROM notices WHERE channel = 'webhook' AND state = 'pending'")
            .await
            .len();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = world
        .rows("SELECT id, state FROM notices WHERE channel = 'webhook'")
        .await;
    let arrivals = receiver.arrivals();
    let received: HashSet<&str> = arrivals.iter().map(|a| a.id.as_str()).collect();
    let lost: Vec<&(String, String)> = stored
        .iter()
        .filter(|(id, state)| state != "delivered" || !received.contains(id.as_str()))
        .collect();
    let mut ids: HashMap<(&str, &str, &str), HashSet<&str>> = HashMap::new();
    for a in &arrivals {
        ids.entry((&a.path, &a.kind, &a.retirement))
            .or_default()
            .insert(&a.id);
    }
    let twice = ids.values().filter(|s| s.len() > 1).count();
    let repeats = arrivals.len() - received.len();
    report.check(
        pending == 0 && lost.is_empty() && twice == 0,
        &format!(
            "no notice lost or under two ids: {} notices, {} arrivals ({repeats} repeats of one id), {} not delivered {:?}, {twice} told twice under different ids",
            stored.len(),
            arrivals.len(),
            lost.len(),
            lost.iter().take(3).collect::<Vec<_>>()
        ),
    );
}

async fn certificates(report: &mut Report, world: &Seeded) {
    let rows = world.rows("SELECT CAST(retirement_id AS TEXT), CAST(COUNT(*) AS TEXT) FROM certificates GROUP BY retirement_id").await;
    let counts: HashMap<String, String> = rows.into_iter().collect();
    let erased = world.erased.lock().expect("lock").clone();
    let one_each = erased
        .iter()
        .all(|(id, _)| counts.get(id).is_some_and(|n| n == "1"));
    report.check(
        one_each && counts.len() == erased.len() && !erased.is_empty(),
        &format!(
            "exactly one certificate per erased retirement: {} erased, certificates {counts:?}",
            erased.len()
        ),
    );
}

/// From every replica: each erased artifact refused, each survivor served whole.
async fn artifacts(report: &mut Report, world: &Seeded, fleet: &Fleet) {
    let erased: Vec<String> = world
        .erased
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    let mut wrong = Vec::new();
    for replica in 0..fleet.ports.len() {
        for model in world.digests.keys() {
            let url = format!(
                "{}/v1/models/{model}/versions/1.0.0/artifacts/model.bin",
                fleet.base(replica)
            );
            let r = world
                .load
                .client
                .get(&url)
                .bearer_auth(&world.load.reader)
                .send()
                .await
                .expect("get");
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap_or_default();
            let fine = if erased.contains(model) {
                status == 410 || status == 404
            } else {
                status == 200 && hex::encode(sha2::Sha256::digest(&body)) == world.digests[model]
            };
            if !fine {
                wrong.push(format!("replica {replica} {model}: {status}"));
            }
        }
    }
    report.check(
        wrong.is_empty(),
        &format!(
            "{} erased artifacts refused and {} survivors served whole by each of {} replicas {:?}",
            erased.len(),
            world.digests.len() - erased.len(),
            fleet.ports.len(),
            wrong.iter().take(5).collect::<Vec<_>>()
        ),
    );
}

/// Failed requests, except those in flight on a replica as it was killed.
fn failures(report: &mut Report, samples: &[Sample], fleet: &Fleet) {
    let kills = fleet.kills.lock().expect("lock").clone();
    let in_flight_at_kill = |s: &Sample| {
        kills.iter().any(|k| {
            k.replica == s.replica && s.start <= k.at && k.at <= s.end + Duration::from_millis(100)
        })
    };
    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Ok))
        .collect();
    let excused = failed.iter().filter(|s| in_flight_at_kill(s)).count();
    let other: Vec<String> = failed
        .iter()
        .filter(|s| !in_flight_at_kill(s))
        .map(|s| {
            format!(
                "{} on replica {}: {}",
                s.op.name(),
                s.replica,
                s.outcome.describe()
            )
        })
        .collect();
    report.check(
        other.is_empty(),
        &format!("no failed request but those in flight at a kill: {excused} cut by {} kills; others {} {:?}", kills.len(), other.len(), other.iter().take(5).collect::<Vec<_>>()),
    );
}

/// How long a process's memory is left to settle (allocator arenas, pools, caches)
/// before its growth is judged: the soak's RSS paths reach their plateau in 2–3 min.
const WARM_UP: Duration = Duration::from_secs(180);

/// Each process that lived two minutes past warm-up: the median of its RSS samples (one
/// a second) over the minute after warm-up against the median over its last minute.
/// Medians of a minute, not two samples, because RSS swings by ±10% within seconds as
/// downloads and uploads take and return buffers; a leak moves the median.
fn memory(report: &mut Report, fleet: &Fleet) {
    let minute = Duration::from_secs(60);
    let lives = fleet.lives.lock().expect("lock").clone();
    let mut worst: f64 = 0.0;
    let mut judged = Vec::new();
    for life in &lives {
        let Some(&(end, _)) = life.rss.last() else {
            continue;
        };
        if end < WARM_UP + 2 * minute {
            continue;
        }
        let median = |from: Duration, to: Duration| {
            let mut kib: Vec<u64> = life
                .rss
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|&(_, k)| k)
                .collect();
            kib.sort_unstable();
            kib.get(kib.len() / 2).copied().unwrap_or(0)
        };
        let base = median(WARM_UP, WARM_UP + minute);
        let last = median(end - minute, end + Duration::from_secs(1));
        let growth = (last as f64 - base as f64) / base.max(1) as f64 * 100.0;
        worst = worst.max(growth);
        let per_minute: Vec<String> = (0..=end.as_secs() / 60)
            .map(|m| median(m as u32 * minute, (m as u32 + 1) * minute) / 1024)
            .filter(|&mib| mib > 0)
            .map(|mib| mib.to_string())
            .collect();
        judged.push(format!(
            "r{} {}→{} MiB ({growth:+.1}%; median of each minute of its life: {})",
            life.replica,
            base / 1024,
            last / 1024,
            per_minute.join(" ")
        ));
    }
    let what = if judged.is_empty() {
        format!(
            "RSS growth after warm-up not judged: no process lived {} min",
            (WARM_UP + 2 * minute).as_secs() / 60
        )
    } else {
        format!(
            "RSS growth under 10% from the minute after a {} min warm-up to the last minute (medians), {} processes judged: {}",
            WARM_UP.as_secs() / 60,
            judged.len(),
            judged.join(", ")
        )
    };
    report.check(worst < 10.0, &what);
}

/// Each operation's p99, first kill period against the last whole one: each holds one
/// kill and one retirement at its middle, so they compare like with like.
fn stability(
    report: &mut Report,
    samples: &[Sample],
    started: Instant,
    until: Instant,
    period: Duration,
) {
    let periods = ((until - started).as_secs() / period.as_secs().max(1)).max(1) as u32;
    let last_from = started + period * (periods - 1);
    let mut lines = Vec::new();
    let mut stable = true;
    for op in [Op::Register, Op::Dependents, Op::Download] {
        let window = |from: Instant, to: Instant| {
            p99(samples
                .iter()
                .filter(|s| {
                    s.op == op
                        && matches!(s.outcome, Outcome::Ok)
                        && s.start >= from
                        && s.start < to
                })
                .map(|s| s.end - s.start)
                .collect())
        };
        let (first, last) = (
            window(started, started + period),
            window(last_from, last_from + period),
        );
        if let (Some(first), Some(last)) = (first, last) {
            stable &= last <= first * 2 + Duration::from_millis(5);
            lines.push(format!("{} {} → {}", op.name(), ms(first), ms(last)));
        }
    }
    report.check(
        stable,
        &format!(
            "p99 in the last {} s period within 2× (+5 ms) of the first: {}",
            period.as_secs(),
            lines.join("; ")
        ),
    );
}
