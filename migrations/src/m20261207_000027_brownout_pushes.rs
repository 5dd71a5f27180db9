//! What enforcement points were last told of each retirement's brownouts: the ETag of
//! its part of `GET /v1/brownouts` when the push went out, so the retirement check
//! pushes again only when that part changed (a dependent acknowledged, the retirement
//! ended), and once across replicas.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BrownoutPushes {
    Table,
    RetirementId,
    Etag,
    ToldAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use BrownoutPushes as B;
        manager
            .create_table(
                Table::create()
                    .table(B::Table)
                    .col(
                        ColumnDef::new(B::RetirementId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(B::Etag).string_len(64).not_null())
                    .col(
                        ColumnDef::new(B::ToldAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BrownoutPushes::Table).to_owned())
            .await
    }
}
