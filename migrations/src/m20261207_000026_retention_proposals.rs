//! Retention proposals (AISVS 3.6.1, 3.3.5): a deprecated version the model's policy no
//! longer keeps, proposed for retirement to governance (or scheduled by the service after
//! the policy's quiet period). One per version, ever: a dismissed version is not
//! proposed again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RetentionProposals {
    Table,
    Id,
    ModelId,
    VersionId,
    /// retention or max_versions.
    Reason,
    /// The rule's finding in words.
    Why,
    /// proposed, accepted, dismissed, lapsed, scheduled.
    State,
    ProposedAt,
    DecidedAt,
    DecidedBy,
    Note,
    RetirementId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RetentionProposals as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(
                        ColumnDef::new(R::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(R::ModelId).big_integer().not_null())
                    .col(ColumnDef::new(R::VersionId).big_integer().not_null())
                    .col(ColumnDef::new(R::Reason).string_len(16).not_null())
                    .col(ColumnDef::new(R::Why).text().not_null())
                    .col(ColumnDef::new(R::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(R::ProposedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(R::DecidedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(R::DecidedBy).string_len(64).null())
                    .col(ColumnDef::new(R::Note).text().null())
                    .col(ColumnDef::new(R::RetirementId).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // One proposal per version: two replicas' runs of one tick cannot both propose.
        manager
            .create_index(
                Index::create()
                    .name("retention_proposals_one_per_version")
                    .table(R::Table)
                    .col(R::VersionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("retention_proposals_by_model")
                    .table(R::Table)
                    .col(R::ModelId)
                    .col(R::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RetentionProposals::Table).to_owned())
            .await
    }
}
