//! One person's stay in a room session.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_participants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    /// The token's `context.user.id` (or the node's id for a guest).
    pub participant_id: String,
    pub name: String,
    pub moderator: bool,
    pub joined_at: DateTimeUtc,
    /// Unset while they are in the room.
    pub left_at: Option<DateTimeUtc>,
    /// The participant-minutes billing counted for this stay (unset until it ends and is counted).
    pub metered_minutes: Option<i32>,
    /// A phone call: `dial_in` or `dial_out`.
    pub phone: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
