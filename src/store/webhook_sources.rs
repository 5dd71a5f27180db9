//! Registration-webhook sources (each with its own sealed secret) and the message ids
//! already applied, so a redelivered message is applied once.

use super::StoreError;
use super::entities::{webhook_receipt, webhook_source};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: i64,
    pub name: String,
    /// The `whsec_` secret, sealed.
    pub sealed_secret: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    name: &str,
    sealed_secret: &str,
    at: DateTime<Utc>,
    by: &str,
) -> Result<Source, StoreError> {
    let row = webhook_source::ActiveModel {
        name: Set(name.to_owned()),
        secret: Set(sealed_secret.to_owned()),
        enabled: Set(true),
        created_at: Set(at),
        created_by: Set(by.to_owned()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(to_source(row))
}

pub async fn find_by_name(
    conn: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<Source>, StoreError> {
    Ok(webhook_source::Entity::find()
        .filter(webhook_source::Column::Name.eq(name))
        .one(conn)
        .await?
        .map(to_source))
}

pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<Source>, StoreError> {
    Ok(webhook_source::Entity::find()
        .order_by_asc(webhook_source::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(to_source)
        .collect())
}

pub async fn disable(conn: &impl ConnectionTrait, id: i64) -> Result<(), StoreError> {
    webhook_source::ActiveModel {
        id: Set(id),
        enabled: Set(false),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(())
}

pub async fn was_received(
    conn: &impl ConnectionTrait,
    source: i64,
    message_id: &str,
) -> Result<bool, StoreError> {
    Ok(!received_among(conn, &[(source, message_id)])
        .await?
        .is_empty())
}

pub async fn record_receipt(
    conn: &impl ConnectionTrait,
    source: i64,
    message_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    record_receipts(conn, &[(source, message_id)], at).await
}

/// Deletes receipts recorded before `before`; returns how many.
pub async fn prune_receipts(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = webhook_receipt::Entity::delete_many()
        .filter(webhook_receipt::Column::ReceivedAt.lt(before))
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}

fn to_source(r: webhook_source::Model) -> Source {
    Source {
        id: r.id,
        name: r.name,
        sealed_secret: r.secret,
        enabled: r.enabled,
        created_at: r.created_at,
        created_by: r.created_by,
    }
}

/// On PostgreSQL, the receipts of the `(source_id, message_id)` pairs in `$1` (JSON), each
/// probed in the primary key (see `store::pg_rows`).
pub(crate) const RECEIVED_AMONG_PG: &str = "SELECT w.* FROM jsonb_to_recordset(CAST($1 AS jsonb)) \
     AS p(source_id bigint, message_id text) CROSS JOIN LATERAL (SELECT * FROM \
     webhook_receipts r WHERE r.source_id = p.source_id AND r.message_id = p.message_id \
     OFFSET 0) AS w";

/// Which of these `(source, message id)` pairs were received before.
pub async fn received_among(
    conn: &impl ConnectionTrait,
    pairs: &[(i64, &str)],
) -> Result<std::collections::HashSet<(i64, String)>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        let rows = webhook_receipt::Entity::find()
            .from_raw_sql(super::pg_rows::statement(
                RECEIVED_AMONG_PG,
                [super::pg_rows::rows(&pair_rows(pairs))?],
            ))
            .all(conn)
            .await?;
        seen.extend(rows.into_iter().map(|r| (r.source_id, r.message_id)));
        return Ok(seen);
    }
    for chunk in super::statement_chunks(pairs) {
        let mut any = Condition::any();
        for &(source, id) in chunk {
            any = any.add(
                Condition::all()
                    .add(webhook_receipt::Column::SourceId.eq(source))
                    .add(webhook_receipt::Column::MessageId.eq(id)),
            );
        }
        for r in webhook_receipt::Entity::find()
            .filter(any)
            .all(conn)
            .await?
        {
            seen.insert((r.source_id, r.message_id));
        }
    }
    Ok(seen)
}

/// Message ids as JSON rows (`store::pg_rows`).
fn pair_rows<'a>(pairs: &[(i64, &'a str)]) -> Vec<PairRow<'a>> {
    pairs
        .iter()
        .map(|&(source_id, message_id)| PairRow {
            source_id,
            message_id,
        })
        .collect()
}

#[derive(serde::Serialize)]
struct PairRow<'a> {
    source_id: i64,
    message_id: &'a str,
}

/// Records receipts of many messages, many per statement (on PostgreSQL, one).
pub async fn record_receipts(
    conn: &impl ConnectionTrait,
    pairs: &[(i64, &str)],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if pairs.is_empty() {
        return Ok(());
    }
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        conn.execute_raw(super::pg_rows::statement(
            "INSERT INTO webhook_receipts (source_id, message_id, received_at) \
             SELECT source_id, message_id, CAST($2 AS timestamptz) \
             FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS r(source_id bigint, message_id text)",
            [
                super::pg_rows::rows(&pair_rows(pairs))?,
                sea_orm::Value::from(super::pg_rows::time(at)),
            ],
        ))
        .await?;
        return Ok(());
    }
    for chunk in super::statement_chunks(pairs) {
        webhook_receipt::Entity::insert_many(chunk.iter().map(|&(source, id)| {
            webhook_receipt::ActiveModel {
                source_id: Set(source),
                message_id: Set(id.to_owned()),
                received_at: Set(at),
            }
        }))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}
