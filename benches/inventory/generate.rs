//! The synthetic inventory, written straight into the tables (the one place sunset's own
//! write path is bypassed: a million audited mutations would take the bench an hour).
//!
//! The shape is drawn first as compact rows (an edge is a small enum; names, keys and
//! times are written out only as each row is inserted), then written: on SQLite as a
//! bulk load (`common::BulkLoad`: one transaction, one prepared statement per table, the
//! secondary indexes built afterwards), on PostgreSQL through sea-orm's `insert_many`.

use crate::common;
use crate::{Rng, Shape};
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use std::fmt::Write as _;
use std::time::Instant;
use sunset::service::Services;
use sunset::store::entities::{consumer, inventory_change, inventory_edge, model, model_version};

pub const HUBS: usize = 5;
const HUB_USERS: usize = 10_500;
const TEAMS: usize = 500;
const FIRST_ID: i64 = 1_000;

pub struct Generated {
    /// (model name, version text, version id) of every version.
    pub versions: Vec<(String, String, i64)>,
    pub hubs: Vec<usize>,
    pub edges: usize,
}

/// One edge of the shape; its id is its place in the list plus [`FIRST_ID`]. Model,
/// consumer and version numbers are places in their lists too.
#[derive(Clone, Copy)]
enum Edge {
    /// A consumer uses a model at one exact version (`1.{minor}.0`).
    Uses {
        consumer: u32,
        model: u32,
        minor: u8,
    },
    DependsOn {
        consumer: u32,
        target: u32,
    },
    /// A version (by id) fine-tuned from another.
    DerivedFrom {
        child: i64,
        parent: i64,
    },
}

/// The whole shape, before it is written.
struct Drawn {
    /// Per model, the ids of its versions (minor 0, 1, …).
    of_model: Vec<Vec<i64>>,
    edges: Vec<Edge>,
}

fn id(place: u32) -> i64 {
    FIRST_ID + i64::from(place)
}

/// Draws the shape: every model has 1 to 3 versions; a tenth of the models form
/// derivation chains 3 to 6 deep; five hubs have 10,500 direct users each; 15% of the
/// edges are consumer-to-consumer (mostly towards lower numbers, one in ten thousand the
/// other way); the other uses spread evenly, each pinning an exact version once.
fn draw(shape: Shape) -> Drawn {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut next_version = FIRST_ID;
    let of_model: Vec<Vec<i64>> = (0..shape.models)
        .map(|_| {
            let n = 1 + rng.below(3) as i64;
            let ids = (next_version..next_version + n).collect();
            next_version += n;
            ids
        })
        .collect();
    let mut edges = Vec::with_capacity(shape.edges);
    let mut i = HUBS;
    let chain_end = HUBS + shape.models / 10;
    while i < chain_end {
        let len = 3 + rng.below(4);
        for k in 1..len {
            if i + k >= chain_end {
                break;
            }
            let parent = *of_model[i + k - 1].last().expect("a version");
            let child = *of_model[i + k].last().expect("a version");
            edges.push(Edge::DerivedFrom { child, parent });
        }
        i += len;
    }
    let fast = || foldhash::fast::RandomState::default();
    let depends_target = shape.edges * 15 / 100;
    let mut pairs = std::collections::HashSet::with_capacity_and_hasher(depends_target, fast());
    let mut depends = 0;
    while depends < depends_target {
        let a = 1 + rng.below(shape.consumers - 1);
        let b = if rng.below(10_000) == 0 {
            (a + 1 + rng.below(5)).min(shape.consumers - 1)
        } else {
            rng.below(a)
        };
        if a == b || !pairs.insert((a as u32, b as u32)) {
            continue;
        }
        edges.push(Edge::DependsOn {
            consumer: a as u32,
            target: b as u32,
        });
        depends += 1;
    }
    drop(pairs);
    let mut seen = std::collections::HashSet::with_capacity_and_hasher(shape.edges, fast());
    let mut uses = |consumer: usize, model: usize, minor: usize, edges: &mut Vec<Edge>| {
        let (consumer, model, minor) = (consumer as u32, model as u32, minor as u8);
        if seen.insert((consumer, model, minor)) {
            edges.push(Edge::Uses {
                consumer,
                model,
                minor,
            });
        }
    };
    let hub_users = HUB_USERS.min(shape.consumers / 4);
    for h in 0..HUBS {
        // Hubs are used at their first version, so the hub question has one answer.
        for u in 0..hub_users {
            uses((h * hub_users + u) % shape.consumers, h, 0, &mut edges);
        }
    }
    while edges.len() < shape.edges {
        let c = rng.below(shape.consumers);
        let m = HUBS + rng.below(shape.models - HUBS);
        let v = rng.below(of_model[m].len());
        uses(c, m, v, &mut edges);
    }
    Drawn { of_model, edges }
}

/// Generates the inventory into `services`' database; on SQLite (`sqlite_file`) as a bulk
/// load. Prints how long drawing, inserting and indexing took.
pub async fn generate(
    services: &Services,
    shape: Shape,
    sqlite_file: Option<&std::path::Path>,
) -> Generated {
    let db = services.store().reader();
    let now = chrono::Utc::now();
    // A real version's provenance, so registry reads of generated rows parse.
    let provenance = common::seed_version(services, "seed").await.provenance;
    let started = Instant::now();
    let drawn = draw(shape);
    let drawn_in = started.elapsed();
    match sqlite_file {
        Some(file) => {
            let started = Instant::now();
            let tables = ["models", "model_versions", "consumers", "inventory_edges"];
            let load = common::BulkLoad::start(file, &tables);
            write_sqlite(&load, shape, &drawn, now, &provenance);
            let inserted_in = started.elapsed();
            let (indexed_in, checkpointed_in) = load.finish();
            println!(
                "generation: drawing {:.1} s, inserting {:.1} s, indexing {:.1} s, checkpoint {:.1} s",
                drawn_in.as_secs_f64(),
                inserted_in.as_secs_f64(),
                indexed_in.as_secs_f64(),
                checkpointed_in.as_secs_f64()
            );
        }
        None => write_with_sea_orm(db, shape, &drawn, now, &provenance).await,
    }
    inventory_change::Entity::insert(inventory_change::ActiveModel {
        revision: Set(1_000_000),
        at: Set(now),
        entity: Set("model".into()),
        entity_id: Set(FIRST_ID),
    })
    .exec_without_returning(db)
    .await
    .expect("change");
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        for table in ["models", "model_versions", "consumers", "inventory_edges"] {
            db.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            ))
            .await
            .expect("setval");
        }
    }
    db.execute_unprepared("ANALYZE").await.expect("analyze");
    let versions = drawn
        .of_model
        .iter()
        .enumerate()
        .flat_map(|(m, ids)| {
            ids.iter()
                .enumerate()
                .map(move |(minor, &vid)| (format!("m{m}"), format!("1.{minor}.0"), vid))
        })
        .collect();
    Generated {
        versions,
        hubs: (0..HUBS).collect(),
        edges: drawn.edges.len(),
    }
}

fn team(i: usize) -> String {
    format!("team-{}", i % TEAMS)
}

fn environment(consumer: usize) -> &'static str {
    if consumer.is_multiple_of(3) {
        "staging"
    } else {
        "production"
    }
}

/// An edge's columns that vary: key, kind, consumer, target consumer, model, version
/// range, version, parent version, derivation. `key` and `range` are written into the
/// buffers given, which are reused from row to row.
type EdgeColumns<'a> = (
    &'a str,
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    Option<&'static str>,
);

fn edge_columns<'a>(edge: Edge, key: &'a mut String, range: &'a mut String) -> EdgeColumns<'a> {
    key.clear();
    range.clear();
    match edge {
        Edge::Uses {
            consumer,
            model,
            minor,
        } => {
            let (c, m) = (id(consumer), id(model));
            let _ = write!(range, "1.{minor}.0");
            let _ = write!(key, "uses:{c}:{m}:{range}");
            (
                key,
                "uses",
                Some(c),
                None,
                Some(m),
                Some(range),
                None,
                None,
                None,
            )
        }
        Edge::DependsOn { consumer, target } => {
            let (c, t) = (id(consumer), id(target));
            let _ = write!(key, "depends_on:{c}:{t}");
            (
                key,
                "depends_on",
                Some(c),
                Some(t),
                None,
                None,
                None,
                None,
                None,
            )
        }
        Edge::DerivedFrom { child, parent } => {
            let _ = write!(key, "derived_from:{child}:{parent}");
            let fine_tune = Some("fine-tune");
            let (c, p) = (Some(child), Some(parent));
            (key, "derived_from", None, None, None, None, c, p, fine_tune)
        }
    }
}

/// Every row, many to a statement; values are bound where they are (times as the
/// RFC 3339 text the service writes, formatted once).
fn write_sqlite(
    load: &common::BulkLoad,
    shape: Shape,
    drawn: &Drawn,
    now: chrono::DateTime<chrono::Utc>,
    provenance: &str,
) {
    let now = now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    let now = now.as_str();
    let teams: Vec<String> = (0..TEAMS).map(team).collect();
    let mut name = String::new();
    let columns = [
        "id",
        "name",
        "owner_team",
        "tier",
        "description",
        "contacts",
        "created_at",
        "updated_at",
    ];
    load.insert_rows("models", &columns, shape.models, |m, row| {
        name.clear();
        let _ = write!(name, "m{m}");
        row.bind(id(m as u32))
            .bind(name.as_str())
            .bind(teams[m % TEAMS].as_str());
        row.bind("standard").bind("").bind("[]").bind(now).bind(now);
    });
    let versions: Vec<(u32, u8, i64)> = (drawn.of_model.iter().enumerate())
        .flat_map(|(m, ids)| {
            (ids.iter().enumerate()).map(move |(v, &vid)| (m as u32, v as u8, vid))
        })
        .collect();
    let columns = [
        "id",
        "model_id",
        "major",
        "minor",
        "patch",
        "status",
        "provenance",
        "created_by",
        "created_at",
        "status_changed_at",
        "promoted_at",
    ];
    load.insert_rows("model_versions", &columns, versions.len(), |i, row| {
        let (model, minor, vid) = versions[i];
        row.bind(vid)
            .bind(id(model))
            .bind(1)
            .bind(minor)
            .bind(0)
            .bind("production");
        row.bind(provenance)
            .bind("bench")
            .bind(now)
            .bind(now)
            .bind(None::<&str>);
    });
    let columns = [
        "id",
        "name",
        "kind",
        "owner_team",
        "environment",
        "contacts",
        "webhook_url",
        "webhook_secret",
        "discovered",
        "created_at",
        "created_by",
        "updated_at",
    ];
    load.insert_rows("consumers", &columns, shape.consumers, |c, row| {
        name.clear();
        let _ = write!(name, "c{c}");
        row.bind(id(c as u32)).bind(name.as_str()).bind("service");
        row.bind(teams[c % TEAMS].as_str())
            .bind(environment(c))
            .bind("[]");
        row.bind(None::<&str>).bind(None::<&str>).bind(false);
        row.bind(now).bind("bench").bind(now);
    });
    let columns = [
        "id",
        "edge_key",
        "kind",
        "consumer_id",
        "target_consumer_id",
        "model_id",
        "version_range",
        "version_id",
        "parent_version_id",
        "derivation",
        "origin",
        "origin_name",
        "first_seen",
        "last_seen",
        "observations",
    ];
    let (mut key, mut range) = (String::new(), String::new());
    load.insert_rows("inventory_edges", &columns, drawn.edges.len(), |i, row| {
        let (key, kind, consumer, target, model, range, version, parent, derivation) =
            edge_columns(drawn.edges[i], &mut key, &mut range);
        row.bind(FIRST_ID + i as i64).bind(key).bind(kind);
        row.bind(consumer)
            .bind(target)
            .bind(model)
            .bind(range)
            .bind(version)
            .bind(parent);
        row.bind(derivation)
            .bind("api")
            .bind("bench")
            .bind(now)
            .bind(now)
            .bind(1);
    });
}

/// The same rows through sea-orm, 1,000 to a statement (PostgreSQL).
async fn write_with_sea_orm(
    db: &sea_orm::DatabaseConnection,
    shape: Shape,
    drawn: &Drawn,
    now: chrono::DateTime<chrono::Utc>,
    provenance: &str,
) {
    let models = (0..shape.models).map(|m| model::ActiveModel {
        id: Set(id(m as u32)),
        name: Set(format!("m{m}")),
        owner_team: Set(team(m)),
        tier: Set("standard".into()),
        description: Set(String::new()),
        contacts: Set("[]".into()),
        created_at: Set(now),
        updated_at: Set(now),
    });
    common::insert_chunks(db, models.collect()).await;
    let versions = drawn.of_model.iter().enumerate().flat_map(|(m, ids)| {
        ids.iter()
            .enumerate()
            .map(move |(minor, &vid)| model_version::ActiveModel {
                id: Set(vid),
                model_id: Set(id(m as u32)),
                major: Set(1),
                minor: Set(minor as i32),
                patch: Set(0),
                status: Set("production".into()),
                provenance: Set(provenance.to_owned()),
                created_by: Set("bench".into()),
                created_at: Set(now),
                status_changed_at: Set(now),
                promoted_at: Set(None),
            })
    });
    common::insert_chunks(db, versions.collect()).await;
    let consumers = (0..shape.consumers).map(|c| consumer::ActiveModel {
        id: Set(id(c as u32)),
        name: Set(format!("c{c}")),
        kind: Set("service".into()),
        owner_team: Set(team(c)),
        environment: Set(environment(c).into()),
        contacts: Set("[]".into()),
        webhook_url: Set(None),
        webhook_secret: Set(None),
        discovered: Set(false),
        created_at: Set(now),
        created_by: Set("bench".into()),
        updated_at: Set(now),
    });
    common::insert_chunks(db, consumers.collect()).await;
    let (mut key, mut range) = (String::new(), String::new());
    let edges = drawn.edges.iter().enumerate().map(|(i, &edge)| {
        let (key, kind, consumer, target, model, range, version, parent, derivation) =
            edge_columns(edge, &mut key, &mut range);
        inventory_edge::ActiveModel {
            id: Set(FIRST_ID + i as i64),
            edge_key: Set(key.to_owned()),
            kind: Set(kind.into()),
            consumer_id: Set(consumer),
            target_consumer_id: Set(target),
            model_id: Set(model),
            version_range: Set(range.map(str::to_owned)),
            version_id: Set(version),
            parent_version_id: Set(parent),
            derivation: Set(derivation.map(str::to_owned)),
            origin: Set("api".into()),
            origin_name: Set("bench".into()),
            first_seen: Set(now),
            last_seen: Set(now),
            observations: Set(1),
        }
    });
    common::insert_chunks(db, edges.collect()).await;
}
