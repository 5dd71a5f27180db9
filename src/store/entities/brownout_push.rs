use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "brownout_pushes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub retirement_id: i64,
    pub etag: String,
    pub told_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
