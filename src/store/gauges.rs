//! Counts a replica reports as gauges: the outbox and retirements by state, the oldest
//! notice still pending, and the inventory's head revision. A few grouped counts over
//! indexed columns, read every sampling interval.

use super::StoreError;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement};

#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub notices_by_state: Vec<(String, i64)>,
    pub oldest_pending_notice: Option<DateTime<Utc>>,
    pub retirements_by_state: Vec<(String, i64)>,
    pub inventory_head: i64,
}

async fn by_state(
    conn: &impl ConnectionTrait,
    table: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT state, COUNT(*) AS n FROM {table} GROUP BY state ORDER BY state"),
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "state")?, r.try_get("", "n")?)))
        .collect()
}

pub async fn read(conn: &impl ConnectionTrait) -> Result<Gauges, StoreError> {
    use super::entities::notice;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let oldest = notice::Entity::find()
        .filter(notice::Column::State.eq(crate::domain::NoticeState::Pending.as_str()))
        .order_by_asc(notice::Column::CreatedAt)
        .one(conn)
        .await?
        .map(|n| n.created_at);
    Ok(Gauges {
        notices_by_state: by_state(conn, "notices").await?,
        oldest_pending_notice: oldest,
        retirements_by_state: by_state(conn, "retirements").await?,
        inventory_head: super::inventory::head_revision(conn).await?,
    })
}
