//! What replicas share to act as one service: the retirement changes each made (for the
//! others' subscribers) and the lease on key-encryption-key rotation.

use super::StoreError;
use super::entities::{kek_rotation_lock, retirement_event};
use crate::domain::RetirementId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

/// A retirement change as one instance announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetirementChange {
    pub seq: i64,
    pub retirement_id: RetirementId,
    pub change: String,
    pub instance: String,
}

pub async fn announce(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    change: &str,
    instance: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    retirement_event::Entity::insert(retirement_event::ActiveModel {
        retirement_id: Set(retirement_id.0),
        change: Set(change.to_owned()),
        instance: Set(instance.to_owned()),
        at: Set(at),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    super::notify::notify(conn, super::notify::Topic::Retirements).await?;
    Ok(())
}

/// Changes after `seq`, in order, at most `limit`.
pub async fn changes_after(
    conn: &impl ConnectionTrait,
    seq: i64,
    limit: u64,
) -> Result<Vec<RetirementChange>, StoreError> {
    use sea_orm::QuerySelect;
    Ok(retirement_event::Entity::find()
        .filter(retirement_event::Column::Seq.gt(seq))
        .order_by_asc(retirement_event::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| RetirementChange {
            seq: r.seq,
            retirement_id: RetirementId(r.retirement_id),
            change: r.change,
            instance: r.instance,
        })
        .collect())
}

/// The newest change's number (0 when there is none).
pub async fn last_change(conn: &impl ConnectionTrait) -> Result<i64, StoreError> {
    Ok(retirement_event::Entity::find()
        .order_by_desc(retirement_event::Column::Seq)
        .one(conn)
        .await?
        .map_or(0, |r| r.seq))
}

/// Forgets changes announced before `before`.
pub async fn prune_changes(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(retirement_event::Entity::delete_many()
        .filter(retirement_event::Column::At.lt(before))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Takes or renews the KEK rotation lease for `holder` until `until`; false while
/// another holds it. A lease of `dead_holder` (a process that died) is taken over.
pub async fn take_rotation_lease(
    conn: &impl ConnectionTrait,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    dead_holder: Option<&str>,
) -> Result<bool, StoreError> {
    use kek_rotation_lock::Column as C;
    let mut free = Condition::any()
        .add(C::Holder.is_null())
        .add(C::LeaseUntil.lt(now))
        .add(C::Holder.eq(holder));
    if let Some(dead) = dead_holder {
        free = free.add(C::Holder.eq(dead));
    }
    let taken = kek_rotation_lock::Entity::update_many()
        .col_expr(C::Holder, Expr::value(Some(holder.to_owned())))
        .col_expr(C::LeaseUntil, Expr::value(Some(until)))
        .filter(C::Id.eq(1))
        .filter(free)
        .exec(conn)
        .await?
        .rows_affected;
    Ok(taken == 1)
}

/// Who holds the KEK rotation lease, if anyone.
pub async fn rotation_lease_holder(
    conn: &impl ConnectionTrait,
) -> Result<Option<String>, StoreError> {
    Ok(kek_rotation_lock::Entity::find_by_id(1)
        .one(conn)
        .await?
        .and_then(|r| r.holder))
}

/// Gives the KEK rotation lease back, if `holder` still has it.
pub async fn release_rotation_lease(
    conn: &impl ConnectionTrait,
    holder: &str,
) -> Result<(), StoreError> {
    use kek_rotation_lock::Column as C;
    kek_rotation_lock::Entity::update_many()
        .col_expr(C::Holder, Expr::value(Option::<String>::None))
        .col_expr(C::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(C::Id.eq(1))
        .filter(C::Holder.eq(holder))
        .exec(conn)
        .await?;
    Ok(())
}
