//! The meeting client: the page people meet in, on the meet host at `/<room>?jwt=<token>` once the server
//! verified the token. The UI is Leptos (`view`); the media engine is Rust over web-sys (`peer`,
//! `local_media`, `signalling`); what the page shows is plain data (`state`) folded from the node's
//! messages, which are `convene-signal`'s types, the same the server speaks.
//!
//! Everything here runs in the browser: on the server the page renders its pre-join screen and nothing
//! else, and the effects and handlers that touch browser APIs run only after hydration.

mod browser;
mod chunk;
mod embed;
mod frame_crypto;
mod keys;
mod local_media;
mod peer;
mod signalling;
mod sound;
pub mod state;
mod view;

use std::{collections::BTreeMap, rc::Rc, time::Duration};

use convene_signal::{ClientMessage, MediaKind, MediaQuality, PROTOCOL_VERSION, ParticipantId, ServerMessage};
use leptos::prelude::*;
use web_sys::MediaStream;

pub use self::view::MeetingClient;
use self::{
    frame_crypto::FrameCrypto,
    keys::{Changes, KeyRing},
    local_media::DeviceChoice,
    peer::{Peer, PeerEvent, Quality, ReceivedStats},
    signalling::{Signalling, SocketEvent},
    state::{Directive, MeetingState, Phase, ReceiveQuality},
};

/// The waits before each reconnection attempt after a lost connection, until the page gives up: the first
/// almost at once (a media node that died is replaced at the next join), then backing off for a server that
/// is restarting.
const RECONNECT_DELAYS: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// A media connection `disconnected` this long restarts ICE (it often comes back by itself sooner).
const ICE_RESTART_AFTER: Duration = Duration::from_secs(2);
/// An ICE restart that has not reconnected in this long gives way to joining again from scratch.
const ICE_RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// Reactions float for this long.
const REACTION_TIME: Duration = Duration::from_secs(4);
/// Comings, goings and raised hands show this long.
const BRIEF_NOTICE_TIME: Duration = Duration::from_secs(6);
/// Statistics and tile sizes are read this often.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// How the person chose to join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinChoices {
    /// Start with the microphone off.
    pub microphone_off: bool,
    /// Start with the camera off.
    pub camera_off: bool,
    /// Which devices.
    pub devices: DeviceChoice,
    /// The room password, once asked for.
    pub password: Option<String>,
    /// The display name chosen instead of the invitation's (and kept across reconnects).
    pub name: Option<String>,
}

/// What one remote participant's tile shows of the connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reception {
    /// Totals so far.
    pub stats: ReceivedStats,
    /// Over the last second.
    pub quality: Quality,
}

/// Whether the media is end-to-end encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// The meeting does not ask for it.
    Off,
    /// Every frame is encrypted with keys the node never sees.
    On,
    /// The meeting asks for it and this browser cannot: no media, and the words why.
    Unsupported(String),
}

/// The live session: the socket, and once in the room the media and its keys.
struct Session {
    socket: Rc<Signalling>,
    peer: Option<Peer>,
    local: Option<MediaStream>,
    screen: Option<MediaStream>,
    crypto: Option<Rc<FrameCrypto>>,
    keys: Option<KeyRing>,
}

/// The client's handles, shared by every component through context (all `Copy`).
#[derive(Clone, Copy)]
pub struct Client {
    room: StoredValue<String>,
    token: StoredValue<String>,
    /// What the page shows.
    pub state: RwSignal<MeetingState>,
    /// How the person joins.
    pub choices: RwSignal<JoinChoices>,
    /// Bumped when remote streams change, so tiles attach them again.
    pub streams: RwSignal<u64>,
    /// What arrives from each participant.
    pub reception: RwSignal<BTreeMap<ParticipantId, Reception>>,
    /// The media connection's state.
    pub connection: RwSignal<String>,
    /// ICE restarts on this session so far.
    pub ice_restarts: RwSignal<u32>,
    /// How sharp the person wants others' video.
    pub receive_quality: RwSignal<ReceiveQuality>,
    /// The socket dropped and a new one is resuming the session.
    pub signalling_lost: RwSignal<bool>,
    /// Whether the person shares a screen.
    pub sharing: RwSignal<bool>,
    /// Whom the person pinned to their stage.
    pub pinned: RwSignal<Option<ParticipantId>>,
    /// End-to-end encryption's state.
    pub encryption: RwSignal<Encryption>,
    session: StoredValue<Option<Session>, LocalStorage>,
    attempts: StoredValue<u32>,
    requested: StoredValue<Vec<(ParticipantId, u32)>>,
}

impl Client {
    fn new(room: String, token: String) -> Self {
        Self {
            room: StoredValue::new(room),
            token: StoredValue::new(token),
            state: RwSignal::new(MeetingState::default()),
            choices: RwSignal::new(JoinChoices::default()),
            streams: RwSignal::new(0),
            reception: RwSignal::new(BTreeMap::new()),
            connection: RwSignal::new("new".to_owned()),
            ice_restarts: RwSignal::new(0),
            receive_quality: RwSignal::new(ReceiveQuality::default()),
            signalling_lost: RwSignal::new(false),
            sharing: RwSignal::new(false),
            pinned: RwSignal::new(None),
            encryption: RwSignal::new(Encryption::Off),
            session: StoredValue::new_local(None),
            attempts: StoredValue::new(0),
            requested: StoredValue::new(Vec::new()),
        }
    }

    /// Connects and says `hello`, once the call's chunk is loaded.
    pub fn join(self) {
        self.teardown();
        self.state.update(|state| {
            if !matches!(state.phase, Phase::Reconnecting) {
                state.phase = Phase::Joining;
            }
        });
        leptos::task::spawn_local(async move {
            if let Err(error) = chunk::open_session(self).await {
                self.fail(format!("The meeting cannot be reached: {error}."));
            }
        });
    }

    fn open_session(self) {
        // The person may have left while the chunk loaded, or a second join (a double click, the iframe API
        // beside a click) may have opened the session already: one socket per join.
        let joining = self.state.with_untracked(|state| matches!(state.phase, Phase::Joining | Phase::Reconnecting));
        if !joining || self.session.with_value(Option::is_some) {
            return;
        }
        match self.open_socket() {
            Ok(socket) => {
                let session = Session { socket, peer: None, local: None, screen: None, crypto: None, keys: None };
                self.session.set_value(Some(session));
            }
            Err(error) => self.fail(format!("The meeting cannot be reached: {error}.")),
        }
    }

    fn open_socket(self) -> Result<Rc<Signalling>, browser::BrowserError> {
        let on_event: Rc<dyn Fn(SocketEvent)> = Rc::new(move |event| self.socket_event(event));
        Signalling::open(&self.room.get_value(), on_event).map(Rc::new)
    }

    /// A new socket for the same session: its `hello` carries the resume secret, the media stays up.
    fn resume_signalling(self) {
        match self.open_socket() {
            Ok(socket) => self.session.update_value(|session| {
                if let Some(session) = session {
                    session.socket = socket;
                }
            }),
            Err(error) => self.fail(format!("The meeting cannot be reached: {error}.")),
        }
    }

    /// Sends a message to the node (dropped when not connected: the page shows the reconnecting state).
    pub fn send(self, message: &ClientMessage) {
        let socket = self.session.with_value(|session| session.as_ref().map(|session| session.socket.clone()));
        if let Some(socket) = socket {
            socket.send(message);
        }
    }

    fn peer(self) -> Option<Peer> {
        self.session.with_value(|session| session.as_ref().and_then(|session| session.peer.clone()))
    }

    fn local(self) -> Option<MediaStream> {
        self.session.with_value(|session| session.as_ref().and_then(|session| session.local.clone()))
    }

    /// The person's own camera, for their tile.
    pub fn local_stream(self) -> Option<MediaStream> {
        self.local()
    }

    /// A remote participant's stream.
    pub fn remote_stream(self, participant: ParticipantId, source: convene_signal::TrackSource) -> Option<MediaStream> {
        self.peer().and_then(|peer| peer.stream(participant, source))
    }

    /// Leaves on purpose.
    pub fn leave(self) {
        self.send(&ClientMessage::Leave);
        self.teardown();
        self.state.update(MeetingState::leave);
    }

    /// Closes the socket and the media, and turns the camera off.
    fn teardown(self) {
        self.stop_media();
        self.session.set_value(None);
        self.state.update_untracked(MeetingState::forget_session);
        self.signalling_lost.set(false);
    }

    /// Ends the media session and turns the camera off; the socket stays.
    fn stop_media(self) {
        self.session.update_value(|session| {
            if let Some(session) = session {
                if let Some(peer) = session.peer.take() {
                    peer.close();
                }
                for stream in session.local.take().iter().chain(session.screen.take().iter()) {
                    local_media::stop(stream);
                }
                session.crypto = None;
                session.keys = None;
            }
        });
        self.sharing.set(false);
        self.requested.set_value(Vec::new());
    }

    fn fail(self, message: String) {
        self.teardown();
        self.state.update(|state| {
            state.phase = Phase::Over(state::Ending { reason: None, message });
        });
    }

    fn socket_event(self, event: SocketEvent) {
        match event {
            SocketEvent::Opened => {
                let (password, name) =
                    self.choices.with_untracked(|choices| (choices.password.clone(), choices.name.clone()));
                let token = self.token.get_value();
                let resume = self.state.with_untracked(MeetingState::resume_secret);
                self.send(&ClientMessage::Hello { version: PROTOCOL_VERSION, token, password, name, resume });
            }
            SocketEvent::Message(ServerMessage::Answer { sdp }) => {
                if let Some(peer) = self.peer() {
                    peer.answer_arrived(sdp);
                }
            }
            SocketEvent::Message(ServerMessage::Offer { sdp, tracks }) => {
                if let Some(peer) = self.peer() {
                    peer.offer_arrived(sdp, tracks);
                }
            }
            SocketEvent::Message(ServerMessage::E2ee { from, payload }) => {
                let nonce = random::<12>();
                let taken = self.with_keys(|keys| nonce.map(|nonce| keys.receive(from, &payload, nonce)));
                match taken.flatten() {
                    Some(Ok(changes)) => self.apply_keys(changes),
                    Some(Err(error)) => {
                        self.state.update(|state| state.notify(format!("Ignored {error} from {}.", from.0)))
                    }
                    None => {}
                }
            }
            SocketEvent::Message(message) => {
                let directives = self.state.try_update(|state| state.apply(message)).unwrap_or_default();
                for directive in directives {
                    self.follow(directive);
                }
            }
            SocketEvent::Unreadable(error) => {
                self.state.update(|state| state.notify(format!("A message from the meeting was unreadable: {error}.")));
            }
            SocketEvent::Closed => self.connection_lost(),
        }
    }

    fn connection_lost(self) {
        let phase = self.state.with_untracked(|state| state.phase.clone());
        // A refusal came first and says why; a person who left or typed a password is not reconnected.
        if !matches!(phase, Phase::Joining | Phase::Lobby | Phase::InMeeting | Phase::Reconnecting) {
            return;
        }
        let attempt = self.attempts.get_value();
        let Some(&delay) = RECONNECT_DELAYS.get(attempt as usize) else {
            self.attempts.set_value(0);
            return self.fail("The connection to the meeting was lost, and trying again did not help.".to_owned());
        };
        self.attempts.set_value(attempt + 1);
        // In the meeting with media up, a new socket resumes the same session (the node keeps it a while);
        // end-to-end encrypted meetings join again instead, since key exchanges sent meanwhile are lost.
        let encrypted = self.encryption.get_untracked() != Encryption::Off;
        let resumable = self.state.with_untracked(|state| state.resume_secret().is_some());
        if phase == Phase::InMeeting && resumable && self.peer().is_some() && !encrypted {
            self.signalling_lost.set(true);
            return set_timeout(move || self.resume_signalling(), delay);
        }
        self.teardown();
        self.state.update(|state| state.phase = Phase::Reconnecting);
        set_timeout(move || self.join(), delay);
    }

    fn follow(self, directive: Directive) {
        match directive {
            Directive::StartMedia => {
                self.attempts.set_value(0);
                self.signalling_lost.set(false);
                // A resume the node no longer took: this is a new session, and the old media goes.
                self.stop_media();
                if self.start_encryption() {
                    leptos::task::spawn_local(async move { self.start_media().await });
                }
            }
            Directive::Resumed => {
                self.attempts.set_value(0);
                self.signalling_lost.set(false);
                // The node asks for tile sizes afresh, and an offer of ours the old socket lost goes again.
                self.requested.set_value(Vec::new());
                if let Some(peer) = self.peer() {
                    peer.resumed();
                }
            }
            Directive::Arrived(participant) => {
                if let Some(changes) = self.with_keys(|keys| keys.joined(participant)) {
                    self.apply_keys(changes);
                }
            }
            Directive::MuteLocal(media) => self.set_track_enabled(media, false),
            Directive::Forget(participant) => {
                if let Some(peer) = self.peer() {
                    peer.forget(participant);
                }
                let rotated = self.with_keys(|keys| {
                    let nonces: Option<Vec<[u8; 12]>> = (0..keys.peer_count()).map(|_| random::<12>()).collect();
                    Some(keys.left(participant, random::<16>()?, &nonces?))
                });
                if let Some(changes) = rotated.flatten() {
                    self.apply_keys(changes);
                }
                if self.pinned.get_untracked() == Some(participant) {
                    self.pinned.set(None);
                }
            }
            Directive::ExpireReaction(id) => {
                set_timeout(move || self.state.update(|state| state.expire_reaction(id)), REACTION_TIME);
            }
            Directive::ExpireNotice(id) => {
                set_timeout(move || self.state.update(|state| state.dismiss(id)), BRIEF_NOTICE_TIME);
            }
        }
    }

    /// In an end-to-end encrypted meeting: starts the frame worker and the keys, and says hello to everyone.
    /// False when the browser cannot, and the person is told.
    fn start_encryption(self) -> bool {
        let wanted =
            self.state.with_untracked(|state| state.room.as_ref().is_some_and(|room| room.end_to_end_encryption));
        let Some(me) = self.state.with_untracked(|state| state.me).filter(|_| wanted) else {
            self.encryption.set(Encryption::Off);
            return true;
        };
        let started = FrameCrypto::start(me).and_then(|crypto| match (random::<32>(), random::<16>()) {
            (Some(secret), Some(media_key)) => Ok((crypto, KeyRing::new(me, secret, media_key))),
            _ => Err(browser::BrowserError("this browser gives no secure random numbers".to_owned())),
        });
        match started {
            Ok((crypto, (keys, changes))) => {
                self.session.update_value(|session| {
                    if let Some(session) = session {
                        session.crypto = Some(Rc::new(crypto));
                        session.keys = Some(keys);
                    }
                });
                self.apply_keys(changes);
                self.encryption.set(Encryption::On);
                true
            }
            Err(error) => {
                let text = format!(
                    "This meeting is end-to-end encrypted and {error}, so you are in without sending or receiving media."
                );
                self.state.update(|state| state.notify(text));
                self.encryption.set(Encryption::Unsupported(error.0));
                false
            }
        }
    }

    fn with_keys<T>(self, change: impl FnOnce(&mut KeyRing) -> T) -> Option<T> {
        self.session
            .try_update_value(|session| session.as_mut().and_then(|session| session.keys.as_mut()).map(change))
            .flatten()
    }

    /// Installs new keys in the worker and relays payloads.
    fn apply_keys(self, changes: Changes) {
        let crypto = self.session.with_value(|session| session.as_ref().and_then(|session| session.crypto.clone()));
        if let Some(crypto) = crypto {
            for install in &changes.installs {
                crypto.install(install);
            }
        }
        for outgoing in changes.outgoing {
            self.send(&ClientMessage::E2ee { to: outgoing.to, payload: outgoing.payload });
        }
    }

    async fn start_media(self) {
        let quality =
            self.state.with_untracked(|state| state.room.as_ref().map(|room| room.quality)).unwrap_or_default();
        let choices = self.choices.get_untracked();
        let stream = match local_media::capture(quality, &choices.devices).await {
            Ok(stream) => stream,
            Err(error) => {
                let text = format!("Your camera and microphone could not be used ({error}); you can still watch.");
                self.state.update(|state| state.notify(text));
                return self.start_receiving(quality, None);
            }
        };
        self.start_receiving(quality, Some(&stream));
    }

    fn start_receiving(self, quality: MediaQuality, stream: Option<&MediaStream>) {
        let send: Rc<dyn Fn(ClientMessage)> = Rc::new(move |message| self.send(&message));
        let on_event: Rc<dyn Fn(PeerEvent)> = Rc::new(move |event| self.peer_event(event));
        let crypto = self.session.with_value(|session| session.as_ref().and_then(|session| session.crypto.clone()));
        let peer = match Peer::new(quality, crypto, send, on_event) {
            Ok(peer) => peer,
            Err(error) => return self.fail(format!("This browser cannot join video meetings: {error}.")),
        };
        if let Err(error) = peer.publish(stream) {
            self.state.update(|state| state.notify(format!("Your media could not be sent: {error}.")));
        }
        let alive = self.session.try_update_value(|session| {
            if let Some(session) = session {
                session.peer = Some(peer.clone());
                session.local = stream.cloned();
            }
            session.is_some()
        });
        if alive != Some(true) {
            // The person left while the camera started.
            peer.close();
            if let Some(stream) = stream {
                local_media::stop(stream);
            }
            return;
        }
        let choices = self.choices.get_untracked();
        if choices.microphone_off {
            self.set_muted(MediaKind::Audio, true);
        }
        if choices.camera_off {
            self.set_muted(MediaKind::Video, true);
        }
        self.streams.update(|version| *version += 1);
    }

    fn peer_event(self, event: PeerEvent) {
        match event {
            PeerEvent::StreamsChanged => self.streams.update(|version| *version += 1),
            PeerEvent::Connection(state) => {
                match state.as_str() {
                    "connected" => {
                        if let Some(peer) = self.peer() {
                            peer.connected();
                        }
                    }
                    "disconnected" => set_timeout(
                        move || {
                            if self.connection.get_untracked() == "disconnected" {
                                self.restart_ice();
                            }
                        },
                        ICE_RESTART_AFTER,
                    ),
                    "failed" => self.restart_ice(),
                    _ => {}
                }
                self.connection.set(state);
            }
            PeerEvent::Failed(error) => {
                self.state.update(|state| state.notify(format!("The media could not be updated: {error}.")));
            }
        }
    }

    /// The media path broke while signalling stayed up: new ICE credentials on the same session first; if
    /// that does not bring it back in time (or a restart already failed), a new session from scratch.
    fn restart_ice(self) {
        let Some(peer) = self.peer() else { return };
        if !peer.restart_ice() {
            return self.connection_lost();
        }
        self.ice_restarts.update(|count| *count += 1);
        set_timeout(
            move || {
                // A peer closed since (left, or joined again) is no longer restarting.
                if peer.is_restarting() {
                    self.connection_lost();
                }
            },
            ICE_RESTART_TIMEOUT,
        );
    }

    fn set_track_enabled(self, media: MediaKind, enabled: bool) {
        if let Some(stream) = self.local() {
            let kind = if media == MediaKind::Audio { "audio" } else { "video" };
            if let Some(track) = local_media::first_track(&stream, kind) {
                track.set_enabled(enabled);
            }
        }
    }

    /// Mutes or unmutes the person's own microphone or camera, and tells the room.
    pub fn set_muted(self, media: MediaKind, muted: bool) {
        self.set_track_enabled(media, !muted);
        self.state.update(|state| state.set_my_mute(media, muted));
        self.send(&ClientMessage::SetMuted { media, muted });
    }

    /// Switches the camera or microphone to another device, without renegotiating.
    pub fn switch_device(self, media: MediaKind, device: String) {
        let (Some(peer), Some(local)) = (self.peer(), self.local()) else { return };
        self.choices.update(|choices| match media {
            MediaKind::Audio => choices.devices.microphone = Some(device.clone()),
            MediaKind::Video => choices.devices.camera = Some(device.clone()),
        });
        let quality =
            self.state.with_untracked(|state| state.room.as_ref().map(|room| room.quality)).unwrap_or_default();
        let choice = match media {
            MediaKind::Audio => DeviceChoice { microphone: Some(device), ..DeviceChoice::default() },
            MediaKind::Video => DeviceChoice { camera: Some(device), ..DeviceChoice::default() },
        };
        let kind = if media == MediaKind::Audio { "audio" } else { "video" };
        leptos::task::spawn_local(async move {
            let result = async {
                let captured = local_media::capture_one(quality, &choice, media).await?;
                let track = local_media::first_track(&captured, kind)
                    .ok_or_else(|| browser::BrowserError("the device gave no track".to_owned()))?;
                peer.replace(&track).await?;
                if let Some(old) = local_media::first_track(&local, kind) {
                    old.stop();
                    local.remove_track(&old);
                }
                let muted = self.state.with_untracked(|state| {
                    state
                        .myself()
                        .is_some_and(|me| if media == MediaKind::Audio { me.audio_muted } else { me.video_muted })
                });
                track.set_enabled(!muted);
                local.add_track(&track);
                Ok::<(), browser::BrowserError>(())
            };
            if let Err(error) = result.await {
                self.state.update(|state| state.notify(format!("The device could not be switched: {error}.")));
            }
            self.streams.update(|version| *version += 1);
        });
    }

    /// Starts or stops sharing a screen.
    pub fn toggle_screen(self) {
        let Some(peer) = self.peer() else { return };
        if self.sharing.get_untracked() {
            peer.stop_screen();
            let screen = self.session.try_update_value(|session| session.as_mut().and_then(|s| s.screen.take()));
            if let Some(screen) = screen.flatten() {
                local_media::stop(&screen);
            }
            self.sharing.set(false);
            return;
        }
        leptos::task::spawn_local(async move {
            let shared = match local_media::capture_screen().await {
                Ok(stream) => stream,
                Err(error) => {
                    return self.state.update(|state| state.notify(format!("The screen was not shared: {error}.")));
                }
            };
            let Some(track) = local_media::first_track(&shared, "video") else { return };
            if let Err(error) = peer.share_screen(&track) {
                local_media::stop(&shared);
                return self.state.update(|state| state.notify(format!("The screen was not shared: {error}.")));
            }
            self.session.update_value(|session| {
                if let Some(session) = session {
                    session.screen = Some(shared);
                }
            });
            self.sharing.set(true);
        });
    }

    /// Changes the name the others see (kept for a reconnect's `hello`).
    pub fn rename(self, name: String) {
        self.choices.update(|choices| choices.name = Some(name.clone()));
        self.send(&ClientMessage::SetName { name });
    }

    /// Pins someone to the stage (or follows the dominant speaker again).
    pub fn pin(self, participant: Option<ParticipantId>) {
        self.pinned.set(participant);
        self.send(&ClientMessage::Pin { participant });
    }

    /// Reads what arrived and the tiles' sizes; asks the node for the sizes that changed.
    fn poll(self) {
        let Some(peer) = self.peer() else { return };
        leptos::task::spawn_local(async move {
            let received = peer.received().await;
            self.reception.update(|reception| {
                let updated = received
                    .iter()
                    .map(|(participant, stats)| {
                        let quality = reception
                            .get(participant)
                            .map_or(Quality::Good, |before| Quality::between(&before.stats, stats));
                        (*participant, Reception { stats: *stats, quality })
                    })
                    .collect();
                *reception = updated;
            });
        });
        let sizes = self.receive_quality.get_untracked().cap(&view::tile_heights());
        if sizes != self.requested.get_value() {
            self.requested.set_value(sizes.clone());
            let requests = sizes
                .into_iter()
                .map(|(participant, height)| convene_signal::VideoRequest { participant, height })
                .collect();
            self.send(&ClientMessage::ReceiveVideo { requests });
        }
    }
}

/// Bytes from the browser's secure random source.
fn random<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    web_sys::window()?.crypto().ok()?.get_random_values_with_u8_array(&mut bytes).ok()?;
    Some(bytes)
}
