//! Disabled versions (the kill switch) and the recorded steps of executing a retirement.

use super::StoreError;
use super::entities::{decommission_step, disabled_version};
use crate::domain::RetirementId;
use crate::domain::{DecommissionStep, DisabledVersion, Step};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

/// Disables versions; one already disabled stays as it was (so a resumed execution
/// changes nothing twice). Returns how many were newly disabled.
pub async fn disable(
    conn: &impl ConnectionTrait,
    versions: &[DisabledVersion],
) -> Result<u64, StoreError> {
    let mut added = 0;
    for v in versions {
        added += disabled_version::Entity::insert(disabled_version::ActiveModel {
            version_id: Set(v.version_id),
            model_name: Set(v.model.clone()),
            version: Set(v.version.clone()),
            retirement_id: Set(v.retirement_id.map(i64::from)),
            disabled_at: Set(v.disabled_at),
            disabled_by: Set(v.disabled_by.clone()),
            reason: Set(v.reason.clone()),
            prior_status: Set(v.prior_status.clone()),
        })
        .on_conflict(
            OnConflict::column(disabled_version::Column::VersionId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    if added > 0 {
        super::notify::notify(conn, super::notify::Topic::KillSwitch).await?;
    }
    Ok(added)
}

/// Serves the versions retirement `retirement_id` disabled again (a lifted kill switch);
/// returns them.
pub async fn enable(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<DisabledVersion>, StoreError> {
    let rows: Vec<DisabledVersion> = disabled_version::Entity::find()
        .filter(disabled_version::Column::RetirementId.eq(retirement_id))
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect();
    disabled_version::Entity::delete_many()
        .filter(disabled_version::Column::RetirementId.eq(retirement_id))
        .exec(conn)
        .await?;
    super::notify::notify(conn, super::notify::Topic::KillSwitch).await?;
    Ok(rows)
}

pub async fn find(
    conn: &impl ConnectionTrait,
    model: &str,
    version: &str,
) -> Result<Option<DisabledVersion>, StoreError> {
    Ok(disabled_version::Entity::find()
        .filter(disabled_version::Column::ModelName.eq(model))
        .filter(disabled_version::Column::Version.eq(version))
        .one(conn)
        .await?
        .map(parse))
}

/// The versions retirement `retirement_id` disabled, by version id.
pub async fn of_retirement(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<DisabledVersion>, StoreError> {
    Ok(disabled_version::Entity::find()
        .filter(disabled_version::Column::RetirementId.eq(retirement_id))
        .order_by_asc(disabled_version::Column::VersionId)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

/// Every disabled version, by model and version.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<DisabledVersion>, StoreError> {
    Ok(disabled_version::Entity::find()
        .order_by_asc(disabled_version::Column::ModelName)
        .order_by_asc(disabled_version::Column::Version)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

fn parse(r: disabled_version::Model) -> DisabledVersion {
    DisabledVersion {
        version_id: r.version_id,
        model: r.model_name,
        version: r.version,
        retirement_id: r.retirement_id.map(RetirementId),
        disabled_at: r.disabled_at,
        disabled_by: r.disabled_by,
        reason: r.reason,
        prior_status: r.prior_status,
    }
}

/// Records a step as started, with `data` to resume from; a step already recorded keeps
/// its start and data.
pub async fn start_step(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    step: DecommissionStep,
    at: DateTime<Utc>,
    data: Option<&str>,
) -> Result<(), StoreError> {
    decommission_step::Entity::insert(decommission_step::ActiveModel {
        retirement_id: Set(retirement_id.0),
        step: Set(step.as_str().to_owned()),
        started_at: Set(at),
        finished_at: Set(None),
        outcome: Set(None),
        data: Set(data.map(str::to_owned)),
    })
    .on_conflict(
        OnConflict::columns([
            decommission_step::Column::RetirementId,
            decommission_step::Column::Step,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Records a step as finished with `outcome` (started now if it was not recorded yet);
/// `data`, when given, replaces what the step kept.
pub async fn finish_step(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    step: DecommissionStep,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: &str,
    data: Option<&str>,
) -> Result<(), StoreError> {
    let mut update = vec![
        decommission_step::Column::FinishedAt,
        decommission_step::Column::Outcome,
    ];
    if data.is_some() {
        update.push(decommission_step::Column::Data);
    }
    decommission_step::Entity::insert(decommission_step::ActiveModel {
        retirement_id: Set(retirement_id.0),
        step: Set(step.as_str().to_owned()),
        started_at: Set(started_at),
        finished_at: Set(Some(finished_at)),
        outcome: Set(Some(outcome.to_owned())),
        data: Set(data.map(str::to_owned)),
    })
    .on_conflict(
        OnConflict::columns([
            decommission_step::Column::RetirementId,
            decommission_step::Column::Step,
        ])
        .update_columns(update)
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Sets the data of a started step, unless it has some: the first run to record wins.
pub async fn set_data_once(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    step: DecommissionStep,
    data: &str,
) -> Result<(), StoreError> {
    decommission_step::Entity::update_many()
        .col_expr(
            decommission_step::Column::Data,
            sea_orm::sea_query::Expr::value(Some(data.to_owned())),
        )
        .filter(decommission_step::Column::RetirementId.eq(retirement_id))
        .filter(decommission_step::Column::Step.eq(step.as_str()))
        .filter(decommission_step::Column::Data.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Records what went wrong in a step that has not finished, so `retirement { steps }`
/// shows why an execution stopped.
pub async fn note_step_failure(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    step: DecommissionStep,
    at: DateTime<Utc>,
    outcome: &str,
) -> Result<(), StoreError> {
    start_step(conn, retirement_id, step, at, None).await?;
    decommission_step::Entity::update_many()
        .col_expr(
            decommission_step::Column::Outcome,
            sea_orm::sea_query::Expr::value(outcome.to_owned()),
        )
        .filter(decommission_step::Column::RetirementId.eq(retirement_id))
        .filter(decommission_step::Column::Step.eq(step.as_str()))
        .filter(decommission_step::Column::FinishedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// The recorded steps of executing a retirement, in the order they started.
pub async fn steps(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<Step>, StoreError> {
    decommission_step::Entity::find()
        .filter(decommission_step::Column::RetirementId.eq(retirement_id))
        .order_by_asc(decommission_step::Column::StartedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| {
            Ok(Step {
                step: DecommissionStep::parse(&r.step)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                started_at: r.started_at,
                finished_at: r.finished_at,
                outcome: r.outcome,
                data: r.data,
            })
        })
        .collect()
}
