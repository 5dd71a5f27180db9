//! The client address behind an audited change (AISVS 3.4.1: who, what, when, and from
//! where). Null for records written before it, and for the CLI and scheduled jobs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditRecords {
    Table,
    ClientIp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditRecords::Table)
                    .add_column(ColumnDef::new(AuditRecords::ClientIp).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditRecords::Table)
                    .drop_column(AuditRecords::ClientIp)
                    .to_owned(),
            )
            .await
    }
}
