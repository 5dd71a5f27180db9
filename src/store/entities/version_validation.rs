use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "version_validations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub version_id: i64,
    pub signer: String,
    pub suite: String,
    pub predicate_type: String,
    /// JSON array of the results as signed.
    pub results: String,
    pub envelope_sha256: String,
    pub attached_at: DateTimeUtc,
    pub attached_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
