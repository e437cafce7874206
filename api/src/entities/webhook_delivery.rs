//! A message owed to one endpoint: `pending` (with when to try next), `delivered` or `failed`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// Time-ordered (UUIDv7): an endpoint's deliveries go out in this order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    pub state: String,
    /// Tries made.
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker has it until then (one that died lets it go by itself).
    pub claimed_until: Option<DateTimeUtc>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
