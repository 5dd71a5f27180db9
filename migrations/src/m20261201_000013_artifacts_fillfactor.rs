//! PostgreSQL only: leave a third of each `artifacts` page free, so that re-wrapping a data
//! key (a KEK rotation rewrites every surviving row's `kek_epoch` and `wrapped_key`, neither
//! indexed) is a HOT update on the same page instead of a new row version in every index.
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
                .execute_unprepared("ALTER TABLE artifacts SET (fillfactor = 70)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE artifacts RESET (fillfactor)")
                .await?;
        }
        Ok(())
    }
}
