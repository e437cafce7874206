//! An event an outbox's consumer set aside after failing on it the same way again and again.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Which outbox: `node_events`.
    pub source: String,
    /// The event's identity in that outbox (`<node>/<seq>`).
    pub key: String,
    /// The event as delivered (JSON).
    pub payload: String,
    /// The last error.
    pub reason: String,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
