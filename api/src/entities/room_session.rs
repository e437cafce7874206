//! One sitting of a room, from its first participant joining to its last leaving, as the media node reports.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// By name: rooms may be created on the fly by a tenant's own tokens.
    pub room_name: String,
    pub started_at: DateTimeUtc,
    /// Unset while the session goes on.
    pub ended_at: Option<DateTimeUtc>,
    /// The media node hosting it (unset for sessions recorded before nodes had ids).
    pub node_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
