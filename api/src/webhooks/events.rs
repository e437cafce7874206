//! What webhooks report, and how an event is queued: one message, and a delivery for each of the tenant's
//! endpoints that wants it, written with the caller's connection, so inside the transaction of what it
//! reports: the event is queued if and only if the change it reports is stored.

use chrono::{DateTime, SecondsFormat, Utc};
use convene_domain::TenantId;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entities::{webhook_delivery, webhook_endpoint, webhook_message};

/// The kinds of event an endpoint can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// The first person entered a room: a meeting began.
    #[serde(rename = "meeting.started")]
    MeetingStarted,
    /// The last person left (or the meeting's media node stopped): the meeting is over.
    #[serde(rename = "meeting.ended")]
    MeetingEnded,
    /// Someone entered a meeting (let in, not waiting in the lobby).
    #[serde(rename = "participant.joined")]
    ParticipantJoined,
    /// Someone left a meeting (on their own, removed, or as it ended).
    #[serde(rename = "participant.left")]
    ParticipantLeft,
    /// A meeting began to be recorded.
    #[serde(rename = "recording.started")]
    RecordingStarted,
    /// A recording is composed and can be downloaded (`GET /v1/recordings/{id}` gives its links).
    #[serde(rename = "recording.ready")]
    RecordingReady,
    /// A recording could not be made; `reason` says why.
    #[serde(rename = "recording.failed")]
    RecordingFailed,
    /// A meeting began to be streamed live.
    #[serde(rename = "live_stream.started")]
    LiveStreamStarted,
    /// A live stream stopped: someone stopped it, the streaming service went away, or the meeting ended.
    #[serde(rename = "live_stream.ended")]
    LiveStreamEnded,
    /// A phone caller who dialled the meeting's number and typed its PIN entered the meeting.
    #[serde(rename = "dial_in.joined")]
    DialInJoined,
    /// A phone caller who dialled in left (hung up, was removed, or the meeting ended).
    #[serde(rename = "dial_in.left")]
    DialInLeft,
    /// A phone the meeting called (`POST /v1/rooms/{name}/dial-out`, or a moderator) answered and entered.
    #[serde(rename = "dial_out.joined")]
    DialOutJoined,
    /// A phone the meeting called left.
    #[serde(rename = "dial_out.left")]
    DialOutLeft,
    /// The organisation's subscription changed (started, renewed, overdue, cancelled), as Stripe said.
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated,
    /// Sent when asked, to try an endpoint (every endpoint gets it, whatever it asked for).
    #[serde(rename = "webhook.test")]
    Test,
}

impl EventType {
    /// Every kind an endpoint may ask for.
    pub const ALL: [EventType; 14] = [
        EventType::MeetingStarted,
        EventType::MeetingEnded,
        EventType::ParticipantJoined,
        EventType::ParticipantLeft,
        EventType::RecordingStarted,
        EventType::RecordingReady,
        EventType::RecordingFailed,
        EventType::LiveStreamStarted,
        EventType::LiveStreamEnded,
        EventType::DialInJoined,
        EventType::DialInLeft,
        EventType::DialOutJoined,
        EventType::DialOutLeft,
        EventType::SubscriptionUpdated,
    ];

    /// Its name, as in payloads and as endpoints list it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MeetingStarted => "meeting.started",
            Self::MeetingEnded => "meeting.ended",
            Self::ParticipantJoined => "participant.joined",
            Self::ParticipantLeft => "participant.left",
            Self::RecordingStarted => "recording.started",
            Self::RecordingReady => "recording.ready",
            Self::RecordingFailed => "recording.failed",
            Self::LiveStreamStarted => "live_stream.started",
            Self::LiveStreamEnded => "live_stream.ended",
            Self::DialInJoined => "dial_in.joined",
            Self::DialInLeft => "dial_in.left",
            Self::DialOutJoined => "dial_out.joined",
            Self::DialOutLeft => "dial_out.left",
            Self::SubscriptionUpdated => "subscription.updated",
            Self::Test => "webhook.test",
        }
    }

    /// When it is sent, in words for the site.
    pub fn when(self) -> &'static str {
        match self {
            Self::MeetingStarted => "the first person enters a room",
            Self::MeetingEnded => "the last person leaves a room",
            Self::ParticipantJoined => "someone enters a meeting",
            Self::ParticipantLeft => "someone leaves a meeting",
            Self::RecordingStarted => "a recording begins",
            Self::RecordingReady => "a recording can be downloaded",
            Self::RecordingFailed => "a recording could not be made",
            Self::LiveStreamStarted => "a live stream begins",
            Self::LiveStreamEnded => "a live stream stops",
            Self::DialInJoined => "a phone caller enters a meeting",
            Self::DialInLeft => "a phone caller leaves a meeting",
            Self::DialOutJoined => "a phone the meeting called answers",
            Self::DialOutLeft => "a phone the meeting called leaves",
            Self::SubscriptionUpdated => "the organisation's subscription changes",
            Self::Test => "you ask for a test",
        }
    }

    /// The kind named `name`, among those endpoints may ask for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == name)
    }
}

/// The kinds an endpoint asks for, as stored: names separated by spaces.
pub(crate) fn stored(events: &[EventType]) -> String {
    events.iter().map(|event| event.as_str()).collect::<Vec<_>>().join(" ")
}

/// The kinds in a stored list (names no longer known are skipped).
pub(crate) fn read(stored: &str) -> Vec<EventType> {
    stored.split_whitespace().filter_map(EventType::parse).collect()
}

/// Queues `event` with `data` for every enabled endpoint of `tenant` that wants it (all of them for a test);
/// with `only`, for that endpoint alone. Answers the message's id, or `None` when no endpoint wants it (then
/// nothing is stored).
pub async fn emit(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    (event, data): (EventType, serde_json::Value),
    only: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>, DbErr> {
    let mut query = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_uuid()))
        .filter(webhook_endpoint::Column::Disabled.eq(false));
    if let Some(endpoint) = only {
        query = query.filter(webhook_endpoint::Column::Id.eq(endpoint));
    }
    let wanting: Vec<_> = query
        .all(db)
        .await?
        .into_iter()
        .filter(|endpoint| event == EventType::Test || read(&endpoint.events).contains(&event))
        .collect();
    if wanting.is_empty() {
        return Ok(None);
    }
    let id = Uuid::now_v7();
    let payload = serde_json::json!({
        "type": event.as_str(),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    });
    webhook_message::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.as_uuid()),
        event_type: Set(event.as_str().to_owned()),
        payload: Set(payload.to_string()),
        created_at: Set(at),
    }
    .insert(db)
    .await?;
    for endpoint in wanting {
        webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant.as_uuid()),
            endpoint_id: Set(endpoint.id),
            message_id: Set(id),
            state: Set(super::delivery::PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(at),
            claimed_until: Set(None),
            finished_at: Set(None),
        }
        .insert(db)
        .await?;
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_read_back_and_unknown_ones_are_skipped() {
        for event in EventType::ALL {
            assert_eq!(EventType::parse(event.as_str()), Some(event));
            assert_eq!(serde_json::to_value(event).unwrap(), event.as_str());
        }
        assert_eq!(EventType::parse("webhook.test"), None, "a test is sent when asked, not subscribed to");
        assert_eq!(read(&stored(&EventType::ALL)), EventType::ALL.to_vec());
        assert_eq!(
            read("meeting.started gone.event  participant.left"),
            [EventType::MeetingStarted, EventType::ParticipantLeft]
        );
    }
}
