//! The one step every joiner passes, from the meet page and the signalling socket alike: a room name and a
//! room token become the verified person and the room's policy (its settings and the plan's allowance), or
//! a refusal in words for that person. The records in the database decide, because removals, ended rooms
//! and cancelled meetings outlive the media node's memory.

use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use convene_app::model::JoinState;
use convene_domain::{RoomName, RoomSettings, TenantId};
use convene_media::focus::{Identity, RoomPolicy, TokenFacts};
use convene_signal::Refusal;
use convene_tokens::TokenError;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    billing::Billing,
    entities::{meeting, meeting_invitee, membership, room, user},
    meetings::{
        removals, room_tokens,
        rooms::{self, RoomError},
        scheduled::{GUEST_PREFIX, INVITEE_PREFIX, state_of},
    },
};

/// Someone let through, and the room they enter.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The organisation the room belongs to.
    pub tenant: TenantId,
    /// Who the token says they are (a name chosen in `hello` is the caller's to add).
    pub identity: Identity,
    /// The room's settings and what the plan allows.
    pub policy: RoomPolicy,
}

/// Why someone was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The token does not open this room.
    #[error("{0}")]
    Token(TokenError),
    /// The room turns this person away: removed by a moderator, the meeting over, cancelled or ended for
    /// all, the invitation withdrawn.
    #[error("{1}")]
    Room(Refusal, &'static str),
    /// Something on our side failed; the person may try again.
    #[error("the meeting cannot be checked right now")]
    Unavailable,
}

/// Lets people into rooms.
#[derive(Debug, Clone)]
pub struct Admission {
    db: DatabaseConnection,
    billing: Billing,
}

impl Admission {
    /// Admission over `db`, with plan allowances from `billing`.
    pub fn new(db: DatabaseConnection, billing: Billing) -> Self {
        Self { db, billing }
    }

    /// Verifies `token` for `room`, then asks the records whether its holder may come in at `now`.
    pub async fn admit(&self, room: &RoomName, token: &str, now: DateTime<Utc>) -> Result<Admitted, Refused> {
        let verified = match room_tokens::verify_link(&self.db, token, room).await {
            Ok(Ok(verified)) => verified,
            Ok(Err(error)) => return Err(Refused::Token(error)),
            Err(error) => return Err(unavailable("a tenant's keys", &error)),
        };
        let tenant = verified.tenant;
        // The plan's limits bite at the point of use, with words saying which one and what to do.
        let allowance = self.billing.allowance(tenant).await.map_err(|error| unavailable("a tenant's plan", &error))?;
        let row = match rooms::find(&self.db, tenant, room.as_str()).await {
            Ok(row) => Some(row),
            // Rooms made on the fly by a tenant's own tokens have the defaults.
            Err(RoomError::NotFound) => None,
            // Never the defaults for a room whose lobby and password could not be read.
            Err(error) => return Err(unavailable("a room's settings", &error)),
        };
        let claims = verified.claims;
        let at = |seconds: u64| UNIX_EPOCH.checked_add(Duration::from_secs(seconds));
        let facts = TokenFacts {
            digest: removals::token_digest(token),
            issued_at: claims.iat.or(claims.nbf).and_then(at),
            expires_at: at(claims.exp),
        };
        let (user, features) = (claims.context.user, claims.context.features);
        let issued_at = facts.issued_at.map(DateTime::<Utc>::from);
        let user_id = user.id.as_deref();
        let refusal = match removals::refusal(&self.db, tenant, room, &facts.digest, user_id, issued_at, now).await {
            Ok(None) => match &row {
                Some(row) => self.meeting_refusal(tenant, row, user_id, now).await,
                None => Ok(None),
            },
            decided => decided,
        };
        match refusal {
            Ok(None) => {}
            Ok(Some((reason, message))) => return Err(Refused::Room(reason, message)),
            Err(error) => return Err(unavailable("who may enter a room", &error)),
        }
        let settings = row.as_ref().map_or_else(RoomSettings::default, rooms::settings_of);
        let identity = Identity {
            user_id: user.id,
            name: user.name,
            chosen_name: None,
            moderator: user.moderator,
            may_record: features.recording,
            may_stream: features.livestreaming,
            email: user.email,
            token: facts,
        };
        Ok(Admitted { tenant, identity, policy: RoomPolicy { settings, allowance } })
    }

    /// Whether the holder of a room token may still enter a scheduled meeting's room: the meeting must not
    /// be cancelled or over, and a link made for a person must still be theirs to use (a member of the
    /// organisation, or a confirmed invitee; an invitee's personal link while they are invited), and a
    /// guest's only while the meeting admits guests. Rooms no meeting owns, and ids the organisation's own
    /// backend chose, are the organisation's to judge.
    async fn meeting_refusal(
        &self,
        tenant: TenantId,
        room: &room::Model,
        user_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<(Refusal, &'static str)>, DbErr> {
        let db = &self.db;
        let Some(meeting) = meeting::Entity::find().filter(meeting::Column::RoomId.eq(room.id)).one(db).await? else {
            return Ok(None);
        };
        match state_of(&meeting, now) {
            JoinState::Cancelled => return Ok(Some((Refusal::Ended, "this meeting was cancelled"))),
            JoinState::Ended => return Ok(Some((Refusal::Ended, "this meeting is over"))),
            JoinState::Open => {}
        }
        let Some(user_id) = user_id else { return Ok(None) };
        if user_id.starts_with(GUEST_PREFIX) {
            let refusal = (Refusal::InvalidToken, "this meeting no longer admits guests");
            return Ok((!room.guests_allowed).then_some(refusal));
        }
        let withdrawn = (Refusal::InvalidToken, "your invitation to this meeting was withdrawn");
        if let Some(invitation) = user_id.strip_prefix(INVITEE_PREFIX) {
            let invitation = Uuid::parse_str(invitation).ok();
            let still = match invitation {
                Some(id) => meeting_invitee::Entity::find_by_id(id)
                    .filter(meeting_invitee::Column::MeetingId.eq(meeting.id))
                    .one(db)
                    .await?
                    .is_some(),
                None => false,
            };
            return Ok((!still).then_some(withdrawn));
        }
        let Ok(person) = Uuid::parse_str(user_id) else { return Ok(None) };
        let Some(person) = user::Entity::find_by_id(person).one(db).await? else { return Ok(None) };
        let member = membership::Entity::find_by_id((tenant.as_uuid(), person.id))
            .one(db)
            .await?
            .is_some_and(|member| member.disabled_at.is_none());
        let invited = person.email_verified_at.is_some()
            && meeting_invitee::Entity::find()
                .filter(meeting_invitee::Column::MeetingId.eq(meeting.id))
                .filter(meeting_invitee::Column::Email.eq(person.email.as_str()))
                .one(db)
                .await?
                .is_some();
        Ok((!member && !invited).then_some(withdrawn))
    }
}

fn unavailable(what: &str, error: &dyn std::fmt::Display) -> Refused {
    tracing::error!(%error, "cannot load {what} to admit someone to a room");
    Refused::Unavailable
}
