use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inventory_edges")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub edge_key: String,
    pub kind: String,
    pub consumer_id: Option<i64>,
    pub target_consumer_id: Option<i64>,
    pub model_id: Option<i64>,
    pub version_range: Option<String>,
    pub version_id: Option<i64>,
    pub parent_version_id: Option<i64>,
    pub derivation: Option<String>,
    pub origin: String,
    pub origin_name: String,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
    pub observations: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
