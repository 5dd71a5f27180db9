use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "emergency_deployments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub version_id: i64,
    pub risk_assessment: String,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    pub valid_hours: i32,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub state: String,
    pub settled_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    pub notified_state: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
