//! Governance per model: grants of a role on a model or a family of models (to a token
//! or a team), each model's overrides of its tier's policy, and promotions to production
//! waiting for a second person's approval.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    /// `name`, `prefix*` or `*`.
    Pattern,
    /// `token` or `team`.
    GranteeKind,
    Grantee,
    Role,
    ExpiresAt,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum ModelPolicies {
    Table,
    ModelId,
    /// JSON: the fields this model sets apart from its tier's defaults.
    Overrides,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum PromotionRequests {
    Table,
    VersionId,
    Reference,
    RequestedBy,
    RequestedAt,
}

fn id_col<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn at_col<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Grants as G;
        manager
            .create_table(
                Table::create()
                    .table(G::Table)
                    .col(id_col(G::Id))
                    .col(ColumnDef::new(G::Pattern).string_len(101).not_null())
                    .col(ColumnDef::new(G::GranteeKind).string_len(8).not_null())
                    .col(ColumnDef::new(G::Grantee).string_len(64).not_null())
                    .col(ColumnDef::new(G::Role).string_len(16).not_null())
                    .col(
                        ColumnDef::new(G::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(at_col(G::CreatedAt))
                    .col(ColumnDef::new(G::CreatedBy).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("grants_by_grantee")
                    .table(G::Table)
                    .col(G::Grantee)
                    .to_owned(),
            )
            .await?;
        use ModelPolicies as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(
                        ColumnDef::new(P::ModelId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(P::Overrides).text().not_null())
                    .col(at_col(P::UpdatedAt))
                    .col(ColumnDef::new(P::UpdatedBy).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        use PromotionRequests as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(
                        ColumnDef::new(R::VersionId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(R::Reference).string_len(200).not_null())
                    .col(ColumnDef::new(R::RequestedBy).string_len(64).not_null())
                    .col(at_col(R::RequestedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PromotionRequests::Table.into_iden(),
            ModelPolicies::Table.into_iden(),
            Grants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
