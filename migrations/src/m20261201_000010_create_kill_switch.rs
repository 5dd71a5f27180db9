//! Decommissioning (issue 6), first part: the versions a kill switch has disabled, and
//! the steps of executing a retirement, each with its time and outcome, so an execution
//! that dies resumes where it stopped.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DisabledVersions {
    Table,
    VersionId,
    ModelName,
    Version,
    RetirementId,
    DisabledAt,
    DisabledBy,
    Reason,
}

#[derive(DeriveIden)]
enum DecommissionSteps {
    Table,
    RetirementId,
    Step,
    StartedAt,
    FinishedAt,
    Outcome,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DisabledVersions::Table)
                    .col(
                        ColumnDef::new(DisabledVersions::VersionId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DisabledVersions::ModelName)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DisabledVersions::Version)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DisabledVersions::RetirementId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(DisabledVersions::DisabledAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DisabledVersions::DisabledBy)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(DisabledVersions::Reason).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(DisabledVersions::Table, DisabledVersions::VersionId)
                            .to(ModelVersions::Table, ModelVersions::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DecommissionSteps::Table)
                    .col(
                        ColumnDef::new(DecommissionSteps::RetirementId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DecommissionSteps::Step)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DecommissionSteps::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DecommissionSteps::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(DecommissionSteps::Outcome).text().null())
                    .primary_key(
                        Index::create()
                            .col(DecommissionSteps::RetirementId)
                            .col(DecommissionSteps::Step),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DecommissionSteps::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DisabledVersions::Table).to_owned())
            .await
    }
}
