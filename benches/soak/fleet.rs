//! Three `sunset serve` processes on one database: started, SIGKILLed and restarted
//! (each on its own data folder and port, as pods are), and their memory sampled.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One process's life: its replica, pid, start, and resident memory samples (KiB).
#[derive(Debug, Clone)]
pub struct Life {
    pub replica: usize,
    pub pid: u32,
    pub started: Instant,
    pub rss: Vec<(Duration, u64)>,
}

/// One kill: which replica, when, and when it served again.
#[derive(Debug, Clone)]
pub struct Kill {
    pub replica: usize,
    pub at: Instant,
    pub back: Instant,
}

pub struct Fleet {
    config: PathBuf,
    root: PathBuf,
    pub ports: Vec<u16>,
    children: Vec<Mutex<Option<Child>>>,
    up: Vec<AtomicBool>,
    pub lives: Mutex<Vec<Life>>,
    pub kills: Mutex<Vec<Kill>>,
}

impl Fleet {
    /// Starts `replicas` processes with `config`, each with a data folder under `root`.
    pub async fn start(config: &Path, root: &Path, replicas: usize) -> Self {
        let fleet = Self {
            config: config.to_owned(),
            root: root.to_owned(),
            ports: (0..replicas).map(|_| super::common::free_port()).collect(),
            children: (0..replicas).map(|_| Mutex::new(None)).collect(),
            up: (0..replicas).map(|_| AtomicBool::new(false)).collect(),
            lives: Mutex::default(),
            kills: Mutex::default(),
        };
        for i in 0..replicas {
            fleet.launch(i).await;
        }
        fleet
    }

    pub fn base(&self, replica: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[replica])
    }

    pub fn is_up(&self, replica: usize) -> bool {
        self.up[replica].load(Ordering::Acquire)
    }

    /// The replicas that may be killed: all but the first, which lives through the run
    /// so that its memory after warm-up can be judged over minutes, not one kill period.
    pub fn killable(&self) -> Vec<usize> {
        (1..self.ports.len()).collect()
    }

    /// The replicas serving now (a load balancer's view, from readiness).
    pub fn serving(&self) -> Vec<usize> {
        (0..self.ports.len()).filter(|&i| self.is_up(i)).collect()
    }

    pub fn pid(&self, replica: usize) -> u32 {
        self.children[replica]
            .lock()
            .expect("lock")
            .as_ref()
            .map_or(0, Child::id)
    }

    /// Starts replica `i` and returns once it is ready.
    async fn launch(&self, i: usize) {
        let data = self.root.join(format!("replica-{i}"));
        std::fs::create_dir_all(&data).expect("data folder");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("replica-{i}.log")))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sunset"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.ports[i])])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&self.config)
            .env("SUNSET_METRICS__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sunset serve");
        let pid = child.id();
        *self.children[i].lock().expect("lock") = Some(child);
        wait_ready(&self.base(i)).await;
        self.lives.lock().expect("lock").push(Life {
            replica: i,
            pid,
            started: Instant::now(),
            rss: Vec::new(),
        });
        self.up[i].store(true, Ordering::Release);
    }

    /// SIGKILLs replica `i` (taken out of the load balancer first, as a dying pod is
    /// not: requests in flight are cut), then starts it again at once.
    pub async fn kill_and_restart(&self, i: usize) -> Kill {
        self.up[i].store(false, Ordering::Release);
        let at = Instant::now();
        if let Some(mut child) = self.children[i].lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.launch(i).await;
        let kill = Kill {
            replica: i,
            at,
            back: Instant::now(),
        };
        self.kills.lock().expect("lock").push(kill.clone());
        kill
    }

    /// Records each live process's resident memory.
    pub fn sample_rss(&self) {
        let mut lives = self.lives.lock().expect("lock");
        for i in 0..self.ports.len() {
            let pid = self.pid(i);
            if let Some(life) = lives.iter_mut().rev().find(|l| l.pid == pid)
                && let kib @ 1.. = super::common::status_kib(pid, "VmRSS:")
            {
                life.rss.push((life.started.elapsed(), kib));
            }
        }
    }

    /// Stops every replica with SIGTERM, as a rollout does.
    pub fn stop(&self) {
        for child in &self.children {
            if let Some(mut child) = child.lock().expect("lock").take() {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
        }
    }
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} did not become ready within 180 s (see its log in the soak folder)");
}
