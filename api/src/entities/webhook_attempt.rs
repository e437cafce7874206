//! One try at a delivery, for the endpoint's delivery log.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    pub delivery_id: Uuid,
    pub at: DateTimeUtc,
    /// The receiver's HTTP status; none when it could not be reached.
    pub status: Option<i32>,
    pub latency_ms: i32,
    /// The start of its answer, or why it could not be reached.
    pub response: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
