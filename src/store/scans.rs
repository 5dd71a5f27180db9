//! Scan cursors: where a source stopped in each log file. (Scheduled runs are claimed in
//! `jobs`, as `scan:<source>`; the `scan_runs` table of migration 7 is no longer written.)

use super::StoreError;
use super::entities::scan_cursor;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub file_id: String,
    pub path: String,
    pub fingerprint: String,
    pub offset: u64,
}

pub async fn cursors(conn: &impl ConnectionTrait, source: &str) -> Result<Vec<Cursor>, StoreError> {
    Ok(scan_cursor::Entity::find()
        .filter(scan_cursor::Column::Source.eq(source))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| Cursor {
            file_id: r.file_id,
            path: r.path,
            fingerprint: r.fingerprint,
            offset: u64::try_from(r.offset).unwrap_or(0),
        })
        .collect())
}

pub async fn save_cursor(
    conn: &impl ConnectionTrait,
    source: &str,
    cursor: &Cursor,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = scan_cursor::ActiveModel {
        source: Set(source.to_owned()),
        file_id: Set(cursor.file_id.clone()),
        path: Set(cursor.path.clone()),
        fingerprint: Set(cursor.fingerprint.clone()),
        offset: Set(i64::try_from(cursor.offset).unwrap_or(i64::MAX)),
        updated_at: Set(at),
    };
    scan_cursor::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([scan_cursor::Column::Source, scan_cursor::Column::FileId])
                .update_columns([
                    scan_cursor::Column::Path,
                    scan_cursor::Column::Fingerprint,
                    scan_cursor::Column::Offset,
                    scan_cursor::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}
