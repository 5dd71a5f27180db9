use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "decommission_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub retirement_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub step: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    /// JSON a step needs to resume (e.g. the KEK epoch a rotation targets).
    pub data: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
