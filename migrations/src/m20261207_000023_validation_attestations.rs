//! Signed validation results (AISVS 3.2.3): what each signer may sign for (a model's
//! artifacts, or validation results of them), and the in-toto attestations of validation
//! results a validator signed over a version's artifacts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Signers {
    Table,
    /// Comma-separated: `model-signing`, `validator`.
    Purposes,
}

#[derive(DeriveIden)]
enum VersionValidations {
    Table,
    Id,
    VersionId,
    Signer,
    Suite,
    PredicateType,
    Results,
    EnvelopeSha256,
    AttachedAt,
    AttachedBy,
}

const INDEX: &str = "version_validations_by_version";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use VersionValidations as V;
        manager
            .alter_table(
                Table::alter()
                    .table(Signers::Table)
                    .add_column(
                        ColumnDef::new(Signers::Purposes)
                            .text()
                            .not_null()
                            .default("model-signing"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(V::Table)
                    .col(
                        ColumnDef::new(V::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(V::VersionId).big_integer().not_null())
                    .col(ColumnDef::new(V::Signer).string_len(64).not_null())
                    .col(ColumnDef::new(V::Suite).text().not_null())
                    .col(ColumnDef::new(V::PredicateType).text().not_null())
                    .col(ColumnDef::new(V::Results).text().not_null())
                    .col(ColumnDef::new(V::EnvelopeSha256).string_len(64).not_null())
                    .col(
                        ColumnDef::new(V::AttachedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(V::AttachedBy).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(V::Table)
                    .col(V::VersionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VersionValidations::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Signers::Table)
                    .drop_column(Signers::Purposes)
                    .to_owned(),
            )
            .await
    }
}
