use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "disabled_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub version_id: i64,
    pub model_name: String,
    pub version: String,
    pub retirement_id: Option<i64>,
    pub disabled_at: DateTimeUtc,
    pub disabled_by: String,
    pub reason: String,
    pub prior_status: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
