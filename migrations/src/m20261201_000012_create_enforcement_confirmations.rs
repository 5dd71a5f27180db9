//! Decommissioning (issue 6): which enforcement points were told of a kill switch, and
//! when each confirmed (by a signed acknowledgement or by polling the new list), or was
//! escalated for not confirming.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EnforcementConfirmations {
    Table,
    RetirementId,
    ConsumerId,
    Point,
    ToldAt,
    Etag,
    ConfirmedAt,
    Via,
    EscalatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use EnforcementConfirmations as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(ColumnDef::new(E::RetirementId).big_integer().not_null())
                    .col(ColumnDef::new(E::ConsumerId).big_integer().not_null())
                    .col(ColumnDef::new(E::Point).string_len(128).not_null())
                    .col(
                        ColumnDef::new(E::ToldAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(E::Etag).string_len(64).not_null())
                    .col(
                        ColumnDef::new(E::ConfirmedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(E::Via).string_len(16).null())
                    .col(
                        ColumnDef::new(E::EscalatedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(Index::create().col(E::RetirementId).col(E::ConsumerId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(EnforcementConfirmations::Table)
                    .to_owned(),
            )
            .await
    }
}
