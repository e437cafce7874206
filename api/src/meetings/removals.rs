//! Removals that outlive the meeting and the node: people a moderator removed (kicked, or turned away from
//! the lobby) stay refused while the token they came with lives, by that token and by their user id; a room
//! ended for everyone or deleted refuses tokens issued before then. The media node reports removals and
//! ends through its outbox (`SessionRecorder`); the signalling endpoint asks [`refusal`] before connecting.

use chrono::{DateTime, Utc};
use convene_domain::{RoomName, TenantId};
use convene_signal::Refusal;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::Condition,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entities::{room_closure, room_removal};

/// Why a room stopped taking old tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closure {
    /// A moderator ended the meeting for everyone.
    Ended,
    /// The tenant deleted the room.
    Deleted,
}

impl Closure {
    fn as_str(self) -> &'static str {
        match self {
            Closure::Ended => "ended",
            Closure::Deleted => "deleted",
        }
    }
}

/// The digest a token is remembered by (SHA-256, hex): the token itself is a credential and is not stored.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Who was removed, as the node reported it.
#[derive(Debug, Clone)]
pub struct RemovedPerson<'a> {
    /// The token's digest.
    pub token_digest: &'a str,
    /// The token's user id, if it had one.
    pub user_id: Option<&'a str>,
    /// Until when the token lives (none: for good).
    pub until: Option<DateTime<Utc>>,
    /// Turned away from the lobby rather than removed from the room.
    pub rejected: bool,
}

/// Remembers a removal; removals whose tokens have expired are forgotten on the way.
pub async fn record_removal(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    room: &RoomName,
    person: RemovedPerson<'_>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    room_removal::Entity::delete_many()
        .filter(room_removal::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room_removal::Column::Room.eq(room.as_str()))
        .filter(room_removal::Column::Until.lt(at))
        .exec(db)
        .await?;
    room_removal::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        room: Set(room.as_str().to_owned()),
        token_digest: Set(person.token_digest.chars().take(64).collect()),
        user_id: Set(person.user_id.map(str::to_owned)),
        rejected: Set(person.rejected),
        until: Set(person.until),
        created_at: Set(at),
    }
    .insert(db)
    .await
    .map(drop)
}

/// Remembers that `room` was ended or deleted at `at` (the latest such time counts).
pub async fn record_closure(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    room: &RoomName,
    closure: Closure,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let existing = room_closure::Entity::find_by_id((tenant.as_uuid(), room.as_str().to_owned())).one(db).await?;
    let row = room_closure::ActiveModel {
        tenant_id: Set(tenant.as_uuid()),
        room: Set(room.as_str().to_owned()),
        closed_at: Set(at),
        reason: Set(closure.as_str().to_owned()),
    };
    match existing {
        Some(existing) if existing.closed_at >= at => Ok(()),
        Some(_) => row.update(db).await.map(drop),
        None => row.insert(db).await.map(drop),
    }
}

/// Whether a token may open `room`: the refusal and its words when it was removed there, or was issued
/// (`issued_at`: its `iat`, else `nbf`; none counts as old) before the room was ended or deleted.
pub async fn refusal(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    room: &RoomName,
    token_digest: &str,
    user_id: Option<&str>,
    issued_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<(Refusal, &'static str)>, DbErr> {
    let mut who = Condition::any().add(room_removal::Column::TokenDigest.eq(token_digest));
    if let Some(user_id) = user_id {
        who = who.add(room_removal::Column::UserId.eq(user_id));
    }
    let removal = room_removal::Entity::find()
        .filter(room_removal::Column::TenantId.eq(tenant.as_uuid()))
        .filter(room_removal::Column::Room.eq(room.as_str()))
        .filter(who)
        .filter(Condition::any().add(room_removal::Column::Until.is_null()).add(room_removal::Column::Until.gt(now)))
        .one(db)
        .await?;
    if let Some(removal) = removal {
        return Ok(Some(if removal.rejected {
            (Refusal::Rejected, "a moderator did not let you in to this meeting")
        } else {
            (Refusal::Kicked, "a moderator removed you from this meeting")
        }));
    }
    let closure = room_closure::Entity::find_by_id((tenant.as_uuid(), room.as_str().to_owned())).one(db).await?;
    Ok(closure.filter(|closure| issued_at.is_none_or(|issued| issued <= closure.closed_at)).map(
        |closure| match closure.reason.as_str() {
            "deleted" => (Refusal::Ended, "this meeting room was deleted; ask for a new link"),
            _ => (Refusal::Ended, "the meeting was ended; ask for a new link to join again"),
        },
    ))
}
