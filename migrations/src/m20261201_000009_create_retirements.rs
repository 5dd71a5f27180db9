//! Retirements (issue 5): the retirement itself, the dependents it was announced to
//! (each with its own notice clock and acknowledgement), the notice outbox the delivery
//! worker drains, and claimed runs of periodic jobs (reminders, deadline checks), so
//! several instances run each tick once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Retirements {
    Table,
    Id,
    ModelId,
    ModelName,
    Selection,
    AffectedVersions,
    Reason,
    EffectiveAt,
    ReplacementModel,
    ReplacementVersion,
    State,
    Sequence,
    DecisionNote,
    CreatedAt,
    CreatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RetirementDependents {
    Table,
    RetirementId,
    ConsumerId,
    ConsumerName,
    FoundAt,
    FoundBy,
    Path,
    NoticeEndsAt,
    NextReminderAt,
    NotifiedAt,
    AcknowledgedAt,
    AcknowledgedBy,
    LastTrafficAt,
    ExtensionState,
    ExtensionUntil,
    ExtensionReason,
    OverrideNote,
    OverriddenBy,
    OverriddenAt,
}

#[derive(DeriveIden)]
enum Notices {
    Table,
    Id,
    RetirementId,
    ConsumerId,
    Kind,
    Channel,
    Recipients,
    Payload,
    State,
    Attempts,
    NextAttemptAt,
    LastAttemptAt,
    LastError,
    DeliveredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Job,
    Tick,
    ClaimedBy,
    ClaimedAt,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
}

fn at(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn at_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Retirements::Table)
                    .col(
                        ColumnDef::new(Retirements::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Retirements::ModelId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Retirements::ModelName)
                            .string_len(100)
                            .not_null(),
                    )
                    // As governance wrote it: `2.1.0`, `^1`, `*`.
                    .col(
                        ColumnDef::new(Retirements::Selection)
                            .string_len(64)
                            .not_null(),
                    )
                    // JSON array of the versions the selection matched when scheduled.
                    .col(
                        ColumnDef::new(Retirements::AffectedVersions)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Retirements::Reason).text().not_null())
                    .col(at(Retirements::EffectiveAt))
                    .col(
                        ColumnDef::new(Retirements::ReplacementModel)
                            .string_len(100)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Retirements::ReplacementVersion)
                            .string_len(64)
                            .null(),
                    )
                    .col(ColumnDef::new(Retirements::State).string_len(32).not_null())
                    // RFC 5545 SEQUENCE: grows with every change a calendar should show.
                    .col(
                        ColumnDef::new(Retirements::Sequence)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Retirements::DecisionNote).text().null())
                    .col(at(Retirements::CreatedAt))
                    .col(
                        ColumnDef::new(Retirements::CreatedBy)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(at(Retirements::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Retirements::Table, Retirements::ModelId)
                            .to(Models::Table, Models::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("retirements_by_state")
                    .table(Retirements::Table)
                    .col(Retirements::State)
                    .col(Retirements::EffectiveAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RetirementDependents::Table)
                    .col(
                        ColumnDef::new(RetirementDependents::RetirementId)
                            .big_integer()
                            .not_null(),
                    )
                    // No foreign key: a consumer removed from the inventory stays on
                    // the record of who was told.
                    .col(
                        ColumnDef::new(RetirementDependents::ConsumerId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetirementDependents::ConsumerName)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(at(RetirementDependents::FoundAt))
                    .col(
                        ColumnDef::new(RetirementDependents::FoundBy)
                            .string_len(32)
                            .not_null(),
                    )
                    // JSON: the explaining path when found.
                    .col(ColumnDef::new(RetirementDependents::Path).text().not_null())
                    .col(at(RetirementDependents::NoticeEndsAt))
                    .col(at_null(RetirementDependents::NextReminderAt))
                    .col(at_null(RetirementDependents::NotifiedAt))
                    .col(at_null(RetirementDependents::AcknowledgedAt))
                    .col(
                        ColumnDef::new(RetirementDependents::AcknowledgedBy)
                            .string_len(128)
                            .null(),
                    )
                    .col(at_null(RetirementDependents::LastTrafficAt))
                    .col(
                        ColumnDef::new(RetirementDependents::ExtensionState)
                            .string_len(16)
                            .null(),
                    )
                    .col(at_null(RetirementDependents::ExtensionUntil))
                    .col(
                        ColumnDef::new(RetirementDependents::ExtensionReason)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RetirementDependents::OverrideNote)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RetirementDependents::OverriddenBy)
                            .string_len(128)
                            .null(),
                    )
                    .col(at_null(RetirementDependents::OverriddenAt))
                    .primary_key(
                        Index::create()
                            .col(RetirementDependents::RetirementId)
                            .col(RetirementDependents::ConsumerId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                RetirementDependents::Table,
                                RetirementDependents::RetirementId,
                            )
                            .to(Retirements::Table, Retirements::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notices::Table)
                    // `ntc_…`: also the `webhook-id` and the email's Message-ID.
                    .col(
                        ColumnDef::new(Notices::Id)
                            .string_len(40)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Notices::RetirementId)
                            .big_integer()
                            .not_null(),
                    )
                    // Absent for escalations to the model's owners and governance.
                    .col(ColumnDef::new(Notices::ConsumerId).big_integer().null())
                    .col(ColumnDef::new(Notices::Kind).string_len(48).not_null())
                    .col(ColumnDef::new(Notices::Channel).string_len(16).not_null())
                    // JSON array of addresses (email); empty for a webhook, whose URL
                    // and secret are read from the consumer at each attempt.
                    .col(ColumnDef::new(Notices::Recipients).text().not_null())
                    .col(ColumnDef::new(Notices::Payload).text().not_null())
                    .col(ColumnDef::new(Notices::State).string_len(16).not_null())
                    .col(ColumnDef::new(Notices::Attempts).integer().not_null())
                    .col(at(Notices::NextAttemptAt))
                    .col(at_null(Notices::LastAttemptAt))
                    .col(ColumnDef::new(Notices::LastError).text().null())
                    .col(at_null(Notices::DeliveredAt))
                    .col(at(Notices::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Notices::Table, Notices::RetirementId)
                            .to(Retirements::Table, Retirements::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notices_due")
                    .table(Notices::Table)
                    .col(Notices::State)
                    .col(Notices::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notices_by_retirement")
                    .table(Notices::Table)
                    .col(Notices::RetirementId)
                    .col(Notices::ConsumerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .col(ColumnDef::new(JobRuns::Job).string_len(64).not_null())
                    .col(at(JobRuns::Tick))
                    .col(
                        ColumnDef::new(JobRuns::ClaimedBy)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(at(JobRuns::ClaimedAt))
                    .primary_key(Index::create().col(JobRuns::Job).col(JobRuns::Tick))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JobRuns::Table.into_iden(),
            Notices::Table.into_iden(),
            RetirementDependents::Table.into_iden(),
            Retirements::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
