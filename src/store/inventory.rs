//! Consumers, inventory edges and the inventory change sequence.
//!
//! Every committed inventory change inserts a row into `inventory_changes` naming what
//! changed; instances follow that sequence and read the named rows again, so applying a
//! change twice is harmless and the database stays the source of truth. A writer takes
//! the next revision itself (`max + 1`) rather than from a sequence: two writers on one
//! PostgreSQL database then collide on the primary key and one redoes its change, so
//! revisions commit in order and a reader never sees a gap that fills later.

use super::StoreError;
use super::entities::{consumer, inventory_change, inventory_edge, model, model_version};
use crate::domain::{
    Consumer, ConsumerKind, ConsumerName, Contacts, Derivation, EdgeKind, EdgeOrigin, Environment,
    ModelName, TeamName, Version, VersionRange, WebhookUrl,
};
use crate::graph::{
    ConsumerId, EdgeId, EdgeRecord, GraphError, InventoryGraph, Link, ModelInfo, VersionId,
    VersionInfo,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use std::collections::HashMap;
use std::sync::Arc;

pub mod batch;

/// What a change row names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Consumer,
    Edge,
    Model,
    Version,
    /// Not part of the graph: a registration webhook source created or disabled, so
    /// every instance drops the source secrets it holds.
    WebhookSource,
}

impl Entity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Entity::Consumer => "consumer",
            Entity::Edge => "edge",
            Entity::Model => "model",
            Entity::Version => "version",
            Entity::WebhookSource => "webhook_source",
        }
    }

    fn parse(raw: &str) -> Result<Self, StoreError> {
        Ok(match raw {
            "consumer" => Entity::Consumer,
            "edge" => Entity::Edge,
            "model" => Entity::Model,
            "version" => Entity::Version,
            "webhook_source" => Entity::WebhookSource,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "inventory change names an unknown entity {other:?}"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub entity: Entity,
    pub id: i64,
}

/// Appends a change; returns its revision.
pub async fn record_change(
    conn: &impl ConnectionTrait,
    at: DateTime<Utc>,
    entity: Entity,
    id: i64,
) -> Result<i64, StoreError> {
    let revision = head_revision(conn).await? + 1;
    inventory_change::ActiveModel {
        revision: Set(revision),
        at: Set(at),
        entity: Set(entity.as_str().to_owned()),
        entity_id: Set(id),
    }
    .insert(conn)
    .await?;
    Ok(revision)
}

pub async fn head_revision(conn: &impl ConnectionTrait) -> Result<i64, StoreError> {
    let max: Option<Option<i64>> = inventory_change::Entity::find()
        .select_only()
        .column_as(inventory_change::Column::Revision.max(), "max")
        .into_tuple()
        .one(conn)
        .await?;
    Ok(max.flatten().unwrap_or(0))
}

pub async fn changes_after(
    conn: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<Change>, StoreError> {
    inventory_change::Entity::find()
        .filter(inventory_change::Column::Revision.gt(after))
        .order_by_asc(inventory_change::Column::Revision)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| {
            Ok(Change {
                revision: r.revision,
                entity: Entity::parse(&r.entity)?,
                id: r.entity_id,
            })
        })
        .collect()
}

pub struct NewConsumer<'a> {
    pub consumer: &'a Consumer,
    pub sealed_secret: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub by: &'a str,
}

pub async fn insert_consumer(
    conn: &impl ConnectionTrait,
    c: NewConsumer<'_>,
) -> Result<ConsumerId, StoreError> {
    let row = new_consumer_row(&c).insert(conn).await?;
    Ok(row.id)
}

fn new_consumer_row(c: &NewConsumer<'_>) -> consumer::ActiveModel {
    consumer::ActiveModel {
        name: Set(c.consumer.name.to_string()),
        kind: Set(c.consumer.kind.as_str().to_owned()),
        owner_team: Set(c.consumer.owner_team.to_string()),
        environment: Set(c.consumer.environment.to_string()),
        contacts: Set(contacts_json(&c.consumer.contacts)),
        webhook_url: Set(c
            .consumer
            .webhook_url
            .as_ref()
            .map(|u| u.as_str().to_owned())),
        webhook_secret: Set(c.sealed_secret.map(str::to_owned)),
        discovered: Set(c.consumer.discovered),
        created_at: Set(c.at),
        created_by: Set(c.by.to_owned()),
        updated_at: Set(c.at),
        ..Default::default()
    }
}

/// Updates the facts of a consumer; `sealed_secret` replaces the secret when given
/// (`Some(None)` removes it).
pub async fn update_consumer(
    conn: &impl ConnectionTrait,
    id: ConsumerId,
    c: &Consumer,
    sealed_secret: Option<Option<&str>>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut row = consumer::ActiveModel {
        id: Set(id),
        kind: Set(c.kind.as_str().to_owned()),
        owner_team: Set(c.owner_team.to_string()),
        environment: Set(c.environment.to_string()),
        contacts: Set(contacts_json(&c.contacts)),
        webhook_url: Set(c.webhook_url.as_ref().map(|u| u.as_str().to_owned())),
        discovered: Set(c.discovered),
        updated_at: Set(at),
        ..Default::default()
    };
    if let Some(secret) = sealed_secret {
        row.webhook_secret = Set(secret.map(str::to_owned));
    }
    row.update(conn).await?;
    Ok(())
}

pub async fn find_consumer(
    conn: &impl ConnectionTrait,
    name: &ConsumerName,
) -> Result<Option<(ConsumerId, Consumer)>, StoreError> {
    consumer::Entity::find()
        .filter(consumer::Column::Name.eq(name.as_str()))
        .one(conn)
        .await?
        .map(|r| Ok((r.id, to_consumer(&r)?)))
        .transpose()
}

pub async fn consumer_by_id(
    conn: &impl ConnectionTrait,
    id: ConsumerId,
) -> Result<Option<Consumer>, StoreError> {
    consumer::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(|r| to_consumer(&r))
        .transpose()
}

/// The sealed notice-signing secret of a consumer, if it has one.
pub async fn consumer_secret(
    conn: &impl ConnectionTrait,
    id: ConsumerId,
) -> Result<Option<String>, StoreError> {
    Ok(consumer::Entity::find_by_id(id)
        .one(conn)
        .await?
        .and_then(|r| r.webhook_secret))
}

/// Deletes a consumer and (by cascade) its edges; returns the ids of those edges.
pub async fn delete_consumer(
    conn: &impl ConnectionTrait,
    id: ConsumerId,
) -> Result<Vec<EdgeId>, StoreError> {
    let edges: Vec<EdgeId> = inventory_edge::Entity::find()
        .select_only()
        .column(inventory_edge::Column::Id)
        .filter(
            Condition::any()
                .add(inventory_edge::Column::ConsumerId.eq(id))
                .add(inventory_edge::Column::TargetConsumerId.eq(id)),
        )
        .into_tuple()
        .all(conn)
        .await?;
    inventory_edge::Entity::delete_many()
        .filter(inventory_edge::Column::Id.is_in(edges.clone()))
        .exec(conn)
        .await?;
    consumer::Entity::delete_by_id(id).exec(conn).await?;
    Ok(edges)
}

pub struct Sighting<'a> {
    pub link: &'a Link,
    pub origin: EdgeOrigin,
    pub origin_name: &'a str,
    pub at: DateTime<Utc>,
    /// How many observations this sighting stands for (a scan may count many lines).
    pub count: u64,
}

/// Records one sighting of a link from one origin: creates its edge row, or moves the
/// row's last-seen time forward and counts the observation. Returns the row and whether
/// it is new.
pub async fn record_edge(
    conn: &impl ConnectionTrait,
    s: Sighting<'_>,
) -> Result<(EdgeRecord, bool), StoreError> {
    let key = s.link.key();
    let existing = inventory_edge::Entity::find()
        .filter(inventory_edge::Column::EdgeKey.eq(&key))
        .filter(inventory_edge::Column::Origin.eq(s.origin.as_str()))
        .filter(inventory_edge::Column::OriginName.eq(s.origin_name))
        .one(conn)
        .await?;
    let count = i64::try_from(s.count).unwrap_or(i64::MAX);
    if let Some(row) = existing {
        let last_seen = row.last_seen.max(s.at);
        let observations = row.observations.saturating_add(count);
        inventory_edge::Entity::update_many()
            .col_expr(inventory_edge::Column::LastSeen, Expr::value(last_seen))
            .col_expr(
                inventory_edge::Column::Observations,
                Expr::value(observations),
            )
            .filter(inventory_edge::Column::Id.eq(row.id))
            .exec(conn)
            .await?;
        let mut record = to_edge(&row, &mut Interner::default())?;
        record.last_seen = last_seen;
        record.observations = u64::try_from(observations).unwrap_or(0);
        return Ok((record, false));
    }
    let row = new_edge_row(&s).insert(conn).await?;
    Ok((to_edge(&row, &mut Interner::default())?, true))
}

/// The row a first sighting of a link creates.
fn new_edge_row(s: &Sighting<'_>) -> inventory_edge::ActiveModel {
    let mut row = inventory_edge::ActiveModel {
        edge_key: Set(s.link.key()),
        kind: Set(s.link.kind().as_str().to_owned()),
        origin: Set(s.origin.as_str().to_owned()),
        origin_name: Set(s.origin_name.to_owned()),
        first_seen: Set(s.at),
        last_seen: Set(s.at),
        observations: Set(i64::try_from(s.count).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    match s.link {
        Link::Uses {
            consumer,
            model,
            range,
        } => {
            row.consumer_id = Set(Some(*consumer));
            row.model_id = Set(Some(*model));
            row.version_range = Set(Some(range.to_string()));
        }
        Link::DerivedFrom {
            version,
            parent,
            derivation,
        } => {
            row.version_id = Set(Some(*version));
            row.parent_version_id = Set(Some(*parent));
            row.derivation = Set(Some(derivation.as_str().to_owned()));
        }
        Link::DependsOn { consumer, target } => {
            row.consumer_id = Set(Some(*consumer));
            row.target_consumer_id = Set(Some(*target));
        }
    }
    row
}

/// Every origin's row of one link.
pub async fn edges_of_link(
    conn: &impl ConnectionTrait,
    link: &Link,
) -> Result<Vec<EdgeRecord>, StoreError> {
    let mut interner = Interner::default();
    inventory_edge::Entity::find()
        .filter(inventory_edge::Column::EdgeKey.eq(link.key()))
        .order_by_asc(inventory_edge::Column::Id)
        .all(conn)
        .await?
        .iter()
        .map(|r| to_edge(r, &mut interner))
        .collect()
}

pub async fn delete_edge(conn: &impl ConnectionTrait, id: EdgeId) -> Result<(), StoreError> {
    inventory_edge::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

pub async fn model_info(
    conn: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<ModelInfo>, StoreError> {
    model::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(|r| to_model_info(r.id, &r.name, &r.owner_team))
        .transpose()
}

pub async fn version_info(
    conn: &impl ConnectionTrait,
    id: VersionId,
) -> Result<Option<VersionInfo>, StoreError> {
    let Some(v) = model_version::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    let Some(m) = model::Entity::find_by_id(v.model_id).one(conn).await? else {
        return Ok(None);
    };
    Ok(Some(VersionInfo {
        id: v.id,
        model: v.model_id,
        model_name: parse_stored(ModelName::parse(&m.name))?,
        version: stored_version(v.major, v.minor, v.patch)?,
    }))
}

/// Rows read per query while loading, so memory stays bounded by the graph itself.
const LOAD_PAGE: u64 = 20_000;

/// Builds the whole graph from the database. The revision is read first: a change that
/// commits while the rows are read is applied again afterwards, which is harmless.
///
/// Edges are read on a task of their own while the nodes load, on another connection of
/// the pool, so the two halves overlap. Rows are read as plain columns by position (kind
/// and origin as small numbers), since decoding is most of the cost of a large load.
pub async fn load(db: &DatabaseConnection) -> Result<InventoryGraph, StoreError> {
    let revision = head_revision(db).await?;
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<EdgeRecord>>(4);
    let reader = tokio::spawn(read_edges(db.clone(), pages));
    let nodes = load_nodes(db).await;
    let mut g = match nodes {
        Ok(g) => g,
        Err(e) => {
            reader.abort();
            return Err(e);
        }
    };
    while let Some(page) = received.recv().await {
        for e in page {
            match g.load_edge(e) {
                Ok(()) => {}
                // Its consumer, model or version committed after the nodes were read,
                // so after `revision`: following the change sequence brings both.
                Err(GraphError::Missing(..)) => {}
            }
        }
    }
    reader
        .await
        .map_err(|e| StoreError::Corrupt(format!("the edge reader failed: {e}")))??;
    g.finish_load();
    g.set_revision(revision);
    Ok(g)
}

async fn load_nodes(db: &DatabaseConnection) -> Result<InventoryGraph, StoreError> {
    let mut g = InventoryGraph::new();
    let mut names: HashMap<i64, ModelName> = HashMap::new();
    for_each_row(db, "models", "name, owner_team", |r| {
        let id = r.try_get_by_index::<i64>(0)?;
        let info = to_model_info(
            id,
            &r.try_get_by_index::<String>(1)?,
            &r.try_get_by_index::<String>(2)?,
        )?;
        names.insert(id, info.name.clone());
        g.upsert_model(info);
        Ok(())
    })
    .await?;
    for_each_row(db, "model_versions", "model_id, major, minor, patch", |r| {
        let id = r.try_get_by_index::<i64>(0)?;
        let model = r.try_get_by_index::<i64>(1)?;
        let Some(model_name) = names.get(&model).cloned() else {
            // Committed after the models were read; the change sequence brings it.
            return Ok(());
        };
        g.upsert_version(VersionInfo {
            id,
            model,
            model_name,
            version: stored_version(
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
                r.try_get_by_index(4)?,
            )?,
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))
    })
    .await?;
    for_each_row(
        db,
        "consumers",
        "name, kind, owner_team, environment, contacts, webhook_url, discovered",
        |r| {
            let row = consumer::Model {
                id: r.try_get_by_index(0)?,
                name: r.try_get_by_index(1)?,
                kind: r.try_get_by_index(2)?,
                owner_team: r.try_get_by_index(3)?,
                environment: r.try_get_by_index(4)?,
                contacts: r.try_get_by_index(5)?,
                webhook_url: r.try_get_by_index(6)?,
                discovered: r.try_get_by_index(7)?,
                // Not part of the graph.
                webhook_secret: None,
                created_at: DateTime::<Utc>::MIN_UTC,
                created_by: String::new(),
                updated_at: DateTime::<Utc>::MIN_UTC,
            };
            g.upsert_consumer(row.id, to_consumer(&row)?);
            Ok(())
        },
    )
    .await?;
    Ok(g)
}

async fn read_edges(
    db: DatabaseConnection,
    pages: tokio::sync::mpsc::Sender<Vec<EdgeRecord>>,
) -> Result<(), StoreError> {
    let mut interner = Interner::default();
    // Each value a row carries costs the SQLite driver an allocation, so the row is kept
    // narrow: kind, origin and derivation packed in one number (four bits each; the
    // derivation one up, so none is 0), and the two ends of the link in two columns
    // whatever its kind.
    let columns = format!(
        "{} * 256 + {} * 16 + (CASE WHEN derivation IS NULL THEN 0 ELSE 1 + {} END), \
         CASE kind WHEN 'derived_from' THEN version_id ELSE consumer_id END, \
         CASE kind WHEN 'uses' THEN model_id WHEN 'derived_from' THEN parent_version_id \
              ELSE target_consumer_id END, \
         version_range, origin_name, first_seen, last_seen, observations",
        position_of("kind", EdgeKind::ALL.iter().map(|k| k.as_str())),
        position_of("origin", EdgeOrigin::ALL.iter().map(|o| o.as_str())),
        position_of("derivation", Derivation::ALL.iter().map(|d| d.as_str())),
    );
    let mut pager = Pager::new(&db, "inventory_edges", &columns);
    while let Some(rows) = pager.next().await? {
        let mut page = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = r.try_get_by_index::<i64>(0)?;
            let code = i64::from(r.try_get_by_index::<i32>(1)?);
            let kind = from_position(EdgeKind::ALL, code >> 8, id)?;
            let origin = from_position(EdgeOrigin::ALL, (code >> 4) & 15, id)?;
            let derivation = match (code & 15) - 1 {
                -1 => None,
                d => Some(from_position(Derivation::ALL, d, id)?.as_str().to_owned()),
            };
            let from: Option<i64> = r.try_get_by_index(2)?;
            let to: Option<i64> = r.try_get_by_index(3)?;
            let mut row = inventory_edge::Model {
                id,
                edge_key: String::new(),
                kind: String::new(),
                consumer_id: None,
                target_consumer_id: None,
                model_id: None,
                version_range: r.try_get_by_index(4)?,
                version_id: None,
                parent_version_id: None,
                derivation,
                origin: String::new(),
                origin_name: r.try_get_by_index(5)?,
                first_seen: r.try_get_by_index(6)?,
                last_seen: r.try_get_by_index(7)?,
                observations: r.try_get_by_index(8)?,
            };
            match kind {
                EdgeKind::Uses => (row.consumer_id, row.model_id) = (from, to),
                EdgeKind::DerivedFrom => (row.version_id, row.parent_version_id) = (from, to),
                EdgeKind::DependsOn => (row.consumer_id, row.target_consumer_id) = (from, to),
            }
            page.push(edge_of(&row, kind, origin, &mut interner)?);
        }
        if pages.send(page).await.is_err() {
            // The loader gave up (its own read failed); nothing is waiting for the rest.
            break;
        }
    }
    Ok(())
}

/// Reads a table in pages of [`LOAD_PAGE`] rows by ascending id, so memory stays bounded by
/// the graph itself; the id is always column 0, the columns asked for follow it.
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

    async fn next(&mut self) -> Result<Option<Vec<sea_orm::QueryResult>>, StoreError> {
        // `after` is an id read back from the table, never outside input.
        let sql = format!(
            "SELECT id, {} FROM {} WHERE id > {} ORDER BY id LIMIT {LOAD_PAGE}",
            self.columns, self.table, self.after
        );
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = last.try_get_by_index::<i64>(0)?;
        Ok(Some(rows))
    }
}

async fn for_each_row(
    db: &DatabaseConnection,
    table: &str,
    columns: &str,
    mut each: impl FnMut(&sea_orm::QueryResult) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut pager = Pager::new(db, table, columns);
    while let Some(rows) = pager.next().await? {
        rows.iter().try_for_each(&mut each)?;
    }
    Ok(())
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

/// Shares the many equal ranges and origin names of a large graph.
#[derive(Default)]
pub struct Interner {
    ranges: HashMap<String, Arc<VersionRange>>,
    names: HashMap<String, Arc<str>>,
}

impl Interner {
    fn range(&mut self, raw: &str) -> Result<Arc<VersionRange>, StoreError> {
        if let Some(r) = self.ranges.get(raw) {
            return Ok(r.clone());
        }
        let r = Arc::new(parse_stored(VersionRange::parse(raw))?);
        self.ranges.insert(raw.to_owned(), r.clone());
        Ok(r)
    }

    fn name(&mut self, raw: &str) -> Arc<str> {
        self.names
            .entry(raw.to_owned())
            .or_insert_with(|| Arc::from(raw))
            .clone()
    }
}

fn to_edge(r: &inventory_edge::Model, interner: &mut Interner) -> Result<EdgeRecord, StoreError> {
    let kind = parse_stored(EdgeKind::parse(&r.kind))?;
    let origin = parse_stored(EdgeOrigin::parse(&r.origin))?;
    edge_of(r, kind, origin, interner)
}

/// An edge row whose kind and origin are already read (the load reads them by position).
fn edge_of(
    r: &inventory_edge::Model,
    kind: EdgeKind,
    origin: EdgeOrigin,
    interner: &mut Interner,
) -> Result<EdgeRecord, StoreError> {
    let missing = |what: &str| StoreError::Corrupt(format!("edge {} has no {what}", r.id));
    let link = match kind {
        EdgeKind::Uses => Link::Uses {
            consumer: r.consumer_id.ok_or_else(|| missing("consumer"))?,
            model: r.model_id.ok_or_else(|| missing("model"))?,
            range: interner.range(r.version_range.as_deref().ok_or_else(|| missing("range"))?)?,
        },
        EdgeKind::DerivedFrom => Link::DerivedFrom {
            version: r.version_id.ok_or_else(|| missing("version"))?,
            parent: r.parent_version_id.ok_or_else(|| missing("parent"))?,
            derivation: parse_stored(Derivation::parse(
                r.derivation.as_deref().unwrap_or("other"),
            ))?,
        },
        EdgeKind::DependsOn => Link::DependsOn {
            consumer: r.consumer_id.ok_or_else(|| missing("consumer"))?,
            target: r.target_consumer_id.ok_or_else(|| missing("target"))?,
        },
    };
    Ok(EdgeRecord {
        id: r.id,
        link,
        origin,
        origin_name: interner.name(&r.origin_name),
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        observations: u64::try_from(r.observations).unwrap_or(0),
    })
}

fn to_consumer(r: &consumer::Model) -> Result<Consumer, StoreError> {
    let contacts: Vec<String> = serde_json::from_str(&r.contacts)
        .map_err(|e| StoreError::Corrupt(format!("contacts of consumer {}: {e}", r.name)))?;
    Ok(Consumer {
        name: parse_stored(ConsumerName::parse(&r.name))?,
        kind: parse_stored(ConsumerKind::parse(&r.kind))?,
        owner_team: parse_stored(TeamName::parse(&r.owner_team))?,
        environment: parse_stored(Environment::parse(&r.environment))?,
        contacts: parse_stored(Contacts::parse(&contacts))?,
        webhook_url: r
            .webhook_url
            .as_deref()
            .map(WebhookUrl::parse)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        discovered: r.discovered,
    })
}

fn to_model_info(id: i64, name: &str, team: &str) -> Result<ModelInfo, StoreError> {
    Ok(ModelInfo {
        id,
        name: parse_stored(ModelName::parse(name))?,
        owner_team: parse_stored(TeamName::parse(team))?,
    })
}

fn stored_version(major: i32, minor: i32, patch: i32) -> Result<Version, StoreError> {
    let c = |v: i32| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative version part {v}")))
    };
    Ok(Version::new(c(major)?, c(minor)?, c(patch)?))
}

fn parse_stored<T>(r: Result<T, crate::domain::ParseError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn contacts_json(c: &Contacts) -> String {
    let list: Vec<&str> = c.as_slice().iter().map(|e| e.as_str()).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}
