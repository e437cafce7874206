//! Recorded meetings, as the control plane knows them: a row per recording from the media node's outbox
//! events (started, stopped; a node that restarts finds its interrupted recordings marked so), the state a
//! composer moves it through (`recording` → `processing` → `ready` or `failed`), and the tenant's view of
//! them for the API and the site. Every read and change is scoped to a tenant: another tenant's id is a
//! missing one. [`RecordingService::run_composer`] composes stopped recordings ([`compose`]) and, with a
//! bucket, uploads them ([`storage`]).

pub mod compose;
pub mod storage;
mod transport;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use convene_domain::{EmailAddress, RoomName, TenantId};
use convene_media::streaming::StreamTarget;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use uuid::Uuid;

use convene_app::model::{RecordingItem, RecordingListing};
use convene_domain::Role;
use url::Url;

pub use self::storage::Storage;
use crate::{
    billing::Billing,
    entities::recording,
    meetings::{
        room_commands::{CommandError, Done, RoomCommand, RoomCommands},
        rooms::{self, RoomError},
    },
    people::Actor,
    platform::{
        audit::{self, AuditEvent},
        envelope::Envelope,
        mail::{Email, Mailer},
        pagination,
    },
    webhooks::{self, events::EventType},
};

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// The meeting is being recorded.
    Recording,
    /// Recorded; being composed into one file.
    Processing,
    /// Ready to play and download.
    Ready,
    /// Composing failed (`failure` says why).
    Failed,
}

impl RecordingState {
    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "recording" => Self::Recording,
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            _ => Self::Failed,
        }
    }
}

/// A recording, as the API and the site show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Recording {
    /// Its id.
    pub id: Uuid,
    /// The room recorded.
    pub room: String,
    /// Where it is in its life.
    pub state: RecordingState,
    /// Who started it, as participants saw them.
    pub started_by: String,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When it stopped (absent while it goes on).
    pub stopped_at: Option<DateTime<Utc>>,
    /// The media node stopped while it recorded: what it had written was kept.
    pub interrupted: bool,
    /// Why it failed, or why it stopped before anyone stopped it.
    pub failure: Option<String>,
    /// The composed recording's length, in seconds, once ready.
    pub duration_seconds: Option<i64>,
    /// The composed file's size in bytes, once ready.
    pub size_bytes: Option<i64>,
    /// The people recorded, once composed.
    pub participants: Vec<String>,
    /// Where to fetch it, once ready: links that work without a key until they expire.
    pub download: Option<Download>,
}

/// A ready recording's signed links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Download {
    /// The composed MP4 (H.264 and AAC), to play or save.
    pub video_url: String,
    /// The sound alone (M4A).
    pub audio_url: String,
    /// When the links stop working; ask for the recording again for fresh ones.
    pub expires_at: DateTime<Utc>,
}

/// How recordings' times are written for people (the page, mails, the audit log).
const DATE_FORMAT: &str = "%a %-d %b %Y, %H:%M UTC";

/// How long download links work.
const LINK_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(1);

fn view(row: recording::Model) -> Recording {
    Recording {
        id: row.id,
        room: row.room,
        state: RecordingState::parse(&row.state),
        started_by: row.started_by,
        started_at: row.started_at,
        stopped_at: row.stopped_at,
        interrupted: row.interrupted,
        failure: row.failure,
        duration_seconds: row.duration_ms.map(|ms| ms / 1000),
        size_bytes: row.file_bytes,
        participants: row.participants.and_then(|names| serde_json::from_str(&names).ok()).unwrap_or_default(),
        download: None,
    }
}

/// What the node said when a recording started.
#[derive(Debug)]
pub struct Started<'a> {
    /// The node holding the tracks.
    pub node: &'a str,
    /// The recording's id, as the node wrote it.
    pub id: &'a str,
    /// Who started it, in words.
    pub by: &'a str,
    /// Their token's user id.
    pub by_user: Option<&'a str>,
    /// Their token's email address.
    pub by_email: Option<&'a str>,
}

/// Notes a recording the node started (once: a redelivered event changes nothing).
pub async fn started(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    room: &RoomName,
    event: Started<'_>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    // Ids come from the node's own disk; one that is not a UUID cannot be addressed and is not kept.
    let Ok(id) = Uuid::parse_str(event.id) else { return Ok(()) };
    let bounded = |text: &str, chars: usize| text.chars().filter(|c| !c.is_control()).take(chars).collect::<String>();
    let row = recording::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.as_uuid()),
        room: Set(room.as_str().to_owned()),
        node: Set(bounded(event.node, 64)),
        started_by: Set(bounded(event.by, 200)),
        started_by_user: Set(event.by_user.map(|user| bounded(user, 200))),
        // Tokens' addresses are checked when verified; one that is not an address gets no mail.
        notify_email: Set(event
            .by_email
            .and_then(|email| EmailAddress::parse(email).ok())
            .map(|email| email.as_str().to_owned())),
        started_at: Set(at),
        stopped_at: Set(None),
        state: Set(RecordingState::Recording.as_str().to_owned()),
        failure: Set(None),
        interrupted: Set(false),
        track_bytes: Set(0),
        duration_ms: Set(None),
        file_bytes: Set(None),
        participants: Set(None),
        attempts: Set(0),
        claimed_at: Set(None),
        object_key: Set(None),
        store_attempts: Set(0),
        retry_at: Set(None),
    };
    // The API notes a recording it started before the node's event arrives; whichever comes second is a no-op.
    let conflict = sea_orm::sea_query::OnConflict::column(recording::Column::Id).do_nothing().to_owned();
    let inserted = recording::Entity::insert(row).on_conflict(conflict).exec_without_returning(db).await?;
    if inserted == 1 {
        let data = serde_json::json!({
            "recording_id": id, "room": room.as_str(), "started_by": event.by, "started_at": at,
        });
        webhooks::events::emit(db, tenant, (EventType::RecordingStarted, data), None, at).await?;
    }
    Ok(())
}

/// Notes that a recording stopped: its tracks are complete and wait to be composed.
pub async fn stopped(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: &str,
    (reason, bytes): (Option<&str>, u64),
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Ok(id) = Uuid::parse_str(id) else { return Ok(()) };
    let Some(row) = find(db, tenant, id).await? else { return Ok(()) };
    if row.state != RecordingState::Recording.as_str() {
        return Ok(());
    }
    let mut row: recording::ActiveModel = row.into();
    row.stopped_at = Set(Some(at));
    row.state = Set(RecordingState::Processing.as_str().to_owned());
    row.failure = Set(reason.map(|reason| reason.chars().take(500).collect()));
    row.track_bytes = Set(i64::try_from(bytes).unwrap_or(i64::MAX));
    row.update(db).await.map(drop)
}

/// A node stopped (it started again, or was declared gone): the recordings it was making end when it was
/// last alive, marked interrupted, and are composed from what it wrote (if that reaches the composer).
pub async fn node_stopped(
    db: &impl ConnectionTrait,
    node: &str,
    last_alive: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let cut_short = recording::Entity::find()
        .filter(recording::Column::Node.eq(node))
        .filter(recording::Column::State.eq(RecordingState::Recording.as_str()))
        .all(db)
        .await?;
    for row in cut_short {
        let ended = last_alive.unwrap_or(at).max(row.started_at);
        let mut row: recording::ActiveModel = row.into();
        row.stopped_at = Set(Some(ended));
        row.state = Set(RecordingState::Processing.as_str().to_owned());
        row.interrupted = Set(true);
        row.update(db).await?;
    }
    Ok(())
}

async fn find(db: &impl ConnectionTrait, tenant: TenantId, id: Uuid) -> Result<Option<recording::Model>, DbErr> {
    recording::Entity::find_by_id(id).filter(recording::Column::TenantId.eq(tenant.as_uuid())).one(db).await
}

/// A page of the tenant's recordings, newest first, of one room if `room` is given.
async fn list(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    room: Option<&RoomName>,
    limit: u64,
    before: Option<Uuid>,
) -> Result<(Vec<Recording>, Option<Uuid>), DbErr> {
    let mut query = recording::Entity::find().filter(recording::Column::TenantId.eq(tenant.as_uuid()));
    if let Some(room) = room {
        query = query.filter(recording::Column::Room.eq(room.as_str()));
    }
    if let Some(before) = before {
        query = query.filter(recording::Column::Id.lt(before));
    }
    // UUIDv7 ids order like their start times.
    let rows = query.order_by_desc(recording::Column::Id).limit(pagination::fetch_size(limit)).all(db).await?;
    let (rows, next) = pagination::page(rows, limit, |row| row.id);
    Ok((rows.into_iter().map(view).collect(), next))
}

/// Why a recording could not be started, stopped or deleted.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// No such room or recording in the tenant (another tenant's looks the same).
    #[error("not found")]
    NotFound,
    /// The member's role does not allow it.
    #[error("your role does not allow this")]
    Forbidden,
    /// The plan does not include recording (the words say so).
    #[error("{0}")]
    NotInPlan(String),
    /// The room's state does not allow it now: no meeting going on, encrypted end to end, already (or not)
    /// recording, still recording when deleted. The words say which.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The bucket holding the recording's files failed; nothing was deleted.
    #[error("the recordings' storage failed: {0}")]
    Storage(String),
    /// The meeting's media node did not answer; the words say so.
    #[error("{0}")]
    Unavailable(String),
}

/// A recording as the site's page lists it.
fn item(recording: Recording) -> RecordingItem {
    let state_label = match recording.state {
        RecordingState::Recording => "Recording now",
        RecordingState::Processing => "Processing",
        RecordingState::Ready => "Ready",
        RecordingState::Failed => "Failed",
    };
    let note = match (&recording.failure, recording.interrupted) {
        (Some(failure), _) if recording.state == RecordingState::Failed => {
            Some(format!("It could not be made: {failure}"))
        }
        (Some(reason), _) => Some(format!("Recording stopped early: {reason}")),
        (None, true) => Some("The server stopped during the meeting; this is what was recorded until then.".to_owned()),
        (None, false) => None,
    };
    let (video_url, audio_url) = recording.download.map(|download| (download.video_url, download.audio_url)).unzip();
    RecordingItem {
        id: recording.id.to_string(),
        room: recording.room,
        started: recording.started_at.format(DATE_FORMAT).to_string(),
        length: recording.duration_seconds.map(|seconds| match seconds {
            0..60 => format!("{seconds} s"),
            _ => format!("{} min {} s", seconds / 60, seconds % 60),
        }),
        people: recording.participants,
        size: recording.size_bytes.map(|bytes| match bytes {
            0..1_000_000 => format!("{} kB", (bytes + 999) / 1000),
            _ => format!("{:.1} MB", bytes as f64 / 1e6),
        }),
        state: recording.state.as_str().to_owned(),
        state_label: state_label.to_owned(),
        note,
        video_url,
        audio_url,
    }
}

/// Why a download link opens nothing.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No such recording (or file), or it was deleted.
    #[error("this recording does not exist")]
    NotFound,
    /// The signature is not ours.
    #[error("this link is not valid")]
    Refused,
    /// The link's time is up.
    #[error("this link has expired; open the recording again for a fresh one")]
    Expired,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The bucket could not sign a link to the file.
    #[error("the recording cannot be reached just now; try again in a minute")]
    Storage(String),
}

/// Where a download link leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A file on this node's disk, served from here.
    File(PathBuf),
    /// A presigned URL into the bucket, valid as long as the link it was made for.
    Bucket(Url),
}

/// What a download link's signature covers: the recording, the file and the deadline.
pub fn download_message(id: Uuid, file: &str, expires: i64) -> String {
    format!("recording-download/{id}/{file}/{expires}")
}

/// A room's refusal in the API's terms: a room the tenant has but nobody is in has no meeting to record.
fn refusal(error: CommandError, known: bool) -> RecordingError {
    match error {
        CommandError::NotRunning if known => {
            RecordingError::Conflict("the meeting has not started: nobody is in the room".to_owned())
        }
        CommandError::NotRunning => RecordingError::NotFound,
        CommandError::Refused(words) => RecordingError::Conflict(words),
        CommandError::Unreachable(_) => RecordingError::Unavailable(error.to_string()),
    }
}

/// Who started a recording through the API, as participants see it.
pub const API_STARTER: &str = "the organisation's app";

/// The recordings context's rules beyond storage: starting and stopping a room's recording from the API,
/// and deleting recordings with their files.
#[derive(Debug, Clone)]
pub struct RecordingService {
    db: DatabaseConnection,
    billing: Billing,
    /// Where the API's start and stop go: the rooms here, or the media nodes.
    rooms: Option<Arc<dyn RoomCommands>>,
    /// Where recordings' files are.
    storage: Storage,
    /// Signs download links.
    envelope: Envelope,
    /// The site's URL, which download links start with.
    public_url: Url,
    /// Says when a recording is ready.
    mailer: Mailer,
}

impl RecordingService {
    /// Recordings over `db`, the plans in `billing`, mail through `mailer`, the running meetings `rooms`
    /// reaches, the files in `storage`, and download links under `public_url` signed by `envelope`.
    pub fn new(
        (db, billing, mailer): (DatabaseConnection, Billing, Mailer),
        rooms: Option<Arc<dyn RoomCommands>>,
        (storage, envelope, public_url): (Storage, Envelope, Url),
    ) -> Self {
        Self { db, billing, rooms, storage, envelope, public_url, mailer }
    }

    /// One of the tenant's recordings, with download links when it is ready.
    pub async fn get(&self, tenant: TenantId, id: Uuid) -> Result<Option<Recording>, DbErr> {
        Ok(find(&self.db, tenant, id).await?.map(view).map(|recording| self.with_links(recording, Utc::now())))
    }

    /// A page of the tenant's recordings, newest first (of one room if `room` is given), with download links.
    pub async fn list(
        &self,
        tenant: TenantId,
        room: Option<&RoomName>,
        limit: u64,
        before: Option<Uuid>,
    ) -> Result<(Vec<Recording>, Option<Uuid>), DbErr> {
        let (recordings, next) = list(&self.db, tenant, room, limit, before).await?;
        let now = Utc::now();
        Ok((recordings.into_iter().map(|recording| self.with_links(recording, now)).collect(), next))
    }

    fn with_links(&self, mut recording: Recording, now: DateTime<Utc>) -> Recording {
        if recording.state == RecordingState::Ready {
            let expires_at = now + LINK_LIFETIME;
            let link = |file: &str| {
                let expires = expires_at.timestamp();
                let signature = self.envelope.sign(&download_message(recording.id, file, expires));
                let site = self.public_url.as_str().trim_end_matches('/');
                format!("{site}/recordings/{}/{file}?expires={expires}&signature={signature}", recording.id)
            };
            recording.download = Some(Download {
                video_url: link(compose::VIDEO_FILE),
                audio_url: link(compose::AUDIO_FILE),
                expires_at,
            });
        }
        recording
    }

    /// The file a download link opens, if its signature is ours and it has not expired at `now`.
    pub async fn download(
        &self,
        id: Uuid,
        file: &str,
        (expires, signature): (i64, &str),
        now: DateTime<Utc>,
    ) -> Result<Stored, DownloadError> {
        if ![compose::VIDEO_FILE, compose::AUDIO_FILE].contains(&file) {
            return Err(DownloadError::NotFound);
        }
        if !self.envelope.verify(&download_message(id, file, expires), signature) {
            return Err(DownloadError::Refused);
        }
        if expires < now.timestamp() {
            return Err(DownloadError::Expired);
        }
        // A recording deleted since the link was made is gone, whatever the link says.
        let row = recording::Entity::find_by_id(id).one(&self.db).await?;
        let Some(row) = row.filter(|row| row.state == RecordingState::Ready.as_str()) else {
            return Err(DownloadError::NotFound);
        };
        match (row.object_key, &self.storage.bucket) {
            (None, _) => Ok(Stored::File(self.storage.dir.join(id.to_string()).join(file))),
            (Some(folder), Some(bucket)) => {
                let left = u64::try_from(expires - now.timestamp()).unwrap_or_default();
                let link = bucket.link(&folder, file, std::time::Duration::from_secs(left.max(1))).await;
                link.map(Stored::Bucket).map_err(DownloadError::Storage)
            }
            (Some(_), None) => {
                Err(DownloadError::Storage("recordings are in a bucket this server is not given".to_owned()))
            }
        }
    }

    /// Starts (`start`) or stops recording the meeting going on in `room`; answers the recording's id.
    pub async fn control(&self, tenant: TenantId, room: &RoomName, start: bool) -> Result<Uuid, RecordingError> {
        let done = self.command(tenant, room, RoomCommand::Record { start }).await?;
        let id = done.id.ok_or(RecordingError::NotFound)?;
        // Noted now, so the id answered is one the caller can read at once.
        let event = Started { node: &done.node, id: &id, by: API_STARTER, by_user: None, by_email: None };
        started(&self.db, tenant, room, event, Utc::now()).await?;
        Uuid::parse_str(&id).map_err(|_| RecordingError::NotFound)
    }

    /// Starts streaming the meeting going on in `room` live to `target`, or stops it (`None`).
    pub async fn stream(
        &self,
        tenant: TenantId,
        room: &RoomName,
        target: Option<StreamTarget>,
    ) -> Result<(), RecordingError> {
        self.command(tenant, room, RoomCommand::LiveStream { target }).await.map(drop)
    }

    /// Sends `command` to the meeting in `room` once the tenant is known to have the room (a start needs the
    /// plan to include recording, which covers live streaming).
    async fn command(&self, tenant: TenantId, room: &RoomName, command: RoomCommand) -> Result<Done, RecordingError> {
        let known = match rooms::find(&self.db, tenant, room.as_str()).await {
            Ok(_) => true,
            Err(RoomError::NotFound) => false,
            Err(RoomError::Database(error)) => return Err(error.into()),
            Err(other) => return Err(DbErr::Custom(other.to_string()).into()),
        };
        let start =
            matches!(command, RoomCommand::Record { start: true } | RoomCommand::LiveStream { target: Some(_) });
        if start {
            let allowance = self.billing.allowance(tenant).await?;
            if let Some(words) = allowance.recording_refused {
                return Err(RecordingError::NotInPlan(words));
            }
        }
        let Some(rooms) = &self.rooms else {
            return Err(RecordingError::Conflict("this server does not record or stream meetings".to_owned()));
        };
        rooms.send((tenant, room), command, API_STARTER).await.map_err(|error| refusal(error, known))
    }

    /// The recordings page for a member: moderators and above see recordings; owners and admins may delete.
    pub async fn page(&self, actor: Actor) -> Result<RecordingListing, RecordingError> {
        if actor.role == Role::Participant {
            return Err(RecordingError::Forbidden);
        }
        let (recordings, _) = self.list(actor.tenant, None, pagination::MAX_PAGE, None).await?;
        Ok(RecordingListing {
            recordings: recordings.into_iter().map(item).collect(),
            can_delete: actor.is_admin(),
            retention_days: self.billing.recording_retention(actor.tenant).await?,
        })
    }

    /// Deletes a recording for a member (owners and admins).
    pub async fn delete_as(&self, actor: Actor, id: Uuid) -> Result<(), RecordingError> {
        if !actor.is_admin() {
            return Err(RecordingError::Forbidden);
        }
        self.delete(actor.tenant, id, Deleter::Member(actor.user_id)).await
    }

    /// Deletes a recording and its files (refused while it is still recording), noting who in the tenant's
    /// audit log.
    pub async fn delete(&self, tenant: TenantId, id: Uuid, by: Deleter) -> Result<(), RecordingError> {
        let row = find(&self.db, tenant, id).await?.ok_or(RecordingError::NotFound)?;
        if row.state == RecordingState::Recording.as_str() {
            return Err(RecordingError::Conflict("stop the recording before deleting it".to_owned()));
        }
        if let Some(folder) = &row.object_key {
            // Kept (and the recording listed) until the bucket lets go of it: the retention sweep tries again.
            let bucket = self.storage.bucket.as_ref().ok_or_else(|| {
                RecordingError::Storage("recordings are in a bucket this server is not given".to_owned())
            })?;
            bucket.remove(folder).await.map_err(RecordingError::Storage)?;
        }
        let dir = self.storage.dir.join(id.to_string());
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "a deleted recording's files could not be removed");
            }
        }
        let when = row.started_at.format(DATE_FORMAT);
        let (actor, detail) = match by {
            Deleter::Member(user) => (Some(user), format!("recording {id} of {} on {when}", row.room)),
            Deleter::Api => (None, format!("recording {id} of {} on {when}, through the API", row.room)),
            Deleter::Retention(days) => {
                (None, format!("recording {id} of {} on {when}, after the plan's {days} days", row.room))
            }
        };
        let transaction = crate::platform::db::begin_write(&self.db).await?;
        recording::Entity::delete_by_id(id).exec(&transaction).await?;
        audit::record(&transaction, tenant, actor, AuditEvent::RecordingDeleted, &detail, None).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Deletes the finished recordings their tenants' plans keep no longer at `now`; answers how many.
    pub async fn delete_expired(&self, now: DateTime<Utc>) -> Result<usize, DbErr> {
        let Some(shortest) = self.billing.shortest_recording_retention() else { return Ok(0) };
        let finished = [RecordingState::Ready.as_str(), RecordingState::Failed.as_str()];
        let old = |days: u32| now - chrono::TimeDelta::days(i64::from(days));
        // Tenant by tenant, so one tenant's long-kept recordings never hold up another's expired ones.
        let tenants: Vec<Uuid> = recording::Entity::find()
            .select_only()
            .column(recording::Column::TenantId)
            .distinct()
            .filter(recording::Column::State.is_in(finished))
            .filter(recording::Column::StoppedAt.lt(old(shortest)))
            .limit(SWEEP_TENANTS)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut deleted = 0;
        for tenant in tenants.into_iter().map(TenantId::from) {
            let Some(days) = self.billing.recording_retention(tenant).await? else { continue };
            let expired: Vec<Uuid> = recording::Entity::find()
                .select_only()
                .column(recording::Column::Id)
                .filter(recording::Column::TenantId.eq(tenant.as_uuid()))
                .filter(recording::Column::State.is_in(finished))
                .filter(recording::Column::StoppedAt.lt(old(days)))
                .limit(SWEEP_RECORDINGS)
                .into_tuple()
                .all(&self.db)
                .await?;
            for id in expired {
                match self.delete(tenant, id, Deleter::Retention(days)).await {
                    Ok(()) => deleted += 1,
                    Err(RecordingError::Database(error)) => return Err(error),
                    Err(RecordingError::Storage(reason)) => {
                        tracing::warn!(%reason, %id, "an expired recording could not be deleted; it is tried again later");
                    }
                    // Deleted meanwhile by someone else: nothing left to do.
                    Err(_) => {}
                }
            }
        }
        Ok(deleted)
    }
}

/// Who deleted a recording, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleter {
    /// A member, on the site.
    Member(Uuid),
    /// The tenant's app, with an API key.
    Api,
    /// The plan's retention, after this many days.
    Retention(u32),
}

/// At most this many tenants, and recordings of each, are swept at once; the rest wait for the next sweep.
const SWEEP_TENANTS: u64 = 100;
const SWEEP_RECORDINGS: u64 = 100;
/// How often expired recordings are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Composition tries per recording before it is marked failed.
const COMPOSE_ATTEMPTS: i32 = 3;
/// A claim older than this is taken to be a composer that died, and the recording is composed again.
const STALE_CLAIM: chrono::TimeDelta = chrono::TimeDelta::hours(2);
/// The first wait after a failed upload; each further failure doubles it, up to the most.
const STORE_RETRY_FIRST: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
const STORE_RETRY_MOST: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// How often the composer looks for recordings to compose.
const COMPOSE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl RecordingService {
    /// Composes stopped recordings one at a time, until `shutdown`: each is claimed with a conditional
    /// update (so two processes never compose the same one), composed from the files in the store, and
    /// marked ready (and the moderator who started it told by mail), or failed with the reason after
    /// [`COMPOSE_ATTEMPTS`] tries. Between them, recordings past their plan's retention are deleted.
    pub async fn run_composer(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut last_sweep: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(COMPOSE_EVERY) => {}
            }
            if last_sweep.is_none_or(|swept| swept.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(std::time::Instant::now());
                match self.delete_expired(Utc::now()).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "recordings past their plan's retention were deleted"),
                    Err(error) => tracing::warn!(%error, "expired recordings could not be looked for"),
                }
            }
            match claim(&self.db, Utc::now()).await {
                Ok(Some(row)) => {
                    // On a task of its own, so a panic costs this recording a try, not the composer.
                    let (service, claimed) = (self.clone(), row.clone());
                    let mut job = tokio::spawn(async move { service.make_ready(row).await });
                    let outcome = tokio::select! {
                        () = shutdown.cancelled() => {
                            job.abort();
                            return;
                        }
                        outcome = &mut job => outcome,
                    };
                    if let Err(error) = outcome {
                        tracing::error!(%error, "composing a recording failed unexpectedly");
                        let failed = Err(format!("the composer failed unexpectedly ({error})"));
                        if let Err(error) = finish(&self.db, claimed, failed, None, Utc::now()).await {
                            tracing::warn!(%error, "a failed composition could not be noted");
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "the composer cannot read the recordings"),
            }
        }
    }

    /// Composes a claimed recording, uploads it when there is a bucket, and notes the outcome; the
    /// node's copy goes only once the bucket's is noted.
    async fn make_ready(&self, row: recording::Model) {
        let dir = self.storage.dir.join(row.id.to_string());
        let folder =
            self.storage.bucket.as_ref().map(|bucket| bucket.folder_for(TenantId::from(row.tenant_id), row.id));
        let composed = match self.fetch_tracks(&dir, folder.as_deref()).await {
            Ok(()) => compose::compose(&dir).await,
            Err(error) => Err(error),
        };
        let stored = match (&composed, &self.storage.bucket, folder) {
            (Ok(_), Some(bucket), Some(folder)) => Some(bucket.upload(&dir, &folder).await.map(|()| folder)),
            _ => None,
        };
        let ready = matches!((&composed, &stored), (Ok(_), None | Some(Ok(_))))
            .then(|| (row.room.clone(), row.notify_email.clone(), row.started_at));
        let stored_folder = match &stored {
            Some(Ok(folder)) => Some(folder.clone()),
            _ => None,
        };
        let uploaded = stored_folder.is_some();
        if let Err(error) = finish(&self.db, row, composed, stored, Utc::now()).await {
            tracing::warn!(%error, "a composed recording could not be noted; it is composed again later");
            return;
        }
        if uploaded && let Err(error) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(%error, dir = %dir.display(), "an uploaded recording's local copy could not be removed");
        }
        if let (Some(bucket), Some(folder)) = (&self.storage.bucket, stored_folder.as_deref()) {
            // A media node's tracks, now composed (a failed removal leaves them for the recording's deletion).
            if let Err(error) = bucket.remove_tracks(folder).await {
                tracing::warn!(%error, "a composed recording's tracks could not be removed from the bucket");
            }
        }
        if let Some((room, Some(email), started_at)) = ready {
            self.tell_ready(&room, &email, started_at).await;
        }
    }

    /// A recording a media node of this control plane made has its tracks in the bucket, not on this disk:
    /// they are fetched first (into a folder of their own, so a fetch cut short is never composed).
    async fn fetch_tracks(&self, dir: &Path, folder: Option<&str>) -> Result<(), String> {
        if tokio::fs::try_exists(dir).await.unwrap_or(false) {
            return Ok(());
        }
        // Recorded here, or no bucket: the composer says what is missing.
        let (Some(bucket), Some(folder)) = (&self.storage.bucket, folder) else { return Ok(()) };
        let fetching = dir.with_extension("fetching");
        let _ = tokio::fs::remove_dir_all(&fetching).await;
        if bucket.download_tracks(folder, &fetching).await? == 0 {
            let _ = tokio::fs::remove_dir_all(&fetching).await;
            return Err("its files never reached the recordings' storage from its media node".to_owned());
        }
        tokio::fs::rename(&fetching, dir).await.map_err(|error| format!("its tracks cannot be kept here ({error})"))
    }

    /// Mails the moderator who started a recording that it is ready.
    async fn tell_ready(&self, room: &str, email: &str, started_at: DateTime<Utc>) {
        let Ok(to) = EmailAddress::parse(email) else { return };
        let page = format!("{}/recordings", self.public_url.as_str().trim_end_matches('/'));
        let when = started_at.format(DATE_FORMAT).to_string();
        let said = format!("The recording of {room} you started on {when} is ready to play and download.");
        let mail = Email::new(
            &to,
            &format!("Your recording of {room} is ready"),
            &[&said],
            ("Open the recordings", &page),
            "Members of your organisation find it on the Recordings page; sign in to see it.",
        );
        if let Err(error) = self.mailer.queue(mail).await {
            tracing::warn!(%error, "the mail saying a recording is ready could not be queued");
        }
    }
}

/// Takes the oldest recording waiting to be composed, if any.
async fn claim(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Option<recording::Model>, DbErr> {
    let waiting = recording::Entity::find()
        .filter(recording::Column::State.eq(RecordingState::Processing.as_str()))
        .filter(
            sea_orm::Condition::any()
                .add(recording::Column::ClaimedAt.is_null())
                .add(recording::Column::ClaimedAt.lt(now - STALE_CLAIM)),
        )
        .filter(
            sea_orm::Condition::any()
                .add(recording::Column::RetryAt.is_null())
                .add(recording::Column::RetryAt.lte(now)),
        )
        .order_by_asc(recording::Column::Id)
        .one(db)
        .await?;
    let Some(row) = waiting else { return Ok(None) };
    // Only the process whose update still finds the claim as it read it takes the recording.
    let mut taken = recording::Entity::update_many()
        .col_expr(recording::Column::ClaimedAt, sea_orm::sea_query::Expr::value(now))
        .col_expr(recording::Column::Attempts, sea_orm::sea_query::Expr::value(row.attempts + 1))
        .filter(recording::Column::Id.eq(row.id))
        .filter(recording::Column::State.eq(RecordingState::Processing.as_str()));
    taken = match row.claimed_at {
        Some(claimed) => taken.filter(recording::Column::ClaimedAt.eq(claimed)),
        None => taken.filter(recording::Column::ClaimedAt.is_null()),
    };
    if taken.exec(db).await?.rows_affected != 1 {
        return Ok(None);
    }
    Ok(Some(recording::Model { claimed_at: Some(now), attempts: row.attempts + 1, ..row }))
}

/// Notes what composing `row` (and uploading it to `stored`, with a bucket) gave at `now`: ready, failed for
/// good, waiting for another try, or waiting for the bucket (which never fails the recording: its files
/// stay on the node's disk until an upload is confirmed).
async fn finish(
    db: &DatabaseConnection,
    row: recording::Model,
    composed: Result<compose::Composed, String>,
    stored: Option<Result<String, String>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (attempts, store_attempts) = (row.attempts, row.store_attempts);
    let mut row: recording::ActiveModel = row.into();
    match (composed, stored) {
        (Ok(_), Some(Err(reason))) => {
            let waited = (STORE_RETRY_FIRST * (1 << store_attempts.clamp(0, 10))).min(STORE_RETRY_MOST);
            tracing::warn!(%reason, retry_in = ?waited, "a recording could not be uploaded; it is tried again");
            // Composing worked: this claim does not count against its tries.
            row.attempts = Set(attempts - 1);
            row.store_attempts = Set(store_attempts + 1);
            row.retry_at = Set(Some(now + waited));
            row.claimed_at = Set(None);
        }
        (Ok(composed), stored) => {
            row.state = Set(RecordingState::Ready.as_str().to_owned());
            row.duration_ms = Set(Some(i64::try_from(composed.duration_ms).unwrap_or(i64::MAX)));
            row.file_bytes = Set(Some(i64::try_from(composed.bytes).unwrap_or(i64::MAX)));
            row.participants = Set(serde_json::to_string(&composed.participants).ok());
            row.object_key = Set(stored.and_then(Result::ok));
            row.retry_at = Set(None);
        }
        (Err(reason), _) if attempts >= COMPOSE_ATTEMPTS => {
            tracing::warn!(%reason, "a recording could not be composed");
            row.state = Set(RecordingState::Failed.as_str().to_owned());
            row.failure = Set(Some(reason.chars().take(500).collect()));
        }
        (Err(reason), _) => {
            tracing::info!(%reason, attempts, "composing a recording failed; it is tried again");
            row.claimed_at = Set(None);
        }
    }
    // The row and the webhook event together, or neither.
    let transaction = crate::platform::db::begin_write(db).await?;
    let row = row.update(&transaction).await?;
    let event = match RecordingState::parse(&row.state) {
        RecordingState::Ready => Some(EventType::RecordingReady),
        RecordingState::Failed => Some(EventType::RecordingFailed),
        RecordingState::Recording | RecordingState::Processing => None,
    };
    if let Some(event) = event {
        let recording = view(row.clone());
        let data = serde_json::json!({
            "recording_id": recording.id,
            "room": recording.room,
            "started_at": recording.started_at,
            "stopped_at": recording.stopped_at,
            "duration_seconds": recording.duration_seconds,
            "size_bytes": recording.size_bytes,
            "participants": recording.participants,
            "interrupted": recording.interrupted,
            "reason": recording.failure,
        });
        webhooks::events::emit(&transaction, TenantId::from(row.tenant_id), (event, data), None, now).await?;
    }
    transaction.commit().await
}
