use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consumers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub owner_team: String,
    pub environment: String,
    /// JSON array of email addresses.
    pub contacts: String,
    pub webhook_url: Option<String>,
    /// The notice-signing secret, sealed (see `attest::SecretSealer`).
    pub webhook_secret: Option<String>,
    pub discovered: bool,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
