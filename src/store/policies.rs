//! Models' own policy values, and promotions waiting for their second person.

use super::StoreError;
use super::entities::{model_policy, promotion_request};
use crate::domain::{ModelId, PolicyOverrides, VersionId};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

/// The model's own values (none set: empty).
pub async fn overrides(
    conn: &impl ConnectionTrait,
    model: ModelId,
) -> Result<PolicyOverrides, StoreError> {
    let Some(row) = model_policy::Entity::find_by_id(model.0).one(conn).await? else {
        return Ok(PolicyOverrides::default());
    };
    serde_json::from_str(&row.overrides)
        .map_err(|e| StoreError::Corrupt(format!("policy of model {}: {e}", model.0)))
}

/// Replaces the model's own values; empty ones remove its row.
pub async fn set_overrides(
    conn: &impl ConnectionTrait,
    model: ModelId,
    overrides: &PolicyOverrides,
    (at, by): (DateTime<Utc>, &str),
) -> Result<(), StoreError> {
    model_policy::Entity::delete_by_id(model.0)
        .exec(conn)
        .await?;
    if overrides.is_empty() {
        return Ok(());
    }
    model_policy::ActiveModel {
        model_id: Set(model.0),
        overrides: Set(serde_json::to_string(overrides).unwrap_or_else(|_| "{}".into())),
        updated_at: Set(at),
        updated_by: Set(by.to_owned()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// A promotion to production waiting for its approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequest {
    pub reference: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

pub async fn promotion_request(
    conn: &impl ConnectionTrait,
    version: VersionId,
) -> Result<Option<PromotionRequest>, StoreError> {
    Ok(promotion_request::Entity::find_by_id(version.0)
        .one(conn)
        .await?
        .map(|r| PromotionRequest {
            reference: r.reference,
            requested_by: r.requested_by,
            requested_at: r.requested_at,
        }))
}

pub async fn put_promotion_request(
    conn: &impl ConnectionTrait,
    version: VersionId,
    r: &PromotionRequest,
) -> Result<(), StoreError> {
    clear_promotion_request(conn, version).await?;
    promotion_request::ActiveModel {
        version_id: Set(version.0),
        reference: Set(r.reference.clone()),
        requested_by: Set(r.requested_by.clone()),
        requested_at: Set(r.requested_at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

pub async fn clear_promotion_request(
    conn: &impl ConnectionTrait,
    version: VersionId,
) -> Result<(), StoreError> {
    promotion_request::Entity::delete_by_id(version.0)
        .exec(conn)
        .await?;
    Ok(())
}

/// The tier of model `model`, whose policy defaults apply to it.
pub async fn tier_of(
    conn: &impl ConnectionTrait,
    model: ModelId,
) -> Result<Option<crate::domain::Tier>, StoreError> {
    use super::entities::model;
    model::Entity::find_by_id(model.0)
        .one(conn)
        .await?
        .map(|m| {
            crate::domain::Tier::parse(&m.tier)
                .map_err(|_| StoreError::Corrupt(format!("tier of model {}", m.id)))
        })
        .transpose()
}

/// How many of the model's versions are kept: every status but retired.
pub async fn kept_versions(conn: &impl ConnectionTrait, model: ModelId) -> Result<u64, StoreError> {
    use super::entities::model_version::{Column, Entity};
    use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
    Ok(Entity::find()
        .filter(Column::ModelId.eq(model.0))
        .filter(Column::Status.ne(crate::domain::LifecycleStatus::Retired.as_str()))
        .count(conn)
        .await?)
}

/// The own values of each of `models` that has any, in one query.
pub async fn overrides_of(
    conn: &impl ConnectionTrait,
    models: &[ModelId],
) -> Result<Vec<(ModelId, PolicyOverrides)>, StoreError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    model_policy::Entity::find()
        .filter(model_policy::Column::ModelId.is_in(models.iter().map(|m| m.0)))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| {
            serde_json::from_str(&row.overrides)
                .map(|o| (ModelId(row.model_id), o))
                .map_err(|e| StoreError::Corrupt(format!("policy of model {}: {e}", row.model_id)))
        })
        .collect()
}

/// The tiers of `models`, in one query.
pub async fn tiers_of(
    conn: &impl ConnectionTrait,
    models: &[ModelId],
) -> Result<Vec<(ModelId, crate::domain::Tier)>, StoreError> {
    use super::entities::model;
    use sea_orm::{ColumnTrait, QueryFilter};
    model::Entity::find()
        .filter(model::Column::Id.is_in(models.iter().map(|m| m.0)))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| {
            crate::domain::Tier::parse(&m.tier)
                .map(|t| (ModelId(m.id), t))
                .map_err(|_| StoreError::Corrupt(format!("tier of model {}", m.id)))
        })
        .collect()
}
