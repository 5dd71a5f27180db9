//! Delivery claims held by a live process rather than only by time:
//! - `notices.claimed_by`: the instance whose attempt at a notice is in flight;
//! - `replicas`: each running instance's last heartbeat (wall-clock time), so a claim of
//!   one that stopped beating is taken over within seconds instead of after its lease.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notices {
    Table,
    ClaimedBy,
}

#[derive(DeriveIden)]
enum Replicas {
    Table,
    Instance,
    StartedAt,
    BeatAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Notices::Table)
                    .add_column(ColumnDef::new(Notices::ClaimedBy).string_len(128).null())
                    .to_owned(),
            )
            .await?;
        use Replicas as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(
                        ColumnDef::new(R::Instance)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(R::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(R::BeatAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Replicas::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Notices::Table)
                    .drop_column(Notices::ClaimedBy)
                    .to_owned(),
            )
            .await
    }
}
