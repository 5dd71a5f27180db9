//! Waking this instance's followers when another replica commits something they follow
//! (`store::notify`): on PostgreSQL a listening connection turns each notification into a
//! wake-up of the follower of its topic, which then reads the change at once; the
//! followers' polls (`inventory.poll_interval_ms`) stay as the safety net, and are all
//! there is on SQLite or with `inventory.listen = false`.

use crate::store::notify::{Listener, Topic};
use std::time::Duration;
use tokio::sync::Notify;

/// One wake-up per topic; a follower waits on its own beside its poll.
pub(crate) struct Wakers {
    inventory: Notify,
    kill_switch: Notify,
    retirements: Notify,
    /// Whether the listening connection is up.
    listening: tokio::sync::watch::Sender<bool>,
}

impl Default for Wakers {
    fn default() -> Self {
        Self {
            inventory: Notify::new(),
            kill_switch: Notify::new(),
            retirements: Notify::new(),
            listening: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Wakers {
    pub(crate) fn of(&self, topic: Topic) -> &Notify {
        match topic {
            Topic::Inventory => &self.inventory,
            Topic::KillSwitch => &self.kill_switch,
            Topic::Retirements => &self.retirements,
        }
    }
}

/// How long to wait before listening again after the connection could not be opened.
const RELISTEN: Duration = Duration::from_secs(1);

impl super::Services {
    /// Waits for the next of `every` or a wake-up on `topic`, whichever comes first;
    /// true for the poll (a follower's periodic chores run then, not on every commit).
    pub(crate) async fn poll_or_wake(
        &self,
        every: &mut tokio::time::Interval,
        topic: Topic,
    ) -> bool {
        tokio::select! {
            _ = every.tick() => true,
            () = self.inner.wakers.of(topic).notified() => false,
        }
    }

    /// Whether this instance listens for other replicas' commits now (PostgreSQL), as it
    /// changes: for health reports and tests.
    pub fn change_listening(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.wakers.listening.subscribe()
    }

    /// Listens for other replicas' commits and wakes the followers of their topics. Runs
    /// until the process ends; on SQLite, or when listening is off, idles (a worker that
    /// returned would be restarted).
    pub async fn run_change_listener(self) {
        if !self.inventory_settings().listen {
            return std::future::pending().await;
        }
        loop {
            let mut listener = match Listener::connect(
                self.store().reader(),
                self.store().instance(),
            )
            .await
            {
                Ok(Some(l)) => l,
                Ok(None) => return std::future::pending().await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for other replicas' changes; polling meanwhile");
                    tokio::time::sleep(RELISTEN).await;
                    continue;
                }
            };
            // Whatever was committed while nobody listened is read now.
            for topic in Topic::ALL {
                self.inner.wakers.of(topic).notify_one();
            }
            self.inner.wakers.listening.send_replace(true);
            loop {
                match listener.next().await {
                    // `notify_one` keeps one wake-up for a follower busy reading, so a
                    // commit during its read is not missed.
                    Ok(topic) => self.inner.wakers.of(topic).notify_one(),
                    Err(e) => {
                        self.inner.wakers.listening.send_replace(false);
                        tracing::warn!(error = %e, "listening for other replicas' changes failed; polling meanwhile");
                        tokio::time::sleep(RELISTEN).await;
                        break;
                    }
                }
            }
        }
    }
}
