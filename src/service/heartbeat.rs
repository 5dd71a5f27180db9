//! This instance's heartbeat. Every instance beats in the database every
//! [`HEARTBEAT`] (wall-clock time); one silent for [`DEAD_AFTER`] is dead, and the
//! notices it had claimed are taken by the next delivery pass of any live instance,
//! instead of waiting out their lease. A restarted process on the same host forgets the
//! dead processes of that host as it starts, so their claims are free at once; one that
//! stops cleanly forgets itself.

use super::{ServiceError, Services};
use crate::store::replicas as repo;
use std::time::Duration;

/// How often an instance beats.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long an instance may stay silent before its claims are taken over: five beats,
/// so a pause in the database or a slow host does not make a live instance look dead.
pub const DEAD_AFTER: chrono::Duration = chrono::Duration::seconds(10);

/// Silent this long, an instance of another host is forgotten (its claims went long ago).
const FORGOTTEN_AFTER: chrono::Duration = chrono::Duration::days(1);

impl Services {
    /// Beats once, and forgets the instances of this host whose process is gone (a
    /// restart of this service, or an earlier one killed): their claims are free now.
    /// Instances of other hosts silent for a day are forgotten too, so the table holds
    /// only the fleet of late.
    pub async fn join_fleet(&self) -> Result<(), ServiceError> {
        let db = self.store().reader();
        let now = chrono::Utc::now();
        repo::beat(db, &self.inner.instance, now).await?;
        let dead: Vec<String> = repo::all(db)
            .await?
            .into_iter()
            .filter(|(instance, beat)| {
                super::holder_has_died(instance) || *beat < now - FORGOTTEN_AFTER
            })
            .map(|(instance, _)| instance)
            .collect();
        if !dead.is_empty() {
            tracing::info!(instances = ?dead, "forgot stopped instances; their claims are free");
        }
        repo::forget(db, &dead).await?;
        Ok(())
    }

    /// Beats every [`HEARTBEAT`] until the process ends. A failed beat is logged and
    /// tried again at the next one; five in a row let others take this instance's claims,
    /// which is safe (a notice is then sent twice, under one id).
    pub async fn run_heartbeat(self) {
        let mut every = tokio::time::interval(HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let at = chrono::Utc::now();
            if let Err(e) = repo::beat(self.store().reader(), &self.inner.instance, at).await {
                tracing::warn!(error = %e, "could not record this instance's heartbeat");
            }
        }
    }

    /// Forgets this instance as it stops, so others take what it had claimed at once.
    pub async fn leave_fleet(&self) {
        let gone = std::slice::from_ref(&self.inner.instance);
        if let Err(e) = repo::forget(self.store().reader(), gone).await {
            tracing::warn!(error = %e, "could not record that this instance stopped");
        }
    }
}
