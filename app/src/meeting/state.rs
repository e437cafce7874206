//! What the meeting page shows, as plain data: where the person is (joining, lobby, in the meeting, out of
//! it), the room, the people in it, chat, reactions and what happened to them. Server messages fold into it
//! with [`MeetingState::apply`], which also says what the media side must do; no browser types, so it is
//! tested natively.

use convene_signal::{
    DialOutState, LobbyEntry, MediaKind, ParticipantId, ParticipantInfo, Refusal, RoomInfo, ServerMessage,
};

/// Where the person is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Checking camera and microphone before going in.
    PreJoin,
    /// Connecting to the meeting.
    Joining,
    /// The room has a password: asking for it (again when the last one was wrong).
    Password {
        /// The last password was not right.
        wrong: bool,
    },
    /// Waiting for a moderator to let them in.
    Lobby,
    /// In the meeting.
    InMeeting,
    /// The connection dropped; trying again.
    Reconnecting,
    /// Out of the meeting, and why.
    Over(Ending),
}

/// Why the meeting is over for this person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The node's reason, or none when the person left.
    pub reason: Option<Refusal>,
    /// The words shown.
    pub message: String,
}

/// A chat line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// Who wrote it.
    pub from: ParticipantId,
    /// Their name when it arrived.
    pub from_name: String,
    /// The text.
    pub text: String,
    /// For a private message: the other person's name.
    pub private_with: Option<String>,
}

/// Something that happened to the person, shown until dismissed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its id, for dismissing.
    pub id: u64,
    /// The words.
    pub text: String,
    /// A moderator asks them to unmute: the notice offers the button.
    pub unmute_request: bool,
    /// It goes by itself after a few seconds: comings and goings, raised hands.
    pub brief: bool,
}

/// A reaction floating over someone's tile for a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// Its id, for removing it.
    pub id: u64,
    /// Whose.
    pub from: ParticipantId,
    /// The emoji.
    pub emoji: String,
}

/// What the media side must do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// In the room: publish camera and microphone.
    StartMedia,
    /// The same session continues over a new connection: the media stays as it is.
    Resumed,
    /// Someone joined: encryption keys move forward.
    Arrived(ParticipantId),
    /// A moderator muted this person: stop sending that media.
    MuteLocal(MediaKind),
    /// Someone left: drop their streams.
    Forget(ParticipantId),
    /// A reaction arrived: remove it after a while.
    ExpireReaction(u64),
    /// A brief notice was shown: remove it after a while.
    ExpireNotice(u64),
}

/// The meeting as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingState {
    /// Where the person is.
    pub phase: Phase,
    /// Their id, once in the room.
    pub me: Option<ParticipantId>,
    /// The resume secret of their session (empty: none). With the id it tells a resumed session from a new
    /// one: ids are counted per room, so another node (after a failover) may give the same id again.
    session: String,
    /// The room, once in it.
    pub room: Option<RoomInfo>,
    /// Everyone in the room, the person included, in the order they came.
    pub participants: Vec<ParticipantInfo>,
    /// Who waits in the lobby (moderators only).
    pub lobby: Vec<LobbyEntry>,
    /// Chat, oldest first.
    pub chat: Vec<ChatLine>,
    /// Chat lines received in all, the ones trimmed from `chat` included: what unread counts are kept by.
    pub chat_received: u64,
    /// The loudest participant.
    pub dominant: Option<ParticipantId>,
    /// Reactions on screen.
    pub reactions: Vec<Reaction>,
    /// Things that happened to the person.
    pub notices: Vec<Notice>,
    /// Phones called into the meeting (moderators only): the calls going on, newest first, then the last few
    /// finished ones.
    pub dial_outs: Vec<DialOutCall>,
    next_id: u64,
}

/// A phone call placed from the meeting, as its moderators follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutCall {
    /// The call's id.
    pub call: String,
    /// The number called.
    pub number: String,
    /// Where the call is.
    pub state: DialOutState,
    /// Who placed it, as people see them (another moderator, or the organisation's app).
    pub by: String,
    /// Why it failed, when the phone line said.
    pub reason: Option<String>,
}

/// Finished calls kept in view, so a busy line or a failure can still be read.
const FINISHED_CALLS: usize = 5;

impl DialOutCall {
    /// The state's stable code, for the page.
    pub fn code(&self) -> &'static str {
        match self.state {
            DialOutState::Calling => "calling",
            DialOutState::Ringing => "ringing",
            DialOutState::Answered => "answered",
            DialOutState::Busy => "busy",
            DialOutState::NoAnswer => "no_answer",
            DialOutState::Declined => "declined",
            DialOutState::Failed => "failed",
            DialOutState::Ended => "ended",
        }
    }

    /// Where the call is, for people.
    pub fn words(&self) -> String {
        match (self.state, &self.reason) {
            (DialOutState::Calling, _) => "Calling…".to_owned(),
            (DialOutState::Ringing, _) => "Ringing…".to_owned(),
            (DialOutState::Answered, _) => "In the meeting".to_owned(),
            (DialOutState::Busy, _) => "Busy".to_owned(),
            (DialOutState::NoAnswer, _) => "No answer".to_owned(),
            (DialOutState::Declined, _) => "Declined".to_owned(),
            (DialOutState::Failed, Some(reason)) => format!("Failed: {reason}"),
            (DialOutState::Failed, None) => "Failed".to_owned(),
            (DialOutState::Ended, _) => "Call ended".to_owned(),
        }
    }

    /// Whether a moderator may still stop it ringing.
    pub fn cancellable(&self) -> bool {
        matches!(self.state, DialOutState::Calling | DialOutState::Ringing)
    }

    /// Whether the phone is in the meeting, so keys can be pressed on it (an automated menu's).
    pub fn takes_keys(&self) -> bool {
        self.state == DialOutState::Answered
    }
}

impl Default for MeetingState {
    fn default() -> Self {
        Self {
            phase: Phase::PreJoin,
            me: None,
            session: String::new(),
            room: None,
            participants: Vec::new(),
            lobby: Vec::new(),
            chat: Vec::new(),
            chat_received: 0,
            dominant: None,
            reactions: Vec::new(),
            notices: Vec::new(),
            dial_outs: Vec::new(),
            next_id: 1,
        }
    }
}

/// How sharp the person wants others' video (Settings → Quality), for a slow or metered connection: tiles
/// ask the node for no taller a layer than this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReceiveQuality {
    /// As sharp as the tiles show it.
    #[default]
    Best,
    /// At most 360 lines.
    Standard,
    /// At most 180 lines.
    Low,
}

impl ReceiveQuality {
    /// Every choice, sharpest first.
    pub const ALL: [Self; 3] = [Self::Best, Self::Standard, Self::Low];

    /// The name in the settings form.
    pub fn name(self) -> &'static str {
        match self {
            Self::Best => "best",
            Self::Standard => "standard",
            Self::Low => "low",
        }
    }

    /// The choice named `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|quality| quality.name() == name)
    }

    /// The words for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Best => "Best (as large as shown)",
            Self::Standard => "Standard (up to 360p)",
            Self::Low => "Low (up to 180p, saves data)",
        }
    }

    /// The heights to ask the node for: each tile's, capped.
    pub fn cap(self, heights: &[(ParticipantId, u32)]) -> Vec<(ParticipantId, u32)> {
        let most = match self {
            Self::Best => u32::MAX,
            Self::Standard => 360,
            Self::Low => 180,
        };
        heights.iter().map(|(participant, height)| (*participant, (*height).min(most))).collect()
    }
}

/// At most this many chat lines are kept; older ones scroll away.
const CHAT_LINES: usize = 500;
/// At most this many notices at once; the oldest go first.
const NOTICES: usize = 5;

impl MeetingState {
    /// The person's own entry.
    pub fn myself(&self) -> Option<&ParticipantInfo> {
        self.me.and_then(|me| self.participant(me))
    }

    /// Someone in the room.
    pub fn participant(&self, id: ParticipantId) -> Option<&ParticipantInfo> {
        self.participants.iter().find(|participant| participant.id == id)
    }

    /// Whether the person moderates.
    pub fn is_moderator(&self) -> bool {
        self.myself().is_some_and(|me| me.moderator)
    }

    /// Whether the person may call a phone into the meeting: a moderator, in a room that allows it.
    pub fn may_dial_out(&self) -> bool {
        self.is_moderator() && self.room.as_ref().is_some_and(|room| room.dial_out)
    }

    /// Whether the page lists the calls placed from the meeting: to moderators who may call, and to
    /// moderators with calls listed, so a room that stops allowing calls hides none already placed (a phone
    /// still ringing can still be cancelled).
    pub fn shows_dial_outs(&self) -> bool {
        self.may_dial_out() || (self.is_moderator() && !self.dial_outs.is_empty())
    }

    /// The answered call that keys pressed from the embedding page go to: `named` if it is one, else the
    /// latest answered (calls in progress are listed newest first).
    pub fn keyed_call(&self, named: Option<&str>) -> Option<String> {
        let answered = self.dial_outs.iter().filter(|call| call.takes_keys());
        let mut chosen = answered.filter(|call| named.is_none_or(|named| call.call == named));
        chosen.next().map(|call| call.call.clone())
    }

    fn name_of(&self, id: ParticipantId) -> String {
        self.participant(id).map_or_else(|| "Someone".to_owned(), |participant| participant.name.clone())
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Shows a notice.
    pub fn notify(&mut self, text: String) {
        self.push_notice(Notice { id: 0, text, unmute_request: false, brief: false });
    }

    /// A call placed from the meeting changed: the list follows it, and a call that did not get through says
    /// why in a notice.
    fn dial_out_changed(&mut self, change: DialOutCall) -> Option<Directive> {
        self.dial_outs.retain(|known| known.call != change.call);
        let number = &change.number;
        let notice = match (change.state, &change.reason) {
            (DialOutState::Busy, _) => Some(format!("{number} is busy.")),
            (DialOutState::Declined, _) => Some(format!("{number} declined the call.")),
            (DialOutState::NoAnswer, _) => Some(format!("{number} did not answer.")),
            (DialOutState::Failed, Some(reason)) => Some(sentence(&format!("Calling {number} failed: {reason}"))),
            (DialOutState::Failed, None) => Some(format!("Calling {number} failed.")),
            _ => None,
        };
        let first_finished = self.dial_outs.iter().position(|known| known.state.is_final());
        let at = if change.state.is_final() { first_finished.unwrap_or(self.dial_outs.len()) } else { 0 };
        self.dial_outs.insert(at, change);
        let mut finished = 0;
        self.dial_outs.retain(|known| {
            finished += usize::from(known.state.is_final());
            !known.state.is_final() || finished <= FINISHED_CALLS
        });
        notice.map(|text| self.announce(text))
    }

    /// Shows a notice that goes by itself; says so to the media side, which keeps the time.
    fn announce(&mut self, text: String) -> Directive {
        Directive::ExpireNotice(self.push_notice(Notice { id: 0, text, unmute_request: false, brief: true }))
    }

    fn push_notice(&mut self, notice: Notice) -> u64 {
        let id = self.next_id();
        self.notices.push(Notice { id, ..notice });
        if self.notices.len() > NOTICES {
            // The oldest brief one goes first, so a burst of arrivals cannot push out what needs an answer.
            let oldest = self.notices.iter().position(|notice| notice.brief).unwrap_or(0);
            self.notices.remove(oldest);
        }
        id
    }

    /// Dismisses a notice.
    pub fn dismiss(&mut self, id: u64) {
        self.notices.retain(|notice| notice.id != id);
    }

    /// Removes a reaction whose time is up.
    pub fn expire_reaction(&mut self, id: u64) {
        self.reactions.retain(|reaction| reaction.id != id);
    }

    /// The person's own mute state changed (they did it, or a moderator did).
    pub fn set_my_mute(&mut self, media: MediaKind, muted: bool) {
        if let Some(me) = self.me
            && let Some(info) = self.participants.iter_mut().find(|participant| participant.id == me)
        {
            match media {
                MediaKind::Audio => info.audio_muted = muted,
                MediaKind::Video => info.video_muted = muted,
            }
        }
    }

    /// The secret a new socket resumes the session with, once a welcome gave one.
    pub fn resume_secret(&self) -> Option<String> {
        Some(self.session.clone()).filter(|secret| !secret.is_empty())
    }

    /// Forgets the session: the next `hello` joins afresh.
    pub fn forget_session(&mut self) {
        self.session.clear();
    }

    /// The person left on their own.
    pub fn leave(&mut self) {
        self.phase = Phase::Over(Ending {
            reason: None,
            message: "The meeting goes on without you; join again if you left by mistake.".to_owned(),
        });
    }

    /// Folds in a message from the node; says what the media side must do.
    pub fn apply(&mut self, message: ServerMessage) -> Vec<Directive> {
        match message {
            ServerMessage::Welcome { you, room, participants, lobby, resume, .. } => {
                let same_session = self.me == Some(you) && !resume.is_empty() && self.session == resume;
                let resumed = self.phase == Phase::InMeeting && same_session;
                self.phase = Phase::InMeeting;
                self.me = Some(you);
                self.session = resume;
                self.room = Some(room);
                self.participants = participants;
                self.lobby = lobby;
                return vec![if resumed { Directive::Resumed } else { Directive::StartMedia }];
            }
            ServerMessage::Lobby { you } => {
                self.me = Some(you);
                self.phase = Phase::Lobby;
            }
            ServerMessage::Refused { reason, message } => {
                self.phase = match reason {
                    Refusal::PasswordRequired => Phase::Password { wrong: false },
                    Refusal::WrongPassword => Phase::Password { wrong: true },
                    _ => Phase::Over(Ending { reason: Some(reason), message: sentence(&message) }),
                };
            }
            ServerMessage::ParticipantJoined { participant } => {
                let id = participant.id;
                let text = format!("{} joined.", participant.name);
                let new = self.participant(id).is_none() && self.me != Some(id);
                self.participants.retain(|known| known.id != id);
                self.participants.push(participant);
                return if new {
                    vec![Directive::Arrived(id), self.announce(text)]
                } else {
                    vec![Directive::Arrived(id)]
                };
            }
            ServerMessage::ParticipantUpdated { participant } => {
                let became_moderator = self.me == Some(participant.id) && participant.moderator && !self.is_moderator();
                let raised = self.me != Some(participant.id)
                    && participant.hand_raised
                    && self.participant(participant.id).is_some_and(|known| !known.hand_raised);
                let text = format!("{} raised their hand.", participant.name);
                if let Some(known) = self.participants.iter_mut().find(|known| known.id == participant.id) {
                    *known = participant;
                }
                if became_moderator {
                    self.notify("A moderator made you a moderator.".to_owned());
                }
                if raised {
                    return vec![self.announce(text)];
                }
            }
            ServerMessage::ParticipantLeft { id, reason } => {
                let name = self.name_of(id);
                let mut directives = vec![Directive::Forget(id)];
                if reason == Some(Refusal::Kicked) {
                    self.notify(format!("A moderator removed {name} from the meeting."));
                } else if self.participant(id).is_some() {
                    directives.push(self.announce(format!("{name} left.")));
                }
                self.participants.retain(|participant| participant.id != id);
                if self.dominant == Some(id) {
                    self.dominant = None;
                }
                return directives;
            }
            ServerMessage::LobbyChanged { waiting } => self.lobby = waiting,
            ServerMessage::RoomChanged { room } => {
                if self.room.as_ref().is_some_and(|known| known.locked != room.locked) {
                    let state = if room.locked { "locked" } else { "unlocked" };
                    self.notify(format!("A moderator {state} the meeting."));
                }
                self.room = Some(room);
            }
            ServerMessage::Chat { from, text, private, to } => {
                let private_with = private.then(|| {
                    let other = if Some(from) == self.me { to.unwrap_or(from) } else { from };
                    self.name_of(other)
                });
                let from_name = self.name_of(from);
                self.chat.push(ChatLine { from, from_name, text, private_with });
                self.chat_received += 1;
                if self.chat.len() > CHAT_LINES {
                    self.chat.remove(0);
                }
            }
            ServerMessage::Reaction { from, emoji } => {
                let id = self.next_id();
                self.reactions.push(Reaction { id, from, emoji });
                return vec![Directive::ExpireReaction(id)];
            }
            ServerMessage::Muted { media, by } => {
                let what = match media {
                    MediaKind::Audio => "microphone",
                    MediaKind::Video => "camera",
                };
                let name = self.name_of(by);
                self.notify(format!("The moderator {name} turned off your {what}."));
                self.set_my_mute(media, true);
                return vec![Directive::MuteLocal(media)];
            }
            ServerMessage::UnmuteRequested { by } => {
                let name = self.name_of(by);
                let text = format!("The moderator {name} asks you to unmute.");
                self.push_notice(Notice { id: 0, text, unmute_request: true, brief: false });
            }
            ServerMessage::RecordingChanged { recording, by, reason } => {
                let text = match (recording, reason) {
                    (true, _) => sentence(&format!("{by} started recording the meeting")),
                    (false, Some(reason)) => format!("Recording stopped because {}.", reason.trim_end_matches('.')),
                    (false, None) => sentence(&format!("{by} stopped recording the meeting")),
                };
                if let Some(room) = &mut self.room {
                    room.recording = recording;
                }
                return vec![self.announce(text)];
            }
            ServerMessage::DialOutChanged { call, number, state, by, reason } => {
                return self.dial_out_changed(DialOutCall { call, number, state, by, reason }).into_iter().collect();
            }
            ServerMessage::LiveStreamChanged { live, by, reason } => {
                let text = match (live, reason) {
                    (true, _) => sentence(&format!("{by} started streaming the meeting live")),
                    (false, Some(reason)) => {
                        format!("The live stream stopped because {}.", reason.trim_end_matches('.'))
                    }
                    (false, None) => sentence(&format!("{by} stopped the live stream")),
                };
                if let Some(room) = &mut self.room {
                    room.live_streaming = live;
                }
                return vec![self.announce(text)];
            }
            ServerMessage::DominantSpeaker { participant } => self.dominant = Some(participant),
            ServerMessage::Error { message, .. } => self.notify(sentence(&message)),
            // Negotiation and encryption keys belong to the media side.
            ServerMessage::Answer { .. } | ServerMessage::Offer { .. } | ServerMessage::E2ee { .. } => {}
        }
        Vec::new()
    }
}

/// The node's lower-case phrases as sentences.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first: String = chars.next().map(|first| first.to_uppercase().collect()).unwrap_or_default();
    let rest = chars.as_str();
    if rest.ends_with('.') { format!("{first}{rest}") } else { format!("{first}{rest}.") }
}

#[cfg(test)]
mod tests {
    use convene_signal::{MediaQuality, PROTOCOL_VERSION};

    use super::*;

    fn person(id: u64, name: &str, moderator: bool) -> ParticipantInfo {
        ParticipantInfo {
            id: ParticipantId(id),
            name: name.to_owned(),
            moderator,
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
        }
    }

    fn state_room() -> RoomInfo {
        RoomInfo {
            name: "standup".to_owned(),
            locked: false,
            lobby: false,
            end_to_end_encryption: false,
            fixed_display_names: false,
            quality: MediaQuality::default(),
            recording: false,
            live_streaming: false,
            dial_out: true,
        }
    }

    fn in_meeting() -> MeetingState {
        let mut state = MeetingState::default();
        let welcome = ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            you: ParticipantId(2),
            room: state_room(),
            participants: vec![person(1, "Ann", true), person(2, "Bob", false)],
            lobby: Vec::new(),
            resume: "secret".to_owned(),
        };
        assert_eq!(state.apply(welcome), [Directive::StartMedia]);
        state
    }

    #[test]
    fn refusals_lead_to_the_password_prompt_or_a_clear_ending() {
        let mut state = MeetingState::default();
        let refused = |reason| ServerMessage::Refused { reason, message: "the meeting has ended".to_owned() };
        state.apply(refused(Refusal::PasswordRequired));
        assert_eq!(state.phase, Phase::Password { wrong: false });
        state.apply(refused(Refusal::WrongPassword));
        assert_eq!(state.phase, Phase::Password { wrong: true });
        state.apply(refused(Refusal::Ended));
        let ending = Ending { reason: Some(Refusal::Ended), message: "The meeting has ended.".to_owned() };
        assert_eq!(state.phase, Phase::Over(ending));
        state.apply(ServerMessage::Lobby { you: ParticipantId(9) });
        assert_eq!((state.phase, state.me), (Phase::Lobby, Some(ParticipantId(9))));
    }

    #[test]
    fn recording_shows_while_it_goes_on_and_everyone_hears_who_started_and_why_it_stopped() {
        let mut state = in_meeting();
        let started = ServerMessage::RecordingChanged { recording: true, by: "Ann".to_owned(), reason: None };
        assert!(matches!(state.apply(started)[..], [Directive::ExpireNotice(_)]));
        assert!(state.room.as_ref().is_some_and(|room| room.recording));
        assert_eq!(state.notices[0].text, "Ann started recording the meeting.");
        let reason = Some("the recordings storage is full".to_owned());
        state.apply(ServerMessage::RecordingChanged { recording: false, by: "the recorder".to_owned(), reason });
        assert!(state.room.as_ref().is_some_and(|room| !room.recording));
        assert_eq!(state.notices[1].text, "Recording stopped because the recordings storage is full.");
    }

    #[test]
    fn a_live_stream_shows_while_it_goes_on_and_everyone_hears_why_it_stopped() {
        let mut state = in_meeting();
        let by = "the organisation's app".to_owned();
        state.apply(ServerMessage::LiveStreamChanged { live: true, by: by.clone(), reason: None });
        assert!(state.room.as_ref().is_some_and(|room| room.live_streaming));
        assert_eq!(state.notices[0].text, "The organisation's app started streaming the meeting live.");
        let reason = Some("the streaming service stopped taking the stream".to_owned());
        state.apply(ServerMessage::LiveStreamChanged { live: false, by, reason });
        assert!(state.room.as_ref().is_some_and(|room| !room.live_streaming));
        assert_eq!(
            state.notices[1].text,
            "The live stream stopped because the streaming service stopped taking the stream."
        );
    }

    #[test]
    fn moderator_actions_tell_the_person_what_happened_and_what_to_do() {
        let mut state = in_meeting();
        let directives = state.apply(ServerMessage::Muted { media: MediaKind::Audio, by: ParticipantId(1) });
        assert_eq!(directives, [Directive::MuteLocal(MediaKind::Audio)]);
        assert!(state.myself().is_some_and(|me| me.audio_muted));
        assert_eq!(state.notices[0].text, "The moderator Ann turned off your microphone.");
        state.apply(ServerMessage::UnmuteRequested { by: ParticipantId(1) });
        assert!(state.notices[1].unmute_request);
        let mut promoted = person(2, "Bob", true);
        promoted.hand_raised = true;
        state.apply(ServerMessage::ParticipantUpdated { participant: promoted });
        assert!(state.is_moderator());
        assert_eq!(state.notices[2].text, "A moderator made you a moderator.");
        state.dismiss(state.notices[0].id);
        assert_eq!(state.notices.len(), 2);
    }

    #[test]
    fn people_chat_and_reactions_follow_the_room() {
        let mut state = in_meeting();
        state.apply(ServerMessage::ParticipantJoined { participant: person(3, "Cy", false) });
        state.apply(ServerMessage::Chat { from: ParticipantId(3), text: "hi".into(), private: false, to: None });
        let private = ServerMessage::Chat {
            from: ParticipantId(2),
            text: "psst".into(),
            private: true,
            to: Some(ParticipantId(3)),
        };
        state.apply(private);
        assert_eq!(state.chat[0].from_name, "Cy");
        assert_eq!(state.chat[1].private_with.as_deref(), Some("Cy"), "my private message names its recipient");
        let directives = state.apply(ServerMessage::Reaction { from: ParticipantId(3), emoji: "👍".into() });
        let [Directive::ExpireReaction(id)] = directives[..] else { panic!("{directives:?}") };
        state.expire_reaction(id);
        assert!(state.reactions.is_empty());
        state.apply(ServerMessage::DominantSpeaker { participant: ParticipantId(3) });
        let left = ServerMessage::ParticipantLeft { id: ParticipantId(3), reason: Some(Refusal::Kicked) };
        assert_eq!(state.apply(left), [Directive::Forget(ParticipantId(3))]);
        assert_eq!(state.participants.len(), 2);
        assert_eq!(state.dominant, None);
        let texts: Vec<&str> = state.notices.iter().map(|notice| notice.text.as_str()).collect();
        assert_eq!(texts, ["Cy joined.", "A moderator removed Cy from the meeting."], "a removal is no plain leave");
    }

    #[test]
    fn chat_counts_every_line_received_though_it_keeps_only_the_latest() {
        let mut state = in_meeting();
        for _ in 0..CHAT_LINES + 3 {
            state.apply(ServerMessage::Chat { from: ParticipantId(1), text: "hi".into(), private: false, to: None });
        }
        assert_eq!(state.chat.len(), CHAT_LINES);
        assert_eq!(state.chat_received, (CHAT_LINES + 3) as u64, "an unread count keeps growing past the limit");
    }

    #[test]
    fn comings_goings_and_hands_are_announced_briefly() {
        let mut state = in_meeting();
        let directives = state.apply(ServerMessage::ParticipantJoined { participant: person(3, "Cy", false) });
        let [Directive::Arrived(ParticipantId(3)), Directive::ExpireNotice(joined)] = directives[..] else {
            panic!("{directives:?}")
        };
        let raised = ParticipantInfo { hand_raised: true, ..person(1, "Ann", true) };
        let directives = state.apply(ServerMessage::ParticipantUpdated { participant: raised.clone() });
        assert!(matches!(directives[..], [Directive::ExpireNotice(_)]), "{directives:?}");
        assert_eq!(state.apply(ServerMessage::ParticipantUpdated { participant: raised }), [], "still raised: no news");
        let mine = ParticipantInfo { hand_raised: true, ..person(2, "Bob", false) };
        assert_eq!(state.apply(ServerMessage::ParticipantUpdated { participant: mine }), [], "my own hand");
        let left = state.apply(ServerMessage::ParticipantLeft { id: ParticipantId(3), reason: None });
        assert!(matches!(left[..], [Directive::Forget(ParticipantId(3)), Directive::ExpireNotice(_)]), "{left:?}");
        let texts: Vec<&str> = state.notices.iter().map(|notice| notice.text.as_str()).collect();
        assert_eq!(texts, ["Cy joined.", "Ann raised their hand.", "Cy left."]);
        assert!(state.notices.iter().all(|notice| notice.brief));
        state.dismiss(joined);
        assert_eq!(state.notices.len(), 2);
        // A burst of arrivals pushes out brief notices before one that asks for an answer.
        state.apply(ServerMessage::UnmuteRequested { by: ParticipantId(1) });
        for id in 10..20 {
            state.apply(ServerMessage::ParticipantJoined { participant: person(id, "Someone", false) });
        }
        assert_eq!(state.notices.len(), NOTICES);
        assert!(state.notices.iter().any(|notice| notice.unmute_request), "the unmute request stays");
    }

    #[test]
    fn receive_quality_caps_what_tiles_ask_for() {
        let heights = [(ParticipantId(1), 720), (ParticipantId(2), 240), (ParticipantId(3), 90)];
        assert_eq!(ReceiveQuality::Best.cap(&heights), heights);
        let standard = [(ParticipantId(1), 360), (ParticipantId(2), 240), (ParticipantId(3), 90)];
        assert_eq!(ReceiveQuality::Standard.cap(&heights), standard);
        let low = [(ParticipantId(1), 180), (ParticipantId(2), 180), (ParticipantId(3), 90)];
        assert_eq!(ReceiveQuality::Low.cap(&heights), low);
        for quality in ReceiveQuality::ALL {
            assert_eq!(ReceiveQuality::named(quality.name()), Some(quality));
        }
        assert_eq!(ReceiveQuality::named("ultra"), None);
    }

    #[test]
    fn a_welcome_for_the_same_session_resumes_it_and_one_for_another_starts_over() {
        let mut state = in_meeting();
        let welcome = |you, resume: &str| ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            you: ParticipantId(you),
            room: state_room(),
            participants: vec![person(1, "Ann", true), person(you, "Bob", false)],
            lobby: Vec::new(),
            resume: resume.to_owned(),
        };
        assert_eq!(state.apply(welcome(2, "secret")), [Directive::Resumed]);
        assert_eq!(state.apply(welcome(5, "new")), [Directive::StartMedia], "the node started a new session");
        assert_eq!(state.me, Some(ParticipantId(5)));
        // Another node (after a failover) may give the same id to a new session: its secret differs.
        assert_eq!(state.apply(welcome(5, "other-node")), [Directive::StartMedia], "a new session on another node");
        assert_eq!(state.apply(welcome(5, "other-node")), [Directive::Resumed]);
        assert_eq!(state.resume_secret().as_deref(), Some("other-node"), "the next socket resumes with it");
        state.forget_session();
        assert_eq!(state.resume_secret(), None, "a page that joins again starts afresh");
        assert_eq!(state.apply(welcome(5, "other-node")), [Directive::StartMedia]);
    }

    fn dial_out(call: &str, state: DialOutState, reason: Option<&str>) -> ServerMessage {
        ServerMessage::DialOutChanged {
            call: call.to_owned(),
            number: "+15559874567".to_owned(),
            state,
            by: "Ann".to_owned(),
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn moderators_follow_each_call_in_one_entry_and_hear_why_one_did_not_get_through() {
        let mut state = in_meeting();
        for step in [DialOutState::Calling, DialOutState::Ringing, DialOutState::Answered] {
            assert!(state.apply(dial_out("a", step, None)).is_empty(), "{step:?} needs no notice");
        }
        assert_eq!(state.dial_outs.len(), 1);
        assert_eq!((state.dial_outs[0].code(), state.dial_outs[0].words().as_str()), ("answered", "In the meeting"));
        assert_eq!(state.dial_outs[0].by, "Ann", "moderators see who placed each call");
        assert!(!state.dial_outs[0].cancellable());
        assert!(state.dial_outs[0].takes_keys(), "keys go to a phone in the meeting");
        state.apply(dial_out("a", DialOutState::Ended, None));
        assert!(!state.dial_outs[0].takes_keys());
        assert_eq!(state.dial_outs[0].words(), "Call ended");

        let notices = state.notices.len();
        state.apply(dial_out("b", DialOutState::Ringing, None));
        assert_eq!(state.dial_outs[0].call, "b", "calls going on come first");
        assert!(state.dial_outs[0].cancellable());
        let said = state.apply(dial_out("b", DialOutState::Failed, Some("the number does not exist")));
        assert_eq!(said.len(), 1);
        assert_eq!(state.dial_outs[0].words(), "Failed: the number does not exist");
        assert_eq!(state.notices[notices].text, "Calling +15559874567 failed: the number does not exist.");
    }

    #[test]
    fn finished_calls_are_capped_and_calls_going_on_stay() {
        let mut state = in_meeting();
        state.apply(dial_out("ringing", DialOutState::Ringing, None));
        for call in 0..8 {
            state.apply(dial_out(&format!("busy-{call}"), DialOutState::Busy, None));
        }
        assert_eq!(state.dial_outs.len(), 1 + FINISHED_CALLS);
        assert_eq!(state.dial_outs[0].call, "ringing");
        assert_eq!(state.dial_outs[1].call, "busy-7", "the newest finished first");
        assert!(state.dial_outs.iter().all(|call| call.call != "busy-0"), "the oldest went");
        assert_eq!(state.room.as_ref().map(|room| room.dial_out), Some(true));
    }

    #[test]
    fn the_call_form_is_offered_only_where_calls_are_allowed_and_calls_placed_stay_listed() {
        let mut state = in_meeting();
        assert!(!state.may_dial_out() && !state.shows_dial_outs(), "participants who do not moderate call nobody");
        state.apply(ServerMessage::ParticipantUpdated { participant: person(2, "Bob", true) });
        assert!(state.may_dial_out() && state.shows_dial_outs());
        state.apply(dial_out("a", DialOutState::Ringing, None));
        state.apply(dial_out("b", DialOutState::Failed, Some("no route to the number")));

        let forbidden = RoomInfo { dial_out: false, ..state_room() };
        state.apply(ServerMessage::RoomChanged { room: forbidden.clone() });
        assert!(!state.may_dial_out(), "no form once the room stops allowing calls");
        assert!(state.shows_dial_outs(), "the calls already placed stay in view");
        let listed: Vec<(&str, String)> = state.dial_outs.iter().map(|call| (call.code(), call.words())).collect();
        assert_eq!(
            listed,
            [("ringing", "Ringing…".to_owned()), ("failed", "Failed: no route to the number".to_owned())]
        );
        assert!(state.dial_outs[0].cancellable(), "a phone still ringing can be stopped");
        state.apply(dial_out("a", DialOutState::NoAnswer, None));
        assert_eq!(state.dial_outs.iter().map(DialOutCall::code).collect::<Vec<_>>(), ["no_answer", "failed"]);

        let welcome = ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            you: ParticipantId(2),
            room: forbidden,
            participants: vec![person(1, "Ann", true), person(2, "Bob", true)],
            lobby: Vec::new(),
            resume: "secret".to_owned(),
        };
        assert_eq!(state.apply(welcome), [Directive::Resumed]);
        assert_eq!(state.dial_outs.len(), 2, "a resumed session keeps the list");
        state.apply(ServerMessage::RoomChanged { room: state_room() });
        assert!(state.may_dial_out(), "the form is back once calls are allowed again");

        let mut elsewhere = in_meeting();
        elsewhere.apply(ServerMessage::ParticipantUpdated { participant: person(2, "Bob", true) });
        elsewhere.apply(ServerMessage::RoomChanged { room: RoomInfo { dial_out: false, ..state_room() } });
        assert!(!elsewhere.may_dial_out() && !elsewhere.shows_dial_outs(), "nothing to show where no call was placed");
    }

    #[test]
    fn keys_from_the_embedding_page_go_to_the_call_named_or_the_latest_answered() {
        let mut state = in_meeting();
        assert_eq!(state.keyed_call(None), None, "no call, no keys");
        state.apply(dial_out("first", DialOutState::Answered, None));
        state.apply(dial_out("ringing", DialOutState::Ringing, None));
        assert_eq!(state.keyed_call(None).as_deref(), Some("first"), "a phone still ringing takes no keys");
        state.apply(dial_out("second", DialOutState::Answered, None));
        assert_eq!(state.keyed_call(None).as_deref(), Some("second"));
        assert_eq!(state.keyed_call(Some("first")).as_deref(), Some("first"));
        assert_eq!(state.keyed_call(Some("ringing")), None);
        assert_eq!(state.keyed_call(Some("unknown")), None);
        state.apply(dial_out("second", DialOutState::Ended, None));
        assert_eq!(state.keyed_call(None).as_deref(), Some("first"));
    }
}
