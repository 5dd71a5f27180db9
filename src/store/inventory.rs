//! Consumers, inventory edges and the inventory change sequence.
//!
//! Every committed inventory change inserts a row into `inventory_changes` naming what
//! changed; instances follow that sequence and read the named rows again, so applying a
//! change twice is harmless and the database stays the source of truth. A writer takes
//! the next revision itself (`max + 1`) rather than from a sequence: two writers on one
//! PostgreSQL database then collide on the primary key and one redoes its change, so
//! revisions commit in order and a reader never sees a gap that fills later. Old changes
//! are pruned ([`prune_changes`], never the newest); a reader that finds a gap at the
//! start of what it reads has fallen behind the pruning and loads the graph whole.

use super::StoreError;
use super::entities::{consumer, inventory_change, inventory_edge, model, model_version};
use crate::domain::{
    Consumer, ConsumerKind, ConsumerName, Contacts, Derivation, EdgeKind, EdgeOrigin, Environment,
    ModelName, TeamName, Version, VersionRange, WebhookUrl,
};
use crate::graph::{
    ConsumerId, EdgeId, EdgeRecord, Link, ModelId, ModelInfo, VersionId, VersionInfo,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::collections::HashMap;
use std::sync::Arc;

pub mod batch;
pub(crate) mod group;
mod load;
mod postgres;

pub use load::{Rows, read_all};

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
    id: impl Into<i64>,
) -> Result<i64, StoreError> {
    let id: i64 = id.into();
    let revision = head_revision(conn).await? + 1;
    inventory_change::ActiveModel {
        revision: Set(revision),
        at: Set(at),
        entity: Set(entity.as_str().to_owned()),
        entity_id: Set(id),
    }
    .insert(conn)
    .await?;
    super::notify::notify(conn, super::notify::Topic::Inventory).await?;
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

/// Deletes changes committed before `before`, except the newest, whose revision the next
/// writer continues from; returns how many.
pub async fn prune_changes(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let head = head_revision(conn).await?;
    let done = inventory_change::Entity::delete_many()
        .filter(inventory_change::Column::At.lt(before))
        .filter(inventory_change::Column::Revision.lt(head))
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
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

/// Changes after a revision, with the consumer and edge rows they name as they are now
/// (a removed row is absent).
#[derive(Debug, Default)]
pub struct ChangesRead {
    pub changes: Vec<Change>,
    pub consumers: HashMap<ConsumerId, Consumer>,
    pub edges: HashMap<EdgeId, EdgeRecord>,
}

/// The changes after `after`, in order, at most `limit`, with the rows they name: what a
/// follower reads to catch up. One statement on PostgreSQL, three elsewhere.
pub async fn changes_with_rows(
    conn: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<ChangesRead, StoreError> {
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        return postgres::changes_with_rows(conn, after, limit).await;
    }
    let changes = changes_after(conn, after, limit).await?;
    let ids = |entity| {
        changes
            .iter()
            .filter(move |c: &&Change| c.entity == entity)
            .map(|c| c.id)
    };
    let consumer_ids: Vec<_> = ids(Entity::Consumer).map(ConsumerId).collect();
    let edge_ids: Vec<_> = ids(Entity::Edge).map(EdgeId).collect();
    let consumers = batch::consumers_by_id(conn, &consumer_ids).await?;
    let edges = batch::edges_by_id(conn, &edge_ids).await?;
    Ok(ChangesRead {
        changes,
        consumers,
        edges,
    })
}

/// A consumer as stored, with who created it (a token's name, `cli:<user>`,
/// `webhook:<source>` or `scan:<source>`).
#[derive(Debug, Clone)]
pub struct ExistingConsumer {
    pub id: ConsumerId,
    pub consumer: Consumer,
    pub created_by: String,
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
    Ok(ConsumerId(row.id))
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
        id: Set(id.0),
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
        .map(|r| Ok((ConsumerId(r.id), to_consumer(&r)?)))
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

/// The dependents of retirement `retirement` that are derived stores, `(id, consumer)`,
/// by name: one query, however many dependents the retirement has.
pub async fn derived_store_dependents(
    conn: &impl ConnectionTrait,
    retirement: crate::domain::RetirementId,
) -> Result<Vec<(ConsumerId, Consumer)>, StoreError> {
    use super::entities::retirement_dependent as dependent;
    use sea_orm::sea_query::Query;
    let of_retirement = Query::select()
        .column(dependent::Column::ConsumerId)
        .from(dependent::Entity)
        .and_where(dependent::Column::RetirementId.eq(retirement.0))
        .to_owned();
    consumer::Entity::find()
        .filter(consumer::Column::Kind.eq(crate::domain::ConsumerKind::DerivedStore.as_str()))
        .filter(consumer::Column::Id.in_subquery(of_retirement))
        .order_by_asc(consumer::Column::Name)
        .all(conn)
        .await?
        .iter()
        .map(|r| Ok((ConsumerId(r.id), to_consumer(r)?)))
        .collect()
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
    let edges: Vec<i64> = inventory_edge::Entity::find()
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
    consumer::Entity::delete_by_id(id.0).exec(conn).await?;
    Ok(edges.into_iter().map(EdgeId).collect())
}

pub struct Sighting<'a> {
    pub link: &'a Link,
    pub origin: EdgeOrigin,
    pub origin_name: &'a str,
    /// The latest observation this sighting stands for.
    pub at: DateTime<Utc>,
    /// The earliest, when earlier than `at` (a scan's lines carry their own times).
    pub since: Option<DateTime<Utc>>,
    /// How many observations this sighting stands for (a scan may count many lines).
    pub count: u64,
}

/// Records one sighting of a link from one origin: creates its edge row, or moves the
/// row's seen times outward (a backfill may be older than what is known) and counts the
/// observation. Returns the row and whether it is new.
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
        let first_seen = row.first_seen.min(s.since.unwrap_or(s.at));
        let observations = row.observations.saturating_add(count);
        inventory_edge::Entity::update_many()
            .col_expr(inventory_edge::Column::LastSeen, Expr::value(last_seen))
            .col_expr(inventory_edge::Column::FirstSeen, Expr::value(first_seen))
            .col_expr(
                inventory_edge::Column::Observations,
                Expr::value(observations),
            )
            .filter(inventory_edge::Column::Id.eq(row.id))
            .exec(conn)
            .await?;
        let mut record = to_edge(&row, &mut Interner::default())?;
        record.last_seen = last_seen;
        record.first_seen = first_seen;
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
        first_seen: Set(s.since.unwrap_or(s.at).min(s.at)),
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
            row.consumer_id = Set(Some(consumer.0));
            row.model_id = Set(Some(model.0));
            row.version_range = Set(Some(range.to_string()));
        }
        Link::DerivedFrom {
            version,
            parent,
            derivation,
        } => {
            row.version_id = Set(Some(version.0));
            row.parent_version_id = Set(Some(parent.0));
            row.derivation = Set(Some(derivation.as_str().to_owned()));
        }
        Link::DependsOn { consumer, target } => {
            row.consumer_id = Set(Some(consumer.0));
            row.target_consumer_id = Set(Some(target.0));
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
    id: ModelId,
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
        id: VersionId(v.id),
        model: ModelId(v.model_id),
        model_name: parse_stored(ModelName::parse(&m.name))?,
        version: stored_version(v.major, v.minor, v.patch)?,
    }))
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
            consumer: ConsumerId(r.consumer_id.ok_or_else(|| missing("consumer"))?),
            model: ModelId(r.model_id.ok_or_else(|| missing("model"))?),
            range: interner.range(r.version_range.as_deref().ok_or_else(|| missing("range"))?)?,
        },
        EdgeKind::DerivedFrom => Link::DerivedFrom {
            version: VersionId(r.version_id.ok_or_else(|| missing("version"))?),
            parent: VersionId(r.parent_version_id.ok_or_else(|| missing("parent"))?),
            derivation: parse_stored(Derivation::parse(
                r.derivation.as_deref().unwrap_or("other"),
            ))?,
        },
        EdgeKind::DependsOn => Link::DependsOn {
            consumer: ConsumerId(r.consumer_id.ok_or_else(|| missing("consumer"))?),
            target: ConsumerId(r.target_consumer_id.ok_or_else(|| missing("target"))?),
        },
    };
    Ok(EdgeRecord {
        id: EdgeId(r.id),
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
        id: ModelId(id),
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
