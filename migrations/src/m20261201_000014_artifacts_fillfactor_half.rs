//! PostgreSQL only: leave half of each `artifacts` page free (migration 13 left a third).
//! A KEK rotation re-wraps every surviving row in one transaction, and the old row
//! versions stay on the page until it commits, so a page can hold each of its rows twice
//! only when half of it is free; with a third free, 60% of the updates in the rotation
//! benchmark still left the page and wrote a new entry in every index. The table holds
//! metadata only (the blobs are files), so doubling its pages costs little.
//! It applies to pages written from now on. SQLite has no such setting.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE artifacts SET (fillfactor = 50)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE artifacts SET (fillfactor = 70)")
                .await?;
        }
        Ok(())
    }
}
