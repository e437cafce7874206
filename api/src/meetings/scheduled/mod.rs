//! Scheduled meetings: moderators (and above) schedule, change and cancel them, each in a room of its own
//! whose settings it carries; invitees get mail with an iCalendar invitation and a participant link that
//! opens the meeting with a participant token until the last occurrence ends.
//!
//! Here: the service, its errors, and scheduling, changing and cancelling with their mail. `views` answers
//! what the site and the API show; `links` starts meetings and opens participant links. The request's own
//! checks (times, zones, titles, invitees) are `meetings::schedule`. Every lookup is scoped to the actor's
//! tenant.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use convene_app::model::{
    HeldMeeting, JoinDetails, JoinState, MeetingDetails, MeetingDraft, MeetingListing, MeetingSummary,
};
use convene_domain::{EmailAddress, Role, RoomName, RoomSettings, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use url::Url;
use uuid::Uuid;

mod links;
mod views;

pub(super) use links::{GUEST_PREFIX, INVITEE_PREFIX, state_of};
pub use links::{JoinError, Joiner};

use crate::{
    entities::{meeting, meeting_invitee, membership, room, tenant, user},
    meetings::dial_in::{DialInService, RoomDialIn},
    meetings::room_sessions,
    meetings::room_tokens::{self, MintError, TokenRequest, TokenUser},
    meetings::rooms::{self, RoomError},
    meetings::schedule::{InvalidField, MeetingInput, Schedule, check_title, parse_invitees},
    people::Actor,
    people::accounts::users_by_id,
    platform::calendar::{self, Method, Person},
    platform::envelope::Envelope,
    platform::mail::{Email, Mailer},
    platform::pagination,
    platform::rate_limit::{MAIL_WINDOW, SharedLimiter},
    platform::secrets::{random_token, token_hash},
};

/// A meeting may be scheduled to start this long ago (someone scheduling the meeting they are in).
const PAST_START: TimeDelta = TimeDelta::hours(1);
/// Past meetings shown on the meetings page.
const PAST_SHOWN: u64 = 50;
/// Held meetings (room sessions) shown on the meetings page.
const HELD_SHOWN: u64 = 20;

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

/// What the meeting client shows around a room (see [`MeetingService::client_context`]).
#[derive(Debug, Default)]
pub struct ClientContext {
    /// The scheduled meeting's title.
    pub title: Option<String>,
    /// The scheduled meeting's participant link, to share from inside the meeting.
    pub invite_link: Option<String>,
    /// The site's dashboard, for members of the organisation.
    pub home: Option<String>,
    /// How to join by phone, shared with the link.
    pub phone: Option<convene_app::model::PhoneJoin>,
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
    limiter: SharedLimiter,
    /// The numbers and PIN invitations offer for joining by phone.
    dial_in: DialInService,
}

/// Scheduling, changing or cancelling with mail, per organisation per hour.
const MEETING_MAIL_PER_TENANT: u32 = 100;

impl MeetingService {
    /// The service over `db`, mailing with `mailer`; links point at `public_url` and `meet_url`, and their
    /// tokens are signed with keys `envelope` opens; invitations offer `dial_in`'s numbers.
    pub fn new(
        (db, mailer, dial_in): (DatabaseConnection, Mailer, DialInService),
        (public_url, meet_url): (Url, Url),
        envelope: Envelope,
    ) -> Self {
        Self { limiter: SharedLimiter::new(db.clone()), db, mailer, public_url, meet_url, envelope, dial_in }
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

    /// The organiser, as [`Self::organiser`], for a change that mails the invitees: within the organisation's
    /// hourly allowance of meeting mail.
    async fn mailing_organiser(&self, actor: Actor) -> Result<user::Model, MeetingError> {
        let organiser = self.organiser(actor).await?;
        let key = format!("meeting-mail:{}", actor.tenant);
        if !self.limiter.allow(&key, MEETING_MAIL_PER_TENANT, MAIL_WINDOW).await? {
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
        let transaction = crate::platform::db::begin_write(&self.db).await?;
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
        let transaction = crate::platform::db::begin_write(&self.db).await?;
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

    /// Mails `method` for the meeting to `to`; failures are logged and reported, never fatal. An invitation
    /// (or update) carries the invitee's personal link, made afresh for each mail: the newest mail's link is
    /// the one that works.
    async fn mail(&self, loaded: &Loaded, organiser: &user::Model, method: Method, to: &[String]) -> Delivery {
        let mut delivery = Delivery::default();
        if to.is_empty() {
            return delivery;
        }
        let schedule = Schedule::of(&loaded.row);
        let shared_link = self.join_link(&loaded.row.join_code);
        let when = schedule.describe((loaded.row.starts_at, loaded.row.ends_at));
        let repeats = schedule.recurrence().map(|text| format!(" {text}.")).unwrap_or_default();
        let host = self.public_url.host_str().unwrap_or("convene");
        let phone = match (method, RoomName::parse(&loaded.room.name)) {
            (Method::Request, Ok(room)) => self.dial_in.offered(TenantId::from(loaded.row.tenant_id), &room).await,
            _ => None,
        };
        let phone_lines = phone.as_ref().map(|phone| format!("\n{}", phone.dial_lines())).unwrap_or_default();
        let phone_words = phone.as_ref().map(RoomDialIn::in_words);
        let event = |link: &str| calendar::Event {
            uid: format!("{}@{host}", loaded.row.id),
            sequence: loaded.row.sequence,
            summary: loaded.row.title.clone(),
            description: format!("Join the meeting: {link}{phone_lines}"),
            url: link.to_owned(),
            starts_at: loaded.row.starts_at,
            ends_at: loaded.row.ends_at,
            time_zone: schedule.time_zone,
            weekly_occurrences: schedule.weekly_occurrences,
            organizer: Person { name: Some(organiser.display_name.clone()), email: organiser.email.clone() },
            attendees: loaded.invitees.iter().map(|email| Person { name: None, email: email.clone() }).collect(),
        };
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
            let link = match method {
                Method::Request => match self.personal_link(loaded, address, &shared_link).await {
                    Ok(link) => link,
                    Err(error) => {
                        tracing::warn!(%error, to = %address, meeting = %loaded.row.id, "no personal link could be made");
                        delivery.failed.push(address.clone());
                        continue;
                    }
                },
                Method::Cancel => shared_link.clone(),
            };
            let ics = calendar::render(&event(&link), method, Utc::now());
            let closing = match method {
                Method::Request => {
                    "The link is yours: it opens the meeting under your name until it ends, with or without an \
                     account. The attached invitation adds it to your calendar."
                }
                Method::Cancel => {
                    "The link no longer opens the meeting. The attached cancellation takes it off your calendar."
                }
            };
            let paragraphs: Vec<&str> = ["Hello,", lines.as_str()].into_iter().chain(phone_words.as_deref()).collect();
            let email = Email::new(&recipient, &subject, &paragraphs, ("Join the meeting", &link), closing)
                .with_calendar(method, ics);
            if let Err(error) = self.mailer.queue(email).await {
                tracing::warn!(%error, to = %address, meeting = %loaded.row.id, "a meeting mail could not be queued");
                delivery.failed.push(address.clone());
            }
        }
        delivery
    }

    /// A new personal link for the invitee at `address`, replacing the one their last mail carried.
    async fn personal_link(&self, loaded: &Loaded, address: &str, shared_link: &str) -> anyhow::Result<String> {
        let secret = random_token()?;
        let updated = meeting_invitee::Entity::update_many()
            .col_expr(meeting_invitee::Column::LinkDigest, sea_orm::sea_query::Expr::value(token_hash(&secret)))
            .filter(meeting_invitee::Column::MeetingId.eq(loaded.row.id))
            .filter(meeting_invitee::Column::Email.eq(address))
            .exec(&self.db)
            .await?;
        anyhow::ensure!(updated.rows_affected == 1, "{address} is not invited");
        Ok(format!("{shared_link}?invite={secret}"))
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
        link_digest: Set(None),
    }))
    .exec(db)
    .await?;
    Ok(())
}
