//! The load: a mix of what the fleet's users do, sent to the serving replicas at a set
//! rate (open loop: a slow answer does not slow the arrivals), each request recorded
//! with its replica, times and outcome.

use rand::RngExt;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The operations and their share of the mix (out of 100).
pub const MIX: [(Op, u32); 4] = [
    (Op::Register, 30),
    (Op::Dependents, 40),
    (Op::Download, 20),
    (Op::ScanLines, 10),
];

/// How many consumers register themselves (each always using the same model).
const REGISTERED_CONSUMERS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Register,
    Dependents,
    Download,
    ScanLines,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Register => "registration webhook",
            Op::Dependents => "dependents (GraphQL)",
            Op::Download => "artifact download",
            Op::ScanLines => "gateway log lines",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Ok,
    Status(u16),
    Failed(String),
}

impl Outcome {
    pub fn describe(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Status(s) => format!("HTTP {s}"),
            Outcome::Failed(e) => e.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub op: Op,
    pub replica: usize,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

/// What the load needs to know of the world.
pub struct World {
    pub client: reqwest::Client,
    pub reader: String,
    pub hook_secret: sunset::ingest::standard_webhooks::Secret,
    /// Models whose artifact may be downloaded (the emergency ones leave it).
    pub downloadable: Mutex<Vec<String>>,
    pub models: Vec<String>,
    pub gateway_log: std::path::PathBuf,
    pub samples: Mutex<Vec<Sample>>,
    pub sent: AtomicUsize,
}

impl World {
    /// One operation against `base` (replica `replica`), recorded.
    pub async fn run(self: &Arc<Self>, op: Op, replica: usize, base: &str) {
        let start = Instant::now();
        let outcome = match op {
            Op::Register => self.register(base).await,
            Op::Dependents => self.dependents(base).await,
            Op::Download => self.download(base).await,
            Op::ScanLines => self.scan_lines(),
        };
        if op != Op::ScanLines {
            self.samples.lock().expect("lock").push(Sample {
                op,
                replica,
                start,
                end: Instant::now(),
                outcome,
            });
        }
    }

    fn pick_model(&self) -> String {
        let i = rand::rng().random_range(0..self.models.len());
        self.models[i].clone()
    }

    async fn register(&self, base: &str) -> Outcome {
        // A fixed population of consumers confirming what they use, as deployments do
        // at each start: after the first pass the inventory stops growing, so memory
        // growth would be a leak, not data.
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        let consumer = n % REGISTERED_CONSUMERS;
        let model = &self.models[consumer % self.models.len()];
        let body = serde_json::to_vec(&json!({ "registrations": [{
            "type": "consumer", "name": format!("reg-{consumer}"), "kind": "service",
            "ownerTeam": "soak", "environment": "production",
            "uses": [{ "model": model, "version": "1.0.0" }]
        }] }))
        .expect("json");
        let id = format!("soak-{n}-{}", rand::rng().random::<u32>());
        let at = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(format!("{base}/v1/hooks/registrations"))
            .header("webhook-id", &id)
            .header("webhook-timestamp", at.to_string())
            .header("webhook-signature", self.hook_secret.sign(&id, at, &body))
            .body(body)
            .send()
            .await;
        outcome(sent).await
    }

    async fn dependents(&self, base: &str) -> Outcome {
        let body = json!({
            "query": "query($m: String!) { dependents(model: $m, version: \"1.0.0\") { revision complete total } }",
            "variables": { "m": self.pick_model() }
        });
        let sent = self
            .client
            .post(format!("{base}/graphql"))
            .bearer_auth(&self.reader)
            .json(&body)
            .send()
            .await;
        outcome(sent).await
    }

    async fn download(&self, base: &str) -> Outcome {
        let model = {
            let pool = self.downloadable.lock().expect("lock");
            pool[rand::rng().random_range(0..pool.len())].clone()
        };
        let sent = self
            .client
            .get(format!(
                "{base}/v1/models/{model}/versions/1.0.0/artifacts/model.bin"
            ))
            .bearer_auth(&self.reader)
            .send()
            .await;
        outcome(sent).await
    }

    /// Lines a gateway writes to its access log, which the replicas scan.
    fn scan_lines(&self) -> Outcome {
        let mut file = match std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.gateway_log)
        {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut lines = String::new();
        for k in 0..10 {
            let caller = format!("gw-client-{}", rand::rng().random_range(0..200));
            let model = self.pick_model();
            lines.push_str(&format!(
                "{{\"client\":\"{caller}\",\"path\":\"/v1/models/{model}/versions/1.0.0/predict\",\"n\":{k}}}\n"
            ));
        }
        match file.write_all(lines.as_bytes()) {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// Reads the whole answer (a download streams) and classifies it.
async fn outcome(sent: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(_) if status < 400 => Outcome::Ok,
                Ok(_) => Outcome::Status(status),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Picks an operation by the mix.
pub fn pick_op() -> Op {
    let mut roll = rand::rng().random_range(0..100u32);
    for (op, share) in MIX {
        if roll < share {
            return op;
        }
        roll -= share;
    }
    Op::Dependents
}

/// Sends operations at `rate` per second until `until`, to serving replicas, at most
/// `in_flight` at once (beyond that an arrival waits: the figures then say so).
pub async fn drive(
    world: Arc<World>,
    fleet: Arc<super::fleet::Fleet>,
    rate: f64,
    until: Instant,
    in_flight: usize,
) {
    let gate = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < until {
        ticks.tick().await;
        let serving = fleet.serving();
        if serving.is_empty() {
            continue;
        }
        let replica = serving[rand::rng().random_range(0..serving.len())];
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let (world, base) = (world.clone(), fleet.base(replica));
        tasks.spawn(async move {
            world.run(pick_op(), replica, &base).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The most operations per second `workers` closed loops complete in `for_how_long`.
pub async fn peak(
    world: Arc<World>,
    fleet: Arc<super::fleet::Fleet>,
    workers: usize,
    for_how_long: Duration,
) -> f64 {
    let until = Instant::now() + for_how_long;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (world, fleet, done) = (world.clone(), fleet.clone(), done.clone());
        tasks.spawn(async move {
            while Instant::now() < until {
                let replica = w % fleet.ports.len();
                world.run(pick_op(), replica, &fleet.base(replica)).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / for_how_long.as_secs_f64()
}
