//! What enforcement points were last told of each retirement's brownouts.

use super::StoreError;
use super::entities::brownout_push::{ActiveModel, Column, Entity};
use crate::domain::RetirementId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use std::collections::HashMap;

/// The ETag each retirement's brownouts were last pushed with.
pub async fn told(
    conn: &impl ConnectionTrait,
) -> Result<HashMap<RetirementId, String>, StoreError> {
    Ok(Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (RetirementId(r.retirement_id), r.etag))
        .collect())
}

/// Records the push of `etag` for `retirement`; `None`: nothing left to tell.
pub async fn set_told(
    conn: &impl ConnectionTrait,
    retirement: RetirementId,
    etag: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(etag) = etag else {
        Entity::delete_many()
            .filter(Column::RetirementId.eq(retirement.0))
            .exec(conn)
            .await?;
        return Ok(());
    };
    let row = ActiveModel {
        retirement_id: Set(retirement.0),
        etag: Set(etag.to_owned()),
        told_at: Set(at),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::RetirementId)
                .update_columns([Column::Etag, Column::ToldAt])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
