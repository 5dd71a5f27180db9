use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub algorithm: String,
    pub public_key_pem: String,
    pub key_id: String,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    pub disabled_at: Option<DateTimeUtc>,
    /// Comma-separated purposes.
    pub purposes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
