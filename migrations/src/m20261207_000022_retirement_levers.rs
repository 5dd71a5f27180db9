//! Governance's levers on a retirement (freezing new consumers, telling only those seen
//! lately), and which dependents sunset leaves to their owner to tell.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Retirements {
    Table,
    /// JSON; null for a retirement with none pulled.
    Levers,
}

#[derive(DeriveIden)]
enum RetirementDependents {
    Table,
    InformedByOwner,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Retirements::Table)
                    .add_column(ColumnDef::new(Retirements::Levers).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RetirementDependents::Table)
                    .add_column(
                        ColumnDef::new(RetirementDependents::InformedByOwner)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RetirementDependents::Table)
                    .drop_column(RetirementDependents::InformedByOwner)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Retirements::Table)
                    .drop_column(Retirements::Levers)
                    .to_owned(),
            )
            .await
    }
}
