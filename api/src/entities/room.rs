//! A tenant's room and its settings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rooms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Unique per tenant; the path segment of meeting links.
    pub name: String,
    pub title: Option<String>,
    pub lobby: bool,
    pub password: Option<String>,
    pub max_participants: Option<i32>,
    pub guests_allowed: bool,
    pub recording_allowed: bool,
    pub auto_record: bool,
    pub end_to_end_encryption: bool,
    pub high_fidelity_audio: bool,
    /// Participants keep the name their link gives them.
    pub fixed_display_names: bool,
    /// `720p` or `1080p`.
    pub max_resolution: String,
    /// Callers type it to join by phone: 9 digits, unique in the deployment; given when first needed.
    pub pin: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
