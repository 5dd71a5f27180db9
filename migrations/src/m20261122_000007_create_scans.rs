//! Traffic scans: where each scan source stopped in each log file, and which scheduled
//! runs have been claimed, so several instances run each tick once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScanCursors {
    Table,
    Source,
    FileId,
    Path,
    Fingerprint,
    Offset,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScanRuns {
    Table,
    Source,
    Tick,
    ClaimedBy,
    ClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ScanCursors::Table)
                    .col(
                        ColumnDef::new(ScanCursors::Source)
                            .string_len(64)
                            .not_null(),
                    )
                    // `device:inode`: follows a file through a rename (log rotation).
                    .col(
                        ColumnDef::new(ScanCursors::FileId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ScanCursors::Path).text().not_null())
                    // SHA-256 of the file's first line: tells a reused inode from the file it was.
                    .col(
                        ColumnDef::new(ScanCursors::Fingerprint)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ScanCursors::Offset).big_integer().not_null())
                    .col(
                        ColumnDef::new(ScanCursors::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ScanCursors::Source)
                            .col(ScanCursors::FileId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScanRuns::Table)
                    .col(ColumnDef::new(ScanRuns::Source).string_len(64).not_null())
                    .col(
                        ColumnDef::new(ScanRuns::Tick)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScanRuns::ClaimedBy)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScanRuns::ClaimedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(ScanRuns::Source).col(ScanRuns::Tick))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ScanRuns::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ScanCursors::Table).to_owned())
            .await
    }
}
