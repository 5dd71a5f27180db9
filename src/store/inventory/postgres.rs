//! [`batch`](super::batch)'s statements on PostgreSQL: one text each, whatever the number
//! of rows, the rows sent as one JSON parameter (see `store::pg_rows`), so a group commit
//! costs one round trip per table and every plan is made once. They return the rows as
//! PostgreSQL has them; `batch` makes them into what its callers get, as for SQLite.

use super::{Entity, Interner, NewConsumer, to_consumer, to_edge};
use crate::domain::ConsumerName;
use crate::graph::{ConsumerId, EdgeId};
use crate::store::entities::{consumer, inventory_edge};
use crate::store::notify::Topic;
use crate::store::{StoreError, pg_rows};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, Value};

/// The consumers named in `$1` (a JSON array of names), each probed in the unique index.
const CONSUMERS_BY_NAME: &str = "SELECT c.* FROM jsonb_array_elements_text(CAST($1 AS jsonb)) \
     AS n(name) CROSS JOIN LATERAL (SELECT * FROM consumers WHERE consumers.name = n.name \
     OFFSET 0) AS c";

/// The rows of the consumers of these names that exist, each found through the unique
/// index on name.
pub(super) async fn consumers_named(
    conn: &impl ConnectionTrait,
    names: &[&ConsumerName],
) -> Result<Vec<consumer::Model>, StoreError> {
    let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
    Ok(consumer::Entity::find()
        .from_raw_sql(pg_rows::statement(
            CONSUMERS_BY_NAME,
            [pg_rows::rows(&names)?],
        ))
        .all(conn)
        .await?)
}

/// As [`super::batch::upsert_consumers`], in one statement; returns the rows as written.
pub(super) async fn upsert_consumers(
    conn: &impl ConnectionTrait,
    declared: &[NewConsumer<'_>],
) -> Result<Vec<consumer::Model>, StoreError> {
    let rows: Vec<consumer::ActiveModel> = declared.iter().map(super::new_consumer_row).collect();
    Ok(consumer::Entity::find()
        .from_raw_sql(pg_rows::statement(
            "INSERT INTO consumers (name, kind, owner_team, environment, contacts, \
             webhook_url, webhook_secret, discovered, created_at, created_by, updated_at) \
             SELECT name, kind, owner_team, environment, contacts, webhook_url, \
             webhook_secret, discovered, created_at, created_by, updated_at \
             FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS r(name text, kind text, \
             owner_team text, environment text, contacts text, webhook_url text, \
             webhook_secret text, discovered boolean, created_at timestamptz, \
             created_by text, updated_at timestamptz) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             owner_team = excluded.owner_team, environment = excluded.environment, \
             contacts = excluded.contacts, discovered = excluded.discovered, \
             updated_at = excluded.updated_at \
             RETURNING *",
            [pg_rows::active_rows(&rows)?],
        ))
        .all(conn)
        .await?)
}

/// As [`super::batch::record_edges`], the distinct rows in one statement; returns them as
/// written.
pub(super) async fn upsert_edges(
    conn: &impl ConnectionTrait,
    rows: &[inventory_edge::ActiveModel],
) -> Result<Vec<inventory_edge::Model>, StoreError> {
    Ok(inventory_edge::Entity::find()
        .from_raw_sql(pg_rows::statement(
            "INSERT INTO inventory_edges (edge_key, kind, consumer_id, target_consumer_id, \
             model_id, version_range, version_id, parent_version_id, derivation, origin, \
             origin_name, first_seen, last_seen, observations) \
             SELECT edge_key, kind, consumer_id, target_consumer_id, model_id, \
             version_range, version_id, parent_version_id, derivation, origin, \
             origin_name, first_seen, last_seen, observations \
             FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS r(edge_key text, kind text, \
             consumer_id bigint, target_consumer_id bigint, model_id bigint, \
             version_range text, version_id bigint, parent_version_id bigint, \
             derivation text, origin text, origin_name text, first_seen timestamptz, \
             last_seen timestamptz, observations bigint) \
             ON CONFLICT (edge_key, origin, origin_name) DO UPDATE SET \
             last_seen = GREATEST(excluded.last_seen, inventory_edges.last_seen), \
             observations = inventory_edges.observations + excluded.observations \
             RETURNING *",
            [pg_rows::active_rows(rows)?],
        ))
        .all(conn)
        .await?)
}

/// As [`super::batch::record_changes`]: the head read, the changes appended after it
/// and the inventory's notification sent, in one statement. `changes` is not empty.
pub(super) async fn record_changes(
    conn: &impl ConnectionTrait,
    at: DateTime<Utc>,
    changes: &[(Entity, i64)],
) -> Result<i64, StoreError> {
    #[derive(serde::Serialize)]
    struct Row {
        entity: &'static str,
        entity_id: i64,
    }
    let rows: Vec<Row> = changes
        .iter()
        .map(|&(entity, id)| Row {
            entity: entity.as_str(),
            entity_id: id,
        })
        .collect();
    let sql = format!(
        "WITH head AS (SELECT COALESCE(MAX(revision), 0) AS revision FROM inventory_changes), \
         added AS (INSERT INTO inventory_changes (revision, at, entity, entity_id) \
         SELECT head.revision + c.n, CAST($2 AS timestamptz), c.entity, c.entity_id \
         FROM head, ROWS FROM (jsonb_to_recordset(CAST($1 AS jsonb)) \
         AS (entity text, entity_id bigint)) WITH ORDINALITY AS c(entity, entity_id, n) \
         RETURNING revision) \
         SELECT MAX(added.revision) AS revision FROM added, \
         (SELECT pg_notify('{}', current_setting('application_name'))) AS notified",
        Topic::Inventory.channel()
    );
    let row = conn
        .query_one_raw(pg_rows::statement(
            &sql,
            [pg_rows::rows(&rows)?, Value::from(pg_rows::time(at))],
        ))
        .await?
        .ok_or_else(|| StoreError::Corrupt("no revision came back".into()))?;
    let revision: Option<i64> = row.try_get("", "revision")?;
    revision.ok_or_else(|| StoreError::Corrupt("the changes were not appended".into()))
}

/// As [`super::changes_with_rows`]: the changes and the rows they name in one statement,
/// each row found through its primary key.
pub(super) async fn changes_with_rows(
    conn: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<super::ChangesRead, StoreError> {
    let prefixed = |table: &str, prefix: &str, columns: Vec<&str>| {
        columns
            .into_iter()
            .map(|c| format!("{table}.{c} AS {prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT ch.revision, ch.entity, ch.entity_id, {}, {} \
         FROM (SELECT revision, entity, entity_id FROM inventory_changes \
         WHERE revision > $1 ORDER BY revision LIMIT $2) AS ch \
         LEFT JOIN LATERAL (SELECT * FROM consumers WHERE ch.entity = 'consumer' \
         AND consumers.id = ch.entity_id OFFSET 0) AS c ON true \
         LEFT JOIN LATERAL (SELECT * FROM inventory_edges WHERE ch.entity = 'edge' \
         AND inventory_edges.id = ch.entity_id OFFSET 0) AS e ON true \
         ORDER BY ch.revision",
        prefixed("c", "c_", column_names::<consumer::Entity>()),
        prefixed("e", "e_", column_names::<inventory_edge::Entity>()),
    );
    let rows = conn
        .query_all_raw(pg_rows::statement(
            &sql,
            [Value::from(after), Value::from(limit as i64)],
        ))
        .await?;
    let mut read = super::ChangesRead::default();
    let mut interner = Interner::default();
    for row in &rows {
        let change = super::Change {
            revision: row.try_get("", "revision")?,
            entity: Entity::parse(&row.try_get::<String>("", "entity")?)?,
            id: row.try_get("", "entity_id")?,
        };
        if row.try_get::<Option<i64>>("", "c_id")?.is_some() {
            let r = consumer::Model::from_query_result(row, "c_")?;
            read.consumers.insert(ConsumerId(r.id), to_consumer(&r)?);
        }
        if row.try_get::<Option<i64>>("", "e_id")?.is_some() {
            let r = inventory_edge::Model::from_query_result(row, "e_")?;
            read.edges.insert(EdgeId(r.id), to_edge(&r, &mut interner)?);
        }
        read.changes.push(change);
    }
    Ok(read)
}

fn column_names<E: EntityTrait>() -> Vec<&'static str> {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter().map(|c| c.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    /// The lookups' plans probe the index whatever PostgreSQL knows of the tables: a
    /// generic plan made while they are empty, which a connection keeps as they grow,
    /// never scans one whole (as the `IN`-list lookups' plans did). On the server
    /// `tests/run` starts; fails, never passes, without it.
    #[tokio::test]
    async fn lookups_probe_the_index_even_in_a_generic_plan_made_on_empty_tables() {
        let (name, url) = crate::testing::create_scratch_database("sunset_test_plans").await;
        let dir = tempfile::tempdir().expect("tmp");
        let settings = crate::config::Settings {
            data_dir: dir.path().to_path_buf(),
            database: crate::config::DatabaseSettings {
                url: Some(crate::config::DatabaseUrl::new(url)),
            },
            ..crate::config::Settings::default()
        };
        let services = crate::app::open(&settings, std::sync::Arc::new(crate::clock::SystemClock))
            .await
            .expect("open");
        let tx = services.store().reader().begin().await.expect("begin");
        tx.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
            .await
            .expect("set");
        for (statement, sql, table) in [
            ("by_name", super::CONSUMERS_BY_NAME, "consumers"),
            (
                "received",
                crate::store::webhook_sources::RECEIVED_AMONG_PG,
                "webhook_receipts",
            ),
        ] {
            tx.execute_unprepared(&format!("PREPARE {statement}(text) AS {sql}"))
                .await
                .expect("prepare");
            let rows = tx
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("EXPLAIN EXECUTE {statement}('[]')"),
                ))
                .await
                .expect("explain");
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String>("", "QUERY PLAN").expect("line"))
                .collect();
            let plan = plan.join("\n");
            assert!(plan.contains("Index Scan"), "{statement}: {plan}");
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "{statement}: {plan}"
            );
        }
        tx.rollback().await.expect("rollback");
        drop(services);
        crate::testing::drop_scratch_database(&name).await;
    }
}
