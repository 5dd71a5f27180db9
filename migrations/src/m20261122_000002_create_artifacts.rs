//! Artifacts of model versions, each encrypted under its own data key.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Artifacts {
    Table,
    Id,
    VersionId,
    Path,
    Kind,
    SizeBytes,
    Sha256,
    BlobId,
    KekEpoch,
    WrappedKey,
    CreatedAt,
    CreatedBy,
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
                    .table(Artifacts::Table)
                    .col(
                        ColumnDef::new(Artifacts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Artifacts::VersionId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Artifacts::Path).string_len(512).not_null())
                    .col(ColumnDef::new(Artifacts::Kind).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Artifacts::SizeBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Artifacts::Sha256).string_len(64).not_null())
                    // The blob's name in the blob store; also the data key's identity.
                    .col(
                        ColumnDef::new(Artifacts::BlobId)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Artifacts::KekEpoch).integer().not_null())
                    // Base64 of nonce || wrapped data key || tag: never the key itself.
                    .col(
                        ColumnDef::new(Artifacts::WrappedKey)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Artifacts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Artifacts::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_artifacts_version")
                            .from(Artifacts::Table, Artifacts::VersionId)
                            .to(ModelVersions::Table, ModelVersions::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_artifacts_version_path")
                    .table(Artifacts::Table)
                    .col(Artifacts::VersionId)
                    .col(Artifacts::Path)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Artifacts::Table).to_owned())
            .await
    }
}
