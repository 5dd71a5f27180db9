use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "artifacts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub version_id: i64,
    pub path: String,
    pub kind: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_id: String,
    pub kek_epoch: i32,
    /// Base64 of the wrapped data key (nonce, ciphertext, tag).
    pub wrapped_key: String,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    /// Set when crypto-erasure destroyed the data key; the wrapped key is then empty.
    pub erased_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
