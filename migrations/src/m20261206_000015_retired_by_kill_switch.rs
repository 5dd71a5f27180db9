//! Retirement owns `retired`: a version the kill switch disables becomes `retired` in the
//! same transaction, and `prior_status` keeps what it was, so a lifted kill switch can
//! put it back. Repairs databases where an executed retirement left its versions in
//! another status (before this, the registry went on calling them production): each
//! disabled version records its status as prior and becomes `retired` from the moment
//! it was disabled.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DisabledVersions {
    Table,
    PriorStatus,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(DisabledVersions::Table)
                    .add_column(ColumnDef::new(DisabledVersions::PriorStatus).text().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE disabled_versions SET prior_status = \
             (SELECT status FROM model_versions WHERE model_versions.id = disabled_versions.version_id) \
             WHERE prior_status IS NULL",
        )
        .await?;
        db.execute_unprepared(
            "UPDATE model_versions SET status = 'retired', status_changed_at = \
             (SELECT disabled_at FROM disabled_versions WHERE disabled_versions.version_id = model_versions.id) \
             WHERE status <> 'retired' \
             AND id IN (SELECT version_id FROM disabled_versions)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE model_versions SET status = \
                 (SELECT prior_status FROM disabled_versions WHERE disabled_versions.version_id = model_versions.id) \
                 WHERE id IN (SELECT version_id FROM disabled_versions WHERE prior_status IS NOT NULL)",
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DisabledVersions::Table)
                    .drop_column(DisabledVersions::PriorStatus)
                    .to_owned(),
            )
            .await
    }
}
