//! Tokens, the model registry, and the hash-chained audit trail.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    Name,
    Role,
    Team,
    TokenHash,
    CreatedAt,
    CreatedBy,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
    Name,
    OwnerTeam,
    Tier,
    Description,
    Contacts,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Id,
    ModelId,
    Major,
    Minor,
    Patch,
    Status,
    Provenance,
    CreatedBy,
    CreatedAt,
    StatusChangedAt,
}

#[derive(DeriveIden)]
enum AuditRecords {
    Table,
    Seq,
    RecordedAt,
    Actor,
    ActorRole,
    Action,
    SubjectType,
    Subject,
    BeforeState,
    AfterState,
    PrevHash,
    Hash,
    Mac,
}

#[derive(DeriveIden)]
enum AuditCheckpoints {
    Table,
    Id,
    Seq,
    HeadHash,
    SignedAt,
    KeyId,
    Signature,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(
                        ColumnDef::new(ApiTokens::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::Name)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiTokens::Role).string_len(16).not_null())
                    .col(ColumnDef::new(ApiTokens::Team).string_len(64).null())
                    .col(
                        ColumnDef::new(ApiTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Models::Table)
                    .col(
                        ColumnDef::new(Models::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Models::Name)
                            .string_len(100)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Models::OwnerTeam).string_len(64).not_null())
                    .col(ColumnDef::new(Models::Tier).string_len(16).not_null())
                    .col(ColumnDef::new(Models::Description).text().not_null())
                    .col(ColumnDef::new(Models::Contacts).text().not_null())
                    .col(
                        ColumnDef::new(Models::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Models::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_models_owner_team")
                    .table(Models::Table)
                    .col(Models::OwnerTeam)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ModelVersions::Table)
                    .col(
                        ColumnDef::new(ModelVersions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ModelVersions::ModelId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ModelVersions::Major).integer().not_null())
                    .col(ColumnDef::new(ModelVersions::Minor).integer().not_null())
                    .col(ColumnDef::new(ModelVersions::Patch).integer().not_null())
                    .col(
                        ColumnDef::new(ModelVersions::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ModelVersions::Provenance).text().not_null())
                    .col(
                        ColumnDef::new(ModelVersions::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ModelVersions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ModelVersions::StatusChangedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_model_versions_model")
                            .from(ModelVersions::Table, ModelVersions::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_model_versions_semver")
                    .table(ModelVersions::Table)
                    .col(ModelVersions::ModelId)
                    .col(ModelVersions::Major)
                    .col(ModelVersions::Minor)
                    .col(ModelVersions::Patch)
                    .unique()
                    .to_owned(),
            )
            .await?;

        // before_state/after_state are TEXT, not JSON: the hash chain covers their exact
        // bytes, and PostgreSQL's jsonb would reorder keys and change them.
        manager
            .create_table(
                Table::create()
                    .table(AuditRecords::Table)
                    .col(
                        ColumnDef::new(AuditRecords::Seq)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditRecords::RecordedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditRecords::Actor)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditRecords::ActorRole)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditRecords::Action)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditRecords::SubjectType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditRecords::Subject)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditRecords::BeforeState).text().null())
                    .col(ColumnDef::new(AuditRecords::AfterState).text().null())
                    .col(
                        ColumnDef::new(AuditRecords::PrevHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditRecords::Hash).string_len(64).not_null())
                    .col(ColumnDef::new(AuditRecords::Mac).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        // No index on action: nine values, too few to pay for their write cost.
        for (name, column) in [
            ("idx_audit_records_subject", AuditRecords::Subject),
            ("idx_audit_records_actor", AuditRecords::Actor),
            ("idx_audit_records_recorded_at", AuditRecords::RecordedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditRecords::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoints::Table)
                    .col(
                        ColumnDef::new(AuditCheckpoints::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditCheckpoints::Seq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditCheckpoints::HeadHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditCheckpoints::SignedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditCheckpoints::KeyId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditCheckpoints::Signature)
                            .string_len(128)
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditCheckpoints::Table.into_iden(),
            AuditRecords::Table.into_iden(),
            ModelVersions::Table.into_iden(),
            Models::Table.into_iden(),
            ApiTokens::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
