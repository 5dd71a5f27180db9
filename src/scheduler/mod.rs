//! Scheduled jobs. For now one: signing a checkpoint of the audit chain head on the
//! configured cron schedule. Running twice on two instances is harmless (two
//! checkpoints of one head), so no claim is needed yet.

use crate::clock::Clock;
use crate::service::Services;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The next time `schedule` fires strictly after `now`.
pub fn next_fire(schedule: &cron::Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&now).next()
}

pub fn spawn_checkpoints(
    services: Services,
    schedule: cron::Schedule,
    clock: Arc<dyn Clock>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = clock.now();
            let Some(next) = next_fire(&schedule, now) else {
                tracing::warn!("the checkpoint schedule never fires again; stopping it");
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            match services.sign_audit_checkpoint_if_moved().await {
                Ok(Some(cp)) => tracing::info!(seq = cp.seq, "scheduled audit checkpoint signed"),
                Ok(None) => tracing::debug!("audit head unchanged since the last checkpoint"),
                Err(e) => tracing::error!(error = %e, "scheduled audit checkpoint failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_default_schedule_fires_on_the_next_quarter_hour() {
        let schedule: cron::Schedule = crate::config::AuditSettings::default()
            .checkpoint_schedule
            .parse()
            .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 7, 30).unwrap();
        assert_eq!(
            next_fire(&schedule, now),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 10, 15, 0).unwrap())
        );
    }
}
