//! A token and user id a moderator removed from a room, refused there until the token expires.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_removals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub room: String,
    /// SHA-256 of the token, hex.
    pub token_digest: String,
    pub user_id: Option<String>,
    /// Turned away from the lobby rather than removed from the room.
    pub rejected: bool,
    /// The token's expiry; none: for good.
    pub until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
