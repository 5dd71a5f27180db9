use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retirements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub model_id: i64,
    pub model_name: String,
    pub selection: String,
    /// JSON array of version strings.
    pub affected_versions: String,
    pub reason: String,
    pub effective_at: DateTimeUtc,
    pub replacement_model: Option<String>,
    pub replacement_version: Option<String>,
    pub state: String,
    pub sequence: i32,
    pub decision_note: Option<String>,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    pub updated_at: DateTimeUtc,
    /// The instance running this retirement's decommission steps, until `lease_until`.
    pub lease_holder: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// JSON of the retirement's levers; null when none was pulled.
    pub levers: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
