//! What a group commit of registration webhooks reads and writes
//! (`service::registrations::group`), on either kind of write transaction:
//! - a [`WriteTx`] (PostgreSQL, or SQLite without a file): the set-wise statements of
//!   [`batch`](super::batch), many rows each;
//! - a [`SqliteTx`] on the SQLite writer thread: one prepared statement per row, which
//!   costs no round trip there (see `store::sqlite_writer`).
//!
//! Both write the same rows: `tests/it/inventory.rs` rebuilds the graph from the database
//! after webhooks and compares it with the live one.

use super::batch;
use super::{
    Entity, ExistingConsumer, Interner, NewConsumer, Sighting, new_consumer_row, to_consumer,
    to_edge,
};
use crate::audit::{AuditEntry, AuditMacKey, SealedRecord};
use crate::domain::{Consumer, ConsumerName, ModelName, Version};
use crate::graph::{ConsumerId, EdgeId, EdgeRecord};
use crate::store::entities::{consumer, inventory_edge};
use crate::store::registry::{self as registry_repo, ModelId, VersionId};
use crate::store::sqlite_writer::{parse_sql_time, sql_time};
use crate::store::webhook_sources as receipts_repo;
use crate::store::{SqliteTx, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use sea_orm::ActiveValue;
use std::collections::{HashMap, HashSet};

/// The reads and writes of a group commit. Every method runs inside the transaction the
/// implementor stands for.
#[allow(async_fn_in_trait)]
pub(crate) trait GroupTx {
    /// Which `(source, message id)` pairs were received before.
    async fn received_among(
        &mut self,
        pairs: &[(i64, &str)],
    ) -> Result<HashSet<(i64, String)>, StoreError>;
    /// The consumers of these names that exist, with who created each.
    async fn existing_consumers(
        &mut self,
        names: &[&ConsumerName],
    ) -> Result<HashMap<ConsumerName, ExistingConsumer>, StoreError>;
    /// The ids of the models of these names that exist.
    async fn model_ids(
        &mut self,
        names: &[&ModelName],
    ) -> Result<HashMap<ModelName, ModelId>, StoreError>;
    /// The ids of those of these versions that exist.
    async fn version_ids(
        &mut self,
        wanted: &[(ModelId, Version)],
    ) -> Result<HashMap<(ModelId, Version), VersionId>, StoreError>;
    /// As [`batch::upsert_consumers`].
    async fn upsert_consumers(
        &mut self,
        declared: &[NewConsumer<'_>],
    ) -> Result<HashMap<ConsumerName, (ConsumerId, Consumer)>, StoreError>;
    /// As [`batch::record_edges`].
    async fn record_edges(
        &mut self,
        sightings: &[Sighting<'_>],
    ) -> Result<(Vec<EdgeId>, HashMap<EdgeId, EdgeRecord>), StoreError>;
    /// As [`batch::record_changes`].
    async fn record_changes(
        &mut self,
        at: DateTime<Utc>,
        changes: &[(Entity, i64)],
    ) -> Result<i64, StoreError>;
    async fn record_receipts(
        &mut self,
        pairs: &[(i64, &str)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn append_audits(
        &mut self,
        at: DateTime<Utc>,
        entries: Vec<AuditEntry>,
        key: &AuditMacKey,
    ) -> Result<Vec<SealedRecord>, StoreError>;
}

impl GroupTx for WriteTx {
    async fn received_among(
        &mut self,
        pairs: &[(i64, &str)],
    ) -> Result<HashSet<(i64, String)>, StoreError> {
        receipts_repo::received_among(self.conn(), pairs).await
    }

    async fn existing_consumers(
        &mut self,
        names: &[&ConsumerName],
    ) -> Result<HashMap<ConsumerName, ExistingConsumer>, StoreError> {
        batch::find_existing(self.conn(), names).await
    }

    async fn model_ids(
        &mut self,
        names: &[&ModelName],
    ) -> Result<HashMap<ModelName, ModelId>, StoreError> {
        registry_repo::model_ids(self.conn(), names).await
    }

    async fn version_ids(
        &mut self,
        wanted: &[(ModelId, Version)],
    ) -> Result<HashMap<(ModelId, Version), VersionId>, StoreError> {
        registry_repo::version_ids(self.conn(), wanted).await
    }

    async fn upsert_consumers(
        &mut self,
        declared: &[NewConsumer<'_>],
    ) -> Result<HashMap<ConsumerName, (ConsumerId, Consumer)>, StoreError> {
        batch::upsert_consumers(self.conn(), declared).await
    }

    async fn record_edges(
        &mut self,
        sightings: &[Sighting<'_>],
    ) -> Result<(Vec<EdgeId>, HashMap<EdgeId, EdgeRecord>), StoreError> {
        batch::record_edges(self.conn(), sightings).await
    }

    async fn record_changes(
        &mut self,
        at: DateTime<Utc>,
        changes: &[(Entity, i64)],
    ) -> Result<i64, StoreError> {
        batch::record_changes(self.conn(), at, changes).await
    }

    async fn record_receipts(
        &mut self,
        pairs: &[(i64, &str)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        receipts_repo::record_receipts(self.conn(), pairs, at).await
    }

    async fn append_audits(
        &mut self,
        at: DateTime<Utc>,
        entries: Vec<AuditEntry>,
        key: &AuditMacKey,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        WriteTx::append_audits(self, at, entries, key).await
    }
}

const CONSUMER_COLUMNS: &str = "id, name, kind, owner_team, environment, contacts, webhook_url, \
     webhook_secret, discovered, created_at, created_by, updated_at";

const EDGE_COLUMNS: &str = "id, edge_key, kind, consumer_id, target_consumer_id, model_id, \
     version_range, version_id, parent_version_id, derivation, origin, origin_name, \
     first_seen, last_seen, observations";

fn consumer_row(r: &Row<'_>) -> Result<consumer::Model, StoreError> {
    Ok(consumer::Model {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        owner_team: r.get(3)?,
        environment: r.get(4)?,
        contacts: r.get(5)?,
        webhook_url: r.get(6)?,
        webhook_secret: r.get(7)?,
        discovered: r.get(8)?,
        created_at: parse_sql_time(&r.get::<_, String>(9)?)?,
        created_by: r.get(10)?,
        updated_at: parse_sql_time(&r.get::<_, String>(11)?)?,
    })
}

fn edge_row(r: &Row<'_>) -> Result<inventory_edge::Model, StoreError> {
    Ok(inventory_edge::Model {
        id: r.get(0)?,
        edge_key: r.get(1)?,
        kind: r.get(2)?,
        consumer_id: r.get(3)?,
        target_consumer_id: r.get(4)?,
        model_id: r.get(5)?,
        version_range: r.get(6)?,
        version_id: r.get(7)?,
        parent_version_id: r.get(8)?,
        derivation: r.get(9)?,
        origin: r.get(10)?,
        origin_name: r.get(11)?,
        first_seen: parse_sql_time(&r.get::<_, String>(12)?)?,
        last_seen: parse_sql_time(&r.get::<_, String>(13)?)?,
        observations: r.get(14)?,
    })
}

/// A column a new row always sets.
fn set<T: Clone + Into<sea_orm::Value>>(v: &ActiveValue<T>) -> Result<T, StoreError> {
    v.try_as_ref()
        .cloned()
        .ok_or_else(|| StoreError::Corrupt("a new row lacks a column it always sets".into()))
}

/// A nullable column a new row may leave unset.
fn maybe<T: Clone>(v: &ActiveValue<Option<T>>) -> Option<T>
where
    Option<T>: Into<sea_orm::Value>,
{
    v.try_as_ref().cloned().flatten()
}

/// The id of each of `names` that has a row in `table`, found by its unique `name`.
fn ids_by_name<N: Clone + Eq + std::hash::Hash, I>(
    conn: &Connection,
    table: &str,
    names: &[&N],
    name: impl Fn(&N) -> &str,
    id: impl Fn(i64) -> I,
) -> Result<HashMap<N, I>, StoreError> {
    let mut find = conn.prepare_cached(&format!("SELECT id FROM {table} WHERE name = ?1"))?;
    let mut found = HashMap::with_capacity(names.len());
    for &n in names {
        if let Some(row) = find.query_row([name(n)], |r| r.get(0)).optional()? {
            found.insert(n.clone(), id(row));
        }
    }
    Ok(found)
}

impl GroupTx for SqliteTx<'_> {
    async fn received_among(
        &mut self,
        pairs: &[(i64, &str)],
    ) -> Result<HashSet<(i64, String)>, StoreError> {
        let mut find = self.conn().prepare_cached(
            "SELECT 1 FROM webhook_receipts WHERE source_id = ?1 AND message_id = ?2",
        )?;
        let mut seen = HashSet::new();
        for &(source, id) in pairs {
            if find.exists(params![source, id])? {
                seen.insert((source, id.to_owned()));
            }
        }
        Ok(seen)
    }

    async fn existing_consumers(
        &mut self,
        names: &[&ConsumerName],
    ) -> Result<HashMap<ConsumerName, ExistingConsumer>, StoreError> {
        let mut find = self.conn().prepare_cached(&format!(
            "SELECT {CONSUMER_COLUMNS} FROM consumers WHERE name = ?1"
        ))?;
        let mut found = HashMap::with_capacity(names.len());
        for &name in names {
            let row = find
                .query_row([name.as_str()], |r| Ok(consumer_row(r)))
                .optional()?
                .transpose()?;
            if let Some(row) = row {
                let consumer = to_consumer(&row)?;
                found.insert(
                    name.clone(),
                    ExistingConsumer {
                        id: ConsumerId(row.id),
                        consumer,
                        created_by: row.created_by,
                    },
                );
            }
        }
        Ok(found)
    }

    async fn model_ids(
        &mut self,
        names: &[&ModelName],
    ) -> Result<HashMap<ModelName, ModelId>, StoreError> {
        ids_by_name(self.conn(), "models", names, ModelName::as_str, ModelId)
    }

    async fn version_ids(
        &mut self,
        wanted: &[(ModelId, Version)],
    ) -> Result<HashMap<(ModelId, Version), VersionId>, StoreError> {
        let mut find = self.conn().prepare_cached(
            "SELECT id FROM model_versions \
             WHERE model_id = ?1 AND major = ?2 AND minor = ?3 AND patch = ?4",
        )?;
        let mut found = HashMap::new();
        for &(model, v) in wanted {
            let id: Option<i64> = find
                .query_row(params![model.0, v.major, v.minor, v.patch], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                found.insert((model, v), VersionId(id));
            }
        }
        Ok(found)
    }

    async fn upsert_consumers(
        &mut self,
        declared: &[NewConsumer<'_>],
    ) -> Result<HashMap<ConsumerName, (ConsumerId, Consumer)>, StoreError> {
        let mut upsert = self.conn().prepare_cached(&format!(
            "INSERT INTO consumers (name, kind, owner_team, environment, contacts, webhook_url, \
             webhook_secret, discovered, created_at, created_by, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             owner_team = excluded.owner_team, environment = excluded.environment, \
             contacts = excluded.contacts, discovered = excluded.discovered, \
             updated_at = excluded.updated_at \
             RETURNING {CONSUMER_COLUMNS}"
        ))?;
        let mut written = HashMap::with_capacity(declared.len());
        for d in declared {
            let row = new_consumer_row(d);
            let written_row = upsert.query_row(
                params![
                    set(&row.name)?,
                    set(&row.kind)?,
                    set(&row.owner_team)?,
                    set(&row.environment)?,
                    set(&row.contacts)?,
                    maybe(&row.webhook_url),
                    maybe(&row.webhook_secret),
                    set(&row.discovered)?,
                    sql_time(set(&row.created_at)?),
                    set(&row.created_by)?,
                    sql_time(set(&row.updated_at)?),
                ],
                |r| Ok(consumer_row(r)),
            )??;
            let c = to_consumer(&written_row)?;
            written.insert(c.name.clone(), (ConsumerId(written_row.id), c));
        }
        Ok(written)
    }

    async fn record_edges(
        &mut self,
        sightings: &[Sighting<'_>],
    ) -> Result<(Vec<EdgeId>, HashMap<EdgeId, EdgeRecord>), StoreError> {
        let (keys, rows) = batch::distinct_edge_rows(sightings);
        let mut upsert = self.conn().prepare_cached(&format!(
            "INSERT INTO inventory_edges (edge_key, kind, consumer_id, target_consumer_id, \
             model_id, version_range, version_id, parent_version_id, derivation, origin, \
             origin_name, first_seen, last_seen, observations) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (edge_key, origin, origin_name) DO UPDATE SET \
             last_seen = CASE WHEN excluded.last_seen > inventory_edges.last_seen \
             THEN excluded.last_seen ELSE inventory_edges.last_seen END, \
             observations = inventory_edges.observations + excluded.observations \
             RETURNING {EDGE_COLUMNS}"
        ))?;
        let mut ids = HashMap::with_capacity(rows.len());
        let mut records = HashMap::with_capacity(rows.len());
        let mut interner = Interner::default();
        for row in &rows {
            let written = upsert.query_row(
                params![
                    set(&row.edge_key)?,
                    set(&row.kind)?,
                    maybe(&row.consumer_id),
                    maybe(&row.target_consumer_id),
                    maybe(&row.model_id),
                    maybe(&row.version_range),
                    maybe(&row.version_id),
                    maybe(&row.parent_version_id),
                    maybe(&row.derivation),
                    set(&row.origin)?,
                    set(&row.origin_name)?,
                    sql_time(set(&row.first_seen)?),
                    sql_time(set(&row.last_seen)?),
                    set(&row.observations)?,
                ],
                |r| Ok(edge_row(r)),
            )??;
            ids.insert(batch::row_key(&written)?, EdgeId(written.id));
            records.insert(EdgeId(written.id), to_edge(&written, &mut interner)?);
        }
        Ok((batch::ids_in_order(&keys, &ids)?, records))
    }

    async fn record_changes(
        &mut self,
        at: DateTime<Utc>,
        changes: &[(Entity, i64)],
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        let mut revision: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(revision), 0) FROM inventory_changes")?
            .query_row([], |r| r.get(0))?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO inventory_changes (revision, at, entity, entity_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let at = sql_time(at);
        for &(entity, id) in changes {
            revision += 1;
            insert.execute(params![revision, at, entity.as_str(), id])?;
        }
        Ok(revision)
    }

    async fn record_receipts(
        &mut self,
        pairs: &[(i64, &str)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut insert = self.conn().prepare_cached(
            "INSERT INTO webhook_receipts (source_id, message_id, received_at) \
             VALUES (?1, ?2, ?3)",
        )?;
        let at = sql_time(at);
        for &(source, id) in pairs {
            insert.execute(params![source, id, at])?;
        }
        Ok(())
    }

    async fn append_audits(
        &mut self,
        at: DateTime<Utc>,
        entries: Vec<AuditEntry>,
        key: &AuditMacKey,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        SqliteTx::append_audits(self, at, entries, key)
    }
}
