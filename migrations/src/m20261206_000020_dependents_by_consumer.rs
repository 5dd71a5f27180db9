//! The retirements that affect one consumer, which the console's consumer page asks for:
//! without an index on the consumer the question reads every retirement's dependents.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RetirementDependents {
    Table,
    ConsumerId,
}

const INDEX: &str = "retirement_dependents_by_consumer";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(RetirementDependents::Table)
                    .col(RetirementDependents::ConsumerId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(RetirementDependents::Table)
                    .to_owned(),
            )
            .await
    }
}
