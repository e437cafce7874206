//! The signalling protocol spoken over the media node's WebSocket: JSON objects tagged by `type`, one per
//! text frame. The client's first message is `hello` with the room token and the protocol version; the
//! server answers `welcome` (in the room), `lobby` (waiting to be admitted) or `refused`.
//!
//! No server dependencies: the browser client uses the same types. Parsing is bounded and never panics;
//! every refusal has a stable code.

use serde::{Deserialize, Serialize};

/// The version this build speaks; `hello` must carry it.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest message accepted, in bytes: an SDP answer for a meeting of dozens (an m-line per remote
/// microphone, camera and screen) fits with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// The longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;
/// Keys one `send_tones` may press.
pub const MAX_TONES: usize = 32;
/// The longest reaction, in characters (an emoji sequence).
pub const MAX_REACTION_CHARS: usize = 16;
/// How long the node keeps a participant whose connection dropped, for `hello.resume` to continue the
/// session; the others see them leave only after it.
pub const RESUME_GRACE_SECS: u64 = 20;
/// The longest display name, in characters (as in the tokens the API mints).
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// The longest end-to-end encryption payload, in bytes (a public key and a wrapped media key fit easily).
pub const MAX_E2EE_PAYLOAD_BYTES: usize = 4096;

/// A participant's id within one room session, assigned by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

/// Which kind of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// The microphone.
    Audio,
    /// The camera.
    Video,
}

/// Where a track comes from, so clients know which tile shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    /// The microphone.
    Microphone,
    /// The camera.
    Camera,
    /// A shared screen.
    Screen,
}

/// A track the node sends to this client: which m-line (`mid`) carries whose media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// The m-line in the node's offer.
    pub mid: String,
    /// Whose media it is.
    pub participant: ParticipantId,
    /// Microphone, camera or screen.
    pub source: TrackSource,
}

/// The largest video this client wants of one participant (the height of the tile showing it); the node
/// never sends a larger layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoRequest {
    /// Whose camera (or screen).
    pub participant: ParticipantId,
    /// The tile's height in pixels; 0 stops the video.
    pub height: u32,
}

/// What a client sends. Unknown fields are refused (serde cannot check them on the field-less messages,
/// `mute_all`, `end_for_all`, `start_recording`, `stop_recording`, `stop_live_stream` and `leave`, which
/// ignore extras).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: who I am (the room token) and which protocol I speak.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u32,
        /// The room JWT from the meeting link.
        token: String,
        /// The room password, when the room has one.
        #[serde(default)]
        password: Option<String>,
        /// The display name chosen before joining, when the room lets participants change the token's.
        #[serde(default)]
        name: Option<String>,
        /// The `resume` secret of an earlier `welcome`: the same session continues (same id, media kept)
        /// when its connection dropped less than [`RESUME_GRACE_SECS`] ago.
        #[serde(default)]
        resume: Option<String>,
    },
    /// A new display name (rooms with `fixed_display_names` refuse it).
    SetName {
        /// The name.
        name: String,
    },
    /// A chat message to everyone, or privately to one participant.
    Chat {
        /// The text.
        text: String,
        /// The recipient of a private message.
        #[serde(default)]
        to: Option<ParticipantId>,
    },
    /// Raise or lower my hand.
    RaiseHand {
        /// Raised or not.
        raised: bool,
    },
    /// A short-lived reaction shown to everyone.
    Reaction {
        /// An emoji.
        emoji: String,
    },
    /// My own microphone or camera state.
    SetMuted {
        /// Which.
        media: MediaKind,
        /// Muted or not.
        muted: bool,
    },
    /// The participant I want on my stage (none: follow the dominant speaker).
    Pin {
        /// Whom.
        #[serde(default)]
        participant: Option<ParticipantId>,
    },
    /// Moderators: let someone in from the lobby.
    Admit {
        /// Whom.
        participant: ParticipantId,
    },
    /// Moderators: turn someone away from the lobby.
    Reject {
        /// Whom.
        participant: ParticipantId,
    },
    /// Moderators: stop (or allow again) new participants joining.
    Lock {
        /// Locked or not.
        locked: bool,
    },
    /// Moderators: mute someone's microphone or camera.
    Mute {
        /// Whom.
        participant: ParticipantId,
        /// Which.
        media: MediaKind,
    },
    /// Moderators: mute every microphone but the moderators'.
    MuteAll,
    /// Moderators: ask someone to unmute (only they can).
    AskToUnmute {
        /// Whom.
        participant: ParticipantId,
    },
    /// Moderators: remove someone from the meeting.
    Kick {
        /// Whom.
        participant: ParticipantId,
    },
    /// Moderators: make someone a moderator.
    GrantModerator {
        /// Whom.
        participant: ParticipantId,
    },
    /// Moderators: end the meeting for everyone.
    EndForAll,
    /// Moderators: start recording the meeting (refused in end-to-end encrypted rooms and where the plan or
    /// the moderator's token does not allow it).
    StartRecording,
    /// Moderators: stop recording.
    StopRecording,
    /// Moderators: stream the meeting live to an RTMP service (refused where recording would be, and where
    /// the moderator's token does not carry `livestreaming`).
    StartLiveStream {
        /// The service's `rtmp://` or `rtmps://` address.
        url: String,
        /// The stream key the service gave.
        key: String,
    },
    /// Moderators: stop the live stream.
    StopLiveStream,
    /// Moderators: call a phone into the meeting through the node's SIP trunk (refused in end-to-end
    /// encrypted rooms, where the plan has no phone calls and where the moderator's token does not carry
    /// `outbound-call`). `dial_out_changed` tells moderators how the call goes.
    DialOut {
        /// The number in international form, `+15551234567` (spaces, dashes and brackets are allowed).
        number: String,
    },
    /// Moderators: stop calling a phone that has not answered yet (once it has, `kick` hangs up).
    CancelDialOut {
        /// The `call` id from `dial_out_changed`.
        call: String,
    },
    /// Moderators: press keys on a phone the meeting called, once it has answered (an automated menu, a
    /// conference bridge's PIN): `0`–`9`, `*`, `#` and `A`–`D`, at most [`MAX_TONES`], sent to the phone as
    /// RFC 4733 events, or as tones where its line takes no events (Jitsi's `sendTones`).
    SendTones {
        /// The `call` id from `dial_out_changed`.
        call: String,
        /// The keys, in order.
        tones: String,
    },
    /// I am leaving.
    Leave,
    /// My media (what I publish): an SDP offer. The first one starts media; later ones add or remove tracks.
    /// Video must be VP8 or H.264, simulcast with the RIDs `q`, `h` and `f` (quarter, half and full
    /// resolution) or a single layer.
    Offer {
        /// The SDP.
        sdp: String,
        /// The `mid` of the video m-line that carries a shared screen, if one does.
        #[serde(default)]
        screen: Option<String>,
        /// Send me no one's media (the phone gateway hears the meeting through its own mixer). The first
        /// offer decides.
        #[serde(default)]
        publish_only: bool,
    },
    /// The answer to the node's `offer`.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// End-to-end encryption keys, for one participant or (without `to`) everyone else: opaque to the node,
    /// which relays them only within an end-to-end encrypted room.
    E2ee {
        /// The recipient; everyone else when absent.
        #[serde(default)]
        to: Option<ParticipantId>,
        /// What the clients agreed on (their public keys and wrapped media keys); the node cannot read it.
        payload: String,
    },
    /// The sizes I show others' video at (participants not named get a thumbnail, or the stage size when on
    /// my stage).
    ReceiveVideo {
        /// One entry per participant whose size is known.
        requests: Vec<VideoRequest>,
    },
}

/// A participant as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Their id in this session.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Whether they moderate.
    pub moderator: bool,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Hand raised.
    pub hand_raised: bool,
}

/// Someone waiting in the lobby, as moderators see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyEntry {
    /// Their id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
}

/// The room's state as participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Its name.
    pub name: String,
    /// New participants are refused.
    pub locked: bool,
    /// Participants wait to be admitted.
    pub lobby: bool,
    /// Media is end-to-end encrypted.
    pub end_to_end_encryption: bool,
    /// Participants keep the names their tokens give them.
    pub fixed_display_names: bool,
    /// What clients capture and send.
    pub quality: MediaQuality,
    /// The meeting is being recorded.
    #[serde(default)]
    pub recording: bool,
    /// The meeting is streamed live (to YouTube or another RTMP service).
    #[serde(default)]
    pub live_streaming: bool,
    /// Moderators may call phones into the meeting (`dial_out`): the node has a SIP trunk, the plan has
    /// phone calls and the meeting is not end-to-end encrypted.
    #[serde(default)]
    pub dial_out: bool,
}

/// The media a room asks its participants for, from the organisation's room settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaQuality {
    /// The camera's height (720 or 1080); simulcast sends it, half and a quarter.
    pub max_height: u32,
    /// Music mode: no echo cancellation, noise suppression or gain control, stereo Opus at up to 128 kbit/s.
    pub high_fidelity_audio: bool,
}

impl Default for MediaQuality {
    fn default() -> Self {
        Self { max_height: 720, high_fidelity_audio: false }
    }
}

/// Where a phone call placed from the meeting is; the codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialOutState {
    /// The trunk is being asked to call.
    Calling,
    /// The phone rings.
    Ringing,
    /// The person answered and is in the meeting.
    Answered,
    /// The line is busy.
    Busy,
    /// Nobody answered in time, or the call was cancelled before an answer.
    NoAnswer,
    /// The person declined the call.
    Declined,
    /// The trunk could not place the call (a wrong number, no route, refused credentials).
    Failed,
    /// An answered call hung up.
    Ended,
}

impl DialOutState {
    /// Whether the call is over in this state.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Calling | Self::Ringing | Self::Answered)
    }
}

/// Why someone is not (or no longer) in the room; the codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// `hello` carried another protocol version.
    UnsupportedVersion,
    /// The token did not verify (the driver says why in the message).
    InvalidToken,
    /// The room has a password and none was given.
    PasswordRequired,
    /// The password was wrong.
    WrongPassword,
    /// A moderator locked the room.
    Locked,
    /// The room has as many participants as allowed.
    Full,
    /// A moderator turned the request away.
    Rejected,
    /// A moderator removed the participant.
    Kicked,
    /// The meeting was ended for everyone.
    Ended,
    /// This node takes no new meetings (it is draining); try again.
    Unavailable,
    /// The organisation's plan allows no more: participants in this meeting, meetings at once, or minutes
    /// this period (the message says which).
    PlanLimit,
    /// The organisation's payment is overdue past its grace period: meetings going on continue, new ones
    /// cannot start.
    PaymentOverdue,
}

impl Refusal {
    /// The stable code, as on the wire: for metrics labels and pages.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::UnsupportedVersion => "unsupported_version",
            Refusal::InvalidToken => "invalid_token",
            Refusal::PasswordRequired => "password_required",
            Refusal::WrongPassword => "wrong_password",
            Refusal::Locked => "locked",
            Refusal::Full => "full",
            Refusal::Rejected => "rejected",
            Refusal::Kicked => "kicked",
            Refusal::Ended => "ended",
            Refusal::Unavailable => "unavailable",
            Refusal::PlanLimit => "plan_limit",
            Refusal::PaymentOverdue => "payment_overdue",
        }
    }
}

/// What the node sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// You are in.
    Welcome {
        /// The protocol version.
        version: u32,
        /// Your id.
        you: ParticipantId,
        /// The room.
        room: RoomInfo,
        /// Everyone in the room, you included.
        participants: Vec<ParticipantInfo>,
        /// Who waits in the lobby (moderators only; empty for others).
        lobby: Vec<LobbyEntry>,
        /// The secret that resumes this session over a new connection (`hello.resume`); empty when the
        /// node offers none.
        #[serde(default)]
        resume: String,
    },
    /// You wait in the lobby until a moderator admits you.
    Lobby {
        /// Your id.
        you: ParticipantId,
    },
    /// You are not (or no longer) in the room; the connection closes.
    Refused {
        /// Why.
        reason: Refusal,
        /// The same, for people.
        message: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone's state changed (mute, hand, role).
    ParticipantUpdated {
        /// Their new state.
        participant: ParticipantInfo,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        id: ParticipantId,
        /// Why, when they did not leave on their own.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<Refusal>,
    },
    /// The lobby changed (moderators only).
    LobbyChanged {
        /// Everyone waiting.
        waiting: Vec<LobbyEntry>,
    },
    /// The room's state changed.
    RoomChanged {
        /// The new state.
        room: RoomInfo,
    },
    /// A chat message.
    Chat {
        /// From whom.
        from: ParticipantId,
        /// The text.
        text: String,
        /// Sent privately (to you, or by you).
        private: bool,
        /// The recipient of a private message.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        to: Option<ParticipantId>,
    },
    /// A reaction.
    Reaction {
        /// From whom.
        from: ParticipantId,
        /// The emoji.
        emoji: String,
    },
    /// A moderator muted you.
    Muted {
        /// Which.
        media: MediaKind,
        /// The moderator.
        by: ParticipantId,
    },
    /// A moderator asks you to unmute.
    UnmuteRequested {
        /// The moderator.
        by: ParticipantId,
    },
    /// End-to-end encryption keys from another participant.
    E2ee {
        /// The sender.
        from: ParticipantId,
        /// As they sent it.
        payload: String,
    },
    /// The node's answer to your `offer`.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// Others' media changed: answer with `answer`. `tracks` says whose media each m-line carries.
    Offer {
        /// The SDP.
        sdp: String,
        /// Every track the node sends you after this offer.
        tracks: Vec<TrackInfo>,
    },
    /// Recording started or stopped (`room_changed` follows with the room's state).
    RecordingChanged {
        /// Whether the meeting is recorded now.
        recording: bool,
        /// Who started or stopped it, as people see them: a participant's name, or the organisation's
        /// system for the API and automatic starts.
        by: String,
        /// Why it stopped, when nobody stopped it (the disk is full, the recorder failed).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
    },
    /// A live stream started or stopped (`room_changed` follows with the room's state).
    LiveStreamChanged {
        /// Whether the meeting is streamed live now.
        live: bool,
        /// Who started or stopped it, as people see them.
        by: String,
        /// Why it stopped, when nobody stopped it (the streaming service refused or went away).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
    },
    /// A phone call a moderator (or the API) placed changed state (moderators only).
    DialOutChanged {
        /// The call's id, the same for every change of one call.
        call: String,
        /// The number called, as the moderator gave it in international form.
        number: String,
        /// Where the call is.
        state: DialOutState,
        /// Who placed it, as people see them.
        by: String,
        /// Why it failed, for people, when the trunk said.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
    },
    /// The loudest participant changed.
    DominantSpeaker {
        /// Who speaks now.
        participant: ParticipantId,
    },
    /// Your last message was refused; you stay in the room.
    Error {
        /// A stable code: `forbidden`, `unknown_participant`, `invalid`, `not_in_room`, `malformed`.
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// A display name as people may choose it: trimmed, 1 to [`MAX_DISPLAY_NAME_CHARS`] characters, no control
/// characters. The error says what is wrong, for people.
pub fn display_name(text: &str) -> Result<&str, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(format!("a name is 1 to {MAX_DISPLAY_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a name cannot contain control characters".to_owned());
    }
    Ok(name)
}

/// Why a frame could not be read as a client message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("messages are at most {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// Not JSON, an unknown `type`, or a field missing or of the wrong type.
    #[error("unreadable message: {0}")]
    Malformed(String),
}

impl ClientMessage {
    /// Reads one text frame.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge);
        }
        serde_json::from_str(text).map_err(|error| ParseError::Malformed(error.to_string()))
    }
}

impl ServerMessage {
    /// An error answer for a message that could not be read.
    pub fn malformed(error: &ParseError) -> Self {
        Self::Error { code: "malformed".to_owned(), message: error.to_string() }
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every field is a string, number, bool or list of them.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_a_type_tag() {
        let hello = ClientMessage::parse(r#"{"type":"hello","version":1,"token":"a.b.c"}"#).expect("valid");
        let expected =
            ClientMessage::Hello { version: 1, token: "a.b.c".to_owned(), password: None, name: None, resume: None };
        assert_eq!(hello, expected);
        let mute = ClientMessage::parse(r#"{"type":"mute","participant":7,"media":"audio"}"#).expect("valid");
        assert_eq!(mute, ClientMessage::Mute { participant: ParticipantId(7), media: MediaKind::Audio });
        let left = ServerMessage::ParticipantLeft { id: ParticipantId(3), reason: Some(Refusal::Kicked) };
        assert_eq!(left.to_json(), r#"{"type":"participant_left","id":3,"reason":"kicked"}"#);
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(display_name("  Ada Lovelace "), Ok("Ada Lovelace"));
        assert_eq!(display_name("Zoë 🎻"), Ok("Zoë 🎻"));
        assert_eq!(display_name(&"é".repeat(MAX_DISPLAY_NAME_CHARS)).map(str::len), Ok(2 * MAX_DISPLAY_NAME_CHARS));
        for bad in ["", "   ", "tab\there", "line\nbreak", &"x".repeat(MAX_DISPLAY_NAME_CHARS + 1)] {
            assert!(display_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusal_codes_are_the_wire_names() {
        use Refusal::*;
        let all = [
            UnsupportedVersion,
            InvalidToken,
            PasswordRequired,
            WrongPassword,
            Locked,
            Full,
            Rejected,
            Kicked,
            Ended,
            Unavailable,
            PlanLimit,
            PaymentOverdue,
        ];
        for refusal in all {
            assert_eq!(serde_json::to_string(&refusal).ok(), Some(format!("\"{}\"", refusal.code())));
        }
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason_and_never_panic() {
        assert_eq!(ClientMessage::parse(&"x".repeat(MAX_MESSAGE_BYTES + 1)), Err(ParseError::TooLarge));
        for bad in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"type":"dance"}"#,
            r#"{"type":"kick"}"#,
            r#"{"type":"kick","participant":"seven"}"#,
            r#"{"type":"kick","participant":-1}"#,
            r#"{"type":"chat","text":"hi","colour":"red"}"#,
            r#"{"type":"hello","version":1}"#,
            "{\"type\":\"chat\",\"text\":\"\u{0}\"",
        ] {
            assert!(matches!(ClientMessage::parse(bad), Err(ParseError::Malformed(_))), "{bad:?}");
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b"{}\":,[]typehlokcv0123456789 "[usize::try_from(state % 28).unwrap_or(0)]
                })
                .collect();
            let _ = ClientMessage::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
