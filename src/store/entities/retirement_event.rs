use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retirement_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub retirement_id: i64,
    pub change: String,
    pub instance: String,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
