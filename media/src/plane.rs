//! The contract between room tasks and the shards that carry their media: what a room asks of its shard
//! ([`MediaCommand`]), the way there ([`MediaPlane`]), the refusal when a shard is full ([`Busy`]), and what a
//! shard or a room hands a participant's connection ([`Delivery`]). Both sides depend on this module and
//! not on each other.

use convene_signal::{ParticipantId, ServerMessage, TrackSource, VideoRequest};
use tokio::sync::mpsc;

use crate::sfu::{PeerKey, RecordedPacket, RoomId};

/// What a connection's writer does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Send this frame.
    Message(ServerMessage),
    /// Close the connection.
    Close,
}

/// What a room asks of its shard.
#[derive(Debug)]
pub enum MediaCommand {
    /// A participant's SDP offer; `outbox` is their connection's, for the answer and later offers.
    Offer {
        /// Who.
        key: PeerKey,
        /// The SDP.
        sdp: String,
        /// The `mid` carrying a shared screen.
        screen: Option<String>,
        /// The room encrypts media end to end (VP8 only).
        end_to_end_encrypted: bool,
        /// They receive no one's media.
        publish_only: bool,
        /// Their connection.
        outbox: mpsc::Sender<Delivery>,
    },
    /// A participant's session continues over a new connection: signalling goes to `outbox`, and an offer
    /// the old connection may have lost is made again.
    Resume {
        /// Who.
        key: PeerKey,
        /// Their new connection.
        outbox: mpsc::Sender<Delivery>,
    },
    /// A participant's answer to the node's offer.
    Answer {
        /// Who.
        key: PeerKey,
        /// The SDP.
        sdp: String,
    },
    /// Whom a participant pinned.
    Pin {
        /// Who.
        key: PeerKey,
        /// Whom.
        pinned: Option<ParticipantId>,
    },
    /// A participant's tile sizes.
    ReceiveVideo {
        /// Who.
        key: PeerKey,
        /// The sizes.
        requests: Vec<VideoRequest>,
    },
    /// A participant left the room.
    Leave {
        /// Who.
        key: PeerKey,
    },
    /// Start handing the room's media to a recorder, live stream or phone mixer (`Some`), or stop (`None`).
    /// A room may have several at once.
    Record {
        /// The room.
        room: RoomId,
        /// The recording, stream or mixer (a stop concerns only the one it names).
        recording: String,
        /// Where its packets go.
        sink: Option<TapSink>,
    },
    /// The recorder lost part of a video and needs a keyframe to go on (the tap waits for it).
    RecordingKeyframe {
        /// Whose video.
        key: PeerKey,
        /// Which.
        source: TrackSource,
    },
    /// A live stream puts a video on its stage: a keyframe, asked of the publisher (the tap goes on).
    StageKeyframe {
        /// Whose video.
        key: PeerKey,
        /// Which.
        source: TrackSource,
    },
}

impl MediaCommand {
    pub(crate) fn room(&self) -> RoomId {
        match self {
            Self::Offer { key, .. }
            | Self::Resume { key, .. }
            | Self::Answer { key, .. }
            | Self::Pin { key, .. }
            | Self::ReceiveVideo { key, .. }
            | Self::Leave { key }
            | Self::RecordingKeyframe { key, .. }
            | Self::StageKeyframe { key, .. } => key.room,
            Self::Record { room, .. } => *room,
        }
    }
}

/// Where a room's tapped packets go.
#[derive(Debug)]
pub struct TapSink {
    /// A bounded queue: packets are dropped when it is full, never waited for.
    pub queue: mpsc::Sender<RecordedPacket>,
    /// Videos too, or only voices.
    pub video: bool,
}

/// The shard is overloaded and cannot take the command now.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the media node is busy; try again")]
pub struct Busy;

/// The rooms' way to their shards. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaPlane {
    shards: Vec<mpsc::Sender<MediaCommand>>,
}

impl MediaPlane {
    /// The plane over the shards' command channels, shard `i` at index `i`.
    pub(crate) fn new(shards: Vec<mpsc::Sender<MediaCommand>>) -> Self {
        Self { shards }
    }

    /// Passes a command to the shard of its room.
    pub fn send(&self, command: MediaCommand) -> Result<(), Busy> {
        let count = u64::try_from(self.shards.len()).unwrap_or(1).max(1);
        let index = usize::try_from(command.room() % count).unwrap_or(0);
        self.shards.get(index).ok_or(Busy)?.try_send(command).map_err(|_| Busy)
    }
}
