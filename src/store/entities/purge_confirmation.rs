use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "purge_confirmations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub retirement_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer_id: i64,
    pub consumer_name: String,
    /// `confirmed` or `waived`.
    pub outcome: String,
    pub actor: String,
    pub at: DateTimeUtc,
    pub note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
