use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "enforcement_confirmations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub retirement_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer_id: i64,
    pub point: String,
    pub told_at: DateTimeUtc,
    /// The disabled list's ETag right after the kill switch.
    pub etag: String,
    pub confirmed_at: Option<DateTimeUtc>,
    /// `webhook` (a signed acknowledgement) or `poll`.
    pub via: Option<String>,
    pub escalated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
