//! Scheduled jobs: signing a checkpoint of the audit chain head (running it on two
//! instances is harmless: two checkpoints of one head), and traffic scans, retirement
//! checks and retention reviews, which every instance schedules but only the one that claims a tick runs
//! (`job_runs`, through `Services::claim_tick`). Each job is a future that runs until
//! cancelled; `supervisor` starts them, and starts them again should one fail.

use crate::clock::Clock;
use crate::service::Services;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The next time `schedule` fires strictly after `now`.
pub fn next_fire(schedule: &cron::Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&now).next()
}

/// Runs `job` at every time `schedule` gives, by the injected clock, until the schedule
/// ends or the future is dropped. `job` is given the tick it runs for.
async fn on_schedule<F, Fut>(schedule: cron::Schedule, clock: Arc<dyn Clock>, mut job: F)
where
    F: FnMut(DateTime<Utc>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    loop {
        let now = clock.now();
        let Some(tick) = next_fire(&schedule, now) else {
            tracing::warn!(%schedule, "a schedule never fires again; stopping its job");
            // Ended on purpose: waits here rather than be restarted.
            return std::future::pending().await;
        };
        tokio::time::sleep((tick - now).to_std().unwrap_or_default()).await;
        job(tick).await;
    }
}

pub async fn checkpoints(services: Services, schedule: cron::Schedule, clock: Arc<dyn Clock>) {
    on_schedule(schedule, clock, move |_| {
        let services = services.clone();
        async move {
            match services.audit().sign_audit_checkpoint_if_moved().await {
                Ok(Some(cp)) => tracing::info!(seq = cp.seq, "scheduled audit checkpoint signed"),
                Ok(None) => tracing::debug!("audit head unchanged since the last checkpoint"),
                Err(e) => tracing::error!(error = %e, "scheduled audit checkpoint failed"),
            }
        }
    })
    .await
}

/// Runs `run` at every tick of `schedule`; the use case claims the tick, so one
/// instance runs it (`Ok(None)`: another did). What a run did is logged when `busy`.
async fn claimed<R, F, Fut>(
    services: Services,
    (schedule, clock): (cron::Schedule, Arc<dyn Clock>),
    what: &'static str,
    busy: fn(&R) -> bool,
    run: F,
) where
    R: std::fmt::Debug + Send + 'static,
    F: Fn(Services, DateTime<Utc>, Arc<String>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Option<R>, crate::service::ServiceError>> + Send,
{
    let instance = Arc::new(crate::service::instance_name());
    let run = Arc::new(run);
    on_schedule(schedule, clock, move |tick| {
        let (services, instance, run) = (services.clone(), instance.clone(), run.clone());
        async move {
            match run(services, tick, instance).await {
                Ok(Some(r)) if busy(&r) => tracing::info!(report = ?r, "{what} done"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "{what} failed"),
            }
        }
    })
    .await
}

/// Looks at pending retirements on `schedule`; each tick is claimed, so one instance
/// runs it.
pub async fn retirement_checks(
    services: Services,
    schedule: cron::Schedule,
    clock: Arc<dyn Clock>,
) {
    claimed(
        services,
        (schedule, clock),
        "retirement check",
        |r: &crate::service::CheckReport| r.new_dependents + r.reminders + r.state_changes > 0,
        |s, tick, instance| async move {
            s.retirements()
                .run_scheduled_retirement_check(tick, &instance)
                .await
        },
    )
    .await
}

/// Retention's review on `schedule`; each tick is claimed, so one instance runs it.
pub async fn retention(services: Services, schedule: cron::Schedule, clock: Arc<dyn Clock>) {
    claimed(
        services,
        (schedule, clock),
        "retention review",
        |r: &crate::service::RetentionReport| *r != Default::default(),
        |s, tick, instance| async move {
            s.retirements()
                .run_scheduled_retention(tick, &instance)
                .await
        },
    )
    .await
}

/// The scheduled scan of one source; each tick is claimed in the database first, so
/// with several instances every scheduled scan runs once.
pub async fn scans(
    services: Services,
    source: String,
    schedule: cron::Schedule,
    clock: Arc<dyn Clock>,
) {
    let instance = Arc::new(crate::service::instance_name());
    let name = Arc::new(source);
    on_schedule(schedule, clock, move |tick| {
        let (services, instance, name) = (services.clone(), instance.clone(), name.clone());
        async move {
            match services.inventory().run_scheduled_scan(&name, tick, &instance).await {
                Ok(Some(r)) => tracing::info!(source = %name, lines = r.lines, matched = r.matched, "scheduled scan done"),
                Ok(None) => tracing::debug!(source = %name, "another instance runs this scan tick"),
                Err(e) => tracing::error!(source = %name, error = %e, "scheduled scan failed"),
            }
        }
    })
    .await
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
