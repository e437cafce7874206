//! The control plane's view of its media nodes: their heartbeats, which node hosts each room, and nodes
//! declared gone when their heartbeats stop. Every replica of the control plane reads and writes the same
//! rows, and each change is a conditional write, so replicas that act at once agree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use convene_domain::{Region, RoomName, TenantId};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use tokio_util::sync::CancellationToken;

use crate::{
    entities::{media_node, room_placement},
    meetings::room_sessions,
    nodes::wire::Heartbeat,
    people::tenants,
};

/// How often a node says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A node silent this long is gone: three missed heartbeats.
pub const GONE_AFTER: Duration = Duration::from_secs(3);
/// A room placed this recently counts toward its node's load before the node's heartbeat shows it.
const FRESH_PLACEMENT: Duration = Duration::from_secs(30);

/// The node that hosts a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Its id.
    pub node: String,
    /// Where the control plane reaches its HTTP listener.
    pub url: String,
    /// Where its phone gateway takes SIP, if it runs one.
    pub sip: Option<std::net::SocketAddr>,
}

impl From<&media_node::Model> for Placed {
    fn from(node: &media_node::Model) -> Self {
        let sip = node.sip_addr.as_deref().and_then(|sip| sip.parse().ok());
        Self { node: node.id.clone(), url: node.url.clone(), sip }
    }
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn alive(node: &media_node::Model, now: DateTime<Utc>) -> bool {
    let silent_since = now.timestamp_millis() - GONE_AFTER.as_millis() as i64;
    node.gone_ms.is_none() && node.last_seen_ms >= silent_since
}

/// A node as operators see it (`GET /operator/media-nodes`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    /// Its id.
    pub id: String,
    /// Where the control plane reaches it.
    pub url: String,
    /// Its region.
    pub region: String,
    /// The CPU cores it may use.
    pub cores: i32,
    /// `alive`, `draining`, `silent` (heartbeats late, not yet declared gone) or `gone`.
    pub state: &'static str,
    /// At its last heartbeat: participants, rooms, Mbit/s forwarded, CPU in thousandths of a core.
    pub participants: i32,
    pub rooms: i32,
    pub mbit_out: i32,
    pub cpu_millicores: i32,
    /// Rooms placed on it now.
    pub placed_rooms: usize,
    /// Its last heartbeat.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Every node the control plane has heard from, with its state at `now`.
pub async fn list(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Vec<NodeView>, DbErr> {
    let placements = room_placement::Entity::find().all(db).await?;
    let nodes = media_node::Entity::find().all(db).await?;
    Ok(nodes
        .into_iter()
        .map(|node| {
            let state = match (node.gone_ms.is_some(), alive(&node, now), node.draining) {
                (true, _, _) => "gone",
                (false, false, _) => "silent",
                (false, true, true) => "draining",
                (false, true, false) => "alive",
            };
            NodeView {
                placed_rooms: placements.iter().filter(|placement| placement.node_id == node.id).count(),
                last_seen: DateTime::from_timestamp_millis(node.last_seen_ms),
                state,
                id: node.id,
                url: node.url,
                region: node.region,
                cores: node.cores,
                participants: node.participants,
                rooms: node.rooms,
                mbit_out: node.mbit_out,
                cpu_millicores: node.cpu_millicores,
            }
        })
        .collect())
}

/// Takes a heartbeat (already checked): the node's row, alive again if it had been declared gone.
pub async fn heartbeat(db: &impl ConnectionTrait, beat: &Heartbeat, now: DateTime<Utc>) -> Result<(), DbErr> {
    let count = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
    let row = media_node::ActiveModel {
        id: Set(beat.node.clone()),
        url: Set(beat.url.clone()),
        region: Set(beat.region.to_string()),
        cores: Set(count(beat.cores)),
        draining: Set(beat.draining),
        participants: Set(count(beat.participants)),
        rooms: Set(count(beat.rooms)),
        mbit_out: Set(count(beat.mbit_out)),
        cpu_millicores: Set(count(beat.cpu_millicores)),
        started_ms: Set(beat.started_ms),
        last_seen_ms: Set(millis(now)),
        gone_ms: Set(None),
        sip_addr: Set(beat.sip.map(|sip| sip.to_string())),
    };
    let columns = [
        media_node::Column::Url,
        media_node::Column::Region,
        media_node::Column::Cores,
        media_node::Column::Draining,
        media_node::Column::Participants,
        media_node::Column::Rooms,
        media_node::Column::MbitOut,
        media_node::Column::CpuMillicores,
        media_node::Column::StartedMs,
        media_node::Column::LastSeenMs,
        media_node::Column::GoneMs,
        media_node::Column::SipAddr,
    ];
    media_node::Entity::insert(row)
        .on_conflict(OnConflict::column(media_node::Column::Id).update_columns(columns).to_owned())
        .exec(db)
        .await
        .map(drop)
}

/// The node `room`'s meeting runs on, if it is placed on a node that is alive.
pub async fn placed(
    db: &DatabaseConnection,
    (tenant, room): (TenantId, &RoomName),
    now: DateTime<Utc>,
) -> Result<Option<Placed>, DbErr> {
    let Some(placement) =
        room_placement::Entity::find_by_id((tenant.as_uuid(), room.as_str().to_owned())).one(db).await?
    else {
        return Ok(None);
    };
    let node = media_node::Entity::find_by_id(placement.node_id).one(db).await?;
    Ok(node.filter(|node| alive(node, now)).map(|node| Placed::from(&node)))
}

/// The node that hosts `room`: the one it is placed on while that node is alive (draining or not: a
/// meeting never moves), else the alive, non-draining node with the most room per core, preferring the
/// region the first joiner's token asks for (`hint`), else the organisation's region; a meeting goes to
/// another region rather than nowhere. `avoid` is a node the caller could not reach; `prefer` a node that
/// should take a meeting not yet running, whatever its region or load (the node whose phone gateway took a
/// caller, who can join only there). `None`: no node can take it.
pub async fn place(
    db: &DatabaseConnection,
    (tenant, room): (TenantId, &RoomName),
    (hint, avoid, prefer): (Option<&Region>, Option<&str>, Option<&str>),
    now: DateTime<Utc>,
) -> Result<Option<Placed>, DbErr> {
    // Twice at most: another replica may place the room between our read and our write.
    for _ in 0..2 {
        let current = room_placement::Entity::find_by_id((tenant.as_uuid(), room.as_str().to_owned())).one(db).await?;
        let nodes = media_node::Entity::find().filter(media_node::Column::GoneMs.is_null()).all(db).await?;
        if let Some(current) = &current
            && avoid != Some(current.node_id.as_str())
            && let Some(node) = nodes.iter().find(|node| node.id == current.node_id && alive(node, now))
        {
            return Ok(Some(Placed::from(node)));
        }
        let open: Vec<&media_node::Model> =
            nodes.iter().filter(|node| alive(node, now) && !node.draining && avoid != Some(node.id.as_str())).collect();
        let wanted = match hint {
            Some(region) => Some(region.as_str().to_owned()),
            None => tenants::find(db, tenant).await?.and_then(|row| row.media_region),
        };
        let in_region: Vec<&media_node::Model> = match &wanted {
            Some(region) => open.iter().copied().filter(|node| &node.region == region).collect(),
            None => Vec::new(),
        };
        if let Some(region) = &wanted
            && in_region.is_empty()
            && !open.is_empty()
        {
            tracing::warn!(
                region,
                room = room.as_str(),
                "no media node in the meeting's region can take it: placed in another"
            );
        }
        let fresh = room_placement::Entity::find()
            .filter(room_placement::Column::PlacedMs.gte(millis(now) - FRESH_PLACEMENT.as_millis() as i64))
            .all(db)
            .await?;
        // Load per core, in thousandths: rooms (with those placed but not yet in a heartbeat), then people.
        let load = |node: &media_node::Model| {
            let placed = fresh.iter().filter(|placement| placement.node_id == node.id).count() as i64;
            let cores = i64::from(node.cores.max(1));
            let rooms = i64::from(node.rooms.max(0)) + placed;
            (rooms * 1000 / cores, i64::from(node.participants.max(0)) * 1000 / cores)
        };
        let preferred = open.iter().copied().find(|node| Some(node.id.as_str()) == prefer);
        let candidates = if in_region.is_empty() { open } else { in_region };
        let least_loaded = candidates.into_iter().min_by_key(|node| (load(node), node.id.clone()));
        let Some(chosen) = preferred.or(least_loaded) else {
            return Ok(None);
        };
        let placed = match &current {
            None => {
                let row = room_placement::ActiveModel {
                    tenant_id: Set(tenant.as_uuid()),
                    room: Set(room.as_str().to_owned()),
                    node_id: Set(chosen.id.clone()),
                    placed_ms: Set(millis(now)),
                };
                let conflict = OnConflict::columns([room_placement::Column::TenantId, room_placement::Column::Room])
                    .do_nothing()
                    .to_owned();
                room_placement::Entity::insert(row).on_conflict(conflict).exec_without_returning(db).await? == 1
            }
            // Moved only from the node it was on when read.
            Some(current) => {
                room_placement::Entity::update_many()
                    .col_expr(room_placement::Column::NodeId, Expr::value(chosen.id.clone()))
                    .col_expr(room_placement::Column::PlacedMs, Expr::value(millis(now)))
                    .filter(room_placement::Column::TenantId.eq(tenant.as_uuid()))
                    .filter(room_placement::Column::Room.eq(room.as_str()))
                    .filter(room_placement::Column::NodeId.eq(current.node_id.clone()))
                    .exec(db)
                    .await?
                    .rows_affected
                    == 1
            }
        };
        if placed {
            tracing::info!(node = %chosen.id, %tenant, room = room.as_str(), "room placed");
            return Ok(Some(Placed::from(chosen)));
        }
    }
    Ok(None)
}

/// Declares gone the nodes silent for [`GONE_AFTER`]: their rooms' sessions end at their last heartbeat
/// (billing counts no minute after it) and their rooms are placed afresh at the next join. Returns the
/// nodes this call declared gone (another replica may have declared some first).
pub async fn sweep(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Vec<String>, DbErr> {
    let silent_since = millis(now) - GONE_AFTER.as_millis() as i64;
    let silent = media_node::Entity::find()
        .filter(media_node::Column::GoneMs.is_null())
        .filter(media_node::Column::LastSeenMs.lt(silent_since))
        .all(db)
        .await?;
    let mut gone = Vec::new();
    for node in silent {
        let transaction = crate::platform::db::begin_write(db).await?;
        let declared = media_node::Entity::update_many()
            .col_expr(media_node::Column::GoneMs, Expr::value(millis(now)))
            .filter(media_node::Column::Id.eq(node.id.clone()))
            .filter(media_node::Column::GoneMs.is_null())
            .filter(media_node::Column::LastSeenMs.eq(node.last_seen_ms))
            .exec(&transaction)
            .await?
            .rows_affected
            == 1;
        if !declared {
            continue;
        }
        room_placement::Entity::delete_many()
            .filter(room_placement::Column::NodeId.eq(node.id.clone()))
            .exec(&transaction)
            .await?;
        let last_seen = DateTime::from_timestamp_millis(node.last_seen_ms);
        room_sessions::node_stopped(&transaction, &node.id, last_seen, now).await?;
        transaction.commit().await?;
        tracing::warn!(node = %node.id, last_seen_ms = node.last_seen_ms, "media node gone: its heartbeats stopped");
        gone.push(node.id);
    }
    Ok(gone)
}

/// Sweeps every heartbeat interval until `shutdown`; errors are logged and the next sweep tries again.
pub async fn run_sweeper(db: DatabaseConnection, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(error) = sweep(&db, Utc::now()).await {
                    tracing::error!(%error, "could not check the media nodes' heartbeats");
                }
            }
        }
    }
}
