//! A tenant's rooms: created, listed (paginated by name), read, changed and deleted through `/v1/rooms`.
//! Every lookup is by `(tenant, name)`, so another tenant's room is simply not found.

use chrono::Utc;
use convene_domain::{MaxResolution, RoomName, RoomSettings, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{entities::room, meetings::removals, platform::pagination, platform::secrets::random_token};

/// Room size bounds: the SFU is sized for meetings of about ten; a hundred is the hard ceiling.
const PARTICIPANTS: std::ops::RangeInclusive<i32> = 2..=100;

/// A room as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Room {
    /// Its name (the meeting link's path).
    pub name: String,
    /// A title for people.
    pub title: Option<String>,
    /// Its settings.
    #[serde(flatten)]
    pub settings: RoomSettings,
    /// When it was created.
    pub created_at: chrono::DateTime<Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

/// `POST /v1/rooms`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    /// The name; generated when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// A title.
    #[serde(default)]
    pub title: Option<String>,
    /// Settings.
    #[serde(flatten)]
    pub settings: RoomSettings,
}

/// `PATCH /v1/rooms/{name}`: only the fields present change (`null` clears an optional one).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomChange {
    /// A new title (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    title: Option<Option<String>>,
    /// Lobby on or off.
    #[serde(default)]
    lobby: Option<bool>,
    /// A new password (`null` removes it).
    #[serde(default, deserialize_with = "present")]
    password: Option<Option<String>>,
    /// A new ceiling, 2–100 (`null` removes it).
    #[serde(default, deserialize_with = "present")]
    max_participants: Option<Option<i32>>,
    /// Guests on or off.
    #[serde(default)]
    guests_allowed: Option<bool>,
    /// Recording allowed or not.
    #[serde(default)]
    recording_allowed: Option<bool>,
    /// Recording by itself when the meeting starts, or not.
    #[serde(default)]
    auto_record: Option<bool>,
    /// End-to-end encryption on or off.
    #[serde(default)]
    end_to_end_encryption: Option<bool>,
    /// High-fidelity audio on or off.
    #[serde(default)]
    high_fidelity_audio: Option<bool>,
    /// `720p` or `1080p`.
    #[serde(default)]
    max_resolution: Option<MaxResolution>,
    /// Names from the meeting links fixed or not.
    #[serde(default)]
    fixed_display_names: Option<bool>,
}

impl RoomChange {
    /// A change that sets every setting to `settings` (the room's title stays).
    pub fn replacing(settings: RoomSettings) -> Self {
        Self {
            title: None,
            lobby: Some(settings.lobby),
            password: Some(settings.password),
            max_participants: Some(settings.max_participants),
            guests_allowed: Some(settings.guests_allowed),
            recording_allowed: Some(settings.recording_allowed),
            auto_record: Some(settings.auto_record),
            end_to_end_encryption: Some(settings.end_to_end_encryption),
            high_fidelity_audio: Some(settings.high_fidelity_audio),
            max_resolution: Some(settings.max_resolution),
            fixed_display_names: Some(settings.fixed_display_names),
        }
    }
}

/// Tells a field sent as `null` (clear it) from one not sent at all (keep it).
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Why a room request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// A field is unusable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field as the API names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The tenant already has a room of that name.
    #[error("a room named `{0}` already exists")]
    Taken(String),
    /// No such room in this tenant.
    #[error("no such room")]
    NotFound,
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Randomness failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

fn check(title: Option<&str>, settings: &RoomSettings) -> Result<(), RoomError> {
    if title.is_some_and(|title| title.chars().count() > 200) {
        return Err(RoomError::Invalid { field: "title", message: "at most 200 characters".to_owned() });
    }
    if settings.password.as_deref().is_some_and(|password| password.is_empty() || password.chars().count() > 64) {
        return Err(RoomError::Invalid {
            field: "password",
            message: "1 to 64 characters, or null for none".to_owned(),
        });
    }
    if settings.max_participants.is_some_and(|max| !PARTICIPANTS.contains(&max)) {
        return Err(RoomError::Invalid { field: "max_participants", message: "between 2 and 100".to_owned() });
    }
    if settings.auto_record && settings.end_to_end_encryption {
        return Err(RoomError::Invalid {
            field: "auto_record",
            message: "an end-to-end encrypted meeting cannot be recorded by the server".to_owned(),
        });
    }
    Ok(())
}

/// The settings a room row holds.
pub fn settings_of(row: &room::Model) -> RoomSettings {
    RoomSettings {
        lobby: row.lobby,
        password: row.password.clone(),
        max_participants: row.max_participants,
        guests_allowed: row.guests_allowed,
        recording_allowed: row.recording_allowed,
        auto_record: row.auto_record,
        end_to_end_encryption: row.end_to_end_encryption,
        high_fidelity_audio: row.high_fidelity_audio,
        // Written only from the enum, so always one of its spellings.
        max_resolution: row.max_resolution.parse().unwrap_or_default(),
        fixed_display_names: row.fixed_display_names,
    }
}

/// Sets a row's settings columns: the one place they are written, as `settings_of` is where they are read.
fn write_settings(row: &mut room::ActiveModel, settings: RoomSettings) {
    row.lobby = Set(settings.lobby);
    row.password = Set(settings.password);
    row.max_participants = Set(settings.max_participants);
    row.guests_allowed = Set(settings.guests_allowed);
    row.recording_allowed = Set(settings.recording_allowed);
    row.auto_record = Set(settings.auto_record);
    row.end_to_end_encryption = Set(settings.end_to_end_encryption);
    row.high_fidelity_audio = Set(settings.high_fidelity_audio);
    row.max_resolution = Set(settings.max_resolution.to_string());
    row.fixed_display_names = Set(settings.fixed_display_names);
}

fn view(row: room::Model) -> Room {
    Room {
        settings: settings_of(&row),
        name: row.name,
        title: row.title,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A room's row by name.
pub(super) async fn find(db: &impl ConnectionTrait, tenant: TenantId, name: &str) -> Result<room::Model, RoomError> {
    room::Entity::find()
        .filter(room::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room::Column::Name.eq(name))
        .one(db)
        .await?
        .ok_or(RoomError::NotFound)
}

/// Creates a room (with a generated name when none is given).
pub async fn create(db: &impl ConnectionTrait, tenant: TenantId, new: NewRoom) -> Result<Room, RoomError> {
    let name = match new.name {
        Some(name) => {
            RoomName::parse(&name).map_err(|error| RoomError::Invalid { field: "name", message: error.to_string() })?
        }
        None => RoomName::parse(&format!("room-{}", &random_token()?[..10])).map_err(anyhow::Error::from)?,
    };
    check(new.title.as_deref(), &new.settings)?;
    if find(db, tenant, name.as_str()).await.is_ok() {
        return Err(RoomError::Taken(name.to_string()));
    }
    let now = Utc::now();
    let mut row = room::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        name: Set(name.to_string()),
        title: Set(new.title),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    write_settings(&mut row, new.settings);
    let row = row
        .insert(db)
        .await
        // The unique (tenant, name) index decides between two creations racing for one name.
        .map_err(|_| RoomError::Taken(name.to_string()))?;
    Ok(view(row))
}

/// One page of rooms by name, after `after`; also the name to continue from, if more remain.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    limit: u64,
    after: Option<&str>,
) -> Result<(Vec<Room>, Option<String>), RoomError> {
    let mut query = room::Entity::find().filter(room::Column::TenantId.eq(tenant.as_uuid()));
    if let Some(after) = after {
        query = query.filter(room::Column::Name.gt(after));
    }
    let rows = query.order_by_asc(room::Column::Name).limit(pagination::fetch_size(limit)).all(db).await?;
    let (rows, next) = pagination::page(rows, limit, |row| row.name.clone());
    Ok((rows.into_iter().map(view).collect(), next))
}

/// The row id of a room, for tables that refer to it.
pub async fn id_of(db: &impl ConnectionTrait, tenant: TenantId, name: &str) -> Result<Uuid, RoomError> {
    find(db, tenant, name).await.map(|row| row.id)
}

/// A room by name.
pub async fn get(db: &impl ConnectionTrait, tenant: TenantId, name: &str) -> Result<Room, RoomError> {
    find(db, tenant, name).await.map(view)
}

/// Changes the fields present in `change`.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    name: &str,
    change: RoomChange,
) -> Result<Room, RoomError> {
    let row = find(db, tenant, name).await?;
    let mut current = view(row.clone());
    if let Some(title) = change.title {
        current.title = title;
    }
    let settings = &mut current.settings;
    if let Some(password) = change.password {
        settings.password = password;
    }
    if let Some(max) = change.max_participants {
        settings.max_participants = max;
    }
    if let Some(resolution) = change.max_resolution {
        settings.max_resolution = resolution;
    }
    settings.lobby = change.lobby.unwrap_or(settings.lobby);
    settings.guests_allowed = change.guests_allowed.unwrap_or(settings.guests_allowed);
    settings.recording_allowed = change.recording_allowed.unwrap_or(settings.recording_allowed);
    settings.auto_record = change.auto_record.unwrap_or(settings.auto_record);
    settings.end_to_end_encryption = change.end_to_end_encryption.unwrap_or(settings.end_to_end_encryption);
    settings.high_fidelity_audio = change.high_fidelity_audio.unwrap_or(settings.high_fidelity_audio);
    settings.fixed_display_names = change.fixed_display_names.unwrap_or(settings.fixed_display_names);
    check(current.title.as_deref(), &current.settings)?;
    let settings = current.settings;
    let mut active: room::ActiveModel = row.into();
    active.title = Set(current.title);
    write_settings(&mut active, settings);
    active.updated_at = Set(Utc::now());
    Ok(view(active.update(db).await?))
}

/// Deletes a room, and remembers when, in the same transaction: links to it must not open it again with
/// default settings (no lobby, no password).
pub async fn delete(db: &DatabaseConnection, tenant: TenantId, name: &str) -> Result<(), RoomError> {
    let transaction = crate::platform::db::begin_write(db).await?;
    let row = find(&transaction, tenant, name).await?;
    room::Entity::delete_by_id(row.id).exec(&transaction).await?;
    if let Ok(room) = RoomName::parse(&row.name) {
        removals::record_closure(&transaction, tenant, &room, removals::Closure::Deleted, Utc::now()).await?;
    }
    transaction.commit().await?;
    Ok(())
}
