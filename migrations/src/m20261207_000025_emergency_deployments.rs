//! Emergency deployments (AISVS 3.2.4): a version put in production without passed
//! validations, on a risk assessment, approved by a security actor who did not ask, for
//! a limited time after which it must have passed its validations or is rolled back.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmergencyDeployments {
    Table,
    Id,
    VersionId,
    RiskAssessment,
    RequestedBy,
    RequestedAt,
    ValidHours,
    ApprovedBy,
    ApprovedAt,
    ExpiresAt,
    /// requested, active, validated, rolled_back, rollback_refused, superseded, withdrawn.
    State,
    SettledAt,
    Outcome,
    /// The state the model's contacts were last told of.
    NotifiedState,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use EmergencyDeployments as E;
        let at = |c: E| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(
                        ColumnDef::new(E::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(E::VersionId).big_integer().not_null())
                    .col(ColumnDef::new(E::RiskAssessment).text().not_null())
                    .col(ColumnDef::new(E::RequestedBy).string_len(64).not_null())
                    .col(
                        ColumnDef::new(E::RequestedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(E::ValidHours).integer().not_null())
                    .col(ColumnDef::new(E::ApprovedBy).string_len(64).null())
                    .col(at(E::ApprovedAt))
                    .col(at(E::ExpiresAt))
                    .col(ColumnDef::new(E::State).string_len(24).not_null())
                    .col(at(E::SettledAt))
                    .col(ColumnDef::new(E::Outcome).text().null())
                    .col(ColumnDef::new(E::NotifiedState).string_len(24).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("emergency_deployments_by_version")
                    .table(E::Table)
                    .col(E::VersionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmergencyDeployments::Table).to_owned())
            .await
    }
}
