//! The room focus: who is in a room, in which role, who waits in the lobby, and what moderators did. It is
//! sans-IO like the rest of the node's core: the driver verifies the token, feeds connections and parsed
//! messages in, and sends what comes out; nothing here touches a socket or a clock.
//!
//! Rules: the token's `moderator` claim decides the role, and moderators bypass the lobby, the password and
//! the lock; everyone else meets them in that order after the participant ceiling. Moderator actions from
//! participants are refused with `forbidden`; actions naming someone not in the room with
//! `unknown_participant`; a bad message never affects anyone but its sender. Participants may replace the
//! token's display name (before joining, in `hello`, or later) unless the room fixes names.

use std::{collections::BTreeMap, time::SystemTime};

use convene_domain::{PhoneNumber, RoomSettings};
use convene_signal::{
    ClientMessage, DialOutState, LobbyEntry, MAX_CHAT_CHARS, MAX_E2EE_PAYLOAD_BYTES, MAX_REACTION_CHARS, MAX_TONES,
    MediaKind, MediaQuality, PROTOCOL_VERSION, ParticipantId, ParticipantInfo, Refusal, RoomInfo, ServerMessage,
    display_name,
};
use subtle::ConstantTimeEq;

/// What the control plane decided for a room: its settings and what the organisation's plan allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomPolicy {
    /// The room's settings (the defaults for a room made on the fly by a tenant's own token).
    pub settings: RoomSettings,
    /// What the organisation's plan allows; it may change during a meeting, so each connection brings the
    /// allowance current when it came.
    pub allowance: Allowance,
}

/// A limit of the organisation's plan, with the words for the person it turns away.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ceiling {
    /// How many are allowed.
    pub max: usize,
    /// Why someone beyond it is refused, for people.
    pub message: String,
}

/// What the organisation's plan allows a meeting (the control plane's billing decides; the focus enforces).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Allowance {
    /// At most this many in one meeting, moderators included.
    pub participants: Option<Ceiling>,
    /// At most this many of the organisation's meetings at once.
    pub meetings: Option<Ceiling>,
    /// Why no new meeting may start (meetings going on continue and take newcomers), if it may not.
    pub new_meetings_refused: Option<(Refusal, String)>,
    /// Why meetings cannot be recorded, if the plan does not include recording.
    pub recording_refused: Option<String>,
    /// Why moderators cannot call phones into meetings, if the plan has no phone calls.
    pub phone_refused: Option<String>,
}

/// What the room remembers of the token someone came with, so a removal outlives their connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenFacts {
    /// The token's digest (SHA-256, hex): the same token coming back is recognised without an id claim.
    pub digest: String,
    /// `iat` (else `nbf`): tokens issued before a meeting ended do not open it again.
    pub issued_at: Option<SystemTime>,
    /// `exp`: how long a removal must be remembered for the token to stay useless.
    pub expires_at: Option<SystemTime>,
}

/// Someone a moderator removed (kicked from the room or turned away from the lobby): their token and user id
/// stay refused here until the token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The token's user id, if it had one.
    pub user_id: Option<String>,
    /// The token they came with.
    pub token: TokenFacts,
    /// Turned away from the lobby rather than removed from the room.
    pub rejected: bool,
}

/// Who connects, from their verified token.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The token's `context.user.id`, if it has one.
    pub user_id: Option<String>,
    /// Display name, from the token.
    pub name: String,
    /// The name the participant chose in `hello` instead, if they did.
    pub chosen_name: Option<String>,
    /// The token's `context.user.moderator`.
    pub moderator: bool,
    /// The token's `context.features.recording`: as a moderator, they may record.
    pub may_record: bool,
    /// The token's `context.features.livestreaming`: as a moderator, they may stream the meeting live.
    pub may_stream: bool,
    /// The token's `context.features.outbound-call`: as a moderator, they may call phones into the meeting.
    pub may_dial_out: bool,
    /// A moderator called them in (a phone the meeting dialled): like a moderator they pass the lobby, the
    /// lock and the password, but not a removal or a ceiling.
    pub invited: bool,
    /// The token's `context.user.email`: where news of what they started (a recording) goes.
    pub email: Option<String>,
    /// The token itself.
    pub token: TokenFacts,
    /// A phone in the meeting: how it came in.
    #[serde(default)]
    pub phone: Option<PhoneLeg>,
}

/// How a phone came into a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneLeg {
    /// Someone called the meeting's number and typed its PIN.
    DialIn,
    /// A moderator (or the organisation's API) called the phone.
    DialOut,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send a message to one connection.
    Send(ParticipantId, ServerMessage),
    /// Close a connection (after sending what came before).
    Close(ParticipantId),
    /// Remember durably that this person was removed (the driver reports it to the control plane).
    Removed(Removal),
    /// The meeting was ended for everyone: tokens issued before now must not start it again.
    Ended,
    /// A moderator asked to start (or stop) recording; the driver does it and tells the room with
    /// [`Room::recording_changed`].
    Record {
        /// Start, or stop.
        start: bool,
        /// Who asked.
        by: ParticipantId,
    },
    /// A moderator asked to call a phone into the meeting (`number` in international form); the driver
    /// places the call and reports how it goes with [`Room::dial_out_changed`].
    DialOut {
        /// The number.
        number: String,
        /// Who asked.
        by: ParticipantId,
    },
    /// A moderator asked to stop calling a phone that has not answered.
    CancelDialOut {
        /// The call.
        call: String,
    },
    /// A moderator pressed keys on a phone the meeting called.
    SendTones {
        /// The call.
        call: String,
        /// The keys, checked: `0`–`9`, `*`, `#`, `A`–`D`.
        tones: String,
    },
    /// A moderator asked to start streaming live (to the address and key given) or to stop (`None`); the
    /// driver does it and tells the room with [`Room::live_stream_changed`].
    LiveStream {
        /// Where to: the service's address and the stream key.
        target: Option<(String, String)>,
        /// Who asked.
        by: ParticipantId,
    },
}

#[derive(Debug, Clone)]
struct Member {
    info: ParticipantInfo,
    /// Who they are by their token, should they be removed.
    user_id: Option<String>,
    token: TokenFacts,
    /// The participant this one wants on stage, for the bandwidth allocator.
    pinned: Option<ParticipantId>,
    /// Their token lets them record.
    may_record: bool,
    /// Their token lets them stream live.
    may_stream: bool,
    /// Their token lets them call phones in.
    may_dial_out: bool,
    email: Option<String>,
    phone: Option<PhoneLeg>,
}

/// One room's membership and moderation state.
#[derive(Debug)]
pub struct Room {
    name: String,
    policy: RoomPolicy,
    locked: bool,
    ended: bool,
    recording: bool,
    live_streaming: bool,
    /// The node can place phone calls (it has a SIP trunk).
    phone_line: bool,
    /// Phone calls placed from the meeting and not over, by id: their number and state.
    dial_outs: BTreeMap<String, (String, DialOutState)>,
    members: BTreeMap<ParticipantId, Member>,
    lobby: BTreeMap<ParticipantId, Identity>,
    /// Tokens (by digest) and user ids of people removed, with whether they were rejected from the lobby.
    removed: Vec<Removal>,
    next_id: u64,
}

/// Phone calls placed from one meeting and not yet answered or over, at most: every call costs a trunk's
/// minutes, so a careless (or hijacked) moderator cannot ring a city.
pub const MAX_DIAL_OUTS: usize = 5;

/// A change in a phone call placed from a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutChange {
    /// The call's id.
    pub call: String,
    /// The number called.
    pub number: String,
    /// Where it is.
    pub state: DialOutState,
    /// Who placed it, in words.
    pub by: String,
    /// Why it failed, when the trunk said.
    pub reason: Option<String>,
}

/// Keys a moderator may press on a phone, upper-cased: `0`–`9`, `*`, `#`, `A`–`D`, one to [`MAX_TONES`].
fn keypad_keys(tones: &str) -> Option<String> {
    let keys = tones.trim().to_ascii_uppercase();
    let valid = (1..=MAX_TONES).contains(&keys.chars().count())
        && keys.chars().all(|key| key.is_ascii_digit() || "*#ABCD".contains(key));
    valid.then_some(keys)
}

/// The user id a phone caller has in a room (removals keep the number out).
pub fn phone_user_id(number: &str) -> String {
    format!("phone:{number}")
}

/// How a phone shows in a meeting: "Phone ••• 4567" from the number's last four digits, else "Phone".
pub fn phone_name(number: Option<&str>) -> String {
    let digits: Vec<char> = number.unwrap_or_default().chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        4.. => format!("Phone ••• {}", digits[digits.len() - 4..].iter().collect::<String>()),
        _ => "Phone".to_owned(),
    }
}

/// Why an end-to-end encrypted meeting cannot be recorded, in words for people.
pub const RECORDING_NEEDS_CLEAR_MEDIA: &str = "this meeting is end-to-end encrypted, so the server cannot record it";
/// Why an end-to-end encrypted meeting cannot be streamed live, in words for people.
pub const STREAMING_NEEDS_CLEAR_MEDIA: &str = "this meeting is end-to-end encrypted, so the server cannot stream it";

/// People who may wait in a room's lobby at once: every knock sends the list to the moderators, so the
/// list stays short enough to send.
pub const MAX_LOBBY: usize = 100;

/// The words for a refusal, for the person refused.
pub fn refusal_message(reason: Refusal) -> &'static str {
    match reason {
        Refusal::UnsupportedVersion => "this client speaks another protocol version; reload the page",
        Refusal::InvalidToken => "this meeting link is not valid",
        Refusal::PasswordRequired => "this meeting has a password",
        Refusal::WrongPassword => "the password is not right",
        Refusal::Locked => "a moderator locked this meeting",
        Refusal::Full => "this meeting is full",
        Refusal::Rejected => "a moderator did not let you in",
        Refusal::Kicked => "a moderator removed you from the meeting",
        Refusal::Ended => "the meeting has ended",
        Refusal::Unavailable => "this meeting cannot start right now; try again in a moment",
        Refusal::PlanLimit => "this meeting is at its organisation's plan limits",
        Refusal::PaymentOverdue => "this organisation's payment is overdue, so new meetings cannot start",
    }
}

/// The messages that turn a connection away.
pub fn refuse(id: ParticipantId, reason: Refusal) -> Vec<Outbound> {
    refuse_with(id, reason, refusal_message(reason).to_owned())
}

fn refuse_with(id: ParticipantId, reason: Refusal, message: String) -> Vec<Outbound> {
    vec![Outbound::Send(id, ServerMessage::Refused { reason, message }), Outbound::Close(id)]
}

fn error(id: ParticipantId, code: &str, message: &str) -> Vec<Outbound> {
    vec![Outbound::Send(id, ServerMessage::Error { code: code.to_owned(), message: message.to_owned() })]
}

impl Room {
    /// An empty room.
    pub fn new(name: &str, policy: RoomPolicy) -> Self {
        Self {
            name: name.to_owned(),
            policy,
            locked: false,
            ended: false,
            recording: false,
            live_streaming: false,
            phone_line: false,
            dial_outs: BTreeMap::new(),
            members: BTreeMap::new(),
            lobby: BTreeMap::new(),
            removed: Vec::new(),
            next_id: 1,
        }
    }

    /// Takes the room's settings and the plan's allowance as they are now, brought by a new connection: a
    /// password, lobby or encryption changed during the meeting applies to whoever connects next. Members
    /// hear of a change they can see.
    pub fn set_policy(&mut self, policy: RoomPolicy) -> Vec<Outbound> {
        let before = self.info();
        self.policy = policy;
        if self.info() == before {
            return Vec::new();
        }
        self.broadcast(&ServerMessage::RoomChanged { room: self.info() }, None)
    }

    /// Whether no one is in the room or its lobby (the driver may drop it).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.lobby.is_empty()
    }

    /// Who is in the room.
    pub fn participants(&self) -> impl Iterator<Item = &ParticipantInfo> {
        self.members.values().map(|member| &member.info)
    }

    /// Whether `id` is in the room (admitted, not waiting).
    pub fn is_member(&self, id: ParticipantId) -> bool {
        self.members.contains_key(&id)
    }

    /// Whether `id` waits in the lobby.
    pub fn is_waiting(&self, id: ParticipantId) -> bool {
        self.lobby.contains_key(&id)
    }

    /// The room's settings and the plan's allowance, as the last connection brought them.
    pub fn policy(&self) -> &RoomPolicy {
        &self.policy
    }

    /// Whether the room encrypts media end to end.
    pub fn end_to_end_encrypted(&self) -> bool {
        self.policy.settings.end_to_end_encryption
    }

    /// Whom `receiver` pinned, if anyone.
    pub fn pinned_by(&self, receiver: ParticipantId) -> Option<ParticipantId> {
        self.members.get(&receiver).and_then(|member| member.pinned)
    }

    fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.clone(),
            locked: self.locked,
            lobby: self.policy.settings.lobby,
            end_to_end_encryption: self.policy.settings.end_to_end_encryption,
            fixed_display_names: self.policy.settings.fixed_display_names,
            quality: MediaQuality {
                max_height: self.policy.settings.max_resolution.height(),
                high_fidelity_audio: self.policy.settings.high_fidelity_audio,
            },
            recording: self.recording,
            live_streaming: self.live_streaming,
            dial_out: self.dial_out_refusal(None).is_none(),
        }
    }

    fn lobby_entries(&self) -> Vec<LobbyEntry> {
        self.lobby.iter().map(|(id, identity)| LobbyEntry { id: *id, name: identity.name.clone() }).collect()
    }

    fn broadcast(&self, message: &ServerMessage, except: Option<ParticipantId>) -> Vec<Outbound> {
        self.members.keys().filter(|id| Some(**id) != except).map(|id| Outbound::Send(*id, message.clone())).collect()
    }

    fn to_moderators(&self, message: &ServerMessage) -> Vec<Outbound> {
        self.members
            .iter()
            .filter(|(_, member)| member.info.moderator)
            .map(|(id, _)| Outbound::Send(*id, message.clone()))
            .collect()
    }

    fn lobby_changed(&self) -> Vec<Outbound> {
        self.to_moderators(&ServerMessage::LobbyChanged { waiting: self.lobby_entries() })
    }

    /// A verified connection's `hello`: it joins, waits in the lobby, or is refused.
    pub fn connect(
        &mut self,
        mut identity: Identity,
        version: u32,
        password: Option<&str>,
    ) -> (ParticipantId, Vec<Outbound>) {
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        // A name that cannot be taken leaves the token's; the participant is told why once they are in.
        let name_refused = identity.chosen_name.take().and_then(|chosen| match self.acceptable_name(&chosen) {
            Ok(name) => {
                identity.name = name;
                None
            }
            Err((code, message)) => Some(error(id, code, &message)),
        });
        // People waiting in the lobby count against the ceilings too, or a lobby could outgrow the room.
        let waits = self.policy.settings.lobby && !identity.moderator && !identity.invited;
        let present = self.members.len() + if waits { self.lobby.len() } else { 0 };
        let plain = |reason| (reason, refusal_message(reason).to_owned());
        let refused = if version != PROTOCOL_VERSION {
            Some(plain(Refusal::UnsupportedVersion))
        } else if self.ended {
            Some(plain(Refusal::Ended))
        } else if let Some(removal) = self.removal_of(&identity) {
            Some(plain(if removal.rejected { Refusal::Rejected } else { Refusal::Kicked }))
        } else if let Some(ceiling) = self.ceiling_refusal(present) {
            Some(ceiling)
        } else if identity.moderator || identity.invited {
            None
        } else if self.locked {
            Some(plain(Refusal::Locked))
        } else {
            match (&self.policy.settings.password, password) {
                (Some(_), None) => Some(plain(Refusal::PasswordRequired)),
                (Some(expected), Some(given)) if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) => {
                    Some(plain(Refusal::WrongPassword))
                }
                _ => None,
            }
        };
        if let Some((reason, message)) = refused {
            return (id, refuse_with(id, reason, message));
        }
        if waits && self.lobby.len() >= MAX_LOBBY {
            return (
                id,
                refuse_with(id, Refusal::Full, "too many people are waiting to join; try again soon".to_owned()),
            );
        }
        let mut out = if waits {
            self.lobby.insert(id, identity);
            let mut out = vec![Outbound::Send(id, ServerMessage::Lobby { you: id })];
            out.extend(self.lobby_changed());
            out
        } else {
            self.admit(id, identity)
        };
        out.extend(name_refused.into_iter().flatten());
        (id, out)
    }

    /// The removal that keeps `identity` out: the same token, or the same user id.
    fn removal_of(&self, identity: &Identity) -> Option<&Removal> {
        self.removed.iter().find(|removal| {
            let same_token = !removal.token.digest.is_empty() && removal.token.digest == identity.token.digest;
            same_token || (removal.user_id.is_some() && removal.user_id == identity.user_id)
        })
    }

    /// Keeps `removal` out of this room and tells the driver to remember it beyond the room's life.
    fn remove(&mut self, removal: Removal) -> Outbound {
        self.removed.push(removal.clone());
        Outbound::Removed(removal)
    }

    /// Why one more person cannot be in the room with `present` counted already: the room's own ceiling,
    /// then the plan's (which counts moderators too: it is what the organisation pays for).
    fn ceiling_refusal(&self, present: usize) -> Option<(Refusal, String)> {
        let room_max = self.policy.settings.max_participants.and_then(|max| usize::try_from(max).ok());
        if room_max.is_some_and(|max| present >= max) {
            return Some((Refusal::Full, refusal_message(Refusal::Full).to_owned()));
        }
        let ceiling = self.policy.allowance.participants.as_ref().filter(|ceiling| present >= ceiling.max)?;
        Some((Refusal::PlanLimit, ceiling.message.clone()))
    }

    /// The display name to use for `chosen`, or the error code and words for why it cannot be.
    fn acceptable_name(&self, chosen: &str) -> Result<String, (&'static str, String)> {
        if self.policy.settings.fixed_display_names {
            return Err(("forbidden", "this meeting uses the names on the invitations".to_owned()));
        }
        display_name(chosen).map(str::to_owned).map_err(|message| ("invalid", message))
    }

    fn admit(&mut self, id: ParticipantId, identity: Identity) -> Vec<Outbound> {
        let (user_id, token, email, phone) = (identity.user_id, identity.token, identity.email, identity.phone);
        let (may_record, may_stream, may_dial_out) = (identity.may_record, identity.may_stream, identity.may_dial_out);
        let info = ParticipantInfo {
            id,
            name: identity.name,
            moderator: identity.moderator,
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
        };
        let mut out = self.broadcast(&ServerMessage::ParticipantJoined { participant: info.clone() }, None);
        let member = Member { info, user_id, token, pinned: None, may_record, may_stream, may_dial_out, email, phone };
        self.members.insert(id, member);
        if let Some(welcome) = self.welcome(id) {
            out.insert(0, Outbound::Send(id, welcome));
        }
        out
    }

    /// The room as a member sees it on entering (or on resuming their session over a new connection; the
    /// driver fills in the resume secret).
    pub fn welcome(&self, id: ParticipantId) -> Option<ServerMessage> {
        let member = self.members.get(&id)?;
        let lobby = if member.info.moderator { self.lobby_entries() } else { Vec::new() };
        Some(ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            you: id,
            room: self.info(),
            participants: self.participants().cloned().collect(),
            lobby,
            resume: String::new(),
        })
    }

    /// The connection closed (or sent `leave`).
    pub fn disconnect(&mut self, id: ParticipantId) -> Vec<Outbound> {
        if self.lobby.remove(&id).is_some() {
            return self.lobby_changed();
        }
        if self.members.remove(&id).is_none() {
            return Vec::new();
        }
        for member in self.members.values_mut() {
            if member.pinned == Some(id) {
                member.pinned = None;
            }
        }
        self.broadcast(&ServerMessage::ParticipantLeft { id, reason: None }, None)
    }

    /// A message from a connection after its `hello`.
    pub fn handle(&mut self, from: ParticipantId, message: ClientMessage) -> Vec<Outbound> {
        if matches!(message, ClientMessage::Leave) {
            let mut out = self.disconnect(from);
            out.push(Outbound::Close(from));
            return out;
        }
        let Some(sender) = self.members.get(&from).map(|member| member.info.clone()) else {
            return error(from, "not_in_room", "wait until you are admitted");
        };
        match message {
            ClientMessage::Hello { .. } => error(from, "invalid", "you are already in the room"),
            // The driver hands media negotiation to the SFU once it knows the sender is in the room.
            ClientMessage::Offer { .. } | ClientMessage::Answer { .. } | ClientMessage::ReceiveVideo { .. } => {
                error(from, "invalid", "this node does not carry media")
            }
            ClientMessage::Chat { text, to } => self.chat(from, text, to),
            ClientMessage::RaiseHand { raised } => self.update(from, |info| info.hand_raised = raised),
            ClientMessage::Reaction { emoji } => {
                let length = emoji.chars().count();
                if length == 0 || length > MAX_REACTION_CHARS || emoji.chars().any(char::is_control) {
                    return error(from, "invalid", "a reaction is one short emoji");
                }
                self.broadcast(&ServerMessage::Reaction { from, emoji }, None)
            }
            ClientMessage::SetMuted { media, muted } => self.update(from, |info| set_muted(info, media, muted)),
            ClientMessage::SetName { name } => match self.acceptable_name(&name) {
                Ok(name) => self.update(from, |info| info.name = name),
                Err((code, message)) => error(from, code, &message),
            },
            ClientMessage::E2ee { to, payload } => self.relay_keys(from, to, payload),
            ClientMessage::Pin { participant } => {
                if participant.is_some_and(|pinned| !self.members.contains_key(&pinned)) {
                    return error(from, "unknown_participant", "no such participant in the room");
                }
                if let Some(member) = self.members.get_mut(&from) {
                    member.pinned = participant;
                }
                Vec::new()
            }
            moderation => {
                if !sender.moderator {
                    return error(from, "forbidden", "only moderators can do this");
                }
                self.moderate(from, &moderation)
            }
        }
    }

    fn chat(&self, from: ParticipantId, text: String, to: Option<ParticipantId>) -> Vec<Outbound> {
        let length = text.chars().count();
        if text.trim().is_empty() || length > MAX_CHAT_CHARS {
            return error(from, "invalid", "chat messages are 1 to 2000 characters");
        }
        match to {
            None => self.broadcast(&ServerMessage::Chat { from, text, private: false, to: None }, None),
            Some(recipient) if self.members.contains_key(&recipient) && recipient != from => {
                let message = ServerMessage::Chat { from, text, private: true, to: Some(recipient) };
                vec![Outbound::Send(recipient, message.clone()), Outbound::Send(from, message)]
            }
            Some(_) => error(from, "unknown_participant", "no such participant in the room"),
        }
    }

    /// Passes end-to-end encryption keys on, unread: within an encrypted room, to members only.
    fn relay_keys(&self, from: ParticipantId, to: Option<ParticipantId>, payload: String) -> Vec<Outbound> {
        if !self.policy.settings.end_to_end_encryption {
            return error(from, "invalid", "this meeting is not end-to-end encrypted");
        }
        if payload.len() > MAX_E2EE_PAYLOAD_BYTES {
            return error(from, "invalid", "encryption payloads are at most 4096 bytes");
        }
        let message = ServerMessage::E2ee { from, payload };
        match to {
            None => self.broadcast(&message, Some(from)),
            Some(recipient) if self.members.contains_key(&recipient) && recipient != from => {
                vec![Outbound::Send(recipient, message)]
            }
            Some(_) => error(from, "unknown_participant", "no such participant in the room"),
        }
    }

    fn update(&mut self, id: ParticipantId, change: impl FnOnce(&mut ParticipantInfo)) -> Vec<Outbound> {
        let Some(member) = self.members.get_mut(&id) else { return Vec::new() };
        let before = member.info.clone();
        change(&mut member.info);
        if member.info == before {
            return Vec::new();
        }
        let participant = member.info.clone();
        self.broadcast(&ServerMessage::ParticipantUpdated { participant }, None)
    }

    fn moderate(&mut self, by: ParticipantId, action: &ClientMessage) -> Vec<Outbound> {
        let target = match action {
            ClientMessage::Mute { participant, .. }
            | ClientMessage::AskToUnmute { participant }
            | ClientMessage::Kick { participant }
            | ClientMessage::GrantModerator { participant } => Some(*participant),
            _ => None,
        };
        if target.is_some_and(|target| !self.members.contains_key(&target)) {
            return error(by, "unknown_participant", "no such participant in the room");
        }
        match *action {
            ClientMessage::Admit { participant } if self.lobby.contains_key(&participant) => {
                // Admitting is joining: the ceilings may have been reached since they knocked.
                if let Some((_, message)) = self.ceiling_refusal(self.members.len()) {
                    return error(by, "full", &message);
                }
                let Some(identity) = self.lobby.remove(&participant) else { return Vec::new() };
                let mut out = self.admit(participant, identity);
                out.extend(self.lobby_changed());
                out
            }
            ClientMessage::Admit { .. } => error(by, "unknown_participant", "no one by that id waits in the lobby"),
            ClientMessage::Reject { participant } => match self.lobby.remove(&participant) {
                Some(identity) => {
                    let removal = Removal { user_id: identity.user_id, token: identity.token, rejected: true };
                    let mut out = vec![self.remove(removal)];
                    out.extend(refuse(participant, Refusal::Rejected));
                    out.extend(self.lobby_changed());
                    out
                }
                None => error(by, "unknown_participant", "no one by that id waits in the lobby"),
            },
            ClientMessage::Lock { locked } => {
                if self.locked == locked {
                    return Vec::new();
                }
                self.locked = locked;
                self.broadcast(&ServerMessage::RoomChanged { room: self.info() }, None)
            }
            ClientMessage::Mute { participant, media } => self.mute(by, participant, media),
            ClientMessage::MuteAll => {
                let targets: Vec<ParticipantId> = self
                    .members
                    .iter()
                    .filter(|(id, member)| **id != by && !member.info.moderator && !member.info.audio_muted)
                    .map(|(id, _)| *id)
                    .collect();
                targets.into_iter().flat_map(|target| self.mute(by, target, MediaKind::Audio)).collect()
            }
            ClientMessage::AskToUnmute { participant } => {
                vec![Outbound::Send(participant, ServerMessage::UnmuteRequested { by })]
            }
            ClientMessage::Kick { participant } => {
                let mut out = Vec::new();
                if let Some(member) = self.members.remove(&participant) {
                    out.push(self.remove(Removal { user_id: member.user_id, token: member.token, rejected: false }));
                }
                out.extend(refuse(participant, Refusal::Kicked));
                let left = ServerMessage::ParticipantLeft { id: participant, reason: Some(Refusal::Kicked) };
                out.extend(self.broadcast(&left, None));
                out
            }
            ClientMessage::GrantModerator { participant } => {
                let mut out = self.update(participant, |info| info.moderator = true);
                if !out.is_empty() {
                    let waiting = ServerMessage::LobbyChanged { waiting: self.lobby_entries() };
                    out.push(Outbound::Send(participant, waiting));
                }
                out
            }
            ClientMessage::EndForAll => self.end(),
            ClientMessage::StartRecording => match self.recording_refusal(by) {
                Some(message) => error(by, "forbidden", message),
                None if self.recording => error(by, "invalid", "the meeting is already being recorded"),
                None => vec![Outbound::Record { start: true, by }],
            },
            ClientMessage::StopRecording if self.recording => vec![Outbound::Record { start: false, by }],
            ClientMessage::StopRecording => error(by, "invalid", "the meeting is not being recorded"),
            ClientMessage::StartLiveStream { ref url, ref key } => match self.streaming_refusal(by) {
                Some(message) => error(by, "forbidden", message),
                None if self.live_streaming => error(by, "invalid", "the meeting is already streamed live"),
                None => vec![Outbound::LiveStream { target: Some((url.clone(), key.clone())), by }],
            },
            ClientMessage::StopLiveStream if self.live_streaming => vec![Outbound::LiveStream { target: None, by }],
            ClientMessage::StopLiveStream => error(by, "invalid", "the meeting is not streamed live"),
            ClientMessage::DialOut { ref number } => match self.dial_out_allowed(Some(by), number) {
                Ok(number) => vec![Outbound::DialOut { number, by }],
                Err((code, message)) => error(by, code, message),
            },
            ClientMessage::CancelDialOut { ref call } => match self.dial_outs.get(call) {
                Some((_, DialOutState::Calling | DialOutState::Ringing)) => {
                    vec![Outbound::CancelDialOut { call: call.clone() }]
                }
                Some(_) => error(by, "invalid", "the call was answered; remove the caller to hang up"),
                None => error(by, "invalid", "no such call is going on"),
            },
            ClientMessage::SendTones { ref call, ref tones } => match (self.dial_outs.get(call), keypad_keys(tones)) {
                (Some((_, DialOutState::Answered)), Some(tones)) => {
                    vec![Outbound::SendTones { call: call.clone(), tones }]
                }
                (Some((_, DialOutState::Answered)), None) => {
                    error(by, "invalid", "keys are 0-9, *, #, A-D, one to 32 of them")
                }
                (Some(_), _) => error(by, "invalid", "the phone is not in the meeting"),
                (None, _) => error(by, "invalid", "no such call is going on"),
            },
            // Everything else was handled before moderation.
            _ => Vec::new(),
        }
    }

    fn mute(&mut self, by: ParticipantId, target: ParticipantId, media: MediaKind) -> Vec<Outbound> {
        let mut out = self.update(target, |info| set_muted(info, media, true));
        if !out.is_empty() && target != by {
            out.push(Outbound::Send(target, ServerMessage::Muted { media, by }));
        }
        out
    }

    /// Whether `number` may be called into the meeting now, by moderator `by` (or the organisation's API):
    /// the number in international form, or the error code and words.
    pub fn dial_out_allowed(&self, by: Option<ParticipantId>, number: &str) -> Result<String, (&'static str, &str)> {
        if let Some(message) = self.dial_out_refusal(by) {
            return Err(("forbidden", message));
        }
        let Ok(number) = PhoneNumber::parse(number) else {
            return Err(("invalid", "a phone number is in international form, like +15551234567"));
        };
        let user_id = Some(phone_user_id(number.as_str()));
        if self.removed.iter().any(|removal| removal.user_id == user_id) {
            return Err(("forbidden", "this number was removed from the meeting"));
        }
        let calling = self.dial_outs.values().filter(|(_, state)| *state != DialOutState::Answered).count();
        if calling >= MAX_DIAL_OUTS {
            return Err(("invalid", "too many phones are being called; wait for one to answer"));
        }
        Ok(number.as_str().to_owned())
    }

    /// Why moderators (`by`, or any) may not call phones in, if they may not: the node needs a trunk, the
    /// plan phone calls, the meeting clear media (a phone cannot hold the keys), and `by`'s token
    /// `outbound-call`.
    fn dial_out_refusal(&self, by: Option<ParticipantId>) -> Option<&str> {
        if !self.phone_line {
            return Some("this server has no phone line for calling out");
        }
        if self.policy.settings.end_to_end_encryption {
            return Some("this meeting is end-to-end encrypted, so phones cannot join it");
        }
        if let Some(message) = &self.policy.allowance.phone_refused {
            return Some(message);
        }
        let may_dial_out = by.is_none_or(|by| self.members.get(&by).is_some_and(|member| member.may_dial_out));
        (!may_dial_out).then_some("your meeting link does not allow calling phones")
    }

    /// The node can place phone calls (it has a SIP trunk): moderators may call phones in.
    pub fn set_phone_line(&mut self, available: bool) -> Vec<Outbound> {
        let before = self.info();
        self.phone_line = available;
        if self.info() == before {
            return Vec::new();
        }
        self.broadcast(&ServerMessage::RoomChanged { room: self.info() }, None)
    }

    /// A phone call placed from the meeting changed state (the driver reports it): moderators hear how it
    /// goes, and a call in progress counts against [`MAX_DIAL_OUTS`] until it is over.
    pub fn dial_out_changed(&mut self, change: DialOutChange) -> Vec<Outbound> {
        let DialOutChange { call, number, state, by, reason } = change;
        if state.is_final() {
            self.dial_outs.remove(&call);
        } else {
            self.dial_outs.insert(call.clone(), (number.clone(), state));
        }
        self.to_moderators(&ServerMessage::DialOutChanged { call, number, state, by, reason })
    }

    /// Why `by` may not start recording, if they may not: the server cannot record what it cannot read, the
    /// plan must include recording and their token must allow it.
    fn recording_refusal(&self, by: ParticipantId) -> Option<&str> {
        if self.policy.settings.end_to_end_encryption {
            return Some(RECORDING_NEEDS_CLEAR_MEDIA);
        }
        if let Some(message) = &self.policy.allowance.recording_refused {
            return Some(message);
        }
        let may_record = self.members.get(&by).is_some_and(|member| member.may_record);
        (!may_record).then_some("your meeting link does not allow recording")
    }

    /// Why `by` may not stream the meeting live, if they may not: as for recording, with their token's
    /// `livestreaming`.
    fn streaming_refusal(&self, by: ParticipantId) -> Option<&str> {
        if self.policy.settings.end_to_end_encryption {
            return Some(STREAMING_NEEDS_CLEAR_MEDIA);
        }
        if let Some(message) = &self.policy.allowance.recording_refused {
            return Some(message);
        }
        let may_stream = self.members.get(&by).is_some_and(|member| member.may_stream);
        (!may_stream).then_some("your meeting link does not allow live streaming")
    }

    /// Recording started or stopped (by the driver, after a moderator or the API asked): everyone hears who
    /// did it (`by`, in words), or why it stopped by itself.
    pub fn recording_changed(&mut self, recording: bool, by: String, reason: Option<String>) -> Vec<Outbound> {
        if self.recording == recording {
            return Vec::new();
        }
        self.recording = recording;
        let mut out = self.broadcast(&ServerMessage::RecordingChanged { recording, by, reason }, None);
        out.extend(self.broadcast(&ServerMessage::RoomChanged { room: self.info() }, None));
        out
    }

    /// A live stream started or stopped (by the driver, after the API asked): everyone hears who did it
    /// (`by`, in words), or why it stopped by itself.
    pub fn live_stream_changed(&mut self, live: bool, by: String, reason: Option<String>) -> Vec<Outbound> {
        if self.live_streaming == live {
            return Vec::new();
        }
        self.live_streaming = live;
        let mut out = self.broadcast(&ServerMessage::LiveStreamChanged { live, by, reason }, None);
        out.extend(self.broadcast(&ServerMessage::RoomChanged { room: self.info() }, None));
        out
    }

    /// Whether the meeting is being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Whether the room records itself once someone is in: its settings say so, the plan includes recording
    /// and the media can be read.
    pub fn records_itself(&self) -> bool {
        let settings = &self.policy.settings;
        settings.auto_record && !settings.end_to_end_encryption && self.policy.allowance.recording_refused.is_none()
    }

    /// The display name of a member, for notices.
    pub fn name_of(&self, id: ParticipantId) -> Option<&str> {
        self.members.get(&id).map(|member| member.info.name.as_str())
    }

    /// A member's email address, from their token.
    pub fn email_of(&self, id: ParticipantId) -> Option<&str> {
        self.members.get(&id).and_then(|member| member.email.as_deref())
    }

    /// How a member came in, when they are a phone.
    pub fn phone_of(&self, id: ParticipantId) -> Option<PhoneLeg> {
        self.members.get(&id).and_then(|member| member.phone)
    }

    /// Ends the meeting for everyone, the lobby included; later connections are refused.
    pub fn end(&mut self) -> Vec<Outbound> {
        self.ended = true;
        let everyone: Vec<ParticipantId> = self.members.keys().chain(self.lobby.keys()).copied().collect();
        self.members.clear();
        self.lobby.clear();
        let mut out = vec![Outbound::Ended];
        out.extend(everyone.into_iter().flat_map(|id| refuse(id, Refusal::Ended)));
        out
    }
}

fn set_muted(info: &mut ParticipantInfo, media: MediaKind, muted: bool) {
    match media {
        MediaKind::Audio => info.audio_muted = muted,
        MediaKind::Video => info.video_muted = muted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str) -> Identity {
        Identity { name: name.to_owned(), ..Identity::default() }
    }

    fn moderator(name: &str) -> Identity {
        Identity { name: name.to_owned(), moderator: true, ..Identity::default() }
    }

    fn join(room: &mut Room, identity: Identity) -> ParticipantId {
        let (id, out) = room.connect(identity, PROTOCOL_VERSION, None);
        assert!(matches!(out.first(), Some(Outbound::Send(to, ServerMessage::Welcome { .. })) if *to == id), "{out:?}");
        id
    }

    fn sent_to(out: &[Outbound], id: ParticipantId) -> Vec<&ServerMessage> {
        out.iter()
            .filter_map(|outbound| match outbound {
                Outbound::Send(to, message) if *to == id => Some(message),
                _ => None,
            })
            .collect()
    }

    fn closed(out: &[Outbound], id: ParticipantId) -> bool {
        out.contains(&Outbound::Close(id))
    }

    fn error_code(out: &[Outbound], id: ParticipantId) -> Option<String> {
        sent_to(out, id).into_iter().find_map(|message| match message {
            ServerMessage::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
    }

    #[test]
    fn joining_welcomes_the_newcomer_and_tells_the_others() {
        let mut room = Room::new("standup", RoomPolicy::default());
        let ann = join(&mut room, moderator("Ann"));
        let (bob, out) = room.connect(person("Bob"), PROTOCOL_VERSION, None);
        let ServerMessage::Welcome { participants, lobby, .. } = sent_to(&out, bob)[0] else { panic!("{out:?}") };
        assert_eq!(participants.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Ann", "Bob"]);
        assert!(lobby.is_empty());
        assert!(
            matches!(sent_to(&out, ann)[0], ServerMessage::ParticipantJoined { participant } if participant.id == bob)
        );
        let out = room.handle(bob, ClientMessage::Leave);
        assert!(closed(&out, bob));
        assert!(matches!(sent_to(&out, ann)[0], ServerMessage::ParticipantLeft { id, reason: None } if *id == bob));
    }

    #[test]
    fn the_lobby_holds_participants_until_a_moderator_admits_or_rejects_them() {
        let mut room = Room::new(
            "r",
            RoomPolicy { settings: RoomSettings { lobby: true, ..RoomSettings::default() }, ..RoomPolicy::default() },
        );
        let ann = join(&mut room, moderator("Ann"));
        let (bob, out) = room.connect(person("Bob"), PROTOCOL_VERSION, None);
        assert_eq!(sent_to(&out, bob), [&ServerMessage::Lobby { you: bob }]);
        assert!(matches!(sent_to(&out, ann)[0], ServerMessage::LobbyChanged { waiting } if waiting.len() == 1));
        assert_eq!(
            error_code(&room.handle(bob, ClientMessage::Chat { text: "hi".into(), to: None }), bob).as_deref(),
            Some("not_in_room")
        );
        assert_eq!(room.participants().count(), 1, "Bob is not in yet");

        let out = room.handle(ann, ClientMessage::Admit { participant: bob });
        assert!(matches!(sent_to(&out, bob)[0], ServerMessage::Welcome { .. }));
        let (cy, _) = room.connect(person("Cy"), PROTOCOL_VERSION, None);
        assert_eq!(
            error_code(&room.handle(bob, ClientMessage::Admit { participant: cy }), bob).as_deref(),
            Some("forbidden")
        );
        let out = room.handle(ann, ClientMessage::Reject { participant: cy });
        assert!(matches!(sent_to(&out, cy)[0], ServerMessage::Refused { reason: Refusal::Rejected, .. }));
        assert!(closed(&out, cy));
        assert_eq!(
            error_code(&room.handle(ann, ClientMessage::Admit { participant: cy }), ann).as_deref(),
            Some("unknown_participant")
        );
    }

    #[test]
    fn the_lobby_counts_against_the_ceilings_is_capped_and_admitting_checks_them_again() {
        let policy = RoomPolicy {
            settings: RoomSettings { lobby: true, max_participants: Some(3), ..RoomSettings::default() },
            ..RoomPolicy::default()
        };
        let mut room = Room::new("r", policy);
        let ann = join(&mut room, moderator("Ann"));
        let (bob, _) = room.connect(person("Bob"), PROTOCOL_VERSION, None);
        let (cy, _) = room.connect(person("Cy"), PROTOCOL_VERSION, None);
        let (dee, out) = room.connect(person("Dee"), PROTOCOL_VERSION, None);
        assert!(matches!(sent_to(&out, dee)[0], ServerMessage::Refused { reason: Refusal::Full, .. }), "{out:?}");
        assert!(room.is_waiting(bob) && room.is_waiting(cy));

        // The plan's ceiling drops to two while they wait: Bob gets in, Cy must wait.
        let allowance = Allowance {
            participants: Some(Ceiling { max: 2, message: "the plan allows 2".into() }),
            ..Allowance::default()
        };
        room.set_policy(RoomPolicy {
            allowance,
            settings: RoomSettings { lobby: true, max_participants: Some(3), ..RoomSettings::default() },
        });
        let out = room.handle(ann, ClientMessage::Admit { participant: bob });
        assert!(matches!(sent_to(&out, bob)[0], ServerMessage::Welcome { .. }));
        let out = room.handle(ann, ClientMessage::Admit { participant: cy });
        assert_eq!(error_code(&out, ann).as_deref(), Some("full"));
        assert!(room.is_waiting(cy) && !room.is_member(cy), "Cy still waits");

        let mut crowded = Room::new(
            "r",
            RoomPolicy { settings: RoomSettings { lobby: true, ..RoomSettings::default() }, ..RoomPolicy::default() },
        );
        join(&mut crowded, moderator("Ann"));
        for index in 0..MAX_LOBBY {
            let (id, _) = crowded.connect(person(&format!("P{index}")), PROTOCOL_VERSION, None);
            assert!(crowded.is_waiting(id));
        }
        let (late, out) = crowded.connect(person("Late"), PROTOCOL_VERSION, None);
        assert!(matches!(sent_to(&out, late)[0], ServerMessage::Refused { reason: Refusal::Full, .. }));
        assert!(!crowded.is_waiting(late));
    }

    #[test]
    fn removed_people_stay_out_by_token_and_by_user_id() {
        let mut room = Room::new(
            "r",
            RoomPolicy { settings: RoomSettings { lobby: true, ..RoomSettings::default() }, ..RoomPolicy::default() },
        );
        let ann = join(&mut room, moderator("Ann"));
        let with = |name: &str, user: &str, digest: &str| Identity {
            name: name.to_owned(),
            user_id: Some(user.to_owned()),
            token: TokenFacts { digest: digest.to_owned(), ..TokenFacts::default() },
            ..Identity::default()
        };
        let (bob, _) = room.connect(with("Bob", "bob", "t-bob"), PROTOCOL_VERSION, None);
        room.handle(ann, ClientMessage::Admit { participant: bob });
        let out = room.handle(ann, ClientMessage::Kick { participant: bob });
        let removal = Removal {
            user_id: Some("bob".into()),
            token: TokenFacts { digest: "t-bob".into(), ..TokenFacts::default() },
            rejected: false,
        };
        assert!(out.contains(&Outbound::Removed(removal)), "{out:?}");
        let refusal = |out: &[Outbound], id| match sent_to(out, id).first() {
            Some(ServerMessage::Refused { reason, .. }) => Some(*reason),
            _ => None,
        };
        let (again, out) = room.connect(with("Bob", "bob", "t-bob"), PROTOCOL_VERSION, None);
        assert_eq!(refusal(&out, again), Some(Refusal::Kicked), "the same token");
        let (again, out) = room.connect(with("Bob", "bob", "t-new"), PROTOCOL_VERSION, None);
        assert_eq!(refusal(&out, again), Some(Refusal::Kicked), "the same person with another token");

        let (cy, _) = room.connect(with("Cy", "cy", "t-cy"), PROTOCOL_VERSION, None);
        let out = room.handle(ann, ClientMessage::Reject { participant: cy });
        assert!(out.iter().any(|o| matches!(o, Outbound::Removed(Removal { rejected: true, .. }))), "{out:?}");
        let (again, out) = room.connect(with("Cy", "cy", "t-cy"), PROTOCOL_VERSION, None);
        assert_eq!(refusal(&out, again), Some(Refusal::Rejected));
        let (dee, out) = room.connect(with("Dee", "dee", "t-dee"), PROTOCOL_VERSION, None);
        assert_eq!(refusal(&out, dee), None, "others still knock");
        assert!(room.handle(ann, ClientMessage::EndForAll).contains(&Outbound::Ended));
    }

    #[test]
    fn password_lock_and_ceiling_refuse_participants_but_not_moderators_past_the_first_two() {
        let policy = RoomPolicy {
            settings: RoomSettings {
                password: Some("s3cret".into()),
                max_participants: Some(3),
                ..RoomSettings::default()
            },
            ..RoomPolicy::default()
        };
        let mut room = Room::new("r", policy);
        let refusal = |out: &[Outbound]| match out.first() {
            Some(Outbound::Send(_, ServerMessage::Refused { reason, .. })) => Some(*reason),
            _ => None,
        };
        assert_eq!(refusal(&room.connect(person("A"), PROTOCOL_VERSION, None).1), Some(Refusal::PasswordRequired));
        assert_eq!(refusal(&room.connect(person("A"), PROTOCOL_VERSION, Some("nope")).1), Some(Refusal::WrongPassword));
        assert_eq!(refusal(&room.connect(person("A"), 99, Some("s3cret")).1), Some(Refusal::UnsupportedVersion));
        let ann = join(&mut room, moderator("Ann"));
        let (_, out) = room.connect(person("Bob"), PROTOCOL_VERSION, Some("s3cret"));
        assert_eq!(refusal(&out), None);
        room.handle(ann, ClientMessage::Lock { locked: true });
        assert_eq!(refusal(&room.connect(person("Cy"), PROTOCOL_VERSION, Some("s3cret")).1), Some(Refusal::Locked));
        join(&mut room, moderator("Mo"));
        assert_eq!(refusal(&room.connect(moderator("Max"), PROTOCOL_VERSION, None).1), Some(Refusal::Full));
    }

    #[test]
    fn moderators_whose_token_allows_it_stream_live_and_everyone_sees_it() {
        let mut room = Room::new("r", RoomPolicy::default());
        let ann = join(&mut room, Identity { may_stream: true, ..moderator("Ann") });
        let bob = join(&mut room, Identity { may_stream: true, ..person("Bob") });
        let cy = join(&mut room, Identity { may_record: true, ..moderator("Cy") });
        let start = || ClientMessage::StartLiveStream { url: "rtmp://a.example/live".into(), key: "k".into() };
        let refused = |room: &mut Room, who, message: ClientMessage| {
            let out = room.handle(who, message);
            sent_to(&out, who).into_iter().find_map(|message| match message {
                ServerMessage::Error { code, message } => Some((code.clone(), message.clone())),
                _ => None,
            })
        };
        assert_eq!(refused(&mut room, bob, start()).map(|(code, _)| code).as_deref(), Some("forbidden"));
        let words = refused(&mut room, cy, start()).map(|(_, message)| message);
        assert_eq!(words.as_deref(), Some("your meeting link does not allow live streaming"));
        let target = Some(("rtmp://a.example/live".to_owned(), "k".to_owned()));
        assert_eq!(room.handle(ann, start()), [Outbound::LiveStream { target, by: ann }]);
        let notice = ServerMessage::LiveStreamChanged { live: true, by: "Ann".to_owned(), reason: None };
        let out = room.live_stream_changed(true, "Ann".to_owned(), None);
        assert!([ann, bob, cy].iter().all(|id| sent_to(&out, *id)[0] == &notice), "{out:?}");
        assert!(room.live_stream_changed(true, "Ann".to_owned(), None).is_empty(), "said once");
        assert_eq!(refused(&mut room, ann, start()).map(|(code, _)| code).as_deref(), Some("invalid"));
        assert_eq!(room.handle(cy, ClientMessage::StopLiveStream), [Outbound::LiveStream { target: None, by: cy }]);
        room.live_stream_changed(false, "Cy".to_owned(), None);
        assert_eq!(
            refused(&mut room, ann, ClientMessage::StopLiveStream).map(|(code, _)| code).as_deref(),
            Some("invalid")
        );
        let encrypted = RoomSettings { end_to_end_encryption: true, ..RoomSettings::default() };
        room.set_policy(RoomPolicy { settings: encrypted, ..RoomPolicy::default() });
        let words = refused(&mut room, ann, start()).map(|(_, message)| message);
        assert_eq!(words.as_deref(), Some(STREAMING_NEEDS_CLEAR_MEDIA));
    }

    #[test]
    fn moderators_whose_plan_and_token_allow_it_record_and_never_an_encrypted_meeting() {
        let mut room = Room::new("r", RoomPolicy::default());
        let ann = join(&mut room, Identity { may_record: true, ..moderator("Ann") });
        let bob = join(&mut room, Identity { may_record: true, ..person("Bob") });
        let cy = join(&mut room, moderator("Cy"));
        let refused = |room: &mut Room, who| {
            let out = room.handle(who, ClientMessage::StartRecording);
            sent_to(&out, who).into_iter().find_map(|message| match message {
                ServerMessage::Error { code, message } => Some((code.clone(), message.clone())),
                _ => None,
            })
        };
        assert_eq!(refused(&mut room, bob).map(|(code, _)| code).as_deref(), Some("forbidden"), "not a moderator");
        let words = refused(&mut room, cy).map(|(_, message)| message);
        assert_eq!(words.as_deref(), Some("your meeting link does not allow recording"));
        assert_eq!(room.handle(ann, ClientMessage::StartRecording), [Outbound::Record { start: true, by: ann }]);

        // The driver started it: everyone hears who did, and a newcomer's welcome says so.
        let out = room.recording_changed(true, "Ann".to_owned(), None);
        let notice = ServerMessage::RecordingChanged { recording: true, by: "Ann".to_owned(), reason: None };
        for id in [ann, bob, cy] {
            assert_eq!(sent_to(&out, id)[0], &notice);
        }
        let (dee, out) = room.connect(person("Dee"), PROTOCOL_VERSION, None);
        let Some(ServerMessage::Welcome { room: info, .. }) = sent_to(&out, dee).first() else { panic!("{out:?}") };
        assert!(info.recording);
        assert_eq!(refused(&mut room, ann).map(|(code, _)| code).as_deref(), Some("invalid"), "already recording");
        // Any moderator may stop it.
        assert_eq!(room.handle(cy, ClientMessage::StopRecording), [Outbound::Record { start: false, by: cy }]);
        room.recording_changed(false, "Cy".to_owned(), None);
        assert!(!room.is_recording());

        let no_recording =
            Allowance { recording_refused: Some("the plan has no recording".into()), ..Allowance::default() };
        room.set_policy(RoomPolicy { allowance: no_recording, ..RoomPolicy::default() });
        assert_eq!(refused(&mut room, ann).map(|(_, message)| message).as_deref(), Some("the plan has no recording"));
        let encrypted = RoomSettings { end_to_end_encryption: true, ..RoomSettings::default() };
        room.set_policy(RoomPolicy { settings: encrypted, ..RoomPolicy::default() });
        assert_eq!(refused(&mut room, ann).map(|(_, message)| message).as_deref(), Some(RECORDING_NEEDS_CLEAR_MEDIA));
    }

    #[test]
    fn the_plan_ceiling_refuses_anyone_past_it_with_its_own_words_and_follows_the_latest_allowance() {
        let mut room = Room::new("r", RoomPolicy::default());
        let ceiling = |max| Allowance {
            participants: Some(Ceiling { max, message: format!("the plan allows {max}") }),
            ..Allowance::default()
        };
        room.set_policy(RoomPolicy { allowance: ceiling(2), ..RoomPolicy::default() });
        join(&mut room, moderator("Ann"));
        join(&mut room, person("Bob"));
        let (cy, out) = room.connect(moderator("Cy"), PROTOCOL_VERSION, None);
        let refused = ServerMessage::Refused { reason: Refusal::PlanLimit, message: "the plan allows 2".into() };
        assert_eq!(sent_to(&out, cy), [&refused]);
        assert!(closed(&out, cy));
        room.set_policy(RoomPolicy { allowance: ceiling(3), ..RoomPolicy::default() });
        join(&mut room, person("Cy"));
    }

    #[test]
    fn moderators_mute_ask_kick_grant_and_end_and_participants_cannot() {
        let mut room = Room::new("r", RoomPolicy::default());
        let ann = join(&mut room, moderator("Ann"));
        let bob = join(&mut room, person("Bob"));
        let cy = join(&mut room, person("Cy"));
        for action in [
            ClientMessage::Mute { participant: cy, media: MediaKind::Audio },
            ClientMessage::MuteAll,
            ClientMessage::Kick { participant: cy },
            ClientMessage::GrantModerator { participant: bob },
            ClientMessage::EndForAll,
            ClientMessage::Lock { locked: true },
        ] {
            let out = room.handle(bob, action.clone());
            assert_eq!(error_code(&out, bob).as_deref(), Some("forbidden"), "{action:?}");
            assert_eq!(out.len(), 1, "only the sender hears of it");
        }

        let out = room.handle(ann, ClientMessage::Mute { participant: bob, media: MediaKind::Audio });
        assert!(sent_to(&out, bob).contains(&&ServerMessage::Muted { media: MediaKind::Audio, by: ann }));
        assert!(
            matches!(sent_to(&out, cy)[0], ServerMessage::ParticipantUpdated { participant } if participant.audio_muted)
        );
        let out = room.handle(ann, ClientMessage::MuteAll);
        assert_eq!(sent_to(&out, cy).iter().filter(|m| matches!(m, ServerMessage::Muted { .. })).count(), 1);
        assert!(!sent_to(&out, bob).iter().any(|m| matches!(m, ServerMessage::Muted { .. })), "Bob was muted already");
        let out = room.handle(ann, ClientMessage::AskToUnmute { participant: bob });
        assert_eq!(sent_to(&out, bob), [&ServerMessage::UnmuteRequested { by: ann }]);
        let out = room.handle(ann, ClientMessage::Kick { participant: ParticipantId(999) });
        assert_eq!(error_code(&out, ann).as_deref(), Some("unknown_participant"));

        let out = room.handle(ann, ClientMessage::Kick { participant: cy });
        assert!(
            matches!(sent_to(&out, cy)[0], ServerMessage::Refused { reason: Refusal::Kicked, .. }) && closed(&out, cy)
        );
        assert!(matches!(sent_to(&out, bob)[0], ServerMessage::ParticipantLeft { reason: Some(Refusal::Kicked), .. }));
        assert_eq!(
            error_code(&room.handle(cy, ClientMessage::RaiseHand { raised: true }), cy).as_deref(),
            Some("not_in_room")
        );

        room.handle(ann, ClientMessage::GrantModerator { participant: bob });
        assert!(room.participants().find(|p| p.id == bob).is_some_and(|p| p.moderator));
        let out = room.handle(bob, ClientMessage::EndForAll);
        assert!(closed(&out, ann) && closed(&out, bob));
        assert!(room.is_empty());
        let (_, out) = room.connect(moderator("Late"), PROTOCOL_VERSION, None);
        assert!(matches!(out[0], Outbound::Send(_, ServerMessage::Refused { reason: Refusal::Ended, .. })));
    }

    #[test]
    fn names_may_be_chosen_before_joining_and_changed_unless_the_room_fixes_them() {
        let choosing = |chosen: &str| Identity { chosen_name: Some(chosen.to_owned()), ..person("Token Name") };
        let mut room = Room::new(
            "r",
            RoomPolicy { settings: RoomSettings { lobby: true, ..RoomSettings::default() }, ..RoomPolicy::default() },
        );
        let ann = join(&mut room, moderator("Ann"));
        let (bob, out) = room.connect(choosing("  Robert "), PROTOCOL_VERSION, None);
        let waiting = vec![LobbyEntry { id: bob, name: "Robert".to_owned() }];
        assert!(
            sent_to(&out, ann).contains(&&ServerMessage::LobbyChanged { waiting }),
            "the lobby shows the chosen name"
        );
        room.handle(ann, ClientMessage::Admit { participant: bob });
        assert_eq!(room.participants().find(|p| p.id == bob).map(|p| p.name.as_str()), Some("Robert"));

        let out = room.handle(bob, ClientMessage::SetName { name: "Bob".into() });
        assert!(
            matches!(sent_to(&out, ann)[0], ServerMessage::ParticipantUpdated { participant } if participant.name == "Bob")
        );
        for bad in ["", "   ", "a\u{7}b"] {
            let out = room.handle(bob, ClientMessage::SetName { name: bad.into() });
            assert_eq!((error_code(&out, bob).as_deref(), out.len()), (Some("invalid"), 1), "{bad:?}");
        }
        let (cy, out) = room.connect(Identity { moderator: true, ..choosing("") }, PROTOCOL_VERSION, None);
        assert!(
            matches!(out[0], Outbound::Send(_, ServerMessage::Welcome { .. })),
            "a bad name does not keep anyone out"
        );
        assert_eq!(error_code(&out, cy).as_deref(), Some("invalid"));
        assert_eq!(room.participants().find(|p| p.id == cy).map(|p| p.name.as_str()), Some("Token Name"));

        let mut fixed = Room::new(
            "r",
            RoomPolicy {
                settings: RoomSettings { fixed_display_names: true, ..RoomSettings::default() },
                ..RoomPolicy::default()
            },
        );
        let (dee, out) = fixed.connect(choosing("The CEO"), PROTOCOL_VERSION, None);
        assert!(matches!(&out[0], Outbound::Send(_, ServerMessage::Welcome { room, .. }) if room.fixed_display_names));
        assert_eq!(error_code(&out, dee).as_deref(), Some("forbidden"));
        assert_eq!(fixed.participants().next().map(|p| p.name.as_str()), Some("Token Name"));
        let out = fixed.handle(dee, ClientMessage::SetName { name: "The CEO".into() });
        assert_eq!(error_code(&out, dee).as_deref(), Some("forbidden"));
    }

    #[test]
    fn encryption_keys_pass_unread_between_members_of_an_encrypted_room_only() {
        let keys = |to| ClientMessage::E2ee { to, payload: "opaque".into() };
        let mut plain = Room::new("r", RoomPolicy::default());
        let ann = join(&mut plain, person("Ann"));
        assert_eq!(error_code(&plain.handle(ann, keys(None)), ann).as_deref(), Some("invalid"));

        let mut room = Room::new(
            "r",
            RoomPolicy {
                settings: RoomSettings { end_to_end_encryption: true, ..RoomSettings::default() },
                ..RoomPolicy::default()
            },
        );
        let ann = join(&mut room, person("Ann"));
        let bob = join(&mut room, person("Bob"));
        let cy = join(&mut room, person("Cy"));
        let out = room.handle(ann, keys(None));
        let relayed = ServerMessage::E2ee { from: ann, payload: "opaque".into() };
        assert_eq!((sent_to(&out, bob), sent_to(&out, cy)), (vec![&relayed], vec![&relayed]));
        assert!(sent_to(&out, ann).is_empty(), "not back to the sender");
        let out = room.handle(ann, keys(Some(cy)));
        assert_eq!((sent_to(&out, bob).len(), sent_to(&out, cy).len()), (0, 1));
        assert_eq!(
            error_code(&room.handle(ann, keys(Some(ParticipantId(99)))), ann).as_deref(),
            Some("unknown_participant")
        );
        let long = ClientMessage::E2ee { to: None, payload: "x".repeat(MAX_E2EE_PAYLOAD_BYTES + 1) };
        assert_eq!(error_code(&room.handle(ann, long), ann).as_deref(), Some("invalid"));
    }

    #[test]
    fn chat_hands_reactions_and_pins_reach_the_right_people_and_bad_ones_only_their_sender() {
        let mut room = Room::new("r", RoomPolicy::default());
        let ann = join(&mut room, person("Ann"));
        let bob = join(&mut room, person("Bob"));
        let cy = join(&mut room, person("Cy"));
        let out = room.handle(ann, ClientMessage::Chat { text: "hello all".into(), to: None });
        assert_eq!(out.len(), 3);
        let out = room.handle(ann, ClientMessage::Chat { text: "psst".into(), to: Some(bob) });
        assert_eq!((sent_to(&out, bob).len(), sent_to(&out, ann).len(), sent_to(&out, cy).len()), (1, 1, 0));
        for bad in [
            ClientMessage::Chat { text: " ".into(), to: None },
            ClientMessage::Chat { text: "x".repeat(MAX_CHAT_CHARS + 1), to: None },
            ClientMessage::Chat { text: "hi".into(), to: Some(ParticipantId(77)) },
            ClientMessage::Reaction { emoji: String::new() },
            ClientMessage::Reaction { emoji: "🎉".repeat(MAX_REACTION_CHARS + 1) },
            ClientMessage::Pin { participant: Some(ParticipantId(77)) },
            ClientMessage::Hello { version: 1, token: "t".into(), password: None, name: None, resume: None },
        ] {
            let out = room.handle(ann, bad.clone());
            assert!(error_code(&out, ann).is_some() && out.len() == 1, "{bad:?}: {out:?}");
        }
        let out = room.handle(bob, ClientMessage::RaiseHand { raised: true });
        assert!(
            matches!(sent_to(&out, cy)[0], ServerMessage::ParticipantUpdated { participant } if participant.hand_raised)
        );
        assert!(room.handle(bob, ClientMessage::RaiseHand { raised: true }).is_empty(), "no change, no noise");
        assert_eq!(room.handle(cy, ClientMessage::Reaction { emoji: "👍".into() }).len(), 3);
        assert!(room.handle(cy, ClientMessage::Pin { participant: Some(ann) }).is_empty());
        assert_eq!(room.pinned_by(cy), Some(ann));
        room.disconnect(ann);
        assert_eq!(room.pinned_by(cy), None, "a pin on someone who left is dropped");
    }

    #[test]
    fn moderators_whose_plan_token_and_node_allow_it_call_phones_and_the_callee_walks_in() {
        let settings = RoomSettings { lobby: true, password: Some("pw".to_owned()), ..RoomSettings::default() };
        let mut room = Room::new("r", RoomPolicy { settings, ..RoomPolicy::default() });
        let ann = join(&mut room, Identity { may_dial_out: true, ..moderator("Ann") });
        let cy = join(&mut room, moderator("Cy"));
        let first_error = |out: Vec<Outbound>, who| {
            sent_to(&out, who).into_iter().find_map(|message| match message {
                ServerMessage::Error { code, message } => Some(format!("{code}: {message}")),
                _ => None,
            })
        };
        let dial = |number: &str| ClientMessage::DialOut { number: number.to_owned() };
        let refused = first_error(room.handle(ann, dial("+15551234567")), ann);
        assert_eq!(refused.as_deref(), Some("forbidden: this server has no phone line for calling out"));
        let out = room.set_phone_line(true);
        assert!(matches!(sent_to(&out, cy)[..], [ServerMessage::RoomChanged { room }] if room.dial_out), "{out:?}");
        let refused = first_error(room.handle(cy, dial("+15551234567")), cy);
        assert_eq!(refused.as_deref(), Some("forbidden: your meeting link does not allow calling phones"));
        assert_eq!(
            first_error(room.handle(ann, dial("555-1234")), ann).map(|words| words[..7].to_owned()).as_deref(),
            Some("invalid")
        );
        let asked = room.handle(ann, dial("+1 (555) 123-4567"));
        assert_eq!(asked, [Outbound::DialOut { number: "+15551234567".to_owned(), by: ann }]);

        // Moderators follow the call; the callee passes the lobby and the password.
        let change = |state| DialOutChange {
            call: "c1".to_owned(),
            number: "+15551234567".to_owned(),
            state,
            by: "Ann".to_owned(),
            reason: None,
        };
        let out = room.dial_out_changed(change(DialOutState::Ringing));
        assert!([ann, cy].iter().all(|id| matches!(sent_to(&out, *id)[..], [ServerMessage::DialOutChanged { .. }])));
        let callee =
            Identity { user_id: Some(phone_user_id("+15551234567")), invited: true, ..person("Phone ••• 4567") };
        let phone = join(&mut room, callee.clone());
        room.dial_out_changed(change(DialOutState::Answered));
        let refused = first_error(room.handle(ann, ClientMessage::CancelDialOut { call: "c1".to_owned() }), ann);
        assert_eq!(refused.as_deref(), Some("invalid: the call was answered; remove the caller to hang up"));

        // Moderators press keys on the answered phone; nobody else, and only keys.
        let tones =
            |call: &str, tones: &str| ClientMessage::SendTones { call: call.to_owned(), tones: tones.to_owned() };
        let pressed = room.handle(ann, tones("c1", " 12*#ab "));
        assert_eq!(pressed, [Outbound::SendTones { call: "c1".to_owned(), tones: "12*#AB".to_owned() }]);
        for bad in ["", "12x", "1 2", &"1".repeat(MAX_TONES + 1)] {
            let refused = first_error(room.handle(ann, tones("c1", bad)), ann);
            assert_eq!(refused.as_deref(), Some("invalid: keys are 0-9, *, #, A-D, one to 32 of them"), "{bad:?}");
        }
        let refused = first_error(room.handle(ann, tones("nope", "1")), ann);
        assert_eq!(refused.as_deref(), Some("invalid: no such call is going on"));
        assert!(room.handle(phone, tones("c1", "1")).iter().all(|out| !matches!(out, Outbound::SendTones { .. })));

        // Removed, the number stays out: neither called again nor let in.
        room.handle(ann, ClientMessage::Kick { participant: phone });
        let refused = first_error(room.handle(ann, dial("+15551234567")), ann);
        assert_eq!(refused.as_deref(), Some("forbidden: this number was removed from the meeting"));
        let (_, out) = room.connect(callee, PROTOCOL_VERSION, None);
        assert!(matches!(out[..], [Outbound::Send(_, ServerMessage::Refused { reason: Refusal::Kicked, .. }), ..]));

        // Calls in progress are bounded, and a ringing one can be cancelled.
        for call in 0..MAX_DIAL_OUTS {
            room.dial_out_changed(DialOutChange { call: format!("r{call}"), ..change(DialOutState::Calling) });
        }
        let refused = first_error(room.handle(ann, dial("+15557654321")), ann);
        assert_eq!(refused.as_deref(), Some("invalid: too many phones are being called; wait for one to answer"));
        let cancel = room.handle(ann, ClientMessage::CancelDialOut { call: "r0".to_owned() });
        assert_eq!(cancel, [Outbound::CancelDialOut { call: "r0".to_owned() }]);
        room.dial_out_changed(DialOutChange { call: "r0".to_owned(), ..change(DialOutState::NoAnswer) });
        assert_eq!(room.handle(ann, dial("+15557654321")).len(), 1);
        let refused = first_error(room.handle(ann, ClientMessage::CancelDialOut { call: "r0".to_owned() }), ann);
        assert_eq!(refused.as_deref(), Some("invalid: no such call is going on"));

        let encrypted = RoomSettings { end_to_end_encryption: true, ..RoomSettings::default() };
        let out = room.set_policy(RoomPolicy { settings: encrypted, ..RoomPolicy::default() });
        assert!(matches!(sent_to(&out, ann)[..], [ServerMessage::RoomChanged { room }] if !room.dial_out));
    }
}
