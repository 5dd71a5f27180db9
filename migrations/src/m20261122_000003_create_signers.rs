//! Authorised signers: whose signatures on model versions count.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Signers {
    Table,
    Id,
    Name,
    Algorithm,
    PublicKeyPem,
    KeyId,
    Enabled,
    CreatedAt,
    CreatedBy,
    DisabledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Signers::Table)
                    .col(
                        ColumnDef::new(Signers::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Signers::Name)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Signers::Algorithm).string_len(16).not_null())
                    .col(ColumnDef::new(Signers::PublicKeyPem).text().not_null())
                    // SHA-256 of the key's DER SubjectPublicKeyInfo: one key, one signer.
                    .col(
                        ColumnDef::new(Signers::KeyId)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Signers::Enabled).boolean().not_null())
                    .col(
                        ColumnDef::new(Signers::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Signers::CreatedBy).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Signers::DisabledAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Signers::Table).to_owned())
            .await
    }
}
