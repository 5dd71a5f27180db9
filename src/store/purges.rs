//! Derived stores' purge confirmations and governance waivers, per retirement.

use super::StoreError;
use super::entities::purge_confirmation;
use crate::domain::Purge;
use crate::domain::RetirementId;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

/// Records a confirmation or waiver; the first one recorded for a store stands.
pub async fn record(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    p: &Purge,
) -> Result<bool, StoreError> {
    let n = purge_confirmation::Entity::insert(purge_confirmation::ActiveModel {
        retirement_id: Set(retirement_id.0),
        consumer_id: Set(p.consumer_id.0),
        consumer_name: Set(p.consumer.clone()),
        outcome: Set(p.outcome.clone()),
        actor: Set(p.by.clone()),
        at: Set(p.at),
        note: Set(p.note.clone()),
    })
    .on_conflict(
        OnConflict::columns([
            purge_confirmation::Column::RetirementId,
            purge_confirmation::Column::ConsumerId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(n == 1)
}

pub async fn list(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<Purge>, StoreError> {
    Ok(purge_confirmation::Entity::find()
        .filter(purge_confirmation::Column::RetirementId.eq(retirement_id))
        .order_by_asc(purge_confirmation::Column::ConsumerName)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| Purge {
            consumer_id: crate::domain::ConsumerId(r.consumer_id),
            consumer: r.consumer_name,
            outcome: r.outcome,
            by: r.actor,
            at: r.at,
            note: r.note,
        })
        .collect())
}
