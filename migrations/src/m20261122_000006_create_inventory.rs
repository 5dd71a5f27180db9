//! The consumer inventory (issue 4): consumers, the edges of the dependency graph, the
//! change sequence every instance follows, and registration-webhook sources.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Consumers {
    Table,
    Id,
    Name,
    Kind,
    OwnerTeam,
    Environment,
    Contacts,
    WebhookUrl,
    WebhookSecret,
    Discovered,
    CreatedAt,
    CreatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum InventoryEdges {
    Table,
    Id,
    EdgeKey,
    Kind,
    ConsumerId,
    TargetConsumerId,
    ModelId,
    VersionRange,
    VersionId,
    ParentVersionId,
    Derivation,
    Origin,
    OriginName,
    FirstSeen,
    LastSeen,
    Observations,
}

#[derive(DeriveIden)]
enum InventoryChanges {
    Table,
    Revision,
    At,
    Entity,
    EntityId,
}

#[derive(DeriveIden)]
enum WebhookSources {
    Table,
    Id,
    Name,
    Secret,
    Enabled,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum WebhookReceipts {
    Table,
    SourceId,
    MessageId,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    ConsumerId,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Id,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn at(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Consumers::Table)
                    .col(id(Consumers::Id))
                    .col(
                        ColumnDef::new(Consumers::Name)
                            .string_len(100)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Consumers::Kind).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Consumers::OwnerTeam)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Consumers::Environment)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Consumers::Contacts).text().not_null())
                    .col(ColumnDef::new(Consumers::WebhookUrl).text().null())
                    // Sealed under a key derived from the service key: never in clear.
                    .col(ColumnDef::new(Consumers::WebhookSecret).text().null())
                    .col(ColumnDef::new(Consumers::Discovered).boolean().not_null())
                    .col(at(Consumers::CreatedAt))
                    .col(
                        ColumnDef::new(Consumers::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(at(Consumers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InventoryEdges::Table)
                    .col(id(InventoryEdges::Id))
                    // What the edge connects, canonically, so that one edge learned twice
                    // from one origin is one row (`uses:12:5:^2.1`).
                    .col(
                        ColumnDef::new(InventoryEdges::EdgeKey)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::ConsumerId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::TargetConsumerId)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(InventoryEdges::ModelId).big_integer().null())
                    .col(
                        ColumnDef::new(InventoryEdges::VersionRange)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::VersionId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::ParentVersionId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::Derivation)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::Origin)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InventoryEdges::OriginName)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(at(InventoryEdges::FirstSeen))
                    .col(at(InventoryEdges::LastSeen))
                    .col(
                        ColumnDef::new(InventoryEdges::Observations)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_edges_consumer")
                            .from(InventoryEdges::Table, InventoryEdges::ConsumerId)
                            .to(Consumers::Table, Consumers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_edges_target_consumer")
                            .from(InventoryEdges::Table, InventoryEdges::TargetConsumerId)
                            .to(Consumers::Table, Consumers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_edges_model")
                            .from(InventoryEdges::Table, InventoryEdges::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_edges_version")
                            .from(InventoryEdges::Table, InventoryEdges::VersionId)
                            .to(ModelVersions::Table, ModelVersions::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_edges_parent_version")
                            .from(InventoryEdges::Table, InventoryEdges::ParentVersionId)
                            .to(ModelVersions::Table, ModelVersions::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_edges_key_origin")
                    .table(InventoryEdges::Table)
                    .col(InventoryEdges::EdgeKey)
                    .col(InventoryEdges::Origin)
                    .col(InventoryEdges::OriginName)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_edges_consumer", InventoryEdges::ConsumerId),
            ("ix_edges_target_consumer", InventoryEdges::TargetConsumerId),
            ("ix_edges_model", InventoryEdges::ModelId),
            ("ix_edges_version", InventoryEdges::VersionId),
            ("ix_edges_parent_version", InventoryEdges::ParentVersionId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(InventoryEdges::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(InventoryChanges::Table)
                    // Not auto-incremented: a writer takes the next number itself, so two
                    // writers on one PostgreSQL database collide instead of committing out of
                    // order, and readers never see a gap that later fills.
                    .col(
                        ColumnDef::new(InventoryChanges::Revision)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(at(InventoryChanges::At))
                    .col(
                        ColumnDef::new(InventoryChanges::Entity)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InventoryChanges::EntityId)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookSources::Table)
                    .col(id(WebhookSources::Id))
                    .col(
                        ColumnDef::new(WebhookSources::Name)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(WebhookSources::Secret).text().not_null())
                    .col(ColumnDef::new(WebhookSources::Enabled).boolean().not_null())
                    .col(at(WebhookSources::CreatedAt))
                    .col(
                        ColumnDef::new(WebhookSources::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookReceipts::Table)
                    .col(
                        ColumnDef::new(WebhookReceipts::SourceId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookReceipts::MessageId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(at(WebhookReceipts::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(WebhookReceipts::SourceId)
                            .col(WebhookReceipts::MessageId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_receipts_source")
                            .from(WebhookReceipts::Table, WebhookReceipts::SourceId)
                            .to(WebhookSources::Table, WebhookSources::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(ColumnDef::new(ApiTokens::ConsumerId).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .drop_column(ApiTokens::ConsumerId)
                    .to_owned(),
            )
            .await?;
        for table in [
            WebhookReceipts::Table.into_iden(),
            WebhookSources::Table.into_iden(),
            InventoryChanges::Table.into_iden(),
            InventoryEdges::Table.into_iden(),
            Consumers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
