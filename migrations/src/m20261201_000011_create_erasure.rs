//! Decommissioning (issue 6), second part: crypto-erasure, revocation and certificates.
//!
//! - `artifacts.erased_at`: set when the artifact's data key is destroyed;
//! - `erased_keys`: the last wrapping of each destroyed data key, kept as the evidence the
//!   erasure's verification re-checks (it opens nothing once its KEK epoch is destroyed,
//!   exactly like the copy a backup holds);
//! - `decommission_steps.data`: what a step must remember to resume (e.g. the KEK epoch
//!   a rotation re-wraps under);
//! - `retirements.lease_*`: which instance runs a retirement's decommission steps;
//! - `purge_confirmations`: derived stores' purge confirmations and governance waivers;
//! - `revocations`: the signature revocation list, one row per revoked bundle, each with
//!   the serial of the list that first carried it;
//! - `certificates`: signed destruction certificates (DSSE envelopes), one per retirement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Artifacts {
    Table,
    ErasedAt,
}

#[derive(DeriveIden)]
enum DecommissionSteps {
    Table,
    Data,
}

#[derive(DeriveIden)]
enum Retirements {
    Table,
    LeaseHolder,
    LeaseUntil,
}

#[derive(DeriveIden)]
enum ErasedKeys {
    Table,
    ArtifactId,
    RetirementId,
    BlobId,
    KekEpoch,
    WrappedKey,
    ErasedAt,
}

#[derive(DeriveIden)]
enum PurgeConfirmations {
    Table,
    RetirementId,
    ConsumerId,
    ConsumerName,
    Outcome,
    Actor,
    At,
    Note,
}

#[derive(DeriveIden)]
enum Revocations {
    Table,
    Id,
    Serial,
    BundleSha256,
    PayloadSha256,
    ModelName,
    Version,
    Signer,
    RetirementId,
    RevokedAt,
    Reason,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    Id,
    RetirementId,
    Envelope,
    Sha256,
    IssuedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Artifacts::Table)
                    .add_column(
                        ColumnDef::new(Artifacts::ErasedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DecommissionSteps::Table)
                    .add_column(ColumnDef::new(DecommissionSteps::Data).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Retirements::Table)
                    .add_column(
                        ColumnDef::new(Retirements::LeaseHolder)
                            .string_len(64)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Retirements::Table)
                    .add_column(
                        ColumnDef::new(Retirements::LeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ErasedKeys::Table)
                    .col(
                        ColumnDef::new(ErasedKeys::ArtifactId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ErasedKeys::RetirementId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ErasedKeys::BlobId).string_len(64).not_null())
                    .col(ColumnDef::new(ErasedKeys::KekEpoch).integer().not_null())
                    .col(ColumnDef::new(ErasedKeys::WrappedKey).text().not_null())
                    .col(
                        ColumnDef::new(ErasedKeys::ErasedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PurgeConfirmations::Table)
                    .col(
                        ColumnDef::new(PurgeConfirmations::RetirementId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurgeConfirmations::ConsumerId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurgeConfirmations::ConsumerName)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurgeConfirmations::Outcome)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurgeConfirmations::Actor)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurgeConfirmations::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PurgeConfirmations::Note).text().null())
                    .primary_key(
                        Index::create()
                            .col(PurgeConfirmations::RetirementId)
                            .col(PurgeConfirmations::ConsumerId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Revocations::Table)
                    .col(
                        ColumnDef::new(Revocations::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Revocations::Serial).big_integer().not_null())
                    .col(
                        ColumnDef::new(Revocations::BundleSha256)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Revocations::PayloadSha256)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Revocations::ModelName)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Revocations::Version)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Revocations::Signer)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Revocations::RetirementId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Revocations::RevokedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Revocations::Reason).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revocations_payload")
                    .table(Revocations::Table)
                    .col(Revocations::PayloadSha256)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Certificates::Table)
                    .col(
                        ColumnDef::new(Certificates::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Certificates::RetirementId)
                            .big_integer()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Certificates::Envelope).text().not_null())
                    .col(
                        ColumnDef::new(Certificates::Sha256)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Certificates::IssuedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Certificates::Table.into_iden(),
            Revocations::Table.into_iden(),
            PurgeConfirmations::Table.into_iden(),
            ErasedKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for (table, column) in [
            (
                Retirements::Table.into_iden(),
                Retirements::LeaseUntil.into_iden(),
            ),
            (
                Retirements::Table.into_iden(),
                Retirements::LeaseHolder.into_iden(),
            ),
            (
                DecommissionSteps::Table.into_iden(),
                DecommissionSteps::Data.into_iden(),
            ),
            (
                Artifacts::Table.into_iden(),
                Artifacts::ErasedAt.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
