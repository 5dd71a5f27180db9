//! The notice outbox. A notice is written in the transaction of the change that causes
//! it; the delivery worker claims due notices (pushing their next attempt a lease ahead,
//! so a worker that dies mid-delivery leaves them to be retried, never lost), makes its
//! attempts outside any transaction, then records each outcome. On PostgreSQL the claim
//! skips rows another instance holds locked (`FOR UPDATE SKIP LOCKED`); on SQLite the
//! write lock already serialises claims.

use super::entities::notice;
use super::{Backend, StoreError};
use crate::domain::ConsumerId;
use crate::domain::RetirementId;
use crate::domain::{Channel, NoticeState, OutboxNotice};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

pub async fn insert(
    conn: &impl ConnectionTrait,
    notices: &[OutboxNotice],
) -> Result<(), StoreError> {
    for chunk in super::statement_chunks(notices) {
        notice::Entity::insert_many(chunk.iter().map(row))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

fn row(n: &OutboxNotice) -> notice::ActiveModel {
    notice::ActiveModel {
        id: Set(n.id.clone()),
        retirement_id: Set(n.retirement_id.0),
        consumer_id: Set(n.consumer_id.map(i64::from)),
        kind: Set(n.kind.clone()),
        channel: Set(n.channel.as_str().to_owned()),
        recipients: Set(serde_json::Value::from(n.recipients.clone()).to_string()),
        payload: Set(n.payload.clone()),
        state: Set(n.state.as_str().to_owned()),
        attempts: Set(n.attempts),
        next_attempt_at: Set(n.next_attempt_at),
        last_attempt_at: Set(n.last_attempt_at),
        last_error: Set(n.last_error.clone()),
        delivered_at: Set(n.delivered_at),
        created_at: Set(n.created_at),
        claimed_by: Set(None),
    }
}

/// A delivery worker's claim on the notices due now.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The claiming instance; it beats in the claim's transaction.
    pub holder: &'a str,
    /// The service's time: notices due at or before it are claimed.
    pub now: DateTime<Utc>,
    /// Where a claimed notice's next attempt moves: the claim's lease.
    pub lease_until: DateTime<Utc>,
    /// Wall-clock time of the claim.
    pub wall_now: DateTime<Utc>,
    /// Instances whose last beat is older than this are dead: their claims are free.
    pub live_after: DateTime<Utc>,
    pub limit: u64,
}

/// Claims up to `limit` pending notices: those due at `now`, and those claimed by an
/// instance that stopped beating. Their next attempt moves to `lease_until`, so no other
/// worker takes them while the holder lives, and they are due again then even if its
/// heartbeat outlives its attempt. The attempt is counted as it is claimed, so one whose
/// outcome a crash lost still counts. Returns the notices as they were before the
/// claim. Run inside a write transaction.
pub async fn claim_due(
    conn: &impl ConnectionTrait,
    backend: Backend,
    claim: Claim<'_>,
) -> Result<Vec<OutboxNotice>, StoreError> {
    use sea_orm::Condition;
    use sea_orm::sea_query::{Expr, ExprTrait};
    super::replicas::beat(conn, claim.holder, claim.wall_now).await?;
    let orphaned = Condition::all()
        .add(notice::Column::ClaimedBy.is_not_null())
        .add(
            notice::Column::ClaimedBy
                .not_in_subquery(super::replicas::live_since(claim.live_after)),
        );
    let mut q = notice::Entity::find()
        .filter(notice::Column::State.eq(NoticeState::Pending.as_str()))
        .filter(
            Condition::any()
                .add(notice::Column::NextAttemptAt.lte(claim.now))
                .add(orphaned),
        )
        .order_by_asc(notice::Column::NextAttemptAt)
        .limit(claim.limit);
    if backend == Backend::Postgres {
        q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = q.all(conn).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    notice::Entity::update_many()
        .col_expr(
            notice::Column::NextAttemptAt,
            Expr::value(claim.lease_until),
        )
        .col_expr(
            notice::Column::ClaimedBy,
            Expr::value(Some(claim.holder.to_owned())),
        )
        .col_expr(
            notice::Column::Attempts,
            Expr::col(notice::Column::Attempts).add(1),
        )
        .filter(notice::Column::Id.is_in(rows.iter().map(|r| r.id.clone())))
        .exec(conn)
        .await?;
    rows.into_iter().map(parse).collect()
}

/// Writes what an attempt changed: state, attempts, next attempt, error, delivery time.
/// The state changes only from `pending`: a notice cancelled while its attempt was in
/// flight stays cancelled (its attempt is still counted), and is never sent again.
/// Returns whether the state was written.
pub async fn record(conn: &impl ConnectionTrait, n: &OutboxNotice) -> Result<bool, StoreError> {
    use sea_orm::sea_query::Expr;
    let attempt = |update: sea_orm::UpdateMany<notice::Entity>| {
        update
            .col_expr(notice::Column::Attempts, Expr::value(n.attempts))
            .col_expr(
                notice::Column::LastAttemptAt,
                Expr::value(n.last_attempt_at),
            )
            .col_expr(notice::Column::LastError, Expr::value(n.last_error.clone()))
            .col_expr(notice::Column::DeliveredAt, Expr::value(n.delivered_at))
            .col_expr(
                notice::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .filter(notice::Column::Id.eq(n.id.clone()))
    };
    let moved = attempt(notice::Entity::update_many())
        .col_expr(notice::Column::State, Expr::value(n.state.as_str()))
        .col_expr(
            notice::Column::NextAttemptAt,
            Expr::value(n.next_attempt_at),
        )
        .filter(notice::Column::State.eq(NoticeState::Pending.as_str()))
        .exec(conn)
        .await?
        .rows_affected;
    if moved == 0 {
        attempt(notice::Entity::update_many()).exec(conn).await?;
    }
    Ok(moved == 1)
}

/// Cancels the pending notices of a retirement (it was cancelled before they went out).
pub async fn cancel_pending(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<u64, StoreError> {
    let done = notice::Entity::update_many()
        .col_expr(
            notice::Column::State,
            sea_orm::sea_query::Expr::value(NoticeState::Cancelled.as_str()),
        )
        .filter(notice::Column::RetirementId.eq(retirement_id))
        .filter(notice::Column::State.eq(NoticeState::Pending.as_str()))
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}

/// The notices of a retirement, optionally of one consumer, oldest first.
pub async fn of_retirement(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    consumer_id: Option<ConsumerId>,
) -> Result<Vec<OutboxNotice>, StoreError> {
    let mut q = notice::Entity::find().filter(notice::Column::RetirementId.eq(retirement_id));
    if let Some(c) = consumer_id {
        q = q.filter(notice::Column::ConsumerId.eq(c));
    }
    q.order_by_asc(notice::Column::CreatedAt)
        .order_by_asc(notice::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// Notices in `state`, newest first, at most `limit`.
pub async fn in_state(
    conn: &impl ConnectionTrait,
    state: NoticeState,
    limit: u64,
) -> Result<Vec<OutboxNotice>, StoreError> {
    notice::Entity::find()
        .filter(notice::Column::State.eq(state.as_str()))
        .order_by_desc(notice::Column::LastAttemptAt)
        .order_by_asc(notice::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// How many notices of a retirement are in each state.
pub async fn count_by_state(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Vec<(NoticeState, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = notice::Entity::find()
        .select_only()
        .column(notice::Column::State)
        .column_as(notice::Column::Id.count(), "n")
        .filter(notice::Column::RetirementId.eq(retirement_id))
        .group_by(notice::Column::State)
        .into_tuple()
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|(state, n)| Ok((parse_state(&state)?, u64::try_from(n).unwrap_or(0))))
        .collect()
}

/// The earliest next attempt of a pending notice, if any: when the worker should look
/// again.
pub async fn next_due(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(notice::Entity::find()
        .filter(notice::Column::State.eq(NoticeState::Pending.as_str()))
        .order_by_asc(notice::Column::NextAttemptAt)
        .one(conn)
        .await?
        .map(|r| r.next_attempt_at))
}

fn parse(r: notice::Model) -> Result<OutboxNotice, StoreError> {
    Ok(OutboxNotice {
        recipients: serde_json::from_str(&r.recipients)
            .map_err(|e| StoreError::Corrupt(format!("notice {} recipients: {e}", r.id)))?,
        channel: Channel::parse(&r.channel).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: parse_state(&r.state)?,
        id: r.id,
        retirement_id: RetirementId(r.retirement_id),
        consumer_id: r.consumer_id.map(ConsumerId),
        kind: r.kind,
        payload: r.payload,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_attempt_at: r.last_attempt_at,
        last_error: r.last_error,
        delivered_at: r.delivered_at,
        created_at: r.created_at,
    })
}

/// Where a consumer's webhook notices go now: its name, URL and sealed secret.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub name: String,
    pub url: Option<String>,
    pub sealed_secret: Option<String>,
}

/// The webhook targets of `consumers`, by id; a removed consumer is absent.
pub async fn webhook_targets(
    conn: &impl ConnectionTrait,
    consumers: &[ConsumerId],
) -> Result<std::collections::HashMap<ConsumerId, WebhookTarget>, StoreError> {
    use super::entities::consumer;
    let mut out = std::collections::HashMap::with_capacity(consumers.len());
    for chunk in consumers.chunks(500) {
        let rows = consumer::Entity::find()
            .filter(consumer::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        for r in rows {
            out.insert(
                ConsumerId(r.id),
                WebhookTarget {
                    name: r.name,
                    url: r.webhook_url,
                    sealed_secret: r.webhook_secret,
                },
            );
        }
    }
    Ok(out)
}

fn parse_state(raw: &str) -> Result<NoticeState, StoreError> {
    NoticeState::parse(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}
