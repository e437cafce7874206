//! A media node that reports to the control plane: where its HTTP listener is, its load at its last
//! heartbeat, and when it was declared gone.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "media_nodes")]
pub struct Model {
    /// The node's own id (its outbox's), stable across restarts.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// How the control plane reaches the node's HTTP listener.
    pub url: String,
    pub region: String,
    /// The CPU cores it may use.
    pub cores: i32,
    /// Takes no new rooms; its rooms go on.
    pub draining: bool,
    pub participants: i32,
    pub rooms: i32,
    /// Mbit/s of media forwarded at the last heartbeat.
    pub mbit_out: i32,
    /// CPU in use at the last heartbeat, in thousandths of a core.
    pub cpu_millicores: i32,
    /// When the node's current run started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// Its last heartbeat, in milliseconds since the Unix epoch.
    pub last_seen_ms: i64,
    /// When the control plane declared it gone (heartbeats missed); none while it is alive.
    pub gone_ms: Option<i64>,
    /// Where its phone gateway takes SIP, if it runs one (`host:port`).
    pub sip_addr: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
