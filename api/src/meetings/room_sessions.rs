//! Who was in which room when: the media node reports participants joining and leaving, and these records
//! answer `GET /v1/meetings` (past and ongoing sessions with participants and durations) and
//! `GET /v1/rooms/{name}/presence`. A session starts with its first participant and ends with its last.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use convene_domain::{RoomName, TenantId};
use convene_media::{
    focus::PhoneLeg,
    outbox::{Deliver, Envelope, NodeEvent, Undelivered},
    rooms::RoomEvent,
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    entities::{dead_letter, node_event_cursor, room_session, session_participant},
    meetings::{
        recordings,
        removals::{self, Closure, RemovedPerson},
    },
    platform::pagination,
    webhooks::{self, events::EventType},
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

/// The room's open session on `node`. Per node: after a failover the room's new session on another node
/// starts while the lost node's is still open, until the control plane closes that one at the node's last
/// heartbeat.
async fn open_session(
    db: &impl ConnectionTrait,
    node: &str,
    tenant: TenantId,
    room: &RoomName,
) -> Result<Option<room_session::Model>, DbErr> {
    room_session::Entity::find()
        .filter(room_session::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room_session::Column::RoomName.eq(room.as_str()))
        .filter(room_session::Column::NodeId.eq(node_column(node)))
        .filter(room_session::Column::EndedAt.is_null())
        .one(db)
        .await
}

/// A node id as stored (the column holds 64 characters).
fn node_column(node: &str) -> String {
    node.chars().take(64).collect()
}

/// Someone joined `room` on `node`: into its open session, or a new one.
pub async fn participant_joined(
    db: &(impl ConnectionTrait + TransactionTrait),
    node: &str,
    tenant: TenantId,
    room: &RoomName,
    participant: (&str, &str, bool, Option<PhoneLeg>),
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (participant_id, name, moderator, phone) = participant;
    let transaction = crate::platform::db::begin_write(db).await?;
    let session = match open_session(&transaction, node, tenant, room).await? {
        Some(session) => session,
        None => {
            let session = room_session::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant.as_uuid()),
                room_name: Set(room.as_str().to_owned()),
                started_at: Set(at),
                ended_at: Set(None),
                node_id: Set(Some(node_column(node))),
            }
            .insert(&transaction)
            .await?;
            emit(&transaction, tenant, EventType::MeetingStarted, meeting_data(&session), at).await?;
            session
        }
    };
    let stay = session_participant::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        session_id: Set(session.id),
        participant_id: Set(participant_id.chars().take(128).collect()),
        name: Set(name.chars().take(200).collect()),
        moderator: Set(moderator),
        joined_at: Set(at),
        left_at: Set(None),
        metered_minutes: Set(None),
        phone: Set(phone.map(|leg| phone_column(leg).to_owned())),
    }
    .insert(&transaction)
    .await?;
    emit_stay(&transaction, tenant, (&session, &stay), at).await?;
    transaction.commit().await
}

/// Queues a webhook event about a room's session (in the caller's transaction).
async fn emit(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    event: EventType,
    data: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    webhooks::events::emit(db, tenant, (event, data), None, at).await.map(drop)
}

/// A session as webhooks describe it.
fn meeting_data(session: &room_session::Model) -> serde_json::Value {
    let mut data = serde_json::json!({
        "room": session.room_name,
        "session_id": session.id,
        "started_at": session.started_at,
    });
    if let Some(ended) = session.ended_at {
        data["ended_at"] = serde_json::json!(ended);
        data["duration_seconds"] = serde_json::json!(seconds(session.started_at, Some(ended), ended));
    }
    data
}

/// How a phone's stay is stored (and named in webhooks).
fn phone_column(leg: PhoneLeg) -> &'static str {
    match leg {
        PhoneLeg::DialIn => "dial_in",
        PhoneLeg::DialOut => "dial_out",
    }
}

/// Queues what a stay's start (no `left_at` yet) or end tells webhooks: `participant.joined` or `.left`,
/// and for a phone `dial_in.*` or `dial_out.*` beside it.
async fn emit_stay(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    (session, stay): (&room_session::Model, &session_participant::Model),
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let left = stay.left_at.is_some();
    let leg =
        [PhoneLeg::DialIn, PhoneLeg::DialOut].into_iter().find(|leg| stay.phone.as_deref() == Some(phone_column(*leg)));
    let phone = match (leg, left) {
        (Some(PhoneLeg::DialIn), false) => Some(EventType::DialInJoined),
        (Some(PhoneLeg::DialIn), true) => Some(EventType::DialInLeft),
        (Some(PhoneLeg::DialOut), false) => Some(EventType::DialOutJoined),
        (Some(PhoneLeg::DialOut), true) => Some(EventType::DialOutLeft),
        (None, _) => None,
    };
    let stayed = if left { EventType::ParticipantLeft } else { EventType::ParticipantJoined };
    for event in std::iter::once(stayed).chain(phone) {
        emit(db, tenant, event, stay_data(session, stay), at).await?;
    }
    Ok(())
}

/// A stay in a session as webhooks describe it.
fn stay_data(session: &room_session::Model, stay: &session_participant::Model) -> serde_json::Value {
    let mut participant =
        serde_json::json!({ "id": stay.participant_id, "name": stay.name, "moderator": stay.moderator });
    if let Some(phone) = &stay.phone {
        participant["phone"] = serde_json::json!(phone);
    }
    let mut data = serde_json::json!({
        "room": session.room_name,
        "session_id": session.id,
        "participant": participant,
        "joined_at": stay.joined_at,
    });
    if let Some(left) = stay.left_at {
        data["left_at"] = serde_json::json!(left);
        data["duration_seconds"] = serde_json::json!(seconds(stay.joined_at, Some(left), left));
    }
    data
}

/// Someone left `room` on `node`; the session ends when no one is left. Leaving twice changes nothing.
pub async fn participant_left(
    db: &(impl ConnectionTrait + TransactionTrait),
    node: &str,
    tenant: TenantId,
    room: &RoomName,
    participant_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let transaction = crate::platform::db::begin_write(db).await?;
    let Some(session) = open_session(&transaction, node, tenant, room).await? else { return Ok(()) };
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
        let left = left.update(&transaction).await?;
        emit_stay(&transaction, tenant, (&session, &left), at).await?;
    }
    let remaining = session_participant::Entity::find()
        .filter(session_participant::Column::SessionId.eq(session.id))
        .filter(session_participant::Column::LeftAt.is_null())
        .one(&transaction)
        .await?;
    if remaining.is_none() {
        let mut ended: room_session::ActiveModel = session.into();
        ended.ended_at = Set(Some(at));
        let ended = ended.update(&transaction).await?;
        emit(&transaction, tenant, EventType::MeetingEnded, meeting_data(&ended), at).await?;
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

/// Who is in `room` now (empty when no session is going on). Every node's open session counts: during a
/// failover the lost node's lasts until the control plane ends it.
pub async fn presence(db: &impl ConnectionTrait, tenant: TenantId, room: &RoomName) -> Result<Vec<Stay>, DbErr> {
    let sessions: Vec<Uuid> = room_session::Entity::find()
        .filter(room_session::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room_session::Column::RoomName.eq(room.as_str()))
        .filter(room_session::Column::EndedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|session| session.id)
        .collect();
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    Ok(session_participant::Entity::find()
        .filter(session_participant::Column::SessionId.is_in(sessions))
        .filter(session_participant::Column::LeftAt.is_null())
        .order_by_asc(session_participant::Column::JoinedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|row| stay(row, now))
        .collect())
}

/// A media node stopped (it started again, or the control plane declared it gone): the sessions it hosted
/// ended when it was last known alive (or, without that, at `at`), and so did every stay in them and every
/// recording it was making (composed from what reached the composer, and marked interrupted).
pub async fn node_stopped(
    db: &(impl ConnectionTrait + TransactionTrait),
    node: &str,
    last_alive: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    recordings::node_stopped(db, node, last_alive, at).await?;
    end_node_sessions(db, node, last_alive, at).await
}

async fn end_node_sessions(
    db: &(impl ConnectionTrait + TransactionTrait),
    node: &str,
    last_alive: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let transaction = crate::platform::db::begin_write(db).await?;
    let hosted = room_session::Entity::find()
        .filter(room_session::Column::NodeId.eq(node_column(node)))
        .filter(room_session::Column::EndedAt.is_null())
        .all(&transaction)
        .await?;
    for session in hosted {
        // Never before the session started: the node may have been alive for only part of it.
        let ended = last_alive.unwrap_or(at).max(session.started_at);
        let stays = session_participant::Entity::find()
            .filter(session_participant::Column::SessionId.eq(session.id))
            .filter(session_participant::Column::LeftAt.is_null())
            .all(&transaction)
            .await?;
        let tenant = TenantId::from(session.tenant_id);
        for stay in stays {
            let left = ended.max(stay.joined_at);
            let mut stay: session_participant::ActiveModel = stay.into();
            stay.left_at = Set(Some(left));
            let stay = stay.update(&transaction).await?;
            emit_stay(&transaction, tenant, (&session, &stay), at).await?;
        }
        let mut session: room_session::ActiveModel = session.into();
        session.ended_at = Set(Some(ended));
        let session = session.update(&transaction).await?;
        emit(&transaction, tenant, EventType::MeetingEnded, meeting_data(&session), at).await?;
    }
    transaction.commit().await
}

/// Takes the media node's events from its durable outbox into sessions, each once: the last sequence
/// number taken from a node is stored with the event's effect, in one transaction, so an event delivered
/// again (the node crashed before noting the delivery) changes nothing. A database error is the outbox's to
/// retry; an event that fails the same way [`DEAD_LETTER_AFTER`] times in a row is set aside in
/// `dead_letters` with the reason, so one poison event never stops every tenant's records behind it.
#[derive(Debug, Clone)]
pub struct SessionRecorder {
    db: DatabaseConnection,
    /// Per node (each delivers its own line, at once with the others), the event at the head of its line
    /// that keeps failing.
    failing: Arc<Mutex<HashMap<String, Failing>>>,
    dead_letters: Counter,
}

/// An event that keeps failing: its key, the error and how often in a row.
type Failing = (String, String, u32);

/// Consecutive identical failures of one event before it is set aside.
pub const DEAD_LETTER_AFTER: u32 = 5;

impl SessionRecorder {
    /// Records into `db`; counts events set aside in `registry` (`convene_dead_letters_total`).
    pub fn new(db: DatabaseConnection, registry: &mut Registry) -> Self {
        let dead_letters = Counter::default();
        registry.register(
            "convene_dead_letters",
            "Node events the control plane could not record however often it tried, set aside in dead_letters",
            dead_letters.clone(),
        );
        Self { db, failing: Arc::default(), dead_letters }
    }

    /// How often in a row this event of `node` has now failed with this error.
    fn failed(&self, node: &str, key: &str, reason: &str) -> u32 {
        let mut failing = self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let attempts = match failing.get(node) {
            Some((last_key, last_reason, count)) if last_key == key && last_reason == reason => count + 1,
            _ => 1,
        };
        failing.insert(node.to_owned(), (key.to_owned(), reason.to_owned(), attempts));
        attempts
    }

    fn succeeded(&self, node: &str) {
        self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(node);
    }

    async fn take(&self, envelope: &Envelope) -> Result<(), Undelivered> {
        let Err(error) = record(&self.db, envelope).await else {
            self.succeeded(&envelope.node);
            return Ok(());
        };
        let reason = error.to_string();
        let key = format!("{}/{}", envelope.node, envelope.seq);
        let attempts = self.failed(&envelope.node, &key, &reason);
        if attempts < DEAD_LETTER_AFTER {
            return Err(Undelivered(reason));
        }
        // Setting aside needs the database too: while it is down this fails and the event waits.
        set_aside(&self.db, envelope, &key, &reason, attempts)
            .await
            .map_err(|aside| Undelivered(format!("{reason}; setting the event aside failed too: {aside}")))?;
        self.succeeded(&envelope.node);
        self.dead_letters.inc();
        tracing::error!(event = %key, %reason, attempts, "a node event could not be recorded and was set aside in dead_letters");
        Ok(())
    }
}

impl Deliver for SessionRecorder {
    fn deliver<'a>(
        &'a self,
        envelope: &'a Envelope,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Undelivered>> + Send + 'a>> {
        Box::pin(self.take(envelope))
    }
}

async fn record(db: &DatabaseConnection, envelope: &Envelope) -> Result<(), DbErr> {
    let transaction = crate::platform::db::begin_write(db).await?;
    if !advance_cursor(&transaction, envelope).await? {
        return transaction.commit().await;
    }
    apply(&transaction, &envelope.node, &envelope.event).await?;
    transaction.commit().await
}

/// Stores the event in `dead_letters` and moves the node's cursor past it, in one transaction.
async fn set_aside(
    db: &DatabaseConnection,
    envelope: &Envelope,
    key: &str,
    reason: &str,
    attempts: u32,
) -> Result<(), DbErr> {
    let transaction = crate::platform::db::begin_write(db).await?;
    if advance_cursor(&transaction, envelope).await? {
        // The reason and payload are kept printable: they failed to store once already.
        let printable = |text: &str| text.chars().filter(|c| !c.is_control()).take(10_000).collect::<String>();
        let payload = serde_json::to_string(&envelope.event).unwrap_or_default();
        dead_letter::ActiveModel {
            id: Set(Uuid::now_v7()),
            source: Set("node_events".to_owned()),
            key: Set(printable(key)),
            payload: Set(printable(&payload)),
            reason: Set(printable(reason)),
            attempts: Set(i32::try_from(attempts).unwrap_or(i32::MAX)),
            created_at: Set(Utc::now()),
        }
        .insert(&transaction)
        .await?;
    }
    transaction.commit().await
}

/// Notes the event as taken from its node; `false` when it was taken before (a redelivery).
async fn advance_cursor(transaction: &DatabaseTransaction, envelope: &Envelope) -> Result<bool, DbErr> {
    let seq = i64::try_from(envelope.seq).unwrap_or(i64::MAX);
    let cursor = node_event_cursor::Entity::find_by_id(envelope.node.clone()).one(transaction).await?;
    if cursor.as_ref().is_some_and(|cursor| cursor.last_seq >= seq) {
        return Ok(false);
    }
    let taken = node_event_cursor::ActiveModel { node_id: Set(envelope.node.clone()), last_seq: Set(seq) };
    match cursor {
        Some(_) => taken.update(transaction).await.map(drop)?,
        None => taken.insert(transaction).await.map(drop)?,
    }
    Ok(true)
}

async fn apply(db: &DatabaseTransaction, node: &str, event: &NodeEvent) -> Result<(), DbErr> {
    let room_event = match event {
        NodeEvent::Started { at, last_alive } => {
            let last_alive = last_alive.map(DateTime::<Utc>::from);
            return node_stopped(db, node, last_alive, (*at).into()).await;
        }
        NodeEvent::Room(event) => event,
    };
    let ((tenant, room), at) = match room_event {
        RoomEvent::Joined { room, at, .. }
        | RoomEvent::Left { room, at, .. }
        | RoomEvent::Removed { room, at, .. }
        | RoomEvent::Ended { room, at }
        | RoomEvent::RecordingStarted { room, at, .. }
        | RoomEvent::RecordingStopped { room, at, .. }
        | RoomEvent::LiveStreamStarted { room, at, .. }
        | RoomEvent::LiveStreamEnded { room, at, .. } => (room, *at),
    };
    // Keys come from verified tokens and parsed paths; anything else is not ours to record.
    let (Ok(tenant), Ok(room)) = (TenantId::parse(tenant), RoomName::parse(room)) else { return Ok(()) };
    let at: DateTime<Utc> = at.into();
    match room_event {
        RoomEvent::Joined { participant, name, moderator, phone, .. } => {
            participant_joined(db, node, tenant, &room, (participant, name, *moderator, *phone), at).await
        }
        RoomEvent::Left { participant, .. } => participant_left(db, node, tenant, &room, participant, at).await,
        RoomEvent::Removed { user_id, token, until, rejected, .. } => {
            let person = RemovedPerson {
                token_digest: token,
                user_id: user_id.as_deref(),
                until: until.map(DateTime::<Utc>::from),
                rejected: *rejected,
            };
            removals::record_removal(db, tenant, &room, person, at).await
        }
        RoomEvent::Ended { .. } => removals::record_closure(db, tenant, &room, Closure::Ended, at).await,
        RoomEvent::RecordingStarted { recording, by, by_user, by_email, .. } => {
            let by_email = by_email.as_deref();
            let started = recordings::Started { node, id: recording, by, by_user: by_user.as_deref(), by_email };
            recordings::started(db, tenant, &room, started, at).await
        }
        RoomEvent::RecordingStopped { recording, reason, bytes, .. } => {
            recordings::stopped(db, tenant, recording, (reason.as_deref(), *bytes), at).await
        }
        RoomEvent::LiveStreamStarted { stream, by, .. } => {
            let data = serde_json::json!({ "room": room.as_str(), "stream_id": stream, "started_by": by, "at": at });
            emit(db, tenant, EventType::LiveStreamStarted, data, at).await
        }
        RoomEvent::LiveStreamEnded { stream, by, reason, .. } => {
            let data = serde_json::json!({
                "room": room.as_str(), "stream_id": stream, "stopped_by": by, "reason": reason, "at": at,
            });
            emit(db, tenant, EventType::LiveStreamEnded, data, at).await
        }
    }
}
