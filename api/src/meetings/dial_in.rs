//! Phone dial-in, as the control plane knows it: the numbers an operator assigned to each tenant (a number
//! belongs to one tenant; the SIP trunk delivers its calls to the gateway), and each room's PIN, given the
//! first time the room's dial-in details are asked for, unique in the deployment and kept for the room's
//! life. The gateway turns a PIN back into the tenant's room; another tenant's number or PIN finds nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use convene_domain::{CountryCode, MeetingPin, PhoneNumber, RoomName, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use serde::Serialize;
use uuid::Uuid;

use convene_app::model::{PhoneJoin, PhoneLine};

use crate::{
    billing::Billing,
    entities::{dial_in_number, room, tenant},
    meetings::{
        recordings::API_STARTER,
        room_commands::{CommandError, RoomCommand, RoomCommands},
        rooms::{self, RoomError},
    },
};

/// A number callers dial, as a tenant's people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DialInNumber {
    /// The number in international form, like `+15551234567`.
    pub number: String,
    /// Where the number is local: ISO 3166-1 alpha-2, like `US`.
    pub country: String,
    /// Free to call from its country.
    pub toll_free: bool,
}

/// A number and the tenant it is assigned to, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignedNumber {
    /// The tenant whose meetings callers of this number reach.
    pub tenant_id: Uuid,
    /// The number, its country and whether it is free to call.
    #[serde(flatten)]
    pub number: DialInNumber,
    /// When it was assigned.
    pub assigned_at: DateTime<Utc>,
}

/// How to join one room by phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoomDialIn {
    /// The room.
    pub room: String,
    /// The PIN callers type after dialling, 9 digits.
    pub pin: String,
    /// The numbers to dial, each with what a phone dials in one go; empty until the operator assigns some.
    pub numbers: Vec<DialInOption>,
}

impl RoomDialIn {
    /// For invitations: which numbers to dial and the PIN, in a sentence.
    pub fn in_words(&self) -> String {
        let numbers: Vec<String> = self.numbers.iter().map(DialInOption::described).collect();
        let pin = MeetingPin::parse(&self.pin).map(|pin| pin.grouped()).unwrap_or_else(|_| self.pin.clone());
        format!("To join by phone, dial {} and enter the PIN {pin} followed by #.", numbers.join(" or "))
    }

    /// For pages and the meeting client.
    pub fn for_people(&self) -> PhoneJoin {
        let pin = MeetingPin::parse(&self.pin).map(|pin| pin.grouped()).unwrap_or_else(|_| self.pin.clone());
        let numbers = self
            .numbers
            .iter()
            .map(|option| PhoneLine {
                number: option.number.clone(),
                place: option.where_local(),
                tel_url: option.tel_url.clone(),
            })
            .collect();
        PhoneJoin { pin, numbers }
    }

    /// For calendars: one line per number that a phone dials in one tap.
    pub fn dial_lines(&self) -> String {
        let lines: Vec<String> = self
            .numbers
            .iter()
            .map(|option| format!("Join by phone: {} ({})", option.dial, option.where_local()))
            .collect();
        lines.join("\n")
    }
}

/// One number to dial into a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DialInOption {
    /// The number in international form, like `+15551234567`.
    pub number: String,
    /// Where the number is local: ISO 3166-1 alpha-2, like `US`.
    pub country: String,
    /// Free to call from its country.
    pub toll_free: bool,
    /// The number, two pauses, the PIN and `#`, for one-tap dialling: `+15551234567,,123456789#`.
    pub dial: String,
    /// The same as a `tel:` link (`#` written `%23`).
    pub tel_url: String,
}

impl DialInOption {
    fn where_local(&self) -> String {
        if self.toll_free { format!("{}, toll-free", self.country) } else { self.country.clone() }
    }

    fn described(&self) -> String {
        format!("{} ({})", self.number, self.where_local())
    }
}

/// Why a dial-in request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DialInError {
    /// No such room or number (or another tenant's).
    #[error("not found")]
    NotFound,
    /// The plan does not include dial-in; the words say so.
    #[error("{0}")]
    NotInPlan(String),
    /// The meeting cannot take the call now (not going on, encrypted, the number removed, the line busy).
    #[error("{0}")]
    Refused(String),
    /// The meeting's media node did not answer; the words say so.
    #[error("{0}")]
    Unavailable(String),
    /// The number is assigned already (to this or another tenant).
    #[error("{0} is assigned already; remove it first to move it")]
    Taken(String),
    /// No tenant has this id.
    #[error("no organisation has the id {0}")]
    UnknownTenant(Uuid),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<RoomError> for DialInError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::Database(error) => Self::Database(error),
            RoomError::NotFound => Self::NotFound,
            other => Self::Database(DbErr::Custom(other.to_string())),
        }
    }
}

fn view(row: dial_in_number::Model) -> DialInNumber {
    DialInNumber { number: row.number, country: row.country, toll_free: row.toll_free }
}

/// Assigns `number` to `tenant` (the operator's command).
pub async fn assign(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    number: &PhoneNumber,
    country: CountryCode,
    toll_free: bool,
) -> Result<AssignedNumber, DialInError> {
    if tenant::Entity::find_by_id(tenant.as_uuid()).one(db).await?.is_none() {
        return Err(DialInError::UnknownTenant(tenant.as_uuid()));
    }
    let taken = || DialInError::Taken(number.to_string());
    if find_number(db, number).await?.is_some() {
        return Err(taken());
    }
    let row = dial_in_number::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        number: Set(number.to_string()),
        country: Set(country.to_string()),
        toll_free: Set(toll_free),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    // The unique index decides between two assignments racing for one number.
    .map_err(|_| taken())?;
    Ok(AssignedNumber { tenant_id: row.tenant_id, assigned_at: row.created_at, number: view(row) })
}

/// Takes `number` away from whichever tenant has it.
pub async fn release(db: &impl ConnectionTrait, number: &PhoneNumber) -> Result<(), DialInError> {
    let deleted = dial_in_number::Entity::delete_many()
        .filter(dial_in_number::Column::Number.eq(number.as_str()))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 { Err(DialInError::NotFound) } else { Ok(()) }
}

/// Every assigned number, by number (the operator's list).
pub async fn assigned(db: &impl ConnectionTrait) -> Result<Vec<AssignedNumber>, DbErr> {
    let rows = dial_in_number::Entity::find().order_by_asc(dial_in_number::Column::Number).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|row| AssignedNumber { tenant_id: row.tenant_id, assigned_at: row.created_at, number: view(row) })
        .collect())
}

async fn find_number(db: &impl ConnectionTrait, number: &PhoneNumber) -> Result<Option<dial_in_number::Model>, DbErr> {
    dial_in_number::Entity::find().filter(dial_in_number::Column::Number.eq(number.as_str())).one(db).await
}

/// The tenant a number is assigned to, if any.
pub async fn tenant_of_number(db: &impl ConnectionTrait, number: &PhoneNumber) -> Result<Option<TenantId>, DbErr> {
    Ok(find_number(db, number).await?.map(|row| TenantId::from(row.tenant_id)))
}

/// A tenant's numbers, toll-free first, then by number.
pub async fn numbers_of(db: &impl ConnectionTrait, tenant: TenantId) -> Result<Vec<DialInNumber>, DbErr> {
    let rows = dial_in_number::Entity::find()
        .filter(dial_in_number::Column::TenantId.eq(tenant.as_uuid()))
        .order_by_desc(dial_in_number::Column::TollFree)
        .order_by_asc(dial_in_number::Column::Number)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(view).collect())
}

/// Tries at giving a room a PIN before giving up: with 900 million PINs, a clash is already rare.
const PIN_TRIES: usize = 8;

/// The PIN of `tenant`'s room `name`, given now if it has none.
pub async fn pin_of(db: &impl ConnectionTrait, tenant: TenantId, name: &RoomName) -> Result<MeetingPin, DialInError> {
    for _ in 0..PIN_TRIES {
        let row = rooms::find(db, tenant, name.as_str()).await?;
        if let Some(pin) = row.pin.as_deref().and_then(|pin| MeetingPin::parse(pin).ok()) {
            return Ok(pin);
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|error| DbErr::Custom(format!("no randomness available: {error}")))?;
        let pin = MeetingPin::from_random(u64::from_le_bytes(random));
        // Only while the room still has none; the unique index refuses a PIN another room has.
        let given = room::Entity::update_many()
            .col_expr(room::Column::Pin, sea_orm::sea_query::Expr::value(pin.as_str()))
            .filter(room::Column::Id.eq(row.id))
            .filter(room::Column::Pin.is_null())
            .exec(db)
            .await;
        match given {
            Ok(done) if done.rows_affected == 1 => return Ok(pin),
            // Another room has that PIN, or this room got one meanwhile: look again.
            Ok(_) => {}
            Err(error) if matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(DbErr::Custom("no free meeting PIN was found".to_owned()).into())
}

/// The tenant and room a PIN opens, if any.
pub async fn room_of_pin(db: &impl ConnectionTrait, pin: &MeetingPin) -> Result<Option<(TenantId, RoomName)>, DbErr> {
    let row = room::Entity::find().filter(room::Column::Pin.eq(pin.as_str())).one(db).await?;
    Ok(row.and_then(|row| Some((TenantId::from(row.tenant_id), RoomName::parse(&row.name).ok()?))))
}

/// Dial-in (and calling out) for a tenant's people and apps: the plan must include it.
#[derive(Debug, Clone)]
pub struct DialInService {
    db: DatabaseConnection,
    billing: Billing,
    /// Where calls out go: the meetings this process hosts, or the media nodes.
    rooms: Option<Arc<dyn RoomCommands>>,
}

/// A phone call placed into a meeting.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DialOut {
    /// The call's id (moderators in the meeting see it in `dial_out_changed`).
    pub id: String,
    /// The room.
    pub room: String,
    /// The number called, in international form.
    pub number: String,
    /// `calling`: the meeting's moderators see how it goes (ringing, answered, busy, failed).
    #[schema(value_type = String, example = "calling")]
    pub state: convene_signal::DialOutState,
}

impl DialInService {
    /// Dial-in over `db`, with the plans in `billing`, calling out into the meetings `rooms` reaches.
    pub fn new(db: DatabaseConnection, billing: Billing, rooms: Option<Arc<dyn RoomCommands>>) -> Self {
        Self { db, billing, rooms }
    }

    /// Calls `number` into the meeting going on in `tenant`'s room `name`, through the node's SIP trunk.
    pub async fn dial_out(
        &self,
        tenant: TenantId,
        name: &RoomName,
        number: &PhoneNumber,
    ) -> Result<DialOut, DialInError> {
        // A room the tenant does not have is missing, whatever the plan.
        rooms::find(&self.db, tenant, name.as_str()).await?;
        if let Some(words) = self.billing.dial_in_refused(tenant).await? {
            return Err(DialInError::NotInPlan(words));
        }
        let Some(rooms) = &self.rooms else {
            return Err(DialInError::Refused("this server does not host meetings".to_owned()));
        };
        let command = RoomCommand::DialOut { number: number.clone() };
        let done = rooms.send((tenant, name), command, API_STARTER).await.map_err(|error| match error {
            CommandError::NotRunning => DialInError::Refused("nobody is in the meeting".to_owned()),
            CommandError::Refused(words) => DialInError::Refused(words),
            unreachable @ CommandError::Unreachable(_) => DialInError::Unavailable(unreachable.to_string()),
        })?;
        Ok(DialOut {
            id: done.id.unwrap_or_default(),
            room: name.as_str().to_owned(),
            number: number.as_str().to_owned(),
            state: convene_signal::DialOutState::Calling,
        })
    }

    /// How to join `tenant`'s room `name` by phone: its PIN (given now if it has none) and the numbers.
    pub async fn room(&self, tenant: TenantId, name: &RoomName) -> Result<RoomDialIn, DialInError> {
        // A room the tenant does not have is missing, whatever the plan.
        rooms::find(&self.db, tenant, name.as_str()).await?;
        if let Some(words) = self.billing.dial_in_refused(tenant).await? {
            return Err(DialInError::NotInPlan(words));
        }
        let pin = pin_of(&self.db, tenant, name).await?;
        let numbers = numbers_of(&self.db, tenant).await?;
        let numbers = numbers
            .into_iter()
            .map(|number| {
                let phone = PhoneNumber::parse(&number.number).map_err(|error| DbErr::Custom(error.to_string()))?;
                let dial = pin.dial_string(&phone);
                let tel_url = format!("tel:{}", dial.replace('#', "%23"));
                Ok(DialInOption {
                    number: number.number,
                    country: number.country,
                    toll_free: number.toll_free,
                    dial,
                    tel_url,
                })
            })
            .collect::<Result<_, DbErr>>()?;
        Ok(RoomDialIn { room: name.as_str().to_owned(), pin: pin.as_str().to_owned(), numbers })
    }

    /// How to join by phone, for invitations and pages: `None` when the plan has no dial-in or the tenant no
    /// numbers. A failure to read leaves the phone out (and is logged) rather than the invitation.
    pub async fn offered(&self, tenant: TenantId, name: &RoomName) -> Option<RoomDialIn> {
        match self.room(tenant, name).await {
            Ok(dial_in) if !dial_in.numbers.is_empty() => Some(dial_in),
            Ok(_) | Err(DialInError::NotInPlan(_)) => None,
            Err(error) => {
                tracing::warn!(%error, room = %name, "the room's dial-in details could not be read");
                None
            }
        }
    }

    /// The numbers the tenant's callers dial.
    pub async fn numbers(&self, tenant: TenantId) -> Result<Vec<DialInNumber>, DialInError> {
        if let Some(words) = self.billing.dial_in_refused(tenant).await? {
            return Err(DialInError::NotInPlan(words));
        }
        Ok(numbers_of(&self.db, tenant).await?)
    }
}
