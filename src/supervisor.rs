//! Background work owned in one place. Each worker is named and kept running: one that
//! panics or ends is logged and started again after a pause (doubling up to a minute,
//! so a worker that fails at once does not spin), and shutdown stops every one and
//! waits for it, instead of aborting handles one by one.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest pause before a restart.
const MAX_PAUSE: Duration = Duration::from_secs(60);

pub struct Supervisor {
    tracker: TaskTracker,
    stop: CancellationToken,
    first_pause: Duration,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl Supervisor {
    /// A supervisor that waits `first_pause` before the first restart of a worker.
    pub fn new(first_pause: Duration) -> Self {
        Self {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            first_pause,
        }
    }

    /// Runs the worker `start` makes until shutdown, making and starting a new one
    /// whenever it panics or returns.
    pub fn keep_running<F, Fut>(&self, name: &'static str, start: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        let mut pause = self.first_pause;
        self.tracker.spawn(async move {
            loop {
                let mut worker = tokio::spawn(start());
                let ended = tokio::select! {
                    () = stop.cancelled() => {
                        worker.abort();
                        let _ = worker.await;
                        return;
                    }
                    ended = &mut worker => ended,
                };
                match ended {
                    Err(e) if e.is_panic() => {
                        tracing::error!(
                            worker = name,
                            "a background worker panicked; restarting it"
                        )
                    }
                    _ => tracing::warn!(worker = name, "a background worker ended; restarting it"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        });
    }

    /// Runs `task` once (work that ends, such as resuming what a crash cut short),
    /// cancelled at shutdown if it is still running.
    pub fn run_once(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => tracing::debug!(task = name, "stopped at shutdown"),
                () = task => {}
            }
        });
    }

    /// Stops every worker and waits until each has.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_worker_that_panics_or_ends_is_started_again_and_shutdown_stops_all() {
        let supervisor = Supervisor::new(Duration::ZERO);
        let starts = Arc::new(AtomicUsize::new(0));
        let (started, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let counted = starts.clone();
        supervisor.keep_running("flaky", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let started = started.clone();
            async move {
                let _ = started.send(n);
                match n {
                    0 => panic!("the first run fails"),
                    1 => {}                                  // the second ends
                    _ => std::future::pending::<()>().await, // the third runs on
                }
            }
        });
        for expected in 0..3 {
            // A bound, not a wait: without restarts this would hang.
            let start = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await;
            assert_eq!(start.expect("restarted"), Some(expected));
        }
        // A task that would never end is cancelled; shutdown returns once all stopped.
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        supervisor.run_once("forever", async move {
            let _guard = dropped_tx;
            std::future::pending::<()>().await
        });
        supervisor.shutdown().await;
        assert!(
            dropped_rx.await.is_err(),
            "the task was dropped, not left running"
        );
        assert_eq!(starts.load(Ordering::SeqCst), 3, "no start after shutdown");
    }
}
