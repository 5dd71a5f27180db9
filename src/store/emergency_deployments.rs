//! Emergency deployments and what their models' contacts were last told.

use super::StoreError;
use super::entities::emergency_deployment::{ActiveModel, Column, Entity, Model};
use crate::domain::{DeploymentState, EmergencyDeployment, VersionId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};

pub async fn insert(
    conn: &impl ConnectionTrait,
    version: VersionId,
    d: &EmergencyDeployment,
) -> Result<i64, StoreError> {
    let row = ActiveModel {
        version_id: Set(version.0),
        risk_assessment: Set(d.risk_assessment.clone()),
        requested_by: Set(d.requested_by.clone()),
        requested_at: Set(d.requested_at),
        valid_hours: Set(i32::try_from(d.valid_hours).unwrap_or(i32::MAX)),
        state: Set(d.state.as_str().to_owned()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(row.id)
}

/// Writes `d`'s approval and settlement.
pub async fn update(
    conn: &impl ConnectionTrait,
    d: &EmergencyDeployment,
) -> Result<(), StoreError> {
    ActiveModel {
        id: Set(d.id),
        approved_by: Set(d.approved_by.clone()),
        approved_at: Set(d.approved_at),
        expires_at: Set(d.expires_at),
        state: Set(d.state.as_str().to_owned()),
        settled_at: Set(d.settled_at),
        outcome: Set(d.outcome.clone()),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(())
}

/// The contacts were told of `state`.
pub async fn notified(
    conn: &impl ConnectionTrait,
    id: i64,
    state: DeploymentState,
) -> Result<(), StoreError> {
    ActiveModel {
        id: Set(id),
        notified_state: Set(Some(state.as_str().to_owned())),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(())
}

/// The version's newest emergency deployment.
pub async fn latest(
    conn: &impl ConnectionTrait,
    version: VersionId,
) -> Result<Option<EmergencyDeployment>, StoreError> {
    let Some(row) = Entity::find()
        .filter(Column::VersionId.eq(version.0))
        .order_by_desc(Column::Id)
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    to_domain(conn, row).await
}

/// Active deployments whose time is up at `now`, with their versions' ids.
pub async fn due(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<(VersionId, EmergencyDeployment)>, StoreError> {
    let rows = Entity::find()
        .filter(Column::State.eq(DeploymentState::Active.as_str()))
        .filter(Column::ExpiresAt.lte(now))
        .order_by_asc(Column::Id)
        .all(conn)
        .await?;
    with_versions(conn, rows).await
}

/// Deployments whose contacts have not been told of their state yet (approved ones
/// only: a request is not news to them).
pub async fn untold(
    conn: &impl ConnectionTrait,
) -> Result<Vec<(VersionId, EmergencyDeployment)>, StoreError> {
    let told = Condition::any()
        .add(Column::NotifiedState.is_null())
        .add(Expr::col(Column::NotifiedState).ne(Expr::col(Column::State)));
    let rows = Entity::find()
        .filter(Column::ApprovedAt.is_not_null())
        .filter(told)
        .order_by_asc(Column::Id)
        .all(conn)
        .await?;
    with_versions(conn, rows).await
}

async fn with_versions(
    conn: &impl ConnectionTrait,
    rows: Vec<Model>,
) -> Result<Vec<(VersionId, EmergencyDeployment)>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let version = VersionId(row.version_id);
        if let Some(d) = to_domain(conn, row).await? {
            out.push((version, d));
        }
    }
    Ok(out)
}

async fn to_domain(
    conn: &impl ConnectionTrait,
    row: Model,
) -> Result<Option<EmergencyDeployment>, StoreError> {
    let corrupt =
        |what: &str| StoreError::Corrupt(format!("emergency deployment {}: {what}", row.id));
    let Some((_, model, version)) =
        super::registry::version_by_id(conn, VersionId(row.version_id)).await?
    else {
        return Ok(None);
    };
    Ok(Some(EmergencyDeployment {
        id: row.id,
        model: model.name,
        version: version.version,
        state: DeploymentState::parse(&row.state).map_err(|_| corrupt("state"))?,
        valid_hours: u32::try_from(row.valid_hours).map_err(|_| corrupt("hours"))?,
        risk_assessment: row.risk_assessment,
        requested_by: row.requested_by,
        requested_at: row.requested_at,
        approved_by: row.approved_by,
        approved_at: row.approved_at,
        expires_at: row.expires_at,
        settled_at: row.settled_at,
        outcome: row.outcome,
    }))
}
