//! Scheduled meetings: moderators (and above) schedule, change and cancel them, each in a room of its own
//! whose settings it carries; invitees get mail with an iCalendar invitation and a participant link that
//! opens the meeting with a participant token until the last occurrence ends.
//!
//! Times arrive as wall-clock times in a named time zone and are stored in UTC; weekly occurrences keep the
//! wall-clock time in that zone. Every lookup is scoped to the actor's tenant.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use convene_app::model::{JoinDetails, JoinState, MeetingDetails, MeetingDraft, MeetingListing, MeetingSummary};
use convene_domain::{EmailAddress, Role, RoomSettings, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;
use url::Url;
use uuid::Uuid;

use crate::{
    entities::{meeting, meeting_invitee, membership, room, tenant, user},
    http::pagination,
    meetings::calendar::{self, Method, Person},
    meetings::room_tokens::{self, MintError, TokenRequest, TokenUser},
    meetings::rooms::{self, RoomError},
    meetings::schedule::{InvalidField, MeetingInput, Schedule, check_title, parse_invitees},
    people::Actor,
    people::accounts::users_by_id,
    platform::envelope::Envelope,
    platform::mail::{Email, Mailer},
    platform::rate_limit::{MAIL_WINDOW, RateLimiter},
    platform::secrets::random_token,
};

/// A meeting may be scheduled to start this long ago (someone scheduling the meeting they are in).
const PAST_START: TimeDelta = TimeDelta::hours(1);
/// Past meetings shown on the meetings page.
const PAST_SHOWN: u64 = 50;
/// A token lasts until its occurrence ends plus this, so a meeting can overrun.
const OVERRUN: TimeDelta = TimeDelta::hours(1);
/// Room tokens live at most this long (the minting limit).
const LONGEST_TOKEN: TimeDelta = TimeDelta::days(7);

/// Why a meeting request was refused.
#[derive(Debug, thiserror::Error)]
pub enum MeetingError {
    /// A field is unusable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the form and the API name it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The organisation sent too much meeting mail this hour.
    #[error("this organisation has sent a lot of meeting invitations in the last hour; try again later")]
    RateLimited,
    /// Only moderators, admins and owners schedule meetings.
    #[error("your role does not allow scheduling meetings")]
    Forbidden,
    /// Invitations go out in the organiser's name, so their address must be confirmed first.
    #[error("confirm your email address before scheduling meetings")]
    Unverified,
    /// No such meeting in this tenant.
    #[error("no such meeting")]
    NotFound,
    /// It was cancelled (or is over) and cannot change.
    #[error("this meeting is {0} and cannot be changed")]
    Closed(&'static str),
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Anything else unexpected.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

impl From<InvalidField> for MeetingError {
    fn from(InvalidField { field, message }: InvalidField) -> Self {
        Self::Invalid { field, message }
    }
}

impl From<RoomError> for MeetingError {
    fn from(error: RoomError) -> Self {
        match error {
            // The meeting form calls the room's name `room`.
            RoomError::Invalid { field: "name", message } => Self::Invalid { field: "room", message },
            RoomError::Invalid { field, message } => Self::Invalid { field, message },
            RoomError::Taken(name) => Self::Invalid { field: "room", message: format!("`{name}` is already in use") },
            RoomError::NotFound => Self::NotFound,
            RoomError::Database(error) => Self::Database(error),
            RoomError::Internal(error) => Self::Internal(error),
        }
    }
}

impl From<MintError> for MeetingError {
    fn from(error: MintError) -> Self {
        Self::Internal(anyhow::Error::from(error))
    }
}

/// Why a participant link did not open the meeting.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Unknown link.
    #[error("this link does not lead to a meeting")]
    NotFound,
    /// The last occurrence is over.
    #[error("this meeting is over")]
    Ended,
    /// Called off.
    #[error("this meeting was cancelled")]
    Cancelled,
    /// Signed in, but neither a member nor invited.
    #[error("this invitation is for someone else; sign in with the invited address")]
    NotInvited,
    /// No account and the meeting admits no guests.
    #[error("sign in to join this meeting")]
    SignInRequired,
    /// A guest name that cannot be used.
    #[error("enter your name (1 to 80 characters)")]
    GuestName,
    /// Storage or minting failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

impl From<DbErr> for JoinError {
    fn from(error: DbErr) -> Self {
        Self::Internal(error.into())
    }
}

impl From<MintError> for JoinError {
    fn from(error: MintError) -> Self {
        Self::Internal(error.into())
    }
}

/// Who follows a participant link.
#[derive(Debug, Clone)]
pub enum Joiner {
    /// A signed-in person.
    Person(Uuid),
    /// Someone without an account, with the name they typed.
    Guest(String),
}

/// A scheduled meeting as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduledMeeting {
    /// Its id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// The room it takes place in.
    pub room: String,
    /// The organiser's address.
    pub organizer: Option<String>,
    /// The first occurrence's start, in UTC.
    pub starts_at: DateTime<Utc>,
    /// The first occurrence's end, in UTC.
    pub ends_at: DateTime<Utc>,
    /// The zone the meeting keeps its wall-clock time in.
    pub time_zone: String,
    /// 1 for a single meeting.
    pub weekly_occurrences: u32,
    /// When the last occurrence ends; the participant link works until then.
    pub last_ends_at: DateTime<Utc>,
    /// The participant link to share.
    pub join_url: String,
    /// Invited addresses.
    pub invitees: Vec<String>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The room's settings.
    #[serde(flatten)]
    pub settings: RoomSettings,
    /// Invitees whose mail could not be queued by this request (empty when all were); queued mail is
    /// retried until the mail server takes it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<String>,
}

/// Which invitation mails could not be queued.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Addresses whose mail could not be queued (the meeting is saved regardless).
    pub failed: Vec<String>,
}

/// A meeting as loaded, with its room and invitees.
struct Loaded {
    row: meeting::Model,
    room: room::Model,
    invitees: Vec<String>,
}

/// Schedules, changes, cancels and lists meetings; opens participant links.
#[derive(Debug, Clone)]
pub struct MeetingService {
    db: DatabaseConnection,
    mailer: Mailer,
    public_url: Url,
    meet_url: Url,
    /// Opens the sealed keys that mint the links.
    envelope: Envelope,
    /// Meeting mail per organisation: scheduling mails every invitee, so it is a way to send mail.
    limiter: std::sync::Arc<RateLimiter>,
}

/// Scheduling, changing or cancelling with mail, per organisation per hour.
const MEETING_MAIL_PER_TENANT: u32 = 100;

impl MeetingService {
    /// The service over `db`, mailing with `mailer`; links point at `public_url` and `meet_url`, and their
    /// tokens are signed with keys `envelope` opens.
    pub fn new(db: DatabaseConnection, mailer: Mailer, (public_url, meet_url): (Url, Url), envelope: Envelope) -> Self {
        Self { db, mailer, public_url, meet_url, envelope, limiter: std::sync::Arc::default() }
    }

    /// The member an API request schedules for, by address: a moderator (or above) of `tenant`.
    pub async fn api_actor(&self, tenant: TenantId, organizer: &str) -> Result<Actor, MeetingError> {
        let refused = || MeetingError::Invalid {
            field: "organizer",
            message: format!("`{organizer}` is not an enabled member of this organisation"),
        };
        let email = EmailAddress::parse(organizer).map_err(|_| refused())?;
        let person = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?
            .ok_or_else(refused)?;
        let member = membership::Entity::find_by_id((tenant.as_uuid(), person.id))
            .one(&self.db)
            .await?
            .filter(|member| member.disabled_at.is_none())
            .ok_or_else(refused)?;
        let role = Role::parse(&member.role).map_err(|_| refused())?;
        Ok(Actor { user_id: person.id, tenant, role })
    }

    /// One meeting for the API.
    pub async fn scheduled(&self, tenant: TenantId, id: Uuid) -> Result<ScheduledMeeting, MeetingError> {
        let loaded = self.load(tenant, id).await?;
        let organizer =
            users_by_id(&self.db, [loaded.row.organizer_id]).await?.remove(&loaded.row.organizer_id).map(|u| u.email);
        Ok(self.api_view(loaded, organizer))
    }

    /// One page of the tenant's meetings for the API, newest first, before the meeting `after`.
    pub async fn scheduled_page(
        &self,
        tenant: TenantId,
        limit: u64,
        after: Option<Uuid>,
    ) -> Result<(Vec<ScheduledMeeting>, Option<Uuid>), MeetingError> {
        let mut query = meeting::Entity::find().filter(meeting::Column::TenantId.eq(tenant.as_uuid()));
        if let Some(after) = after {
            query = query.filter(meeting::Column::Id.lt(after));
        }
        let rows = query.order_by_desc(meeting::Column::Id).limit(pagination::fetch_size(limit)).all(&self.db).await?;
        let (rows, next) = pagination::page(rows, limit, |row| row.id);
        let organizers = users_by_id(&self.db, rows.iter().map(|row| row.organizer_id)).await?;
        let page = self
            .complete(rows)
            .await?
            .into_iter()
            .map(|loaded| {
                let organizer = organizers.get(&loaded.row.organizer_id).map(|person| person.email.clone());
                self.api_view(loaded, organizer)
            })
            .collect();
        Ok((page, next))
    }

    fn api_view(&self, loaded: Loaded, organizer: Option<String>) -> ScheduledMeeting {
        let schedule = Schedule::of(&loaded.row);
        let room = loaded.room;
        ScheduledMeeting {
            settings: rooms::settings_of(&room),
            id: loaded.row.id,
            title: loaded.row.title,
            room: room.name,
            organizer,
            starts_at: loaded.row.starts_at,
            ends_at: loaded.row.ends_at,
            time_zone: schedule.time_zone.name().to_owned(),
            weekly_occurrences: schedule.weekly_occurrences,
            last_ends_at: loaded.row.last_ends_at,
            join_url: self.join_link(&loaded.row.join_code),
            invitees: loaded.invitees,
            cancelled_at: loaded.row.cancelled_at,
            undelivered: Vec::new(),
        }
    }

    /// The organiser, as [`Self::organiser`], for a change that mails the invitees: within the organisation's
    /// hourly allowance of meeting mail.
    async fn mailing_organiser(&self, actor: Actor) -> Result<user::Model, MeetingError> {
        let organiser = self.organiser(actor).await?;
        let key = format!("meeting-mail:{}", actor.tenant);
        if !self.limiter.allow(&key, MEETING_MAIL_PER_TENANT, MAIL_WINDOW, std::time::Instant::now()) {
            return Err(MeetingError::RateLimited);
        }
        Ok(organiser)
    }

    /// Moderators, admins and owners with a confirmed address may schedule.
    async fn organiser(&self, actor: Actor) -> Result<user::Model, MeetingError> {
        if actor.role == Role::Participant {
            return Err(MeetingError::Forbidden);
        }
        let person = user::Entity::find_by_id(actor.user_id).one(&self.db).await?.ok_or(MeetingError::Forbidden)?;
        if person.email_verified_at.is_none() {
            return Err(MeetingError::Unverified);
        }
        Ok(person)
    }

    /// Schedules a meeting in a new room and mails the invitations.
    pub async fn schedule(&self, actor: Actor, input: MeetingInput) -> Result<(Uuid, Delivery), MeetingError> {
        let organiser = self.mailing_organiser(actor).await?;
        let title = check_title(&input.title)?;
        let schedule = Schedule::parse(&input)?;
        if schedule.starts_at < Utc::now() - PAST_START {
            return Err(MeetingError::Invalid { field: "starts_at", message: "is in the past".to_owned() });
        }
        let invitees = parse_invitees(&input.invitees)?;
        let new_room = rooms::NewRoom {
            name: input.room.filter(|name| !name.trim().is_empty()),
            title: None,
            settings: input.settings,
        };
        let now = Utc::now();
        let id = Uuid::now_v7();
        let transaction = self.db.begin().await?;
        let room = rooms::create(&transaction, actor.tenant, new_room).await?;
        let room_id = rooms::id_of(&transaction, actor.tenant, &room.name).await?;
        meeting::ActiveModel {
            id: Set(id),
            tenant_id: Set(actor.tenant.as_uuid()),
            room_id: Set(room_id),
            organizer_id: Set(organiser.id),
            title: Set(title),
            starts_at: Set(schedule.starts_at),
            ends_at: Set(schedule.ends_at),
            time_zone: Set(schedule.time_zone.name().to_owned()),
            weekly_occurrences: Set(i32::try_from(schedule.weekly_occurrences).unwrap_or(1)),
            last_ends_at: Set(schedule.last_ends_at()),
            join_code: Set(random_token()?),
            sequence: Set(0),
            cancelled_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&transaction)
        .await?;
        add_invitees(&transaction, actor.tenant, id, &invitees, now).await?;
        transaction.commit().await?;
        let loaded = self.load(actor.tenant, id).await?;
        let delivery = self.mail(&loaded, &organiser, Method::Request, &loaded.invitees).await;
        Ok((id, delivery))
    }

    /// Changes a meeting; everyone invited gets the update (a new `SEQUENCE`), removed invitees a cancellation.
    pub async fn update(&self, actor: Actor, id: Uuid, input: MeetingInput) -> Result<Delivery, MeetingError> {
        // Another tenant's meeting is not found, whatever else would refuse the change.
        let before = self.load(actor.tenant, id).await?;
        let organiser = self.mailing_organiser(actor).await?;
        if before.row.cancelled_at.is_some() {
            return Err(MeetingError::Closed("cancelled"));
        }
        if before.row.last_ends_at <= Utc::now() {
            return Err(MeetingError::Closed("over"));
        }
        let title = check_title(&input.title)?;
        let schedule = Schedule::parse(&input)?;
        let invitees = parse_invitees(&input.invitees)?;
        let now = Utc::now();
        let transaction = self.db.begin().await?;
        rooms::update(&transaction, actor.tenant, &before.room.name, rooms::RoomChange::replacing(input.settings))
            .await?;
        let mut active: meeting::ActiveModel = before.row.clone().into();
        active.title = Set(title);
        active.starts_at = Set(schedule.starts_at);
        active.ends_at = Set(schedule.ends_at);
        active.time_zone = Set(schedule.time_zone.name().to_owned());
        active.weekly_occurrences = Set(i32::try_from(schedule.weekly_occurrences).unwrap_or(1));
        active.last_ends_at = Set(schedule.last_ends_at());
        active.sequence = Set(before.row.sequence + 1);
        active.updated_at = Set(now);
        active.update(&transaction).await?;
        let kept: Vec<String> = invitees.iter().map(ToString::to_string).collect();
        let removed: Vec<String> = before.invitees.iter().filter(|email| !kept.contains(email)).cloned().collect();
        meeting_invitee::Entity::delete_many()
            .filter(meeting_invitee::Column::MeetingId.eq(id))
            .filter(meeting_invitee::Column::Email.is_in(removed.clone()))
            .exec(&transaction)
            .await?;
        let added: Vec<EmailAddress> =
            invitees.into_iter().filter(|email| !before.invitees.contains(&email.to_string())).collect();
        add_invitees(&transaction, actor.tenant, id, &added, now).await?;
        transaction.commit().await?;
        let after = self.load(actor.tenant, id).await?;
        let mut delivery = self.mail(&after, &organiser, Method::Request, &after.invitees).await;
        let cancelled = Loaded { invitees: removed.clone(), ..after };
        delivery.failed.extend(self.mail(&cancelled, &organiser, Method::Cancel, &removed).await.failed);
        Ok(delivery)
    }

    /// Calls a meeting off and tells everyone invited.
    pub async fn cancel(&self, actor: Actor, id: Uuid) -> Result<Delivery, MeetingError> {
        let loaded = self.load(actor.tenant, id).await?;
        let organiser = self.mailing_organiser(actor).await?;
        if loaded.row.cancelled_at.is_some() {
            return Err(MeetingError::Closed("cancelled"));
        }
        let now = Utc::now();
        let mut active: meeting::ActiveModel = loaded.row.clone().into();
        active.cancelled_at = Set(Some(now));
        active.sequence = Set(loaded.row.sequence + 1);
        active.updated_at = Set(now);
        let row = active.update(&self.db).await?;
        let loaded = Loaded { row, ..loaded };
        Ok(self.mail(&loaded, &organiser, Method::Cancel, &loaded.invitees).await)
    }

    /// The tenant's upcoming and past meetings.
    pub async fn list(&self, actor: Actor) -> Result<MeetingListing, MeetingError> {
        if actor.role == Role::Participant {
            return Err(MeetingError::Forbidden);
        }
        let now = Utc::now();
        let tenant = meeting::Column::TenantId.eq(actor.tenant.as_uuid());
        let upcoming = meeting::Entity::find()
            .filter(tenant.clone())
            .filter(meeting::Column::CancelledAt.is_null())
            .filter(meeting::Column::LastEndsAt.gt(now))
            .order_by_asc(meeting::Column::StartsAt)
            .all(&self.db)
            .await?;
        let past = meeting::Entity::find()
            .filter(tenant)
            .filter(
                Condition::any()
                    .add(meeting::Column::CancelledAt.is_not_null())
                    .add(meeting::Column::LastEndsAt.lte(now)),
            )
            .order_by_desc(meeting::Column::StartsAt)
            .limit(PAST_SHOWN)
            .all(&self.db)
            .await?;
        let mut upcoming = self.summaries(upcoming, now).await?;
        // A series sorts by its next occurrence, not its first.
        upcoming.sort_by_key(|(next, _)| *next);
        let past = self.summaries(past, now).await?;
        Ok(MeetingListing {
            upcoming: upcoming.into_iter().map(|(_, summary)| summary).collect(),
            past: past.into_iter().map(|(_, summary)| summary).collect(),
        })
    }

    async fn summaries(
        &self,
        rows: Vec<meeting::Model>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, MeetingSummary)>, MeetingError> {
        Ok(self.complete(rows).await?.iter().map(|loaded| summary(loaded, now)).collect())
    }

    /// One meeting's page.
    pub async fn details(&self, actor: Actor, id: Uuid) -> Result<MeetingDetails, MeetingError> {
        if actor.role == Role::Participant {
            return Err(MeetingError::Forbidden);
        }
        let loaded = self.load(actor.tenant, id).await?;
        let now = Utc::now();
        let schedule = Schedule::of(&loaded.row);
        let organizer = users_by_id(&self.db, [loaded.row.organizer_id])
            .await?
            .remove(&loaded.row.organizer_id)
            .map_or_else(|| "a former member".to_owned(), |person| person.display_name);
        let ended = loaded.row.last_ends_at <= now;
        let occurrences: Vec<String> = schedule
            .occurrences()
            .filter(|(_, end)| ended || *end > now)
            .map(|occurrence| schedule.describe(occurrence))
            .collect();
        let room = &loaded.room;
        let settings = [
            (room.lobby, "Lobby"),
            (room.password.is_some(), "Password"),
            (room.guests_allowed, "Guests may join by name"),
            (room.recording_allowed, "Recording allowed"),
            (room.end_to_end_encryption, "End-to-end encryption"),
            (room.high_fidelity_audio, "High-fidelity audio"),
            (room.fixed_display_names, "Names from the invitations"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, label)| label.to_owned())
        .chain(room.max_participants.map(|max| format!("At most {max} participants")))
        .chain([format!("Video up to {}", room.max_resolution)])
        .collect();
        let local = |at: DateTime<Utc>| at.with_timezone(&schedule.time_zone).format("%Y-%m-%dT%H:%M").to_string();
        let draft = MeetingDraft {
            title: loaded.row.title.clone(),
            room: room.name.clone(),
            starts_at: local(loaded.row.starts_at),
            ends_at: local(loaded.row.ends_at),
            time_zone: schedule.time_zone.name().to_owned(),
            weekly_occurrences: schedule.weekly_occurrences,
            invitees: loaded.invitees.join("\n"),
            lobby: room.lobby,
            password: room.password.clone().unwrap_or_default(),
            max_participants: room.max_participants.map(|max| max.to_string()).unwrap_or_default(),
            guests_allowed: room.guests_allowed,
            recording_allowed: room.recording_allowed,
            end_to_end_encryption: room.end_to_end_encryption,
            high_fidelity_audio: room.high_fidelity_audio,
            fixed_display_names: room.fixed_display_names,
            max_resolution: rooms::settings_of(room).max_resolution,
        };
        Ok(MeetingDetails {
            summary: summary(&loaded, now).1,
            occurrences,
            organizer,
            join_link: self.join_link(&loaded.row.join_code),
            invitees: loaded.invitees,
            settings,
            ended,
            draft,
        })
    }

    /// The moderator's "Start": a moderator token for the meeting's room.
    pub async fn start(&self, actor: Actor, id: Uuid) -> Result<String, MeetingError> {
        let loaded = self.load(actor.tenant, id).await?;
        let organiser = self.organiser(actor).await?;
        let now = Utc::now();
        if loaded.row.cancelled_at.is_some() {
            return Err(MeetingError::Closed("cancelled"));
        }
        let Some((_, end)) = Schedule::of(&loaded.row).current(now) else { return Err(MeetingError::Closed("over")) };
        let person = TokenUser {
            id: Some(organiser.id.to_string()),
            name: organiser.display_name,
            email: Some(organiser.email),
            avatar: None,
        };
        Ok(self.room_link(actor.tenant, &loaded.room, person, true, end, now).await?)
    }

    /// What a participant link shows before joining.
    pub async fn join_details(&self, code: &str, person: Option<Uuid>) -> Result<JoinDetails, JoinError> {
        let loaded = self.by_code(code).await?;
        let now = Utc::now();
        let schedule = Schedule::of(&loaded.row);
        let organisation = tenant::Entity::find_by_id(loaded.row.tenant_id)
            .one(&self.db)
            .await?
            .map(|tenant| tenant.name)
            .unwrap_or_default();
        let signed_in_as = match person {
            Some(id) => users_by_id(&self.db, [id]).await?.remove(&id).map(|person| person.display_name),
            None => None,
        };
        Ok(JoinDetails {
            title: loaded.row.title.clone(),
            organisation,
            when: schedule.describe(schedule.current(now).unwrap_or((loaded.row.starts_at, loaded.row.ends_at))),
            guests_allowed: loaded.room.guests_allowed,
            state: state_of(&loaded.row, now),
            signed_in_as,
        })
    }

    /// Opens the meeting behind a participant link: members of the tenant and invited (confirmed) addresses
    /// join signed in, those whose role moderates (as it is now) as moderators; guests join by name when
    /// the meeting admits them. Answers the meet URL with the token.
    pub async fn join(&self, code: &str, joiner: Joiner) -> Result<String, JoinError> {
        let loaded = self.by_code(code).await?;
        let now = Utc::now();
        match state_of(&loaded.row, now) {
            JoinState::Open => {}
            JoinState::Ended => return Err(JoinError::Ended),
            JoinState::Cancelled => return Err(JoinError::Cancelled),
        }
        let Some((_, end)) = Schedule::of(&loaded.row).current(now) else { return Err(JoinError::Ended) };
        let tenant = TenantId::from(loaded.row.tenant_id);
        let (person, moderator) = match joiner {
            Joiner::Guest(name) => {
                if !loaded.room.guests_allowed {
                    return Err(JoinError::SignInRequired);
                }
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 80 {
                    return Err(JoinError::GuestName);
                }
                let person = TokenUser {
                    id: Some(format!("{GUEST_PREFIX}{}", Uuid::new_v4().simple())),
                    name: name.to_owned(),
                    email: None,
                    avatar: None,
                };
                (person, false)
            }
            Joiner::Person(id) => {
                let person = users_by_id(&self.db, [id]).await?.remove(&id).ok_or(JoinError::SignInRequired)?;
                let role = membership::Entity::find_by_id((loaded.row.tenant_id, id))
                    .one(&self.db)
                    .await?
                    .filter(|member| member.disabled_at.is_none())
                    .and_then(|member| Role::parse(&member.role).ok());
                let invited = person.email_verified_at.is_some() && loaded.invitees.contains(&person.email);
                if role.is_none() && !invited {
                    return Err(JoinError::NotInvited);
                }
                // The role now, not at scheduling: an organiser demoted to participant joins as one.
                let moderator = role.is_some_and(|role| role != Role::Participant);
                let person = TokenUser {
                    id: Some(person.id.to_string()),
                    name: person.display_name,
                    email: Some(person.email),
                    avatar: None,
                };
                (person, moderator)
            }
        };
        Ok(self.room_link(tenant, &loaded.room, person, moderator, end, now).await?)
    }

    async fn room_link(
        &self,
        tenant: TenantId,
        room: &room::Model,
        person: TokenUser,
        moderator: bool,
        occurrence_end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, MintError> {
        let expires = (occurrence_end + OVERRUN).min(now + LONGEST_TOKEN);
        let request = TokenRequest {
            room: room.name.clone(),
            user: person,
            moderator,
            features: convene_tokens::Features { recording: room.recording_allowed, ..Default::default() },
            exp: Some(u64::try_from(expires.timestamp()).unwrap_or_default()),
        };
        let now = u64::try_from(now.timestamp()).unwrap_or_default();
        let minted = room_tokens::mint(&self.db, &self.envelope, tenant, request, &self.meet_url, now).await?;
        minted.join_url.ok_or_else(|| MintError::Invalid("the room has no link".to_owned()))
    }

    fn join_link(&self, code: &str) -> String {
        let mut link = self.public_url.clone();
        link.set_path(&format!("join/{code}"));
        link.to_string()
    }

    async fn load(&self, tenant: TenantId, id: Uuid) -> Result<Loaded, MeetingError> {
        let row = meeting::Entity::find_by_id(id)
            .filter(meeting::Column::TenantId.eq(tenant.as_uuid()))
            .one(&self.db)
            .await?
            .ok_or(MeetingError::NotFound)?;
        self.complete(vec![row]).await?.pop().ok_or(MeetingError::NotFound)
    }

    async fn by_code(&self, code: &str) -> Result<Loaded, JoinError> {
        // Codes are 43 URL-safe characters; anything else cannot match and is not looked up.
        if code.len() > 64 {
            return Err(JoinError::NotFound);
        }
        let row = meeting::Entity::find()
            .filter(meeting::Column::JoinCode.eq(code))
            .one(&self.db)
            .await?
            .ok_or(JoinError::NotFound)?;
        self.complete(vec![row]).await?.pop().ok_or(JoinError::NotFound)
    }

    /// The meetings with their rooms and invitees, in two queries whatever their number.
    async fn complete(&self, rows: Vec<meeting::Model>) -> Result<Vec<Loaded>, DbErr> {
        let room_ids: Vec<Uuid> = rows.iter().map(|row| row.room_id).collect();
        let mut rooms: HashMap<Uuid, room::Model> = room::Entity::find()
            .filter(room::Column::Id.is_in(room_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|room| (room.id, room))
            .collect();
        let mut invitees: HashMap<Uuid, Vec<String>> = HashMap::new();
        for invitee in meeting_invitee::Entity::find()
            .filter(meeting_invitee::Column::MeetingId.is_in(rows.iter().map(|row| row.id)))
            .order_by_asc(meeting_invitee::Column::Email)
            .all(&self.db)
            .await?
        {
            invitees.entry(invitee.meeting_id).or_default().push(invitee.email);
        }
        // A meeting's room goes with it (the foreign key cascades), so a missing room means a deleted meeting.
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let room = rooms.remove(&row.room_id)?;
                let invitees = invitees.remove(&row.id).unwrap_or_default();
                Some(Loaded { row, room, invitees })
            })
            .collect())
    }

    /// Mails `method` for the meeting to `to`; failures are logged and reported, never fatal.
    async fn mail(&self, loaded: &Loaded, organiser: &user::Model, method: Method, to: &[String]) -> Delivery {
        let mut delivery = Delivery::default();
        if to.is_empty() {
            return delivery;
        }
        let schedule = Schedule::of(&loaded.row);
        let link = self.join_link(&loaded.row.join_code);
        let when = schedule.describe((loaded.row.starts_at, loaded.row.ends_at));
        let repeats = schedule.recurrence().map(|text| format!(" {text}.")).unwrap_or_default();
        let host = self.public_url.host_str().unwrap_or("convene");
        let event = calendar::Event {
            uid: format!("{}@{host}", loaded.row.id),
            sequence: loaded.row.sequence,
            summary: loaded.row.title.clone(),
            description: format!("Join the meeting: {link}"),
            url: link.clone(),
            starts_at: loaded.row.starts_at,
            ends_at: loaded.row.ends_at,
            time_zone: schedule.time_zone,
            weekly_occurrences: schedule.weekly_occurrences,
            organizer: Person { name: Some(organiser.display_name.clone()), email: organiser.email.clone() },
            attendees: loaded.invitees.iter().map(|email| Person { name: None, email: email.clone() }).collect(),
        };
        let ics = calendar::render(&event, method, Utc::now());
        let title = &loaded.row.title;
        let (subject, lines) = match (method, loaded.row.sequence) {
            (Method::Cancel, _) => (
                format!("Cancelled: {title}"),
                format!("{} cancelled {title}, planned for {when}.{repeats}", organiser.display_name),
            ),
            (Method::Request, 0) => (
                format!("Invitation: {title} @ {when}"),
                format!("{} invites you to {title} on {when}.{repeats}", organiser.display_name),
            ),
            (Method::Request, _) => (
                format!("Updated invitation: {title} @ {when}"),
                format!("{} changed {title}: it is now on {when}.{repeats}", organiser.display_name),
            ),
        };
        for address in to {
            let Ok(recipient) = EmailAddress::parse(address) else {
                delivery.failed.push(address.clone());
                continue;
            };
            let email = Email::new(
                &recipient,
                &subject,
                &["Hello,", &lines],
                ("Join the meeting", &link),
                "The link opens the meeting until it ends. The attached invitation adds it to your calendar.",
            )
            .with_calendar(method, ics.clone());
            if let Err(error) = self.mailer.queue(email).await {
                tracing::warn!(%error, to = %address, meeting = %loaded.row.id, "a meeting mail could not be queued");
                delivery.failed.push(address.clone());
            }
        }
        delivery
    }
}

/// A meeting for lists, at its occurrence going on or next (its first, once all are over); also that
/// occurrence's start, which upcoming lists sort by.
fn summary(loaded: &Loaded, now: DateTime<Utc>) -> (DateTime<Utc>, MeetingSummary) {
    let row = &loaded.row;
    let schedule = Schedule::of(row);
    let shown = schedule.current(now).unwrap_or((row.starts_at, row.ends_at));
    let summary = MeetingSummary {
        id: row.id.to_string(),
        title: row.title.clone(),
        room: loaded.room.name.clone(),
        when: schedule.describe(shown),
        recurrence: schedule.recurrence(),
        invitees: loaded.invitees.len(),
        cancelled: row.cancelled_at.is_some(),
    };
    (shown.0, summary)
}

pub(super) fn state_of(row: &meeting::Model, now: DateTime<Utc>) -> JoinState {
    if row.cancelled_at.is_some() {
        JoinState::Cancelled
    } else if row.last_ends_at <= now {
        JoinState::Ended
    } else {
        JoinState::Open
    }
}

async fn add_invitees(
    db: &impl sea_orm::ConnectionTrait,
    tenant: TenantId,
    meeting_id: Uuid,
    invitees: &[EmailAddress],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if invitees.is_empty() {
        return Ok(());
    }
    meeting_invitee::Entity::insert_many(invitees.iter().map(|email| meeting_invitee::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        meeting_id: Set(meeting_id),
        email: Set(email.to_string()),
        invited_at: Set(now),
    }))
    .exec(db)
    .await?;
    Ok(())
}

/// The user ids of guests' tokens start so.
pub(super) const GUEST_PREFIX: &str = "guest-";
