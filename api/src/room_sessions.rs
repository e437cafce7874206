//! Who was in which room when: the media node reports participants joining and leaving, and these records
//! answer `GET /v1/meetings` (past and ongoing sessions with participants and durations) and
//! `GET /v1/rooms/{name}/presence`. A session starts with its first participant and ends with its last.

use chrono::{DateTime, Utc};
use convene_domain::{RoomName, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    entities::{room_session, session_participant},
    pagination,
};

/// A person's stay, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stay {
    /// The token's user id.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// Whether they moderated.
    pub moderator: bool,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// When they left (absent while they are in).
    pub left_at: Option<DateTime<Utc>>,
    /// Seconds in the room so far.
    pub duration_seconds: i64,
}

/// A session, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Its id (also the pagination cursor).
    pub id: Uuid,
    /// The room's name.
    pub room: String,
    /// When the first participant joined.
    pub started_at: DateTime<Utc>,
    /// When the last one left (absent while it goes on).
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from start to end (or to now).
    pub duration_seconds: i64,
    /// Everyone who was in, in order of joining.
    pub participants: Vec<Stay>,
}

fn seconds(from: DateTime<Utc>, to: Option<DateTime<Utc>>, now: DateTime<Utc>) -> i64 {
    (to.unwrap_or(now) - from).num_seconds().max(0)
}

fn stay(row: session_participant::Model, now: DateTime<Utc>) -> Stay {
    Stay {
        duration_seconds: seconds(row.joined_at, row.left_at, now),
        id: row.participant_id,
        name: row.name,
        moderator: row.moderator,
        joined_at: row.joined_at,
        left_at: row.left_at,
    }
}

async fn open_session(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    room: &RoomName,
) -> Result<Option<room_session::Model>, DbErr> {
    room_session::Entity::find()
        .filter(room_session::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room_session::Column::RoomName.eq(room.as_str()))
        .filter(room_session::Column::EndedAt.is_null())
        .one(db)
        .await
}

/// Someone joined `room`: into its open session, or a new one.
pub async fn participant_joined(
    db: &DatabaseConnection,
    tenant: TenantId,
    room: &RoomName,
    participant: (&str, &str, bool),
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (participant_id, name, moderator) = participant;
    let transaction = db.begin().await?;
    let session = match open_session(&transaction, tenant, room).await? {
        Some(session) => session.id,
        None => {
            let id = Uuid::now_v7();
            room_session::ActiveModel {
                id: Set(id),
                tenant_id: Set(tenant.as_uuid()),
                room_name: Set(room.as_str().to_owned()),
                started_at: Set(at),
                ended_at: Set(None),
            }
            .insert(&transaction)
            .await?;
            id
        }
    };
    session_participant::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        session_id: Set(session),
        participant_id: Set(participant_id.chars().take(128).collect()),
        name: Set(name.chars().take(200).collect()),
        moderator: Set(moderator),
        joined_at: Set(at),
        left_at: Set(None),
    }
    .insert(&transaction)
    .await?;
    transaction.commit().await
}

/// Someone left `room`; the session ends when no one is left. Leaving twice changes nothing.
pub async fn participant_left(
    db: &DatabaseConnection,
    tenant: TenantId,
    room: &RoomName,
    participant_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let transaction = db.begin().await?;
    let Some(session) = open_session(&transaction, tenant, room).await? else { return Ok(()) };
    // The same person may be in twice (two tabs): one leaving closes their latest stay only.
    let stay = session_participant::Entity::find()
        .filter(session_participant::Column::SessionId.eq(session.id))
        .filter(session_participant::Column::ParticipantId.eq(participant_id))
        .filter(session_participant::Column::LeftAt.is_null())
        .order_by_desc(session_participant::Column::JoinedAt)
        .one(&transaction)
        .await?;
    if let Some(stay) = stay {
        let mut left: session_participant::ActiveModel = stay.into();
        left.left_at = Set(Some(at));
        left.update(&transaction).await?;
    }
    let remaining = session_participant::Entity::find()
        .filter(session_participant::Column::SessionId.eq(session.id))
        .filter(session_participant::Column::LeftAt.is_null())
        .one(&transaction)
        .await?;
    if remaining.is_none() {
        let mut ended: room_session::ActiveModel = session.into();
        ended.ended_at = Set(Some(at));
        ended.update(&transaction).await?;
    }
    transaction.commit().await
}

/// One page of the tenant's sessions, newest first, before the session `before`; also the cursor for the
/// next page, if more remain.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    limit: u64,
    before: Option<Uuid>,
) -> Result<(Vec<Session>, Option<Uuid>), DbErr> {
    let mut query = room_session::Entity::find().filter(room_session::Column::TenantId.eq(tenant.as_uuid()));
    if let Some(before) = before {
        query = query.filter(room_session::Column::Id.lt(before));
    }
    // UUIDv7 ids order like their start times.
    let rows = query.order_by_desc(room_session::Column::Id).limit(pagination::fetch_size(limit)).all(db).await?;
    let (rows, next) = pagination::page(rows, limit, |row| row.id);
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut stays: std::collections::HashMap<Uuid, Vec<session_participant::Model>> = std::collections::HashMap::new();
    for stay in session_participant::Entity::find()
        .filter(session_participant::Column::SessionId.is_in(ids))
        .order_by_asc(session_participant::Column::JoinedAt)
        .all(db)
        .await?
    {
        stays.entry(stay.session_id).or_default().push(stay);
    }
    let now = Utc::now();
    let sessions = rows
        .into_iter()
        .map(|row| Session {
            participants: stays.remove(&row.id).unwrap_or_default().into_iter().map(|row| stay(row, now)).collect(),
            duration_seconds: seconds(row.started_at, row.ended_at, now),
            id: row.id,
            room: row.room_name,
            started_at: row.started_at,
            ended_at: row.ended_at,
        })
        .collect();
    Ok((sessions, next))
}

/// Whether `room` has ever had a session in this tenant (rooms made on the fly have no `rooms` row).
pub async fn has_history(db: &impl ConnectionTrait, tenant: TenantId, room: &RoomName) -> Result<bool, DbErr> {
    let found = room_session::Entity::find()
        .filter(room_session::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room_session::Column::RoomName.eq(room.as_str()))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Who is in `room` now (empty when no session is going on).
pub async fn presence(db: &impl ConnectionTrait, tenant: TenantId, room: &RoomName) -> Result<Vec<Stay>, DbErr> {
    let Some(session) = open_session(db, tenant, room).await? else { return Ok(Vec::new()) };
    let now = Utc::now();
    Ok(session_participant::Entity::find()
        .filter(session_participant::Column::SessionId.eq(session.id))
        .filter(session_participant::Column::LeftAt.is_null())
        .order_by_asc(session_participant::Column::JoinedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|row| stay(row, now))
        .collect())
}

/// Writes the media node's room events into sessions, in order, off the room tasks. A failed write is
/// retried (with a growing pause) until it succeeds or the process stops, so a database hiccup loses
/// nothing; events still queued at a stop are lost with the process (a node outbox on disk is the next step).
#[derive(Debug, Clone)]
pub struct SessionRecorder {
    queue: tokio::sync::mpsc::UnboundedSender<convene_media::rooms::RoomEvent>,
}

impl SessionRecorder {
    /// Starts the writer on `db`; it ends when `shutdown` is cancelled.
    pub fn start(db: DatabaseConnection, shutdown: tokio_util::sync::CancellationToken) -> Self {
        let (queue, mut events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = tokio::select! {
                event = events.recv() => event,
                () = shutdown.cancelled() => None,
            } {
                let mut pause = std::time::Duration::from_millis(100);
                while let Err(error) = record(&db, &event).await {
                    tracing::warn!(%error, ?event, "a room event could not be recorded; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => return,
                    }
                    pause = (pause * 2).min(std::time::Duration::from_secs(30));
                }
            }
        });
        Self { queue }
    }
}

impl convene_media::rooms::Reporter for SessionRecorder {
    fn report(&self, event: convene_media::rooms::RoomEvent) {
        // Only fails once the writer has stopped, at shutdown.
        let _ = self.queue.send(event);
    }
}

async fn record(db: &DatabaseConnection, event: &convene_media::rooms::RoomEvent) -> Result<(), DbErr> {
    use convene_media::rooms::RoomEvent;
    let ((tenant, room), at) = match event {
        RoomEvent::Joined { room, at, .. } | RoomEvent::Left { room, at, .. } => (room, *at),
    };
    // Keys come from verified tokens and parsed paths; anything else is not ours to record.
    let (Ok(tenant), Ok(room)) = (TenantId::parse(tenant), RoomName::parse(room)) else { return Ok(()) };
    let at: DateTime<Utc> = at.into();
    match event {
        RoomEvent::Joined { participant, name, moderator, .. } => {
            participant_joined(db, tenant, &room, (participant, name, *moderator), at).await
        }
        RoomEvent::Left { participant, .. } => participant_left(db, tenant, &room, participant, at).await,
    }
}
