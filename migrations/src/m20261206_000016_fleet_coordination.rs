//! What replicas need to act as one service:
//! - `retirement_events`: each committed retirement change, by whichever instance made
//!   it, so every instance's `retirementUpdated` subscribers hear of it (kept a day);
//! - `kek_rotation_lock`: one row leased by the instance rotating the key-encryption
//!   key, so two erasures on two replicas rotate one after the other.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RetirementEvents {
    Table,
    Seq,
    RetirementId,
    Change,
    Instance,
    At,
}

#[derive(DeriveIden)]
enum KekRotationLock {
    Table,
    Id,
    Holder,
    LeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RetirementEvents as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(
                        ColumnDef::new(E::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(E::RetirementId).big_integer().not_null())
                    .col(ColumnDef::new(E::Change).string_len(32).not_null())
                    .col(ColumnDef::new(E::Instance).string_len(128).not_null())
                    .col(ColumnDef::new(E::At).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        use KekRotationLock as K;
        manager
            .create_table(
                Table::create()
                    .table(K::Table)
                    .col(ColumnDef::new(K::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(K::Holder).string_len(128).null())
                    .col(
                        ColumnDef::new(K::LeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(K::Table)
                    .columns([K::Id])
                    .values_panic([1.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KekRotationLock::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RetirementEvents::Table).to_owned())
            .await
    }
}
