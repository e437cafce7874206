//! An address invited to a meeting.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "meeting_invitees")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub meeting_id: Uuid,
    /// Lowercased, as `EmailAddress` keeps it.
    pub email: String,
    pub invited_at: DateTimeUtc,
    /// SHA-256 (hex) of the personal link's secret in the latest invitation mail; none before the first.
    pub link_digest: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
