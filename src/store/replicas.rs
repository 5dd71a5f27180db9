//! Which instances are running. Each one beats (wall-clock time, not the service's
//! clock: liveness is about processes, not about the domain's dates) every few seconds;
//! a delivery claim held by an instance that stopped beating is free again.

use super::StoreError;
use super::entities::replica;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{OnConflict, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// Records that `instance` is alive at `at` (its first beat also records its start).
pub async fn beat(
    conn: &impl ConnectionTrait,
    instance: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    replica::Entity::insert(replica::ActiveModel {
        instance: Set(instance.to_owned()),
        started_at: Set(at),
        beat_at: Set(at),
    })
    .on_conflict(
        OnConflict::column(replica::Column::Instance)
            .update_column(replica::Column::BeatAt)
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Every instance that has beaten, with its last beat.
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    Ok(replica::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.instance, r.beat_at))
        .collect())
}

/// Forgets `instances` (stopped, or found dead): their claims are free at once.
pub async fn forget(conn: &impl ConnectionTrait, instances: &[String]) -> Result<u64, StoreError> {
    if instances.is_empty() {
        return Ok(0);
    }
    Ok(replica::Entity::delete_many()
        .filter(replica::Column::Instance.is_in(instances.iter().cloned()))
        .exec(conn)
        .await?
        .rows_affected)
}

/// The instances that beat at `live_after` or later, as a subquery.
pub(super) fn live_since(live_after: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column(replica::Column::Instance)
        .from(replica::Entity)
        .and_where(replica::Column::BeatAt.gte(live_after))
        .to_owned()
}
