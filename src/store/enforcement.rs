//! Enforcement points told of a kill switch, and their confirmations.

use super::StoreError;
use super::entities::{consumer, enforcement_confirmation as row};
use crate::domain::ConsumerId;
use crate::domain::RetirementId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    #[serde(skip)]
    pub retirement_id: RetirementId,
    #[serde(skip)]
    pub consumer_id: ConsumerId,
    pub point: String,
    pub told_at: DateTime<Utc>,
    pub etag: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub via: Option<String>,
    pub escalated_at: Option<DateTime<Utc>>,
}

/// The enforcement points: consumers of that kind, `(id, name)`.
pub async fn points(conn: &impl ConnectionTrait) -> Result<Vec<(ConsumerId, String)>, StoreError> {
    Ok(consumer::Entity::find()
        .filter(consumer::Column::Kind.eq("gateway"))
        .order_by_asc(consumer::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(|c| (ConsumerId(c.id), c.name))
        .collect())
}

/// Records that these points were told; one already told keeps its first record.
pub async fn told(conn: &impl ConnectionTrait, rows: &[Confirmation]) -> Result<(), StoreError> {
    for r in rows {
        row::Entity::insert(row::ActiveModel {
            retirement_id: Set(r.retirement_id.0),
            consumer_id: Set(r.consumer_id.0),
            point: Set(r.point.clone()),
            told_at: Set(r.told_at),
            etag: Set(r.etag.clone()),
            confirmed_at: Set(None),
            via: Set(None),
            escalated_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([row::Column::RetirementId, row::Column::ConsumerId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

/// Confirms every unconfirmed record of point `consumer_id` told at or before `told_by`;
/// returns how many.
pub async fn confirm(
    conn: &impl ConnectionTrait,
    consumer_id: ConsumerId,
    told_by: DateTime<Utc>,
    at: DateTime<Utc>,
    via: &str,
) -> Result<u64, StoreError> {
    Ok(row::Entity::update_many()
        .col_expr(row::Column::ConfirmedAt, Expr::value(Some(at)))
        .col_expr(row::Column::Via, Expr::value(Some(via.to_owned())))
        .filter(row::Column::ConsumerId.eq(consumer_id))
        .filter(row::Column::ConfirmedAt.is_null())
        .filter(row::Column::ToldAt.lte(told_by))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Whether point `consumer_id` has a record told at or before `told_by` still to confirm
/// (a read, so a gateway polling with nothing to confirm costs no write).
pub async fn has_unconfirmed(
    conn: &impl ConnectionTrait,
    consumer_id: ConsumerId,
    told_by: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(row::Entity::find()
        .filter(row::Column::ConsumerId.eq(consumer_id))
        .filter(row::Column::ConfirmedAt.is_null())
        .filter(row::Column::ToldAt.lte(told_by))
        .one(conn)
        .await?
        .is_some())
}

/// When point `consumer_id` was told the list with `etag`, if it was.
pub async fn told_at_with_etag(
    conn: &impl ConnectionTrait,
    consumer_id: ConsumerId,
    etag: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(row::Entity::find()
        .filter(row::Column::ConsumerId.eq(consumer_id))
        .filter(row::Column::Etag.eq(etag))
        .order_by_desc(row::Column::ToldAt)
        .one(conn)
        .await?
        .map(|r| r.told_at))
}

/// Records not confirmed nor escalated, told before `before`.
pub async fn overdue(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<Vec<Confirmation>, StoreError> {
    Ok(row::Entity::find()
        .filter(row::Column::ConfirmedAt.is_null())
        .filter(row::Column::EscalatedAt.is_null())
        .filter(row::Column::ToldAt.lt(before))
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

pub async fn mark_escalated(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    consumer_id: ConsumerId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    row::Entity::update_many()
        .col_expr(row::Column::EscalatedAt, Expr::value(Some(at)))
        .filter(row::Column::RetirementId.eq(retirement_id))
        .filter(row::Column::ConsumerId.eq(consumer_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The records of retirement `retirement_id`, by point.
pub async fn of_retirement(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<Confirmation>, StoreError> {
    Ok(row::Entity::find()
        .filter(row::Column::RetirementId.eq(retirement_id))
        .order_by_asc(row::Column::Point)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

fn parse(r: row::Model) -> Confirmation {
    Confirmation {
        retirement_id: RetirementId(r.retirement_id),
        consumer_id: ConsumerId(r.consumer_id),
        point: r.point,
        told_at: r.told_at,
        etag: r.etag,
        confirmed_at: r.confirmed_at,
        via: r.via,
        escalated_at: r.escalated_at,
    }
}
