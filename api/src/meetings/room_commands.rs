//! Telling a running meeting to record, stream live or call a phone, from the API, wherever the meeting runs:
//! in this process ([`HostedRooms`], in `convene up` and on a media node) or on the media node a control
//! plane placed it on (`nodes::commands`). The API's rules (the plan, the tenant's rooms) are checked before a
//! command is sent; the room's own (encryption, already recording, the phone line) where it runs.

use std::{fmt, future::Future, pin::Pin};

use convene_domain::{PhoneNumber, RoomName, TenantId};
use convene_media::{
    rooms::{DialOutError, RecordingError, Rooms},
    streaming::StreamTarget,
};
use serde::{Deserialize, Serialize};

/// What the API asks of a running meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoomCommand {
    /// Start (`start`) or stop recording.
    Record {
        /// Start rather than stop.
        start: bool,
    },
    /// Stream live to `target`, or stop streaming (`None`).
    LiveStream {
        /// Where to.
        target: Option<StreamTarget>,
    },
    /// Call `number` into the meeting.
    DialOut {
        /// Whom.
        number: PhoneNumber,
    },
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The node the meeting runs on (its outbox's id).
    pub node: String,
    /// The recording's, stream's or call's id, when the command made one.
    pub id: Option<String>,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nobody is in the meeting.
    #[error("the meeting has not started")]
    NotRunning,
    /// The meeting refused, in words for people (encrypted end to end, already recording, the line busy).
    #[error("{0}")]
    Refused(String),
    /// The meeting's media node did not answer.
    #[error("the meeting's media node cannot be reached just now ({0}); try again")]
    Unreachable(String),
}

/// Where commands for a tenant's running meetings go.
pub trait RoomCommands: Send + Sync + fmt::Debug {
    /// Carries out `command` in `tenant`'s meeting in `room` on behalf of `by` (words for the notices
    /// participants see).
    fn send<'a>(
        &'a self,
        room: (TenantId, &'a RoomName),
        command: RoomCommand,
        by: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Done, CommandError>> + Send + 'a>>;
}

/// The rooms this process hosts, and the id of the node they run on (as its outbox names it).
#[derive(Debug, Clone)]
pub struct HostedRooms {
    /// The rooms.
    pub rooms: Rooms,
    /// The node's id.
    pub node: String,
}

impl HostedRooms {
    async fn carry_out(
        &self,
        (tenant, room): (TenantId, &RoomName),
        command: RoomCommand,
        by: &str,
    ) -> Result<Done, CommandError> {
        let key = (tenant.to_string(), room.as_str().to_owned());
        let recording = |error: RecordingError| match error {
            RecordingError::NotRunning => CommandError::NotRunning,
            RecordingError::Refused(words) => CommandError::Refused(words),
        };
        let id = match command {
            RoomCommand::Record { start } => self.rooms.record(&key, start, by.to_owned()).await.map_err(recording)?,
            RoomCommand::LiveStream { target } => {
                self.rooms.live_stream(&key, target, by.to_owned()).await.map_err(recording)?
            }
            RoomCommand::DialOut { number } => {
                let call = self.rooms.dial_out(&key, number.as_str().to_owned(), by.to_owned()).await;
                Some(call.map_err(|error| match error {
                    DialOutError::NotRunning => CommandError::NotRunning,
                    refused => CommandError::Refused(refused.to_string()),
                })?)
            }
        };
        Ok(Done { node: self.node.clone(), id })
    }
}

impl RoomCommands for HostedRooms {
    fn send<'a>(
        &'a self,
        room: (TenantId, &'a RoomName),
        command: RoomCommand,
        by: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Done, CommandError>> + Send + 'a>> {
        Box::pin(self.carry_out(room, command, by))
    }
}
