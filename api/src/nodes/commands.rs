//! The API's commands to meetings that run on media nodes: the control plane finds the meeting's node
//! (without placing it: a meeting nobody is in has nothing to record) and posts the command to it with the
//! node secret; the node carries it out in its rooms as `convene up` does in its own.

use std::{future::Future, pin::Pin, time::Duration};

use chrono::Utc;
use convene_domain::{RoomName, TenantId};
use secrecy::ExposeSecret;

use crate::{
    meetings::room_commands::{CommandError, Done, RoomCommand, RoomCommands},
    nodes::{
        proxy::MediaNodes,
        registry,
        wire::{COMMAND_PATH, CommandAnswer, NodeCommand},
    },
};

/// A node that has not answered a command in this long is taken to be unreachable. Starting a recording or
/// a stream, or placing a call, answers at once; what follows is reported through the node's outbox.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest answer read from a node.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

impl MediaNodes {
    async fn command(
        &self,
        (tenant, room): (TenantId, &RoomName),
        command: RoomCommand,
        by: &str,
    ) -> Result<Done, CommandError> {
        let unreachable = |error: String| {
            tracing::warn!(%error, room = room.as_str(), "a media node did not take a command");
            CommandError::Unreachable(error)
        };
        let placed = registry::placed(&self.db, (tenant, room), Utc::now())
            .await
            .map_err(|error| unreachable(format!("the node registry cannot be read: {error}")))?;
        let Some(placed) = placed else { return Err(CommandError::NotRunning) };
        let url = format!("{}{COMMAND_PATH}", placed.url.trim_end_matches('/'));
        let body = NodeCommand { tenant, room: room.clone(), by: by.to_owned(), command };
        let response = self
            .http
            .post(url)
            .bearer_auth(self.secret.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unreachable(format!("the node answered {status}")));
        }
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| unreachable(error.to_string()))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ANSWER_BYTES {
                return Err(unreachable("the node's answer is too long".to_owned()));
            }
        }
        match serde_json::from_slice::<CommandAnswer>(&bytes) {
            Ok(CommandAnswer::Done { id }) => Ok(Done { node: placed.node, id }),
            Ok(CommandAnswer::NotRunning) => Err(CommandError::NotRunning),
            Ok(CommandAnswer::Refused { message }) => {
                Err(CommandError::Refused(message.chars().filter(|c| !c.is_control()).take(500).collect()))
            }
            Err(error) => Err(unreachable(format!("the node's answer cannot be read: {error}"))),
        }
    }
}

impl RoomCommands for MediaNodes {
    fn send<'a>(
        &'a self,
        room: (TenantId, &'a RoomName),
        command: RoomCommand,
        by: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Done, CommandError>> + Send + 'a>> {
        Box::pin(self.command(room, command, by))
    }
}
