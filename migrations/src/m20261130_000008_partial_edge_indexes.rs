//! Each inventory edge sets two of its five id columns (a `uses` edge its consumer and
//! model, a derivation its two versions, a `depends_on` its two consumers), yet every
//! insert wrote all five indexes, three of them with a NULL no query looks up. Partial
//! indexes (`WHERE col IS NOT NULL`) hold only the rows that name something; both
//! planners still use them for `col = ?`, which implies the column is not NULL.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The full indexes migration 000006 created, their columns, and the partial indexes
/// that replace them (new names: an index is created before the old one is dropped).
const INDEXES: [(&str, &str, &str); 5] = [
    ("ix_edges_consumer", "consumer_id", "ix_edges_consumer_set"),
    (
        "ix_edges_target_consumer",
        "target_consumer_id",
        "ix_edges_target_consumer_set",
    ),
    ("ix_edges_model", "model_id", "ix_edges_model_set"),
    ("ix_edges_version", "version_id", "ix_edges_version_set"),
    (
        "ix_edges_parent_version",
        "parent_version_id",
        "ix_edges_parent_version_set",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (full, column, partial) in INDEXES {
            let partial_sql = format!(
                "CREATE INDEX {partial} ON inventory_edges ({column}) WHERE {column} IS NOT NULL"
            );
            replace(manager, &partial_sql, full).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (full, column, partial) in INDEXES {
            let full_sql = format!("CREATE INDEX {full} ON inventory_edges ({column})");
            replace(manager, &full_sql, partial).await?;
        }
        Ok(())
    }
}

/// Creates an index, then drops the one it replaces. The same SQL on SQLite and
/// PostgreSQL; names are the constants above, not input.
async fn replace(manager: &SchemaManager<'_>, create: &str, old: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(create).await?;
    db.execute_unprepared(&format!("DROP INDEX {old}")).await?;
    Ok(())
}
