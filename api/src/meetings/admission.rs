//! The one step every joiner passes, from the meet page and the signalling socket alike: a room name and a
//! room token become the verified person and the room's policy (its settings and the plan's allowance), or
//! a refusal in words for that person. The records in the database decide, because removals, ended rooms
//! and cancelled meetings outlive the media node's memory.

use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use convene_app::model::JoinState;
use convene_domain::{MeetingPin, PhoneNumber, Region, RoomName, RoomSettings, TenantId};
use convene_media::{
    focus::{Identity, PhoneLeg, RoomPolicy, TokenFacts},
    gateway::{CallFacts, DialInRefusal, DirectoryError, Entry, PhoneAdmission, PhoneDirectory},
    rooms::RoomKey,
};
use convene_signal::Refusal;
use convene_tokens::TokenError;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    billing::Billing,
    entities::{meeting, meeting_invitee, membership, room, user},
    meetings::{
        dial_in, removals, room_tokens,
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
    /// The region the token asks the meeting to run in, should this person open it.
    pub region: Option<Region>,
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
        let claims = verified.claims;
        let at = |seconds: u64| UNIX_EPOCH.checked_add(Duration::from_secs(seconds));
        let facts = TokenFacts {
            digest: removals::token_digest(token),
            issued_at: claims.iat.or(claims.nbf).and_then(at),
            expires_at: at(claims.exp),
        };
        // Checked with the token's other claims.
        let region = claims.context.region.as_deref().and_then(|region| Region::parse(region).ok());
        let (user, features) = (claims.context.user, claims.context.features);
        let policy = self.room_policy(tenant, room, &facts, user.id.as_deref(), now).await?;
        let identity = Identity {
            user_id: user.id,
            name: user.name,
            chosen_name: None,
            moderator: user.moderator,
            may_record: features.recording,
            may_stream: features.livestreaming,
            may_dial_out: features.outbound_call,
            invited: false,
            email: user.email,
            token: facts,
            phone: None,
        };
        Ok(Admitted { tenant, identity, policy, region })
    }

    /// Asks the records whether the person `facts` and `user_id` describe may enter `tenant`'s `room` at
    /// `now`: not removed, the meeting not over; then the room's settings and what the plan allows.
    async fn room_policy(
        &self,
        tenant: TenantId,
        room: &RoomName,
        facts: &TokenFacts,
        user_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RoomPolicy, Refused> {
        // The plan's limits bite at the point of use, with words saying which one and what to do.
        let allowance = self.billing.allowance(tenant).await.map_err(|error| unavailable("a tenant's plan", &error))?;
        let row = match rooms::find(&self.db, tenant, room.as_str()).await {
            Ok(row) => Some(row),
            // Rooms made on the fly by a tenant's own tokens have the defaults.
            Err(RoomError::NotFound) => None,
            // Never the defaults for a room whose lobby and password could not be read.
            Err(error) => return Err(unavailable("a room's settings", &error)),
        };
        let issued_at = facts.issued_at.map(DateTime::<Utc>::from);
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
        Ok(RoomPolicy { settings, allowance })
    }

    /// A phone caller who dialled `number` and typed `pin`: the tenant's room with that PIN, if dial-in is
    /// in the plan and the meeting may take callers. `caller` (the trunk's caller id) is who a removal
    /// keeps out; a withheld number is only this call.
    async fn admit_caller(
        &self,
        number: &PhoneNumber,
        pin: &MeetingPin,
        caller: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<PhoneAdmission, DialInRefusal> {
        let Some((tenant, room)) =
            dial_in::room_of_pin(&self.db, pin).await.map_err(|error| failed("a PIN", &error))?
        else {
            return Err(DialInRefusal::UnknownPin);
        };
        // Another organisation's PIN on this number opens nothing.
        match dial_in::tenant_of_number(&self.db, number).await {
            Ok(Some(owner)) if owner == tenant => {}
            Ok(_) => return Err(DialInRefusal::UnknownPin),
            Err(error) => return Err(failed("a dial-in number", &error)),
        }
        self.admit_phone(tenant, &room, caller, now).await
    }

    /// The meeting `pin` opens on the number `call` dialled, with the caller as the room will know them.
    pub async fn admit_dialled(&self, call: &CallFacts, pin: &str) -> Result<PhoneAdmission, DialInRefusal> {
        let (Ok(number), Ok(pin)) = (PhoneNumber::from_dialled(&call.number), MeetingPin::parse(pin)) else {
            return Err(DialInRefusal::UnknownPin);
        };
        self.admit_caller(&number, &pin, call.caller.as_deref(), Utc::now()).await
    }

    /// The meeting a trusted SBC named (`room`) on the number `call` dialled, with the caller as the room
    /// will know them.
    pub async fn admit_named(&self, call: &CallFacts, room: &str) -> Result<PhoneAdmission, DialInRefusal> {
        let Ok(number) = PhoneNumber::from_dialled(&call.number) else { return Err(DialInRefusal::UnknownPin) };
        self.admit_routed_caller(&number, room, call.caller.as_deref(), Utc::now()).await
    }

    /// A caller a trusted SBC routed to `room` (the room's name, or Jitsi's
    /// `room@conference.<tenant>.<meet host>`) on `number`: the number's organisation's room, if it has it.
    async fn admit_routed_caller(
        &self,
        number: &PhoneNumber,
        room: &str,
        caller: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<PhoneAdmission, DialInRefusal> {
        let tenant = match dial_in::tenant_of_number(&self.db, number).await {
            Ok(Some(tenant)) => tenant,
            Ok(None) => return Err(DialInRefusal::UnknownPin),
            Err(error) => return Err(failed("a dial-in number", &error)),
        };
        let (name, domain) = room.split_once('@').unwrap_or((room, ""));
        let another_tenants = !domain.is_empty() && !domain.starts_with(&format!("conference.{tenant}."));
        let Ok(name) = RoomName::parse(name) else { return Err(DialInRefusal::UnknownPin) };
        if another_tenants {
            return Err(DialInRefusal::UnknownPin);
        }
        match rooms::find(&self.db, tenant, name.as_str()).await {
            Ok(_) => self.admit_phone(tenant, &name, caller, now).await,
            Err(RoomError::NotFound) => Err(DialInRefusal::UnknownPin),
            Err(error) => Err(failed("a room", &error)),
        }
    }

    /// A caller into `tenant`'s `room`, if the plan has dial-in and the meeting may take callers. `caller`
    /// (the trunk's caller id) is who a removal keeps out; a withheld number is only this call.
    pub async fn admit_phone(
        &self,
        tenant: TenantId,
        room: &RoomName,
        caller: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<PhoneAdmission, DialInRefusal> {
        match self.billing.dial_in_refused(tenant).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(DialInRefusal::NotAvailable),
            Err(error) => return Err(failed("a tenant's plan", &error)),
        }
        let caller_id = caller.map(convene_media::focus::phone_user_id);
        let digest = removals::token_digest(&caller_id.clone().unwrap_or_else(|| format!("phone:{}", Uuid::new_v4())));
        let facts = TokenFacts { digest, issued_at: Some(now.into()), expires_at: None };
        let policy = match self.room_policy(tenant, room, &facts, caller_id.as_deref(), now).await {
            Ok(policy) => policy,
            Err(Refused::Room(Refusal::Kicked | Refusal::Rejected, _)) => return Err(DialInRefusal::Removed),
            Err(Refused::Room(..) | Refused::Token(_)) => return Err(DialInRefusal::MeetingOver),
            Err(Refused::Unavailable) => return Err(DialInRefusal::Unavailable),
        };
        // A caller cannot hold the keys of a meeting encrypted end to end.
        if policy.settings.end_to_end_encryption {
            return Err(DialInRefusal::NotAvailable);
        }
        let identity = Identity {
            user_id: caller_id,
            name: convene_media::focus::phone_name(caller),
            chosen_name: None,
            moderator: false,
            may_record: false,
            may_stream: false,
            may_dial_out: false,
            invited: false,
            email: None,
            token: facts,
            phone: Some(PhoneLeg::DialIn),
        };
        Ok(PhoneAdmission { room: (tenant.to_string(), room.as_str().to_owned()), policy, identity })
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

/// The SIP gateway asks here which numbers are ours and whom a PIN lets in.
impl PhoneDirectory for Admission {
    async fn serves(&self, number: &str) -> Result<bool, DirectoryError> {
        let Ok(number) = PhoneNumber::from_dialled(number) else { return Ok(false) };
        dial_in::tenant_of_number(&self.db, &number).await.map(|owner| owner.is_some()).map_err(|error| {
            unavailable("a dial-in number", &error);
            DirectoryError
        })
    }

    async fn admit(&self, call: &CallFacts, pin: &str) -> Result<Entry, DialInRefusal> {
        self.admit_dialled(call, pin).await.map(|admission| Entry::Here(Box::new(admission)))
    }

    async fn admit_to_room(&self, call: &CallFacts, room: &str) -> Result<Entry, DialInRefusal> {
        self.admit_named(call, room).await.map(|admission| Entry::Here(Box::new(admission)))
    }

    /// One process has no other node to pass callers here: a ticket is forged or misdirected.
    async fn admit_relayed(&self, _ticket: &str) -> Result<PhoneAdmission, DialInRefusal> {
        Err(DialInRefusal::UnknownPin)
    }

    async fn may_call(&self, room: &RoomKey, number: &str) -> Result<(), DialInRefusal> {
        let (Ok(tenant), Ok(name)) = (TenantId::parse(&room.0), RoomName::parse(&room.1)) else {
            return Err(DialInRefusal::UnknownPin);
        };
        // The callee is admitted as a caller from that number would be: the same plan, state and removals.
        self.admit_phone(tenant, &name, Some(number), Utc::now()).await.map(drop)
    }

    async fn caller_id(&self, tenant: &str) -> Option<String> {
        let tenant = TenantId::parse(tenant).ok()?;
        let numbers = dial_in::numbers_of(&self.db, tenant)
            .await
            .map_err(|error| tracing::warn!(%error, "cannot load a tenant's numbers to call out from"))
            .ok()?;
        // Networks rarely let a toll-free number be shown as the caller's.
        let shown = numbers.iter().find(|number| !number.toll_free).or(numbers.first())?;
        Some(shown.number.clone())
    }
}

/// A caller's lookup that failed: logged, and the caller told to try later.
fn failed(what: &str, error: &dyn std::fmt::Display) -> DialInRefusal {
    unavailable(what, error);
    DialInRefusal::Unavailable
}

fn unavailable(what: &str, error: &dyn std::fmt::Display) -> Refused {
    tracing::error!(%error, "cannot load {what} to admit someone to a room");
    Refused::Unavailable
}
