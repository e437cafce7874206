//! One phone call, answered: RTP with the trunk every 20 ms (prompts, the room's audio, or silence so the
//! trunk does not hang up on a quiet line), the trunk's packets put back in order and decoded, keys read
//! from events, INFO or (when the trunk offers no events) the audio itself, the PIN conversation, then the
//! caller in the room through the focus with their audio bridged into the SFU ([`RoomLeg`]), or, for a meeting
//! that runs on another node, the call passed to that node's gateway ([`RelayLeg`]). The call ends when either
//! side hangs up, the session timer runs out, the trunk's audio stops, or the room lets the caller go
//! (removed, ended); what the room says is spoken first.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use convene_signal::{ClientMessage, MediaKind, PROTOCOL_VERSION, Refusal, ServerMessage};
use rsipstack::{
    dialog::{
        dialog::{DialogState, DialogStateReceiver, TransactionHandle},
        invite_dialog::InviteDialog,
    },
    sip::{self as sip, Header, HeadersExt, StatusCode},
};
use tokio::net::UdpSocket;

use super::{
    CallFacts, DialInRefusal, Entry, PhoneAdmission, PhoneDirectory, Relay, Shared,
    bridge::RoomLeg,
    mix::Heard,
    relay::{RelayEvent, RelayLeg},
};
use crate::{
    phone::{
        dtmf::{self, KEY_TICKS, KeyPresser, KeyReader, Press, TelephoneEvent},
        ivr::{Action, Answer, Ivr},
        prompts::{Player, Prompt},
        reorder::{Ordered, Reorder},
        rtp::RtpPacket,
        sdp::{Direction, Offer},
        tones::{self, InbandKeys},
        voice::{MAX_FRAME, NARROW_FRAME, Voice},
    },
    plane::Delivery,
    rooms::{ConnectError, Connection},
};

/// The audio frame length.
const PTIME: Duration = Duration::from_millis(20);
/// A call whose trunk sends no RTP this long (and is not on hold) is gone.
const RTP_TIMEOUT: Duration = Duration::from_secs(60);
/// The shortest session interval accepted (RFC 4028's Min-SE default).
const MIN_SESSION: u64 = 90;
/// How long the room may take to say whether the caller is in.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger datagrams are not RTP audio.
const MAX_DATAGRAM: usize = 1500;
/// A pause in the trunk's timestamps up to this many frames is kept in the room's stream (receivers conceal
/// it); a longer jump is a new stream, not time that passed.
const MAX_SKIP: u32 = 50;

/// RFC 4028 session timer the caller asked for: the call must be refreshed within `interval`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionTimer {
    interval: Duration,
    /// The caller supports timers, so the answer may require them.
    supported: bool,
}

impl SessionTimer {
    /// The timer an INVITE asks for, if it asks.
    pub(super) fn requested(request: &sip::Request) -> Option<Self> {
        let value = request.header_value("Session-Expires")?;
        let seconds: u64 = value.split(';').next()?.trim().parse().ok()?;
        let supported = request.header_contains_token("Supported", "timer");
        Some(Self { interval: Duration::from_secs(seconds.max(MIN_SESSION)), supported })
    }

    /// The headers that confirm it in the answer; the caller refreshes.
    fn headers(self) -> Vec<Header> {
        let mut headers =
            vec![Header::Other("Session-Expires".into(), format!("{};refresher=uac", self.interval.as_secs()))];
        if self.supported {
            headers.push(Header::Require("timer".into()));
        }
        headers
    }
}

/// Where the call is.
enum Stage {
    /// The PIN conversation.
    Answering(Ivr),
    /// In the room (or its lobby).
    InRoom(Connection),
    /// Passed to the meeting's node: audio and hang-ups are copied through.
    Relayed,
    /// Saying goodbye: hang up once the prompts are said.
    Leaving,
}

/// One answered call.
pub(super) struct Call<D> {
    shared: Arc<Shared<D>>,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    socket: UdpSocket,
    offer: Offer,
    facts: CallFacts,
    timer: Option<SessionTimer>,
    stage: Stage,
    /// Where the caller was let in.
    admission: Option<Entry>,
    /// The leg to the meeting's node, once the call is passed there.
    relay: Option<Box<RelayLeg>>,
    player: Player,
    keys: KeyReader,
    /// Keys heard in the audio, when the trunk sends no telephone-events.
    inband: Option<InbandKeys>,
    /// The caller pressed `*` last (in the room, `*6` toggles mute).
    star: bool,
    muted: bool,
    /// The room let the caller in (rather than to its lobby).
    welcomed: bool,
    /// Our side of the RTP stream.
    outgoing: Outgoing,
    /// The caller's audio in the room, once they are in (not in the lobby), with its socket.
    leg: Option<(Box<RoomLeg>, UdpSocket)>,
    /// What the caller hears of the room, from the meeting's mixer.
    heard: Option<Heard>,
    /// The trunk's packets in order.
    reorder: Reorder,
    /// The phone leg's codec, both ways.
    voice: Voice,
    /// The caller's samples not yet sent on (trunks may send other than 20 ms a packet).
    caller_audio: Vec<i16>,
    /// The RTP timestamp the caller's next audio packet should carry.
    next_audio: Option<u32>,
    /// The SDP answer's session id and version (the version goes up when the answer changes).
    session: (u64, u64),
    last_rtp: Instant,
    refreshed: Instant,
    /// The gateway called the phone (it answered already; a moderator invited it, so there is no PIN).
    placed: bool,
    /// Keys moderators press on a phone the gateway called, as they come and as they are sent.
    keypad: Option<tokio::sync::mpsc::Receiver<String>>,
    presser: KeyPresser,
}

/// The RTP stream toward the caller: one SSRC, continuous sequence and timestamps whatever is said.
struct Outgoing {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    /// The next packet starts a talkspurt.
    marker: bool,
    /// The timestamp of the key event being sent (all its packets carry its start).
    key_started: u32,
    /// The frame being sent, encoded, and the packet around it.
    payload: Vec<u8>,
    buffer: Vec<u8>,
}

pub(super) fn random_u32() -> u32 {
    let mut bytes = [0; 4];
    getrandom::fill(&mut bytes).ok();
    u32::from_be_bytes(bytes)
}

impl<D: PhoneDirectory> Call<D> {
    pub(super) fn new(
        shared: Arc<Shared<D>>,
        dialog: InviteDialog,
        states: DialogStateReceiver,
        (socket, offer): (UdpSocket, Offer),
        (facts, timer): (CallFacts, Option<SessionTimer>),
    ) -> Self {
        let now = Instant::now();
        let outgoing = Outgoing {
            ssrc: random_u32(),
            sequence: random_u32() as u16,
            timestamp: random_u32(),
            marker: true,
            key_started: 0,
            payload: Vec::with_capacity(MAX_FRAME),
            buffer: Vec::with_capacity(MAX_FRAME + 12),
        };
        let voice = Voice::new(offer.codec.0);
        let inband = offer.events.is_none().then(InbandKeys::default);
        Self {
            shared,
            dialog,
            states,
            socket,
            offer,
            facts,
            timer,
            stage: Stage::Answering(Ivr::new(now)),
            admission: None,
            relay: None,
            player: Player::default(),
            keys: KeyReader::default(),
            inband,
            star: false,
            muted: false,
            welcomed: false,
            outgoing,
            leg: None,
            heard: None,
            reorder: Reorder::default(),
            voice,
            caller_audio: Vec::with_capacity(4 * MAX_FRAME),
            next_audio: None,
            session: (u64::from(random_u32()), 1),
            last_rtp: now,
            refreshed: now,
            placed: false,
            keypad: None,
            presser: KeyPresser::default(),
        }
    }

    /// Moderators' keys for this call come from `keys`.
    pub(super) fn with_keys(mut self, keys: tokio::sync::mpsc::Receiver<String>) -> Self {
        self.keypad = Some(keys);
        self
    }

    /// A call routed to `admission`'s meeting (by a trusted SBC's room header, or passed on by another node's
    /// gateway): no PIN; the password from the header, or asked for on the keypad if the meeting wants one.
    pub(super) fn routed(
        shared: Arc<Shared<D>>,
        (dialog, states): (InviteDialog, DialogStateReceiver),
        media: (UdpSocket, Offer),
        call: (CallFacts, Option<SessionTimer>),
        (admission, password): (Entry, Option<String>),
    ) -> Self {
        let mut routed = Self::new(shared, dialog, states, media, call);
        routed.admission = Some(admission);
        routed.stage = Stage::Answering(Ivr::routed(password, Instant::now()));
        routed
    }

    /// A call the gateway placed and the phone answered (`offer`: the phone's answer), for `admission`'s room.
    pub(super) fn placed(
        shared: Arc<Shared<D>>,
        dialog: InviteDialog,
        states: DialogStateReceiver,
        media: (UdpSocket, Offer),
        facts: CallFacts,
        admission: PhoneAdmission,
    ) -> Self {
        let mut call = Self::new(shared, dialog, states, media, (facts, None));
        call.admission = Some(Entry::Here(Box::new(admission)));
        call.placed = true;
        call
    }

    fn answer_sdp(&self) -> Vec<u8> {
        let port = self.socket.local_addr().map_or(0, |addr| addr.port());
        self.offer.answer(self.shared.advertised_ip, port, self.session.0, self.session.1).into_bytes()
    }

    fn answer_headers(&self) -> Vec<Header> {
        let mut headers = vec![Header::ContentType("application/sdp".into())];
        headers.extend(self.timer.map(SessionTimer::headers).unwrap_or_default());
        headers
    }

    /// Answers the call (or, placed, takes the phone into its room) and runs it to its end.
    pub(super) async fn run(mut self) {
        if self.placed {
            match self.join(None).await {
                Answer::Joined => {}
                refused => {
                    self.player.play(if let Answer::Refused(prompt) = refused { prompt } else { Prompt::Goodbye });
                    self.stage = Stage::Leaving;
                }
            }
        } else if let Err(error) = self.dialog.accept(Some(self.answer_headers()), Some(self.answer_sdp())) {
            tracing::debug!(%error, "a call could not be answered");
            return self.finish().await;
        }
        self.drive_ivr().await;
        let mut ticker = tokio::time::interval(PTIME);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut datagram = vec![0; MAX_DATAGRAM];
        let mut from_node = vec![0; MAX_DATAGRAM];
        let mut from_relay = vec![0; MAX_DATAGRAM];
        loop {
            let delivery = async {
                match &mut self.stage {
                    Stage::InRoom(connection) => connection.outbox.recv().await,
                    _ => std::future::pending().await,
                }
            };
            let node = async {
                match &self.leg {
                    Some((_, socket)) => socket.recv_from(&mut from_node).await,
                    None => std::future::pending().await,
                }
            };
            let keypad = async {
                match &mut self.keypad {
                    Some(keys) => keys.recv().await,
                    None => std::future::pending().await,
                }
            };
            let relayed = async {
                match &mut self.relay {
                    Some(leg) => leg.next(&mut from_relay).await,
                    None => std::future::pending().await,
                }
            };
            let leg_due = self.leg.as_ref().and_then(|(leg, _)| leg.poll_timeout());
            let leg_timer = async {
                match leg_due {
                    Some(due) => tokio::time::sleep_until(due.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticker.tick() => {
                    if !self.tick().await {
                        break;
                    }
                }
                received = self.socket.recv_from(&mut datagram) => {
                    if let Ok((length, from)) = received {
                        self.datagram(&datagram[..length.min(MAX_DATAGRAM)], from).await;
                    }
                }
                state = self.states.recv() => match state {
                    Some(state) => {
                        if !self.dialog_state(state).await {
                            break;
                        }
                    }
                    None => break,
                },
                delivery = delivery => self.room_delivery(delivery).await,
                keys = keypad => match keys {
                    Some(keys) => self.presser.press(&keys),
                    None => self.keypad = None,
                },
                received = node => {
                    if let (Ok((length, from)), Some((leg, socket))) = (received, &mut self.leg)
                        && let Ok(local) = socket.local_addr()
                    {
                        leg.receive(Instant::now(), from, local, &from_node[..length.min(MAX_DATAGRAM)]);
                    }
                    self.flush_leg().await;
                }
                event = relayed => {
                    if !self.relayed(event, &from_relay).await {
                        break;
                    }
                }
                () = leg_timer => {
                    if let Some((leg, _)) = &mut self.leg {
                        leg.handle_timeout(Instant::now());
                    }
                    self.flush_leg().await;
                }
                () = self.shared.shutdown.cancelled() => {
                    self.hang_up().await;
                    break;
                }
            }
        }
        self.finish().await;
    }

    /// Every 20 ms: a frame to the caller, and the clocks checked. False once the call is over.
    async fn tick(&mut self) -> bool {
        let now = Instant::now();
        if let Stage::Answering(ivr) = &mut self.stage {
            ivr.handle_timeout(now);
            self.drive_ivr().await;
        }
        let speaking = self.player.next_frame();
        if speaking.is_none() && matches!(self.stage, Stage::Leaving) {
            self.hang_up().await;
            return false;
        }
        // Keys a moderator presses go first, then prompts, which cover the room while they play; then the
        // room, else silence.
        let heard = self.heard.as_mut().and_then(Heard::next);
        let press = self.presser.tick();
        // A relayed caller hears the meeting's node, passed through.
        if self.offer.direction.caller_listens() && self.relay.is_none() {
            match (press, self.offer.events) {
                (Press::Key { key, tick }, Some(events)) => self.send_key_event(key, tick, events).await,
                (press, _) => {
                    let key = match press {
                        Press::Key { key, tick } => tones::key_tone(key, usize::from(tick)),
                        _ => None,
                    };
                    let mut wide = [0; MAX_FRAME];
                    let frame = self.voice.frame();
                    let samples = match (&key, &speaking, &heard) {
                        (Some(tone), ..) | (None, Some(tone), _) => self.voice.from_narrow(tone, &mut wide),
                        (None, None, Some(mixed)) => &mixed[..frame],
                        (None, None, None) => &wide[..frame],
                    };
                    self.voice.encode(samples, &mut self.outgoing.payload);
                    let marker = std::mem::take(&mut self.outgoing.marker);
                    self.send(self.offer.codec.1, self.outgoing.timestamp, marker).await;
                }
            }
            self.outgoing.timestamp = self.outgoing.timestamp.wrapping_add(self.voice.codec().clock_step());
        }
        let quiet =
            self.offer.direction != Direction::Inactive && now.saturating_duration_since(self.last_rtp) > RTP_TIMEOUT;
        let expired = self.timer.is_some_and(|timer| now.saturating_duration_since(self.refreshed) > timer.interval);
        if quiet || expired {
            tracing::info!(quiet, expired, "a call went silent; hanging up");
            self.hang_up().await;
            return false;
        }
        true
    }

    /// One tick of a key as an RFC 4733 event: every packet carries the press's start, the duration grows
    /// by a frame a tick, and the last tick sends the end three times (losses must not leave a key held).
    async fn send_key_event(&mut self, key: char, tick: u8, payload_type: u8) {
        let Some(event) = dtmf::event_of(key) else { return };
        if tick == 0 {
            self.outgoing.key_started = self.outgoing.timestamp;
        }
        // Events count the audio's clock (RFC 4733 §2.1): at most 5 frames of 960 ticks, well within 16 bits.
        let duration = (u32::from(tick + 1) * self.voice.codec().clock_step()) as u16;
        let end = tick + 1 == KEY_TICKS;
        let start = self.outgoing.key_started;
        for copy in 0..if end { 3 } else { 1 } {
            let bytes = TelephoneEvent { event, end, volume: 10, duration }.to_bytes();
            self.outgoing.payload.clear();
            self.outgoing.payload.extend_from_slice(&bytes);
            self.send(payload_type, start, tick == 0 && copy == 0).await;
        }
        // The call's audio after the key starts a talkspurt.
        self.outgoing.marker = true;
    }

    /// Sends `outgoing.payload` as one packet.
    async fn send(&mut self, payload_type: u8, timestamp: u32, marker: bool) {
        let Some(destination) = self.offer.destination else { return };
        let outgoing = &mut self.outgoing;
        let packet = RtpPacket {
            payload_type,
            marker,
            sequence: outgoing.sequence,
            timestamp,
            ssrc: outgoing.ssrc,
            payload: &outgoing.payload,
        };
        packet.write(&mut outgoing.buffer);
        outgoing.sequence = outgoing.sequence.wrapping_add(1);
        if let Err(error) = self.socket.send_to(&outgoing.buffer, destination).await {
            tracing::debug!(%error, "an RTP packet could not be sent");
        }
    }

    /// A datagram on the call's port: only RTP from the address the offer named counts.
    async fn datagram(&mut self, bytes: &[u8], from: std::net::SocketAddr) {
        if self.offer.destination.is_none_or(|(ip, _)| ip != from.ip()) {
            return;
        }
        if let Some(leg) = &self.relay {
            self.last_rtp = Instant::now();
            return leg.forward(bytes).await;
        }
        let Some(packet) = RtpPacket::parse(bytes) else { return };
        let now = Instant::now();
        self.last_rtp = now;
        self.reorder.push((packet.ssrc, packet.sequence), packet.payload_type, packet.timestamp, packet.payload);
        while let Some(packet) = self.reorder.pop() {
            self.ordered(packet, now).await;
        }
        self.flush_leg().await;
    }

    /// The trunk's next packet in order: a key event, or the caller's audio, decoded when someone listens
    /// (the room, or the key detector).
    async fn ordered(&mut self, packet: Ordered, now: Instant) {
        if Some(packet.payload_type) == self.offer.events {
            if let Some(key) = self.keys.on_packet(packet.timestamp, &packet.payload) {
                self.key(key).await;
            }
            return;
        }
        if packet.payload_type != self.offer.codec.1 || (self.leg.is_none() && self.inband.is_none()) {
            return;
        }
        // Time the trunk skipped (loss, or silence it did not send) stays a pause in the room.
        let step = self.voice.codec().clock_step();
        let skipped = self.next_audio.map_or(0, |next| packet.timestamp.wrapping_sub(next) / step);
        if (1..=MAX_SKIP).contains(&skipped)
            && let Some((leg, _)) = &mut self.leg
        {
            self.caller_audio.clear();
            leg.skip(skipped as u16);
        }
        let before = self.caller_audio.len();
        self.voice.decode(&packet.payload, &mut self.caller_audio);
        let samples = (self.caller_audio.len() - before) as u32;
        // Samples to clock ticks: 20 ms is `frame` samples and `step` ticks.
        self.next_audio = Some(packet.timestamp.wrapping_add(samples * step / self.voice.frame() as u32));
        // Bounded: a trunk sending faster than real time loses the excess, not memory.
        let frame = self.voice.frame();
        let excess = self.caller_audio.len().saturating_sub(4 * frame);
        self.caller_audio.drain(..excess);
        while self.caller_audio.len() >= frame {
            let mut samples = [0i16; MAX_FRAME];
            samples[..frame].copy_from_slice(&self.caller_audio[..frame]);
            self.caller_audio.drain(..frame);
            if let Some(inband) = &mut self.inband {
                let mut narrow = [0; NARROW_FRAME];
                if let Some(key) = inband.on_frame(self.voice.to_narrow(&samples[..frame], &mut narrow)) {
                    self.key(key).await;
                }
            }
            // A muted caller's stream goes on, silent, so the room's speaker ranking sees them quiet.
            if self.muted {
                samples.fill(0);
            }
            if let Some((leg, _)) = &mut self.leg {
                leg.speak(&samples[..frame], now);
            }
        }
    }

    /// What came on the leg to the meeting's node: its audio, on to the caller, or its dialog's changes.
    /// False once the call is over.
    async fn relayed(&mut self, event: RelayEvent, datagram: &[u8]) -> bool {
        match event {
            RelayEvent::Datagram(Ok((length, from))) => {
                let to_caller = self.offer.destination.filter(|_| self.offer.direction.caller_listens());
                if let (Some(leg), Some(destination)) = (&self.relay, to_caller)
                    && leg.comes_from_node(from)
                    && let Err(error) = self.socket.send_to(&datagram[..length.min(MAX_DATAGRAM)], destination).await
                {
                    tracing::debug!(%error, "relayed audio could not be sent to the caller");
                }
                true
            }
            RelayEvent::Datagram(Err(_)) => true,
            RelayEvent::Dialog(state) => match state.map(|state| *state) {
                // The meeting's node let the caller go (removed, the meeting ended, its prompts said).
                Some(DialogState::Terminated(..)) | None => {
                    self.hang_up().await;
                    false
                }
                Some(state) => {
                    RelayLeg::answer(state).await;
                    true
                }
            },
        }
    }

    /// Sends what the room leg has for the node.
    async fn flush_leg(&mut self) {
        let Some((leg, socket)) = &mut self.leg else { return };
        while let Some((destination, contents)) = leg.poll_transmit() {
            if let Err(error) = socket.send_to(&contents, destination).await {
                tracing::debug!(%error, "a datagram to the media node could not be sent");
            }
        }
    }

    /// Opens the caller's audio into the room: a session with the SFU, offered through the focus.
    async fn open_leg(&mut self) {
        let Stage::InRoom(connection) = &self.stage else { return };
        let socket = match UdpSocket::bind(SocketAddr::new(self.shared.media_ip, 0)).await {
            Ok(socket) => socket,
            Err(error) => return tracing::warn!(%error, "no socket for a caller's audio"),
        };
        let Ok(local) = socket.local_addr() else { return };
        match RoomLeg::new(local, self.shared.media_ip, self.voice.rate(), Instant::now()) {
            Ok((leg, sdp)) => {
                if connection.send(ClientMessage::Offer { sdp, screen: None, publish_only: true }).await {
                    self.leg = Some((leg, socket));
                    let rate = self.voice.rate();
                    self.heard = self.shared.mixers.listen(&self.shared.rooms, connection.room_id, connection.id, rate);
                    if self.heard.is_none() {
                        tracing::warn!("a caller cannot hear the meeting: its media shard is busy");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "a caller's audio could not join the room"),
        }
    }

    /// A key the caller pressed, from RTP or INFO.
    async fn key(&mut self, key: char) {
        match &mut self.stage {
            Stage::Answering(ivr) => {
                ivr.key(key, Instant::now());
                self.drive_ivr().await;
            }
            Stage::InRoom(connection) => {
                if self.star && key == '6' {
                    let muted = !self.muted;
                    if connection.send(ClientMessage::SetMuted { media: MediaKind::Audio, muted }).await {
                        self.muted = muted;
                        self.player.play(if muted { Prompt::Muted } else { Prompt::Unmuted });
                    }
                }
                self.star = key == '*';
            }
            Stage::Relayed | Stage::Leaving => {}
        }
    }

    /// Does what the conversation asks, answering it with what lookups and joins found.
    async fn drive_ivr(&mut self) {
        loop {
            let Stage::Answering(ivr) = &mut self.stage else { return };
            let Some(action) = ivr.poll_action() else { return };
            let answer = match action {
                Action::Play(prompt) => {
                    self.player.play(prompt);
                    continue;
                }
                Action::Silence => {
                    self.player.stop();
                    continue;
                }
                Action::HangUp => {
                    self.stage = Stage::Leaving;
                    return;
                }
                Action::LookUp(pin) => self.look_up(&pin).await,
                Action::Join(password) => self.join(password).await,
            };
            if let Stage::Answering(ivr) = &mut self.stage {
                ivr.answer(answer, Instant::now());
            }
        }
    }

    async fn look_up(&mut self, pin: &str) -> Answer {
        if !self.shared.guess_allowed(&self.facts, None, false) {
            return Answer::Refused(Prompt::Unavailable);
        }
        match self.shared.directory.admit(&self.facts, pin).await {
            Ok(entry) => {
                self.admission = Some(entry);
                self.join(None).await
            }
            Err(DialInRefusal::UnknownPin) => {
                self.shared.guess_allowed(&self.facts, None, true);
                Answer::UnknownPin
            }
            Err(DialInRefusal::MeetingOver) => Answer::Refused(Prompt::MeetingOver),
            Err(DialInRefusal::NotAvailable) => Answer::Refused(Prompt::NotAvailable),
            Err(DialInRefusal::Removed) => Answer::Refused(Prompt::Removed),
            Err(DialInRefusal::Unavailable) => Answer::Refused(Prompt::Unavailable),
        }
    }

    /// Connects to the room found; the room's first word says whether the caller is in.
    async fn join(&mut self, password: Option<String>) -> Answer {
        let PhoneAdmission { room, policy, identity } = match self.admission.clone() {
            Some(Entry::Here(admission)) => *admission,
            Some(Entry::Relay(relay)) => return self.relay(&relay, password).await,
            None => return Answer::Refused(Prompt::Unavailable),
        };
        if password.is_some() && !self.shared.guess_allowed(&self.facts, Some(&room), false) {
            return Answer::Refused(Prompt::Unavailable);
        }
        let key = room.clone();
        let connected = self.shared.rooms.connect(room, policy, identity, PROTOCOL_VERSION, password, None).await;
        let mut connection = match connected {
            Ok(connection) => connection,
            Err(ConnectError::NotAllowed(reason, _)) => return refused(reason),
            Err(error) => {
                tracing::info!(%error, "a caller found no room");
                return Answer::Refused(Prompt::Unavailable);
            }
        };
        let first = tokio::time::timeout(JOIN_TIMEOUT, connection.outbox.recv()).await;
        let answer = match first {
            Ok(Some(Delivery::Message(ServerMessage::Refused { reason, .. }))) => {
                if reason == Refusal::WrongPassword {
                    self.shared.guess_allowed(&self.facts, Some(&key), true);
                }
                return refused(reason);
            }
            Ok(Some(Delivery::Message(message @ (ServerMessage::Welcome { .. } | ServerMessage::Lobby { .. })))) => {
                self.entered(&message);
                Answer::Joined
            }
            _ => return Answer::Refused(Prompt::Unavailable),
        };
        self.stage = Stage::InRoom(connection);
        if self.welcomed {
            self.open_leg().await;
        }
        answer
    }

    /// Passes the call to the meeting's node, which holds it from here (its prompts, its password question).
    async fn relay(&mut self, relay: &Relay, password: Option<String>) -> Answer {
        match self.shared.open_relay(relay, &self.facts, (&self.offer, password.as_deref())).await {
            Ok(leg) => {
                self.player.stop();
                self.relay = Some(Box::new(leg));
                self.stage = Stage::Relayed;
                Answer::Joined
            }
            Err(error) => {
                tracing::warn!(%error, "a caller could not be passed to the meeting's node");
                Answer::Refused(Prompt::Unavailable)
            }
        }
    }

    /// The room let the caller in (`Welcome`) or asked them to wait (`Lobby`).
    fn entered(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Welcome { participants, room, .. } => {
                self.welcomed = true;
                self.player.play(Prompt::Joining);
                if participants.len() <= 1 {
                    self.player.play(Prompt::Alone);
                }
                if room.recording {
                    self.player.play(Prompt::Recording);
                }
            }
            ServerMessage::Lobby { .. } => self.player.play(Prompt::Lobby),
            _ => {}
        }
    }

    /// What the room says to the caller.
    async fn room_delivery(&mut self, delivery: Option<Delivery>) {
        let message = match delivery {
            Some(Delivery::Message(message)) => message,
            // The room closed the connection without a word: the meeting is gone.
            Some(Delivery::Close) | None => {
                if !matches!(self.stage, Stage::Leaving) {
                    self.player.play(Prompt::Goodbye);
                    self.stage = Stage::Leaving;
                }
                return;
            }
        };
        match message {
            ServerMessage::Welcome { .. } => {
                self.entered(&message);
                self.open_leg().await;
            }
            ServerMessage::Answer { sdp } => {
                if let Some((leg, _)) = &mut self.leg
                    && let Err(error) = leg.answered(&sdp)
                {
                    tracing::warn!(%error, "the node's answer for a caller was refused");
                }
                self.flush_leg().await;
            }
            ServerMessage::Offer { sdp, .. } => {
                let answer = match &mut self.leg {
                    Some((leg, _)) => leg.offered(&sdp),
                    None => return,
                };
                match answer {
                    Ok(sdp) => {
                        if let Stage::InRoom(connection) = &self.stage {
                            connection.send(ClientMessage::Answer { sdp }).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "the node's offer for a caller was refused"),
                }
                self.flush_leg().await;
            }
            ServerMessage::Refused { reason, .. } => {
                let prompt = match refused(reason) {
                    Answer::Refused(prompt) => prompt,
                    _ => Prompt::Goodbye,
                };
                self.player.play(prompt);
                self.stage = Stage::Leaving;
            }
            ServerMessage::Muted { media: MediaKind::Audio, .. } if !self.muted => {
                self.muted = true;
                self.player.play(Prompt::Muted);
            }
            ServerMessage::RecordingChanged { recording: true, .. } => self.player.play(Prompt::Recording),
            _ => {}
        }
    }

    /// A change in the dialog. False once the call is over.
    async fn dialog_state(&mut self, state: DialogState) -> bool {
        match state {
            DialogState::Terminated(_, reason) => {
                tracing::debug!(?reason, "a call ended");
                false
            }
            DialogState::Info(_, request, handle) => {
                respond(&handle, StatusCode::OK, None).await;
                if let Some(leg) = &self.relay {
                    leg.forward_info(&request);
                } else if let Some(key) = dtmf::info_key(&String::from_utf8_lossy(&request.body)) {
                    self.key(key).await;
                }
                true
            }
            DialogState::Updated(_, request, handle) => {
                self.refreshed = Instant::now();
                self.reoffered(&request, &handle).await;
                true
            }
            DialogState::Options(_, _, handle) => {
                respond(&handle, StatusCode::OK, None).await;
                true
            }
            DialogState::Message(_, _, handle)
            | DialogState::Notify(_, _, handle)
            | DialogState::Refer(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                respond(&handle, StatusCode::MethodNotAllowed, None).await;
                true
            }
            _ => true,
        }
    }

    /// A re-INVITE or UPDATE: hold, resume, a new address, or only a session refresh. The answer keeps its
    /// version unless it changes (RFC 3264 §8), so a refresh is answered with the same description. The
    /// codec stays if offered; another at a different rate is refused while the caller's audio is in the
    /// room (its session runs at the first rate).
    async fn reoffered(&mut self, request: &sip::Request, handle: &TransactionHandle) {
        if !request.body.is_empty() {
            let current = self.offer.codec.0;
            match Offer::parse_preferring(&String::from_utf8_lossy(&request.body), Some(current)) {
                Ok(offer)
                    if offer.codec.0 != current && self.leg.is_some() && offer.codec.0.rate() != self.voice.rate() =>
                {
                    tracing::debug!("a re-offer would change the call's sample rate; refused");
                    return respond(handle, StatusCode::NotAcceptableHere, None).await;
                }
                // The meeting's node was offered the first payload types, which pass through unchanged.
                Ok(offer)
                    if self.relay.is_some() && (offer.codec, offer.events) != (self.offer.codec, self.offer.events) =>
                {
                    tracing::debug!("a re-offer would change a relayed call's payload types; refused");
                    return respond(handle, StatusCode::NotAcceptableHere, None).await;
                }
                Ok(offer) if offer != self.offer => {
                    if offer.codec.0 != current {
                        self.voice = Voice::new(offer.codec.0);
                        self.caller_audio.clear();
                    }
                    self.inband = match (offer.events, self.inband.take()) {
                        (None, kept) => Some(kept.unwrap_or_default()),
                        (Some(_), _) => None,
                    };
                    self.offer = offer;
                    self.session.1 += 1;
                    self.outgoing.marker = true;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "a re-offer was refused");
                    return respond(handle, StatusCode::NotAcceptableHere, None).await;
                }
            }
        }
        let headers = self.answer_headers();
        let body = self.answer_sdp();
        if let Err(error) = handle.respond(StatusCode::OK, Some(headers), Some(body)).await {
            tracing::debug!(%error, "a re-offer could not be answered");
        }
    }

    async fn hang_up(&mut self) {
        if let Err(error) = self.dialog.hangup().await {
            tracing::debug!(%error, "a BYE could not be sent");
        }
    }

    /// Leaves the room and forgets the dialog. A call that hung up is gone for good: it says so, or the room
    /// would keep the caller for the grace a dropped browser gets to come back.
    async fn finish(mut self) {
        if let Stage::InRoom(connection) = &self.stage {
            connection.send(ClientMessage::Leave).await;
        }
        if let Some(leg) = self.relay.take() {
            leg.end(&self.shared).await;
        }
        self.shared.dialogs.remove_dialog(&self.dialog.id());
    }
}

/// What a room's refusal means for a caller.
fn refused(reason: Refusal) -> Answer {
    Answer::Refused(match reason {
        Refusal::PasswordRequired => return Answer::PasswordNeeded,
        Refusal::WrongPassword => return Answer::WrongPassword,
        Refusal::Full | Refusal::PlanLimit => Prompt::MeetingFull,
        Refusal::Locked => Prompt::Locked,
        Refusal::Rejected => Prompt::Rejected,
        Refusal::Kicked => Prompt::Removed,
        Refusal::Ended => Prompt::Ended,
        Refusal::PaymentOverdue | Refusal::InvalidToken => Prompt::NotAvailable,
        Refusal::UnsupportedVersion | Refusal::Unavailable => Prompt::Unavailable,
    })
}

async fn respond(handle: &TransactionHandle, status: StatusCode, body: Option<Vec<u8>>) {
    if let Err(error) = handle.respond(status, None, body).await {
        tracing::debug!(%error, "an in-dialog reply could not be sent");
    }
}
