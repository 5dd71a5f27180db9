use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retirement_dependents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub retirement_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer_id: i64,
    pub consumer_name: String,
    pub found_at: DateTimeUtc,
    pub found_by: String,
    /// JSON array of the explaining path's steps.
    pub path: String,
    pub notice_ends_at: DateTimeUtc,
    pub next_reminder_at: Option<DateTimeUtc>,
    pub notified_at: Option<DateTimeUtc>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by: Option<String>,
    pub last_traffic_at: Option<DateTimeUtc>,
    pub extension_state: Option<String>,
    pub extension_until: Option<DateTimeUtc>,
    pub extension_reason: Option<String>,
    pub override_note: Option<String>,
    pub overridden_by: Option<String>,
    pub overridden_at: Option<DateTimeUtc>,
    pub informed_by_owner: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
