//! Claimed runs of periodic jobs (scheduled scans, retirement checks): every instance
//! schedules them, and the one that inserts the `(job, tick)` row first runs that tick.

use super::StoreError;
use super::entities::job_run;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// Claims the run of periodic `job` at `tick`; false when another instance has.
pub async fn claim(
    conn: &impl ConnectionTrait,
    job: &str,
    tick: DateTime<Utc>,
    by: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row = job_run::ActiveModel {
        job: Set(job.to_owned()),
        tick: Set(tick),
        claimed_by: Set(by.to_owned()),
        claimed_at: Set(at),
    };
    let inserted = job_run::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([job_run::Column::Job, job_run::Column::Tick])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// Forgets claimed runs of `job` scheduled before `before`: a claim only matters while
/// its tick is current, and a job ticking every minute would otherwise add 1,440 rows a
/// day for ever.
pub async fn prune(
    conn: &impl ConnectionTrait,
    job: &str,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(job_run::Entity::delete_many()
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::Tick.lt(before))
        .exec(conn)
        .await?
        .rows_affected)
}
