//! When a version last became production, so rollback can find the previous one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    PromotedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ModelVersions::Table)
                    .add_column(
                        ColumnDef::new(ModelVersions::PromotedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ModelVersions::Table)
                    .drop_column(ModelVersions::PromotedAt)
                    .to_owned(),
            )
            .await
    }
}
