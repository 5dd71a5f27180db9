//! Reading every row of the inventory for a load (`graph::GraphBuilder` builds the graph
//! from them), at start-up and whenever an instance finds it missed a change.
//!
//! On SQLite a large load is mostly the driver's per-value work: each value of each row is
//! copied into an allocation of its own and each row crosses a channel from the driver's
//! thread. So the edges, nine rows in ten, are read on a connection of their own through
//! rusqlite, each value in place, in one statement (`read_edges_sqlite`); the nodes come
//! a page at a time as one value each, a JSON array of row arrays SQLite builds itself
//! (`json_group_array`), which serde reads back at hundreds of megabytes a second (the
//! edges came that way too, and a 10M-edge load took 34 s against 25 s now).
//! PostgreSQL's binary rows are cheaper than its building JSON (a 1M-edge load took 6.7 s
//! that way against 3.0 to 3.7 s), so there pages stay rows. The pages read the same row
//! types: tuples that are `Deserialize` and `TryGetableMany`.

use super::{Interner, edge_of, head_revision, stored_version, to_consumer, to_model_info};
use crate::domain::{Consumer, Derivation, EdgeKind, EdgeOrigin, Version};
use crate::graph::{ConsumerId, EdgeRecord, ModelId, ModelInfo, VersionId};
use crate::store::StoreError;
use crate::store::entities::{consumer, inventory_edge};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColIdx, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, QueryResult, Statement,
    TryGetError, TryGetable, TryGetableMany,
};
use serde::de::DeserializeOwned;

/// Rows read per query while loading, so memory stays bounded by the graph itself.
const LOAD_PAGE: u64 = 20_000;

/// The inventory's rows as a load reads them, a page at a time.
pub enum Rows {
    /// How many nodes (models, versions and consumers) and edges there are, first, so the
    /// graph is allocated once at its size: grown by doubling, a 10M-edge graph held a
    /// third more than it needed.
    Sizes {
        models: usize,
        versions: usize,
        consumers: usize,
        edges: usize,
    },
    Models(Vec<ModelInfo>),
    Versions(Vec<(VersionId, ModelId, Version)>),
    Consumers(Vec<(ConsumerId, Consumer)>),
    Edges(Vec<EdgeRecord>),
}

/// Reads every model, version, consumer and edge, handing each page to `take` as it
/// arrives: all the nodes first, then the edges. Returns the head revision, read before
/// any row, so a change that commits meanwhile is applied again afterwards (harmless).
///
/// Edges are read on a task of their own while the nodes load, on another connection of
/// the pool, so the two halves overlap.
pub async fn read_all(
    db: &DatabaseConnection,
    mut take: impl FnMut(Rows) -> Result<(), StoreError>,
) -> Result<i64, StoreError> {
    let revision = head_revision(db).await?;
    take(sizes(db).await?)?;
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<EdgeRecord>>(4);
    let reader = tokio::spawn(read_edges(db.clone(), pages));
    let taken = async {
        read_nodes(db, &mut take).await?;
        while let Some(page) = received.recv().await {
            take(Rows::Edges(page))?;
        }
        Ok::<(), StoreError>(())
    };
    if let Err(e) = taken.await {
        reader.abort();
        return Err(e);
    }
    reader
        .await
        .map_err(|e| StoreError::Corrupt(format!("the edge reader failed: {e}")))??;
    Ok(revision)
}

/// The row counts a load expects: rows committed meanwhile are few, and only grow the
/// graph's arrays as they would have grown anyway.
async fn sizes(db: &DatabaseConnection) -> Result<Rows, StoreError> {
    let sql = "SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM model_versions), \
               (SELECT count(*) FROM consumers), (SELECT count(*) FROM inventory_edges)";
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("counting the inventory returned no row".into()))?;
    let count = |i: usize| -> Result<usize, StoreError> {
        let n: i64 = row.try_get_by_index(i)?;
        usize::try_from(n).map_err(|_| StoreError::Corrupt(format!("a row count of {n}")))
    };
    Ok(Rows::Sizes {
        models: count(0)?,
        versions: count(1)?,
        consumers: count(2)?,
        edges: count(3)?,
    })
}

async fn read_nodes(
    db: &DatabaseConnection,
    take: &mut impl FnMut(Rows) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut models = Pager::new(db, "models", "name, owner_team");
    while let Some(page) = models.next::<(i64, String, String)>().await? {
        let page = page
            .into_iter()
            .map(|(id, name, team)| to_model_info(id, &name, &team))
            .collect::<Result<_, _>>()?;
        take(Rows::Models(page))?;
    }
    let mut versions = Pager::new(db, "model_versions", "model_id, major, minor, patch");
    while let Some(page) = versions.next::<(i64, i64, i32, i32, i32)>().await? {
        let page = page
            .into_iter()
            .map(|(id, model, major, minor, patch)| {
                Ok((
                    VersionId(id),
                    ModelId(model),
                    stored_version(major, minor, patch)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        take(Rows::Versions(page))?;
    }
    let mut consumers = Pager::new(
        db,
        "consumers",
        "name, kind, owner_team, environment, contacts, webhook_url, discovered",
    );
    while let Some(page) = consumers.next::<ConsumerRow>().await? {
        let page = page
            .into_iter()
            .map(|row| Ok((ConsumerId(row.0), consumer_of(row)?)))
            .collect::<Result<_, StoreError>>()?;
        take(Rows::Consumers(page))?;
    }
    Ok(())
}

/// A consumer row as the load reads it: id, name, kind, owner team, environment,
/// contacts, webhook URL, discovered.
type ConsumerRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Flag,
);

/// A consumer load row through [`to_consumer`], the one place a row becomes a consumer.
fn consumer_of(
    (id, name, kind, owner_team, environment, contacts, webhook_url, discovered): ConsumerRow,
) -> Result<Consumer, StoreError> {
    to_consumer(&consumer::Model {
        id,
        name,
        kind,
        owner_team,
        environment,
        contacts,
        webhook_url,
        discovered: discovered.0,
        // Not part of the graph.
        webhook_secret: None,
        created_at: DateTime::<Utc>::MIN_UTC,
        created_by: String::new(),
        updated_at: DateTime::<Utc>::MIN_UTC,
    })
}

/// An edge row as the load reads it: id, packed kind, origin and derivation, the link's
/// two ends, range, origin name, first and last seen, observations.
type EdgeRow = (
    i64,
    i32,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
    StoredTime,
    StoredTime,
    i64,
);

async fn read_edges(
    db: DatabaseConnection,
    pages: tokio::sync::mpsc::Sender<Vec<EdgeRecord>>,
) -> Result<(), StoreError> {
    let columns = edge_columns();
    if let Some(file) = sqlite_file(&db).await? {
        return tokio::task::spawn_blocking(move || read_edges_sqlite(&file, &columns, &pages))
            .await
            .map_err(|e| StoreError::Corrupt(format!("the edge reader failed: {e}")))?;
    }
    let mut interner = Interner::default();
    let mut pager = Pager::new(&db, "inventory_edges", &columns);
    while let Some(rows) = pager.next::<EdgeRow>().await? {
        let page = rows
            .into_iter()
            .map(|row| to_edge_record(row, &mut interner))
            .collect::<Result<Vec<_>, _>>()?;
        if pages.send(page).await.is_err() {
            // The loader gave up (its own read failed); nothing is waiting for the rest.
            break;
        }
    }
    Ok(())
}

/// The columns of an edge row as a load reads them, after its id. The row is kept
/// narrow: kind, origin and derivation packed in one number (four bits each; the
/// derivation one up, so none is 0), and the two ends of the link in two columns whatever
/// its kind.
fn edge_columns() -> String {
    format!(
        "{} * 256 + {} * 16 + (CASE WHEN derivation IS NULL THEN 0 ELSE 1 + {} END), \
         CASE kind WHEN 'derived_from' THEN version_id ELSE consumer_id END, \
         CASE kind WHEN 'uses' THEN model_id WHEN 'derived_from' THEN parent_version_id \
              ELSE target_consumer_id END, \
         version_range, origin_name, first_seen, last_seen, observations",
        position_of("kind", EdgeKind::ALL.iter().map(|k| k.as_str())),
        position_of("origin", EdgeOrigin::ALL.iter().map(|o| o.as_str())),
        position_of("derivation", Derivation::ALL.iter().map(|d| d.as_str())),
    )
}

/// The file of a SQLite database (none for PostgreSQL, or a database in memory).
async fn sqlite_file(db: &DatabaseConnection) -> Result<Option<std::path::PathBuf>, StoreError> {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(None);
    }
    let sql = "SELECT file FROM pragma_database_list WHERE name = 'main'";
    let row = db
        .query_one_raw(Statement::from_string(DatabaseBackend::Sqlite, sql))
        .await?;
    let file: Option<String> = row.map(|r| r.try_get_by_index(0)).transpose()?;
    Ok(file.filter(|f| !f.is_empty()).map(Into::into))
}

/// Reads every edge of the SQLite database `file` in one statement on a connection of
/// its own, on this (blocking) thread, in pages to `pages`. Ten million edges read as
/// JSON pages through the driver cost SQLite building the JSON and serde parsing it, a
/// string allocated for every text value, and a hand-off per page: most of a 10M-edge
/// load's CPU. Here each value is read in place. One statement is one read transaction:
/// the edges come from one snapshot, taken after the load's revision.
fn read_edges_sqlite(
    file: &std::path::Path,
    columns: &str,
    pages: &tokio::sync::mpsc::Sender<Vec<EdgeRecord>>,
) -> Result<(), StoreError> {
    use rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(15))?;
    let mut statement = conn.prepare(&format!(
        "SELECT id, {columns} FROM inventory_edges ORDER BY id"
    ))?;
    let mut rows = statement.query([])?;
    let mut interner = Interner::default();
    let mut page = Vec::with_capacity(LOAD_PAGE as usize);
    while let Some(row) = rows.next()? {
        let time = |i: usize| -> Result<StoredTime, StoreError> {
            let text = row.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?;
            StoredTime::read(text).map_err(StoreError::Corrupt)
        };
        let edge: EdgeRow = (
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            time(6)?,
            time(7)?,
            row.get(8)?,
        );
        page.push(to_edge_record(edge, &mut interner)?);
        if page.len() == LOAD_PAGE as usize {
            let full = std::mem::replace(&mut page, Vec::with_capacity(LOAD_PAGE as usize));
            if pages.blocking_send(full).is_err() {
                // The loader gave up (its own read failed); nothing is waiting for the rest.
                return Ok(());
            }
        }
    }
    if !page.is_empty() {
        let _ = pages.blocking_send(page);
    }
    Ok(())
}

/// Reads a load row through [`edge_of`], the one place an edge row becomes a record.
fn to_edge_record(row: EdgeRow, interner: &mut Interner) -> Result<EdgeRecord, StoreError> {
    let (id, code, from, to, version_range, origin_name, first_seen, last_seen, observations) = row;
    let (first_seen, last_seen) = (first_seen.0, last_seen.0);
    let code = i64::from(code);
    let kind = from_position(EdgeKind::ALL, code >> 8, id)?;
    let origin = from_position(EdgeOrigin::ALL, (code >> 4) & 15, id)?;
    let derivation = match (code & 15) - 1 {
        -1 => None,
        d => Some(from_position(Derivation::ALL, d, id)?.as_str().to_owned()),
    };
    let mut row = inventory_edge::Model {
        id,
        edge_key: String::new(),
        kind: String::new(),
        consumer_id: None,
        target_consumer_id: None,
        model_id: None,
        version_range,
        version_id: None,
        parent_version_id: None,
        derivation,
        origin: String::new(),
        origin_name,
        first_seen,
        last_seen,
        observations,
    };
    match kind {
        EdgeKind::Uses => (row.consumer_id, row.model_id) = (from, to),
        EdgeKind::DerivedFrom => (row.version_id, row.parent_version_id) = (from, to),
        EdgeKind::DependsOn => (row.consumer_id, row.target_consumer_id) = (from, to),
    }
    edge_of(&row, kind, origin, interner)
}

/// An instant as SQLite's text (RFC 3339, as the driver writes it) or PostgreSQL's
/// `timestamptz` holds it. Two per edge: chrono's general parser was a fifth of the
/// parsing of a load's pages, so the usual form is read by hand (`crate::rfc3339`).
struct StoredTime(DateTime<Utc>);

impl TryGetable for StoredTime {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        DateTime::<Utc>::try_get_by(res, index).map(StoredTime)
    }
}

impl StoredTime {
    fn read(text: &str) -> Result<Self, String> {
        match crate::rfc3339::unix_nanos(text.as_bytes()) {
            Some(nanos) => Ok(StoredTime(DateTime::from_timestamp_nanos(nanos))),
            None => DateTime::parse_from_rfc3339(text)
                .map(|t| StoredTime(t.to_utc()))
                .map_err(|e| format!("a time of {text:?}: {e}")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StoredTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        StoredTime::read(&text).map_err(serde::de::Error::custom)
    }
}

/// A boolean as SQLite puts it in JSON (`1`), or as a PostgreSQL row holds it.
struct Flag(bool);

impl TryGetable for Flag {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        bool::try_get_by(res, index).map(Flag)
    }
}

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bool(bool),
            Int(i64),
        }
        Ok(Flag(match Either::deserialize(d)? {
            Either::Bool(b) => b,
            Either::Int(i) => i != 0,
        }))
    }
}

/// Reads a table in pages of [`LOAD_PAGE`] rows by ascending id, each page one JSON value;
/// the id is always a row's first element, the columns asked for follow it.
struct Pager<'a> {
    db: &'a DatabaseConnection,
    table: &'a str,
    columns: &'a str,
    after: i64,
}

impl<'a> Pager<'a> {
    fn new(db: &'a DatabaseConnection, table: &'a str, columns: &'a str) -> Self {
        Self {
            db,
            table,
            columns,
            after: 0,
        }
    }

    /// The next page's rows, in id order; `None` after the last.
    async fn next<T: DeserializeOwned + TryGetableMany>(
        &mut self,
    ) -> Result<Option<Vec<T>>, StoreError> {
        let (table, columns, after) = (self.table, self.columns, self.after);
        // `after` is an id read back from the table, never outside input.
        let backend = self.db.get_database_backend();
        if backend == DatabaseBackend::Postgres {
            let sql = format!(
                "SELECT id, {columns} FROM {table} WHERE id > {after} ORDER BY id LIMIT {LOAD_PAGE}"
            );
            let rows = self
                .db
                .query_all_raw(Statement::from_string(backend, sql))
                .await?;
            let Some(last) = rows.last() else {
                return Ok(None);
            };
            self.after = last.try_get_by_index::<i64>(0)?;
            return Ok(Some(
                rows.iter()
                    .map(|r| T::try_get_many_by_index(r).map_err(DbErr::from))
                    .collect::<Result<_, _>>()?,
            ));
        }
        // The columns are expressions over the table's own, evaluated on the page the
        // inner query cut; SQLite aggregates in the order that query delivers, by id.
        let sql = format!(
            "SELECT max(id), json_group_array(json_array(id, {columns})) \
             FROM (SELECT * FROM {table} WHERE id > {after} ORDER BY id LIMIT {LOAD_PAGE})"
        );
        let row = self
            .db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no page of {table} came back")))?;
        let Some(last) = row.try_get_by_index::<Option<i64>>(0)? else {
            return Ok(None);
        };
        let json: String = row.try_get_by_index(1)?;
        let rows: Vec<T> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("a page of {table} after id {after}: {e}")))?;
        self.after = last;
        Ok(Some(rows))
    }
}

/// `(CASE column WHEN 'a' THEN 0 WHEN 'b' THEN 1 … ELSE 7 END)`: a word column read as
/// its position in a fixed list, which costs no string per row; 7 marks a word not in it
/// (the lists are shorter, which `from_position` turns into an error).
fn position_of<'a>(column: &str, words: impl Iterator<Item = &'a str>) -> String {
    let mut sql = format!("(CASE {column}");
    for (i, w) in words.enumerate() {
        debug_assert!(i < 7, "three bits per word");
        sql.push_str(&format!(" WHEN '{w}' THEN {i}"));
    }
    sql.push_str(" ELSE 7 END)");
    sql
}

fn from_position<T: Copy>(all: &[T], position: i64, edge: i64) -> Result<T, StoreError> {
    usize::try_from(position)
        .ok()
        .and_then(|i| all.get(i).copied())
        .ok_or_else(|| StoreError::Corrupt(format!("edge {edge} has an unknown kind or origin")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<DateTime<Utc>, serde_json::Error> {
        serde_json::from_value::<StoredTime>(serde_json::json!(text)).map(|t| t.0)
    }

    #[test]
    fn stored_times_read_by_hand_are_what_chrono_reads() {
        for text in [
            "2026-12-07T21:49:19.692341946+00:00",
            "2026-12-07T21:49:19+00:00",
            "2026-12-07T21:49:19.5Z",
            "0001-01-01T00:00:00.000001+00:00",
            "9999-12-31T23:59:59.999999999Z",
            // Not the driver's form: chrono reads them.
            "2026-12-07T23:49:19.25+02:00",
            "2026-12-07 21:49:19Z",
            "2016-12-31T23:59:60Z",
        ] {
            let by_chrono = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            assert_eq!(read(text).unwrap(), by_chrono, "{text}");
        }
        assert!(crate::rfc3339::unix_nanos(b"2026-12-07T21:49:19.692341946+00:00").is_some());
        for bad in [
            "2026-13-07T21:49:19Z",
            "2026-12-07T21:49:19.Z",
            "yesterday",
            "",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
