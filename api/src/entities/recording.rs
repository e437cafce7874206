//! A recorded meeting: its raw tracks on the node that recorded it, and what composing them made.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recordings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub room: String,
    /// The media node holding the tracks.
    pub node: String,
    /// Who started it, as participants saw them.
    pub started_by: String,
    /// Their token's user id, when a participant started it.
    pub started_by_user: Option<String>,
    /// Where to say it is ready: the address in the token of the moderator who started it.
    pub notify_email: Option<String>,
    pub started_at: DateTimeUtc,
    pub stopped_at: Option<DateTimeUtc>,
    /// `recording`, `processing`, `ready` or `failed`.
    pub state: String,
    /// Why it failed (or stopped early), for people.
    pub failure: Option<String>,
    /// The node stopped while it recorded: the recording was finished from what was on its disk.
    pub interrupted: bool,
    /// Bytes of raw tracks written.
    pub track_bytes: i64,
    /// The composed recording's length.
    pub duration_ms: Option<i64>,
    /// The composed file's size.
    pub file_bytes: Option<i64>,
    /// The names of the people recorded, as a JSON array.
    pub participants: Option<String>,
    /// Composition attempts so far.
    pub attempts: i32,
    /// When a composer took it (a stale claim is taken again).
    pub claimed_at: Option<DateTimeUtc>,
    /// The folder in object storage its composed files were uploaded to; `None` while on the node's disk.
    pub object_key: Option<String>,
    /// Failed uploads to object storage so far.
    pub store_attempts: i32,
    /// After a failed upload, not tried again before this.
    pub retry_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
