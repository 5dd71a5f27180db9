//! The signature bundle of each version (one per version).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VersionSignatures {
    Table,
    Id,
    VersionId,
    Bundle,
    BundleSha256,
    Signer,
    UploadedAt,
    UploadedBy,
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
                    .table(VersionSignatures::Table)
                    .col(
                        ColumnDef::new(VersionSignatures::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(VersionSignatures::VersionId)
                            .big_integer()
                            .not_null()
                            .unique_key(),
                    )
                    // The bundle exactly as uploaded: its bytes are what was signed and verified.
                    .col(ColumnDef::new(VersionSignatures::Bundle).text().not_null())
                    .col(
                        ColumnDef::new(VersionSignatures::BundleSha256)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VersionSignatures::Signer)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VersionSignatures::UploadedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VersionSignatures::UploadedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_version_signatures_version")
                            .from(VersionSignatures::Table, VersionSignatures::VersionId)
                            .to(ModelVersions::Table, ModelVersions::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VersionSignatures::Table).to_owned())
            .await
    }
}
