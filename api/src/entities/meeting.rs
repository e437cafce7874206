//! A scheduled meeting in one of the tenant's rooms: a single occurrence or a weekly series.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "meetings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The room it takes place in; the room holds the settings.
    pub room_id: Uuid,
    pub organizer_id: Uuid,
    pub title: String,
    /// The first occurrence.
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    /// IANA name; weekly occurrences keep the same wall-clock time there.
    pub time_zone: String,
    /// 1 for a single meeting.
    pub weekly_occurrences: i32,
    /// The end of the last occurrence: links stop working then.
    pub last_ends_at: DateTimeUtc,
    /// The unguessable part of the participant link.
    #[sea_orm(unique)]
    pub join_code: String,
    /// The iCalendar SEQUENCE of the last mailed version.
    pub sequence: i32,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
