//! Retirements and the dependents each was announced to.

use super::StoreError;
use super::entities::{retirement, retirement_dependent};
use crate::domain::RetirementId;
use crate::domain::{ConsumerId, Dependent, Retirement};
use crate::domain::{ExtensionState, FoundBy, ModelName, RetirementState, Version, VersionRange};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

pub async fn insert(
    conn: &impl ConnectionTrait,
    r: &Retirement,
) -> Result<RetirementId, StoreError> {
    let row = retirement::ActiveModel {
        model_id: Set(r.model_id.0),
        model_name: Set(r.model.to_string()),
        selection: Set(r.selection.to_string()),
        affected_versions: Set(versions_json(&r.affected_versions)),
        reason: Set(r.reason.clone()),
        effective_at: Set(r.effective_at),
        replacement_model: Set(r.replacement_model.as_ref().map(ToString::to_string)),
        replacement_version: Set(r.replacement_version.map(|v| v.to_string())),
        state: Set(r.state.as_str().to_owned()),
        sequence: Set(r.sequence),
        decision_note: Set(r.decision_note.clone()),
        created_at: Set(r.created_at),
        created_by: Set(r.created_by.clone()),
        updated_at: Set(r.updated_at),
        levers: Set(
            (!r.levers.is_default()).then(|| serde_json::to_string(&r.levers).unwrap_or_default())
        ),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(RetirementId(row.id))
}

/// Writes what may change after scheduling: state, date, note and sequence.
pub async fn update(conn: &impl ConnectionTrait, r: &Retirement) -> Result<(), StoreError> {
    retirement::ActiveModel {
        id: Set(r.id.0),
        state: Set(r.state.as_str().to_owned()),
        effective_at: Set(r.effective_at),
        sequence: Set(r.sequence),
        decision_note: Set(r.decision_note.clone()),
        updated_at: Set(r.updated_at),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(())
}

pub async fn find(
    conn: &impl ConnectionTrait,
    id: RetirementId,
) -> Result<Option<Retirement>, StoreError> {
    retirement::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(parse)
        .transpose()
}

/// Retirements in any of `states` (all when empty) whose effective date falls in
/// `[from, to)`, by effective date then id, at most `limit`.
pub async fn list(
    conn: &impl ConnectionTrait,
    states: &[RetirementState],
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<Retirement>, StoreError> {
    use retirement::Column as C;
    let mut q = retirement::Entity::find();
    if !states.is_empty() {
        q = q.filter(C::State.is_in(states.iter().map(|s| s.as_str())));
    }
    if let Some(from) = from {
        q = q.filter(C::EffectiveAt.gte(from));
    }
    if let Some(to) = to {
        q = q.filter(C::EffectiveAt.lt(to));
    }
    q.order_by_asc(C::EffectiveAt)
        .order_by_asc(C::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// Every retirement of model `model_id`, oldest first.
pub async fn of_model(
    conn: &impl ConnectionTrait,
    model_id: crate::store::registry::ModelId,
) -> Result<Vec<Retirement>, StoreError> {
    retirement::Entity::find()
        .filter(retirement::Column::ModelId.eq(model_id.0))
        .order_by_asc(retirement::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// The retirements with these ids, in no particular order (absent ids are skipped).
pub async fn find_many(
    conn: &impl ConnectionTrait,
    ids: &[RetirementId],
) -> Result<Vec<Retirement>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    retirement::Entity::find()
        .filter(retirement::Column::Id.is_in(ids.iter().map(|id| id.0)))
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// Who holds the lease on retirement `id`'s decommission steps, and until when.
pub async fn lease(
    conn: &impl ConnectionTrait,
    id: RetirementId,
) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    Ok(retirement::Entity::find_by_id(id)
        .one(conn)
        .await?
        .and_then(|r| r.lease_holder.zip(r.lease_until)))
}

/// Takes (or renews) the lease on running retirement `id`'s decommission steps for
/// `holder` until `until`: false while another instance holds an unexpired one, unless
/// that is `dead_holder` (a holder known to have died).
pub async fn take_lease(
    conn: &impl ConnectionTrait,
    id: RetirementId,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    dead_holder: Option<&str>,
) -> Result<bool, StoreError> {
    use retirement::Column as C;
    use sea_orm::sea_query::Expr;
    let mut free = sea_orm::Condition::any()
        .add(C::LeaseUntil.is_null())
        .add(C::LeaseUntil.lt(now))
        .add(C::LeaseHolder.eq(holder));
    if let Some(dead) = dead_holder {
        free = free.add(C::LeaseHolder.eq(dead));
    }
    let taken = retirement::Entity::update_many()
        .col_expr(C::LeaseHolder, Expr::value(Some(holder.to_owned())))
        .col_expr(C::LeaseUntil, Expr::value(Some(until)))
        .filter(C::Id.eq(id))
        .filter(free)
        .exec(conn)
        .await?
        .rows_affected;
    Ok(taken == 1)
}

/// Gives the lease back, if `holder` still has it.
pub async fn release_lease(
    conn: &impl ConnectionTrait,
    id: RetirementId,
    holder: &str,
) -> Result<(), StoreError> {
    use retirement::Column as C;
    use sea_orm::sea_query::Expr;
    retirement::Entity::update_many()
        .col_expr(C::LeaseHolder, Expr::value(Option::<String>::None))
        .col_expr(C::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(C::Id.eq(id))
        .filter(C::LeaseHolder.eq(holder))
        .exec(conn)
        .await?;
    Ok(())
}

/// The pending retirements (scheduled, needs-decision or ready), oldest first, at most
/// `limit`.
pub async fn pending(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<Retirement>, StoreError> {
    pending_where(conn, None, Some(limit)).await
}

/// The pending retirements of any of `models` with a lever pulled (few, usually none):
/// what a group of registrations checks its new uses against.
pub async fn pending_with_levers(
    conn: &impl ConnectionTrait,
    models: &[crate::domain::ModelId],
) -> Result<Vec<Retirement>, StoreError> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let pending = RetirementState::ALL
        .iter()
        .filter(|s| s.is_pending())
        .map(|s| s.as_str());
    retirement::Entity::find()
        .filter(retirement::Column::State.is_in(pending))
        .filter(retirement::Column::Levers.is_not_null())
        .filter(retirement::Column::ModelId.is_in(models.iter().map(|m| m.0)))
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// The pending retirements of `model_id`.
pub async fn pending_of_model(
    conn: &impl ConnectionTrait,
    model_id: crate::domain::ModelId,
) -> Result<Vec<Retirement>, StoreError> {
    pending_where(conn, Some(model_id.0), None).await
}

async fn pending_where(
    conn: &impl ConnectionTrait,
    model_id: Option<i64>,
    limit: Option<u64>,
) -> Result<Vec<Retirement>, StoreError> {
    let pending = RetirementState::ALL
        .iter()
        .filter(|s| s.is_pending())
        .map(|s| s.as_str());
    let mut q = retirement::Entity::find().filter(retirement::Column::State.is_in(pending));
    if let Some(m) = model_id {
        q = q.filter(retirement::Column::ModelId.eq(m));
    }
    q.order_by_asc(retirement::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

fn parse(r: retirement::Model) -> Result<Retirement, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("retirement {}: {what}: {e}", r.id))
    };
    let versions: Vec<String> =
        serde_json::from_str(&r.affected_versions).map_err(|e| corrupt("versions", &e))?;
    Ok(Retirement {
        id: RetirementId(r.id),
        model_id: crate::domain::ModelId(r.model_id),
        model: ModelName::parse(&r.model_name).map_err(|e| corrupt("model", &e))?,
        selection: VersionRange::parse(&r.selection).map_err(|e| corrupt("selection", &e))?,
        affected_versions: versions
            .iter()
            .map(|v| Version::parse(v))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("versions", &e))?,
        reason: r.reason.clone(),
        effective_at: r.effective_at,
        replacement_model: r
            .replacement_model
            .as_deref()
            .map(ModelName::parse)
            .transpose()
            .map_err(|e| corrupt("replacement", &e))?,
        replacement_version: r
            .replacement_version
            .as_deref()
            .map(Version::parse)
            .transpose()
            .map_err(|e| corrupt("replacement", &e))?,
        state: RetirementState::parse(&r.state).map_err(|e| corrupt("state", &e))?,
        sequence: r.sequence,
        decision_note: r.decision_note.clone(),
        created_at: r.created_at,
        created_by: r.created_by.clone(),
        updated_at: r.updated_at,
        levers: r
            .levers
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("levers", &e))?
            .unwrap_or_default(),
    })
}

fn versions_json(v: &[Version]) -> String {
    serde_json::Value::from(v.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string()
}

/// Inserts dependents, many per statement.
pub async fn insert_dependents(
    conn: &impl ConnectionTrait,
    dependents: &[Dependent],
) -> Result<(), StoreError> {
    for chunk in super::statement_chunks(dependents) {
        retirement_dependent::Entity::insert_many(chunk.iter().map(dependent_row))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Writes every field of a dependent that may change after it was found.
pub async fn update_dependent(
    conn: &impl ConnectionTrait,
    d: &Dependent,
) -> Result<(), StoreError> {
    let mut row = dependent_row(d);
    // The key and what was recorded when found stay as they are.
    row.consumer_name = sea_orm::ActiveValue::NotSet;
    row.found_at = sea_orm::ActiveValue::NotSet;
    row.found_by = sea_orm::ActiveValue::NotSet;
    row.path = sea_orm::ActiveValue::NotSet;
    row.update(conn).await?;
    Ok(())
}

fn dependent_row(d: &Dependent) -> retirement_dependent::ActiveModel {
    retirement_dependent::ActiveModel {
        retirement_id: Set(d.retirement_id.0),
        consumer_id: Set(d.consumer_id.0),
        consumer_name: Set(d.consumer.clone()),
        found_at: Set(d.found_at),
        found_by: Set(d.found_by.as_str().to_owned()),
        path: Set(serde_json::Value::from(d.path.clone()).to_string()),
        notice_ends_at: Set(d.notice_ends_at),
        next_reminder_at: Set(d.next_reminder_at),
        notified_at: Set(d.notified_at),
        acknowledged_at: Set(d.acknowledged_at),
        acknowledged_by: Set(d.acknowledged_by.clone()),
        last_traffic_at: Set(d.last_traffic_at),
        extension_state: Set(d.extension_state.map(|s| s.as_str().to_owned())),
        extension_until: Set(d.extension_until),
        extension_reason: Set(d.extension_reason.clone()),
        override_note: Set(d.override_note.clone()),
        overridden_by: Set(d.overridden_by.clone()),
        overridden_at: Set(d.overridden_at),
        informed_by_owner: Set(d.informed_by_owner),
    }
}

/// The dependents of a retirement, by name.
pub async fn dependents(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<Dependent>, StoreError> {
    retirement_dependent::Entity::find()
        .filter(retirement_dependent::Column::RetirementId.eq(retirement_id))
        .order_by_asc(retirement_dependent::Column::ConsumerName)
        .all(conn)
        .await?
        .into_iter()
        .map(parse_dependent)
        .collect()
}

/// Where `consumer` is a dependent: its standing in each retirement that found it,
/// newest retirement first, at most `limit`.
pub async fn dependent_of_each(
    conn: &impl ConnectionTrait,
    consumer: ConsumerId,
    limit: u64,
) -> Result<Vec<Dependent>, StoreError> {
    retirement_dependent::Entity::find()
        .filter(retirement_dependent::Column::ConsumerId.eq(consumer.0))
        .order_by_desc(retirement_dependent::Column::RetirementId)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(parse_dependent)
        .collect()
}

pub async fn dependent(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    consumer_id: ConsumerId,
) -> Result<Option<Dependent>, StoreError> {
    retirement_dependent::Entity::find_by_id((retirement_id.0, consumer_id.0))
        .one(conn)
        .await?
        .map(parse_dependent)
        .transpose()
}

/// Stamps the first delivery of a notice to each of `consumers`, leaving earlier
/// stamps as they are.
pub async fn mark_notified(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    consumers: &[ConsumerId],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if consumers.is_empty() {
        return Ok(());
    }
    retirement_dependent::Entity::update_many()
        .col_expr(
            retirement_dependent::Column::NotifiedAt,
            Expr::value(Some(at)),
        )
        .filter(retirement_dependent::Column::RetirementId.eq(retirement_id))
        .filter(retirement_dependent::Column::ConsumerId.is_in(consumers.iter().copied()))
        .filter(retirement_dependent::Column::NotifiedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

fn parse_dependent(r: retirement_dependent::Model) -> Result<Dependent, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!(
            "dependent {} of retirement {}: {what}: {e}",
            r.consumer_id, r.retirement_id
        ))
    };
    Ok(Dependent {
        retirement_id: RetirementId(r.retirement_id),
        consumer_id: ConsumerId(r.consumer_id),
        consumer: r.consumer_name.clone(),
        found_at: r.found_at,
        found_by: FoundBy::parse(&r.found_by).map_err(|e| corrupt("found by", &e))?,
        path: serde_json::from_str(&r.path).map_err(|e| corrupt("path", &e))?,
        notice_ends_at: r.notice_ends_at,
        next_reminder_at: r.next_reminder_at,
        notified_at: r.notified_at,
        acknowledged_at: r.acknowledged_at,
        acknowledged_by: r.acknowledged_by.clone(),
        last_traffic_at: r.last_traffic_at,
        extension_state: r
            .extension_state
            .as_deref()
            .map(ExtensionState::parse)
            .transpose()
            .map_err(|e| corrupt("extension", &e))?,
        extension_until: r.extension_until,
        extension_reason: r.extension_reason.clone(),
        override_note: r.override_note.clone(),
        overridden_by: r.overridden_by.clone(),
        overridden_at: r.overridden_at,
        informed_by_owner: r.informed_by_owner,
    })
}
