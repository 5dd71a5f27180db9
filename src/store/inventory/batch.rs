//! The parent module's writes, many rows per statement: how a group of registration
//! webhooks commits in a handful of round trips however many messages it holds (see
//! `service::registrations::group`). Each function takes any number of rows and splits
//! them into statements of at most [`ROWS_PER_STATEMENT`](crate::store::ROWS_PER_STATEMENT)
//! rows (see [`statement_chunks`]); on PostgreSQL, into one statement whatever their
//! number (`super::postgres`).

use super::{
    Entity, Interner, NewConsumer, Sighting, head_revision, new_consumer_row, new_edge_row,
    to_consumer, to_edge,
};
use crate::domain::{Consumer, ConsumerName, EdgeOrigin};
use crate::graph::{ConsumerId, EdgeId, EdgeRecord};
use crate::store::entities::{consumer, inventory_change, inventory_edge};
use crate::store::{StoreError, statement_chunks};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set};
use std::collections::HashMap;

fn on_postgres(conn: &impl ConnectionTrait) -> bool {
    conn.get_database_backend() == DbBackend::Postgres
}

/// The consumers of these names that exist, by name.
pub async fn find_consumers(
    conn: &impl ConnectionTrait,
    names: &[&ConsumerName],
) -> Result<HashMap<ConsumerName, (ConsumerId, Consumer)>, StoreError> {
    Ok(find_existing(conn, names)
        .await?
        .into_iter()
        .map(|(name, e)| (name, (e.id, e.consumer)))
        .collect())
}

/// The consumers of these names that exist, with who created each.
pub async fn find_existing(
    conn: &impl ConnectionTrait,
    names: &[&ConsumerName],
) -> Result<HashMap<ConsumerName, super::ExistingConsumer>, StoreError> {
    let rows = consumer_rows_named(conn, names).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for r in rows {
        let c = to_consumer(&r)?;
        found.insert(
            c.name.clone(),
            super::ExistingConsumer {
                id: ConsumerId(r.id),
                consumer: c,
                created_by: r.created_by,
            },
        );
    }
    Ok(found)
}

/// The rows of the consumers of these names that exist: one statement on PostgreSQL, one
/// per chunk elsewhere.
async fn consumer_rows_named(
    conn: &impl ConnectionTrait,
    names: &[&ConsumerName],
) -> Result<Vec<consumer::Model>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    if on_postgres(conn) {
        return super::postgres::consumers_named(conn, names).await;
    }
    let mut rows = Vec::with_capacity(names.len());
    for chunk in statement_chunks(names) {
        rows.extend(
            consumer::Entity::find()
                .filter(consumer::Column::Name.is_in(chunk.iter().map(|n| n.as_str())))
                .all(conn)
                .await?,
        );
    }
    Ok(rows)
}

/// Declares consumers: inserts those not there, and sets the declared facts of those that
/// are, keeping how and when they were created and their notice endpoint and secret (which
/// only GraphQL sets). One statement per chunk; returns every consumer's id and row as
/// written, by name.
pub async fn upsert_consumers(
    conn: &impl ConnectionTrait,
    declared: &[NewConsumer<'_>],
) -> Result<HashMap<ConsumerName, (ConsumerId, Consumer)>, StoreError> {
    let mut written = HashMap::with_capacity(declared.len());
    // RETURNING's row order is unspecified on SQLite: rows are matched by their unique name.
    for r in upsert_consumer_rows(conn, declared).await? {
        let c = to_consumer(&r)?;
        written.insert(c.name.clone(), (ConsumerId(r.id), c));
    }
    if written.len() != declared.len() {
        return Err(StoreError::Corrupt(format!(
            "{} consumers declared, {} returned",
            declared.len(),
            written.len()
        )));
    }
    Ok(written)
}

/// [`upsert_consumers`]' statements: one on PostgreSQL, one per chunk elsewhere; returns
/// the rows as written.
async fn upsert_consumer_rows(
    conn: &impl ConnectionTrait,
    declared: &[NewConsumer<'_>],
) -> Result<Vec<consumer::Model>, StoreError> {
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    if on_postgres(conn) {
        return super::postgres::upsert_consumers(conn, declared).await;
    }
    let mut written = Vec::with_capacity(declared.len());
    for chunk in statement_chunks(declared) {
        let rows = consumer::Entity::insert_many(chunk.iter().map(new_consumer_row))
            .on_conflict(
                OnConflict::column(consumer::Column::Name)
                    .update_columns([
                        consumer::Column::Kind,
                        consumer::Column::OwnerTeam,
                        consumer::Column::Environment,
                        consumer::Column::Contacts,
                        consumer::Column::Discovered,
                        consumer::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_with_returning(conn)
            .await?;
        written.extend(rows);
    }
    Ok(written)
}

/// Appends one change per entry, in order, in one statement per chunk; returns the
/// revision of the last (the head, if there are none).
pub async fn record_changes(
    conn: &impl ConnectionTrait,
    at: DateTime<Utc>,
    changes: &[(Entity, i64)],
) -> Result<i64, StoreError> {
    if on_postgres(conn) && !changes.is_empty() {
        return super::postgres::record_changes(conn, at, changes).await;
    }
    let mut revision = head_revision(conn).await?;
    for chunk in statement_chunks(changes) {
        let first = revision + 1;
        revision += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
        let rows = chunk.iter().zip(first..).map(|(&(entity, id), revision)| {
            inventory_change::ActiveModel {
                revision: Set(revision),
                at: Set(at),
                entity: Set(entity.as_str().to_owned()),
                entity_id: Set(id),
            }
        });
        inventory_change::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    if !changes.is_empty() {
        crate::store::notify::notify(conn, crate::store::notify::Topic::Inventory).await?;
    }
    Ok(revision)
}

/// One edge row's identity: its link's key, its origin and the origin's name.
pub(super) type RowKey = (String, EdgeOrigin, String);

pub(super) fn row_key(r: &inventory_edge::Model) -> Result<RowKey, StoreError> {
    let origin = super::parse_stored(EdgeOrigin::parse(&r.origin))?;
    Ok((r.edge_key.clone(), origin, r.origin_name.clone()))
}

/// Records many sightings as [`super::record_edge`] records one: a row per link and
/// origin, created at its first sighting; a later one moves `last_seen` forward and adds
/// to `observations`. One upsert per chunk of distinct rows (sightings of the same row are
/// summed first, since a statement may touch a row once). Returns each sighting's edge id,
/// and each row as written.
pub async fn record_edges(
    conn: &impl ConnectionTrait,
    sightings: &[Sighting<'_>],
) -> Result<(Vec<EdgeId>, HashMap<EdgeId, EdgeRecord>), StoreError> {
    let (keys, rows) = distinct_edge_rows(sightings);
    let mut ids: HashMap<RowKey, EdgeId> = HashMap::with_capacity(rows.len());
    let mut records = HashMap::with_capacity(rows.len());
    let mut interner = Interner::default();
    // RETURNING's row order is unspecified on SQLite: rows are matched by their identity.
    for r in upsert_edge_rows(conn, &rows).await? {
        ids.insert(row_key(&r)?, EdgeId(r.id));
        records.insert(EdgeId(r.id), to_edge(&r, &mut interner)?);
    }
    Ok((ids_in_order(&keys, &ids)?, records))
}

/// [`record_edges`]' upserts of distinct rows: one statement on PostgreSQL, one per chunk
/// elsewhere; returns the rows as written.
async fn upsert_edge_rows(
    conn: &impl ConnectionTrait,
    rows: &[inventory_edge::ActiveModel],
) -> Result<Vec<inventory_edge::Model>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if on_postgres(conn) {
        return super::postgres::upsert_edges(conn, rows).await;
    }
    let mut all = Vec::with_capacity(rows.len());
    for chunk in statement_chunks(rows) {
        let written = inventory_edge::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(
                OnConflict::columns([
                    inventory_edge::Column::EdgeKey,
                    inventory_edge::Column::Origin,
                    inventory_edge::Column::OriginName,
                ])
                .value(
                    inventory_edge::Column::LastSeen,
                    Expr::cust(
                        "CASE WHEN excluded.last_seen > inventory_edges.last_seen \
                         THEN excluded.last_seen ELSE inventory_edges.last_seen END",
                    ),
                )
                .value(
                    inventory_edge::Column::Observations,
                    Expr::cust("inventory_edges.observations + excluded.observations"),
                )
                .to_owned(),
            )
            .exec_with_returning(conn)
            .await?;
        all.extend(written);
    }
    Ok(all)
}

/// Each sighting's row key, and one new row per distinct key, the sightings of a key
/// summed (a statement may touch a row once).
pub(super) fn distinct_edge_rows(
    sightings: &[Sighting<'_>],
) -> (Vec<RowKey>, Vec<inventory_edge::ActiveModel>) {
    let keys: Vec<RowKey> = sightings
        .iter()
        .map(|s| (s.link.key(), s.origin, s.origin_name.to_owned()))
        .collect();
    let mut rows: HashMap<&RowKey, inventory_edge::ActiveModel> = HashMap::new();
    for (key, s) in keys.iter().zip(sightings) {
        let count = i64::try_from(s.count).unwrap_or(i64::MAX);
        rows.entry(key)
            .and_modify(|row| {
                let seen = row.observations.as_ref().saturating_add(count);
                let last = Ord::max(*row.last_seen.as_ref(), s.at);
                row.observations = Set(seen);
                row.last_seen = Set(last);
            })
            .or_insert_with(|| new_edge_row(s));
    }
    let rows = rows.into_values().collect();
    (keys, rows)
}

/// The edge id of each key, in the keys' order.
pub(super) fn ids_in_order(
    keys: &[RowKey],
    ids: &HashMap<RowKey, EdgeId>,
) -> Result<Vec<EdgeId>, StoreError> {
    keys.iter()
        .map(|k| {
            ids.get(k)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("edge {} was not recorded", k.0)))
        })
        .collect()
}

/// The consumers of these ids that exist, by id.
pub async fn consumers_by_id(
    conn: &impl ConnectionTrait,
    ids: &[ConsumerId],
) -> Result<HashMap<ConsumerId, Consumer>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in statement_chunks(ids) {
        for r in consumer::Entity::find()
            .filter(consumer::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
        {
            found.insert(ConsumerId(r.id), to_consumer(&r)?);
        }
    }
    Ok(found)
}

/// The edges of these ids that exist, by id.
pub async fn edges_by_id(
    conn: &impl ConnectionTrait,
    ids: &[EdgeId],
) -> Result<HashMap<EdgeId, EdgeRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut found = HashMap::with_capacity(ids.len());
    let mut interner = Interner::default();
    for chunk in statement_chunks(ids) {
        for r in inventory_edge::Entity::find()
            .filter(inventory_edge::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
        {
            found.insert(EdgeId(r.id), to_edge(&r, &mut interner)?);
        }
    }
    Ok(found)
}
