//! The selective forwarding unit, sans-IO like str0m under it: datagrams, signalling and time go in
//! (`handle_*`), datagrams and signalling messages come out (`poll_output`), and the caller owns the socket
//! and the clock. One `Sfu` serves the rooms of one shard; every participant is a str0m `Rtc` in ICE-lite,
//! RTP mode, found by source address (or, for a new flow, by the ICE username of its STUN check).
//!
//! Per packet: the publisher's `Rtc` decrypts; each receiver in the room that selected that layer gets it
//! rewritten (sequence, timestamp, VP8 picture id: one continuous stream whatever layer it comes from) and
//! encrypted by its own `Rtc`. Audio of people not speaking is left out. Layers follow each receiver's
//! bandwidth estimate (`allocator`), switches wait for a keyframe (asked for with PLI), and the stage
//! follows the dominant speaker (`speaker`) unless the receiver pinned someone.

pub mod allocator;
mod forward;
mod peer;
mod record;
pub mod rewrite;
pub mod speaker;

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::{Duration, Instant},
};

use convene_signal::{ParticipantId, ServerMessage, TrackSource, VideoRequest};
use rustc_hash::FxHashMap;
use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc,
    bwe::{Bitrate, BweKind},
    ice::StunMessage,
    media::{Direction, MediaKind},
    net::{Protocol, Receive},
};

use self::record::RecordingTap;
use self::{
    allocator::{Candidate as Source, Layer, Limits},
    forward::{Forward, classify},
    peer::{Egress, Ingress, Peer},
    speaker::Speakers,
};
pub use self::{
    forward::starts_keyframe,
    peer::NegotiationError,
    record::{RecordedPacket, Tap},
};
use crate::stun;

/// A room within a shard, numbered by the caller.
pub type RoomId = u64;

/// How often sessions report their streams' statistics (NACKs).
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Audio's share of a receiver's bandwidth, per other participant, asked of the estimator on top of video.
const AUDIO_ALLOWANCE: u64 = 50_000;
/// How often speakers are re-ranked and layers re-allocated.
const REALLOCATE_EVERY: Duration = Duration::from_millis(250);
/// str0m asks for a pass at once as its last pass plus this: its pacer lets out one padding or probe packet a
/// pass, and a probe burst is several.
const AT_ONCE: Duration = Duration::from_micros(1);
/// Timer passes one drain may run back to back for a session, enough for a probe burst. Beyond, the session
/// waits for the shard's next turn like any other.
const PASSES_PER_DRAIN: u32 = 16;
/// The clock rates used to keep timestamps in pace across switches.
const VIDEO_CLOCK: u64 = 90_000;
const AUDIO_CLOCK: u64 = 48_000;

/// A participant in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// The room.
    pub room: RoomId,
    /// The participant.
    pub participant: ParticipantId,
}

/// What a participant's offer comes with besides its SDP.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfferTerms<'a> {
    /// The `mid` carrying a shared screen.
    pub screen: Option<&'a str>,
    /// The room encrypts media end to end (VP8 only).
    pub end_to_end_encrypted: bool,
    /// The participant receives no one's media (the phone gateway mixes what callers hear itself); the
    /// first offer decides.
    pub publish_only: bool,
}

/// How the SFU behaves.
#[derive(Debug, Clone, Copy)]
pub struct SfuConfig {
    /// The address clients send media to (the socket's, as they reach it).
    pub address: SocketAddr,
    /// The bandwidth assumed toward a receiver before its estimate arrives, bits per second.
    pub initial_estimate: u64,
    /// Whether layers follow each receiver's bandwidth estimate (as Jitsi's `trust-bwe`); without, every
    /// receiver is assumed to have `initial_estimate`.
    pub trust_bwe: bool,
    /// At most this many participants' video goes to one receiver.
    pub last_n: usize,
    /// The height of publishers' full layer (720 or 1080).
    pub top_height: u32,
}

/// What the caller must do.
#[derive(Debug)]
pub enum SfuOutput {
    /// Send a datagram from the media socket.
    Transmit {
        /// To whom.
        destination: SocketAddr,
        /// The bytes.
        contents: Vec<u8>,
    },
    /// Send a signalling message to a participant.
    Signal {
        /// To whom.
        to: PeerKey,
        /// What.
        message: ServerMessage,
    },
    /// Hand a packet to the room's recorder.
    Record {
        /// The room being recorded.
        room: RoomId,
        /// The packet.
        packet: RecordedPacket,
    },
}

/// Media moved, for a room or the whole shard (plain integers: nothing shared on the packet path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// RTP packets received from publishers.
    pub packets_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// RTP packets handed to receivers' sessions.
    pub packets_out: u64,
    /// Their payload bytes.
    pub bytes_out: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Retransmissions receivers asked for (NACKs).
    pub nacks: u64,
}

impl Traffic {
    fn add(&mut self, other: &Self) {
        self.packets_in += other.packets_in;
        self.bytes_in += other.bytes_in;
        self.packets_out += other.packets_out;
        self.bytes_out += other.bytes_out;
        self.keyframe_requests += other.keyframe_requests;
        self.nacks += other.nacks;
    }
}

/// Running totals, read by the driver for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Media moved by rooms that ended.
    pub ended_rooms: Traffic,
    /// Datagrams from no known participant (and not a probe).
    pub dropped_unknown_sender: u64,
    /// Datagrams from a participant that are none of STUN, DTLS, RTP or RTCP, or that its session refused.
    pub dropped_unreadable: u64,
    /// Datagrams beyond a participant's inbound budget (a flood).
    pub dropped_over_budget: u64,
    /// STUN reachability probes answered.
    pub probes_answered: u64,
    /// Sessions that failed and were closed.
    pub sessions_failed: u64,
    /// Timer inputs handed to sessions (str0m's `handle_input(Timeout)`): bookkeeping, and when its pacer
    /// lets queued packets go.
    pub session_timeouts: u64,
    /// Outputs asked of sessions (str0m's `poll_output`), the last of each drain being its next timeout.
    pub session_polls: u64,
}

#[derive(Debug, Default)]
struct MediaRoom {
    /// Participants in the order they started media.
    members: Vec<ParticipantId>,
    traffic: Traffic,
    speakers: Speakers<ParticipantId>,
    next_reallocation: Option<Instant>,
    /// While the room is recorded: what its recorder gets.
    recording: Option<RecordingTap>,
}

/// The shard's SFU.
pub struct Sfu {
    config: SfuConfig,
    /// Keyed by numbers the node assigns, so a fast hash without a random key (std's keyed hash on them was about 2 %
    /// of the node forwarding three meetings of ten); what peers choose (addresses, ufrags) keeps the keyed one.
    peers: FxHashMap<PeerKey, Peer>,
    rooms: FxHashMap<RoomId, MediaRoom>,
    by_address: HashMap<SocketAddr, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
    output: VecDeque<SfuOutput>,
    counters: Counters,
    /// Packets decrypted but not yet forwarded (kept to reuse its allocation).
    forwards: Vec<Forward>,
    /// When the packets waiting in `forwards` arrived, until the output is next polled.
    forward_at: Option<Instant>,
    /// Keyframe requests to send upstream: whose track, which layer.
    keyframes: Vec<(PeerKey, TrackSource, Layer)>,
    /// Receivers that were handed packets since they were last drained.
    touched: Vec<PeerKey>,
}

impl Sfu {
    /// An SFU with no rooms.
    pub fn new(config: SfuConfig) -> Self {
        Self {
            config,
            peers: FxHashMap::default(),
            rooms: FxHashMap::default(),
            by_address: HashMap::new(),
            by_ufrag: HashMap::new(),
            output: VecDeque::new(),
            counters: Counters::default(),
            forwards: Vec::new(),
            forward_at: None,
            keyframes: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// The running totals.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// All media moved so far, by live and ended rooms.
    pub fn traffic(&self) -> Traffic {
        let mut total = self.counters.ended_rooms;
        self.rooms.values().for_each(|room| total.add(&room.traffic));
        total
    }

    /// How many participants have media sessions in each live room.
    pub fn room_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.rooms.values().map(|room| room.members.len())
    }

    /// How many participants have media sessions.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// A participant's offer: the first one starts their session, later ones change what they publish or
    /// restart ICE (new credentials after a network change). The answer comes out as a signalling message.
    /// End-to-end encrypted rooms negotiate VP8 only: their frames keep just VP8's payload header in the
    /// clear, which is all the SFU reads (for keyframes); H.264's NAL headers would be ciphertext.
    pub fn handle_offer(
        &mut self,
        key: PeerKey,
        sdp: &str,
        terms: OfferTerms<'_>,
        now: Instant,
    ) -> Result<(), NegotiationError> {
        let OfferTerms { screen, end_to_end_encrypted, publish_only } = terms;
        if !self.peers.contains_key(&key) {
            let rtc = Rtc::builder()
                .set_ice_lite(true)
                .set_rtp_mode(true)
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .enable_h264(!end_to_end_encrypted)
                .enable_bwe(Some(Bitrate::bps(self.config.initial_estimate)))
                // Pad only to the rate the allocator asks to sustain, and for probes: str0m's default floor
                // (50 kbit/s) padded a receiver of nothing but silence with 163 packets a second.
                .set_bwe_padding_floor(Bitrate::ZERO)
                .set_stats_interval(Some(STATS_EVERY))
                .build(now);
            let mut peer = Peer::new(rtc, self.config.initial_estimate, now);
            peer.publish_only = publish_only;
            let candidate = Candidate::host(self.config.address, "udp")
                .map_err(|error| NegotiationError::Refused(error.to_string()))?;
            peer.rtc.add_local_candidate(candidate);
            let sdp = peer.accept_offer(sdp, screen)?;
            let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
            self.by_ufrag.insert(ufrag, key);
            self.join(key, peer);
            self.signal(key, ServerMessage::Answer { sdp });
        } else if let Some(peer) = self.peers.get_mut(&key) {
            let ufrag_before = peer.rtc.direct_api().local_ice_credentials().ufrag;
            let sdp = peer.accept_offer(sdp, screen)?;
            let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
            if ufrag != ufrag_before {
                // An ICE restart: the session is found by its new credentials, and only the path the new
                // checks validate carries it (the old address may be gone, or someone else's by now).
                self.by_ufrag.remove(&ufrag_before);
                self.by_ufrag.insert(ufrag, key);
                self.by_address.retain(|_, owner| *owner != key);
            }
            self.signal(key, ServerMessage::Answer { sdp });
        }
        self.drain(key, now);
        self.negotiate(key);
        Ok(())
    }

    /// A participant's answer to the node's offer.
    pub fn handle_answer(&mut self, key: PeerKey, sdp: &str, now: Instant) -> Result<(), NegotiationError> {
        let peer = self.peers.get_mut(&key).ok_or(NegotiationError::NoOffer)?;
        peer.accept_answer(sdp)?;
        self.drain(key, now);
        self.negotiate(key);
        self.reallocate(key.room, now);
        Ok(())
    }

    /// A participant's signalling continues over a new connection: an offer the old one may have lost is
    /// made again.
    pub fn resume(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.withdraw_offer();
            self.negotiate(key);
        }
    }

    /// Whom a participant pinned (none: the dominant speaker is on their stage).
    pub fn pin(&mut self, key: PeerKey, pinned: Option<ParticipantId>, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.pinned = pinned;
            self.reallocate(key.room, now);
        }
    }

    /// The tile sizes a participant shows others' video at.
    pub fn receive_video(&mut self, key: PeerKey, requests: &[VideoRequest], now: Instant) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.requests = requests.iter().map(|request| (request.participant, request.height)).collect();
            self.reallocate(key.room, now);
        }
    }

    /// Starts, changes or stops handing the room's media to its recorders and mixer (as
    /// [`SfuOutput::Record`]).
    pub fn record(&mut self, room_id: RoomId, tap: Tap, now: Instant) {
        let with_video = match tap {
            Tap::Voices => false,
            Tap::Everything => true,
            Tap::Off => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.recording = None;
                    if room.members.is_empty() {
                        self.end_room(room_id);
                    }
                }
                return;
            }
        };
        let room = self.rooms.entry(room_id).or_default();
        room.recording.get_or_insert_with(|| RecordingTap::new(with_video)).set_video(with_video);
        self.reallocate(room_id, now);
    }

    /// A keyframe of a tapped video, asked of the publisher: the recorder lost part of it (`restart`: the tap
    /// starts it again at the keyframe), or a live stream puts it on stage.
    pub fn recording_keyframe(&mut self, key: PeerKey, source: TrackSource, restart: bool, now: Instant) {
        let tap = self.rooms.get_mut(&key.room).and_then(|room| room.recording.as_mut());
        if let Some(layer) = tap.and_then(|tap| tap.keyframe(key.participant, source, restart)) {
            self.keyframes.push((key, source, layer));
            self.send_keyframe_requests(now);
        }
    }

    /// Forgets a room that no one is in and nothing taps. What it moved stays in the shard's totals: they
    /// only grow, and the metrics add what is new since the last reading.
    fn end_room(&mut self, room_id: RoomId) {
        if let Some(ended) = self.rooms.remove(&room_id) {
            self.counters.ended_rooms.add(&ended.traffic);
        }
    }

    /// A participant left the room: their session ends and the others stop receiving them.
    pub fn leave(&mut self, key: PeerKey, now: Instant) {
        let Some(mut peer) = self.peers.remove(&key) else { return };
        peer.rtc.disconnect();
        for egress in &peer.egress {
            egress.log_end(key.participant, key.room, "a receiver left: its track ends");
        }
        self.by_address.retain(|_, owner| *owner != key);
        self.by_ufrag.retain(|_, owner| *owner != key);
        let Some(room) = self.rooms.get_mut(&key.room) else { return };
        room.members.retain(|member| *member != key.participant);
        room.speakers.remove(key.participant);
        if room.members.is_empty() && room.recording.is_none() {
            self.end_room(key.room);
            return;
        }
        let others: Vec<PeerKey> =
            room.members.iter().map(|member| PeerKey { room: key.room, participant: *member }).collect();
        for other in &others {
            if let Some(peer) = self.peers.get_mut(other) {
                for egress in peer.egress.iter_mut().filter(|egress| egress.from == key.participant) {
                    egress.log_end(other.participant, key.room, "a sender left: its track ends");
                    egress.close();
                }
                peer.egress
                    .retain(|egress| !(egress.from == key.participant && egress.state == peer::EgressState::ToOpen));
            }
            self.negotiate(*other);
        }
        self.reallocate(key.room, now);
    }

    /// One datagram from the media socket. It was sent to the address the node advertises, whatever address
    /// the socket is bound to (a NAT, or a socket bound to every interface, stands between the two), so that
    /// is the destination the sessions see: ICE takes checks only on its own candidates.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) {
        let destination = self.config.address;
        let key = match self.by_address.get(&source) {
            Some(key) => *key,
            None => match self.by_ice_username(bytes, source) {
                Flow::Session(key) => key,
                Flow::Probe => return,
                Flow::Unknown => {
                    self.counters.dropped_unknown_sender += 1;
                    return;
                }
            },
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            self.counters.dropped_unknown_sender += 1;
            return;
        };
        // A flooding participant spends its own budget, not the shard's time for everyone else.
        if !peer.inbound.take(now) {
            self.counters.dropped_over_budget += 1;
            return;
        }
        let Ok(contents) = bytes.try_into() else {
            self.counters.dropped_unreadable += 1;
            return;
        };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination, contents });
        if !peer.rtc.accepts(&input) {
            self.counters.dropped_unreadable += 1;
            return;
        }
        if let Err(error) = peer.rtc.handle_input(input) {
            self.counters.dropped_unreadable += 1;
            tracing::debug!(%error, participant = key.participant.0, "media session input refused");
        }
        self.by_address.entry(source).or_insert(key);
        self.drain(key, now);
        // Forwarding waits for the output to be polled: a batch of datagrams reaches each receiver's
        // session together, drained once, instead of once per datagram.
        self.forward_at = Some(now);
    }

    /// A STUN check from a new address names its session in the USERNAME; a Binding request without one
    /// is a reachability probe, answered directly.
    fn by_ice_username(&mut self, bytes: &[u8], source: SocketAddr) -> Flow {
        let username = StunMessage::parse(bytes)
            .ok()
            .and_then(|message| message.split_username().map(|(local, _remote)| local.to_owned()));
        if let Some(local) = username {
            return self.by_ufrag.get(&local).map_or(Flow::Unknown, |key| Flow::Session(*key));
        }
        let mut reply = [0u8; stun::MAX_REPLY_LEN];
        match stun::answer_binding(bytes, source, &mut reply) {
            Ok(length) => {
                self.counters.probes_answered += 1;
                self.output.push_back(SfuOutput::Transmit { destination: source, contents: reply[..length].to_vec() });
                Flow::Probe
            }
            Err(_) => Flow::Unknown,
        }
    }

    /// Time passes: sessions' timers, speaker ranking and layer allocation.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerKey> =
            self.peers.iter().filter(|(_, peer)| peer.deadline <= now).map(|(key, _)| *key).collect();
        for key in due {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            self.counters.session_timeouts += 1;
            peer.run_timers(now, key.participant);
            self.drain(key, now);
        }
        self.forward(now);
        let rooms: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.next_reallocation.is_none_or(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in rooms {
            if let Some(room) = self.rooms.get_mut(&id)
                && let Some(speaker) = room.speakers.update(now)
            {
                let members = room.members.clone();
                for member in members {
                    self.signal(
                        PeerKey { room: id, participant: member },
                        ServerMessage::DominantSpeaker { participant: speaker },
                    );
                }
            }
            self.reallocate(id, now);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sessions = self.peers.values().map(|peer| peer.deadline);
        let rooms = self.rooms.values().filter_map(|room| room.next_reallocation);
        sessions.chain(rooms).min()
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<SfuOutput> {
        if let Some(now) = self.forward_at.take() {
            self.forward(now);
        }
        self.output.pop_front()
    }

    fn signal(&mut self, to: PeerKey, message: ServerMessage) {
        self.output.push_back(SfuOutput::Signal { to, message });
    }

    /// Adds a new session to its room: it will receive everyone's tracks, and everyone its tracks once it
    /// publishes them.
    fn join(&mut self, key: PeerKey, mut peer: Peer) {
        let room = self.rooms.entry(key.room).or_default();
        for member in room.members.iter().filter(|_| !peer.publish_only) {
            if let Some(other) = self.peers.get(&PeerKey { room: key.room, participant: *member }) {
                for ingress in &other.ingress {
                    peer.egress.push(Egress::new(*member, ingress.source, ingress.kind));
                }
            }
        }
        room.members.push(key.participant);
        self.peers.insert(key, peer);
    }

    /// Drains a session's output: datagrams to send, packets to forward, and events.
    fn drain(&mut self, key: PeerKey, now: Instant) {
        let mut published = Vec::new();
        // A pass asked for at once runs here, not on the shard's next turn: its timer wakes a millisecond late
        // at best, and a probe burst let out a packet a turn leaves at a fraction of its rate, so the estimate
        // climbs too slowly.
        let mut passes = 0;
        let mut last_asked = None;
        loop {
            let Some(peer) = self.peers.get_mut(&key) else { return };
            self.counters.session_polls += 1;
            let output = match peer.rtc.poll_output() {
                Ok(output) => output,
                Err(error) => {
                    tracing::info!(%error, participant = key.participant.0, "media session failed");
                    self.counters.sessions_failed += 1;
                    peer.rtc.disconnect();
                    break;
                }
            };
            match output {
                // A pass after which the session asks for the same time made no progress: it waits for a turn.
                Output::Timeout(at)
                    if at <= peer.timers_ran_to.max(now) + AT_ONCE
                        && passes < PASSES_PER_DRAIN
                        && last_asked != Some(at) =>
                {
                    last_asked = Some(at);
                    passes += 1;
                    self.counters.session_timeouts += 1;
                    peer.run_timers(at.max(now), key.participant);
                }
                Output::Timeout(at) => {
                    peer.deadline = at;
                    break;
                }
                Output::Transmit(transmit) => self.output.push_back(SfuOutput::Transmit {
                    destination: transmit.destination,
                    contents: transmit.contents.into(),
                }),
                Output::Event(Event::RtpPacket(packet)) => {
                    if let Some(forward) = classify(key, peer, packet) {
                        if let Some(ingress) = peer.ingress.iter_mut().find(|ingress| ingress.mid == forward.mid) {
                            ingress.record(forward.layer, forward.packet.payload.len(), now);
                        }
                        self.forwards.push(forward);
                    }
                }
                Output::Event(Event::MediaAdded(added)) => {
                    if matches!(added.direction, Direction::RecvOnly | Direction::SendRecv) {
                        let source = match (added.kind, peer.screen == Some(added.mid)) {
                            (MediaKind::Audio, _) => TrackSource::Microphone,
                            (MediaKind::Video, true) => TrackSource::Screen,
                            (MediaKind::Video, false) => TrackSource::Camera,
                        };
                        peer.ingress.push(Ingress {
                            mid: added.mid,
                            kind: added.kind,
                            source,
                            layers: Default::default(),
                        });
                        published.push((source, added.kind));
                    }
                }
                Output::Event(Event::KeyframeRequest(request)) => {
                    // A receiver lost a picture: ask the publisher of what it receives on that m-line.
                    if let Some(egress) = peer.egress.iter().find(|egress| egress.open_mid() == Some(request.mid))
                        && let Some(layer) = egress.current
                    {
                        self.keyframes.push((
                            PeerKey { room: key.room, participant: egress.from },
                            egress.source,
                            layer,
                        ));
                    }
                }
                Output::Event(Event::EgressBitrateEstimate(
                    BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
                )) => {
                    if self.config.trust_bwe {
                        peer.estimate = estimate.as_u64();
                    }
                }
                Output::Event(Event::MediaEgressStats(stats)) => {
                    let nacks = peer.nacks_reported(stats.mid, stats.rid, stats.nacks);
                    if let Some(room) = self.rooms.get_mut(&key.room) {
                        room.traffic.nacks += nacks;
                    }
                }
                Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                    tracing::debug!(participant = key.participant.0, "media session lost its connection");
                }
                Output::Event(_) => {}
            }
        }
        for (source, kind) in published {
            self.published(key, source, kind);
        }
    }

    /// A participant publishes a new track: everyone else gets an m-line for it.
    fn published(&mut self, key: PeerKey, source: TrackSource, kind: MediaKind) {
        let Some(room) = self.rooms.get(&key.room) else { return };
        let others: Vec<PeerKey> = room
            .members
            .iter()
            .filter(|member| **member != key.participant)
            .map(|member| PeerKey { room: key.room, participant: *member })
            .collect();
        for other in others {
            if let Some(peer) = self.peers.get_mut(&other).filter(|peer| !peer.publish_only) {
                peer.egress.push(Egress::new(key.participant, source, kind));
            }
            self.negotiate(other);
        }
    }

    /// Sends the node's offer to a participant whose egress tracks changed, when they can take one.
    fn negotiate(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if let Some((sdp, tracks)) = peer.offer() {
            self.signal(key, ServerMessage::Offer { sdp, tracks });
        }
    }

    /// Re-chooses every receiver's layers in a room.
    fn reallocate(&mut self, room_id: RoomId, now: Instant) {
        let Some(room) = self.rooms.get_mut(&room_id) else { return };
        room.next_reallocation = Some(now + REALLOCATE_EVERY);
        let members = room.members.clone();
        let dominant = room.speakers.dominant();
        // Priority after the stage: recent speakers, then the order people came in.
        let recent = room.speakers.recent();
        let order: Vec<ParticipantId> =
            recent.iter().chain(members.iter().filter(|member| !recent.contains(member))).copied().collect();
        // Everyone's published video and its layers' rates.
        let mut published: Vec<Published> = Vec::new();
        for participant in &order {
            if let Some(peer) = self.peers.get(&PeerKey { room: room_id, participant: *participant }) {
                for ingress in peer.ingress.iter().filter(|ingress| ingress.kind == MediaKind::Video) {
                    published.push(Published {
                        owner: *participant,
                        source: ingress.source,
                        rates: ingress.rates(now),
                    });
                }
            }
        }
        if let Some(tap) = self.rooms.get_mut(&room_id).and_then(|room| room.recording.as_mut()) {
            let videos = published.iter().map(|video| (video.owner, video.source, video.rates));
            for (owner, source, layer) in tap.choose_layers(videos) {
                self.keyframes.push((PeerKey { room: room_id, participant: owner }, source, layer));
            }
        }
        let sharing = published.iter().find(|video| video.source == TrackSource::Screen).map(|video| video.owner);
        for member in &members {
            let key = PeerKey { room: room_id, participant: *member };
            let Some(receiver) = self.peers.get_mut(&key) else { continue };
            let stage = receiver.pinned.or(sharing).or(dominant.filter(|speaker| speaker != member));
            // The stage shows the screen when its owner shares one, else their camera.
            let stage_source = stage.map(|owner| {
                let shares = published.iter().any(|video| video.owner == owner && video.source == TrackSource::Screen);
                if shares { TrackSource::Screen } else { TrackSource::Camera }
            });
            let mut ranked: Vec<(&Published, bool)> = published
                .iter()
                .filter(|video| video.owner != *member)
                .map(|video| (video, stage == Some(video.owner) && stage_source == Some(video.source)))
                .collect();
            ranked.sort_by_key(|(_, on_stage)| !on_stage);
            let candidates: Vec<Source> = ranked
                .iter()
                .map(|(video, on_stage)| Source {
                    on_stage: *on_stage,
                    requested_height: receiver
                        .requests
                        .iter()
                        .find(|(asked, _)| *asked == video.owner)
                        .map(|(_, height)| *height),
                    rates: video.rates,
                    current: receiver
                        .egress
                        .iter()
                        .find(|egress| egress.from == video.owner && egress.source == video.source)
                        .and_then(|egress| egress.current),
                })
                .collect();
            // The whole estimate is the budget. Forwarded media is not paced: a keyframe goes out at once, and
            // the estimator's delay signal lowers the estimate if bursts overrun the link.
            let limits =
                Limits { budget: receiver.estimate, last_n: self.config.last_n, top_height: self.config.top_height };
            let allocation = allocator::allocate(&candidates, limits);
            tracing::debug!(
                participant = member.0,
                estimate = receiver.estimate,
                rate = allocation.rate,
                next_step = allocation.next_step,
                ideal = allocation.ideal,
                layers = ?allocation.layers,
                "allocated"
            );
            for ((video, _), layer) in ranked.iter().zip(&allocation.layers) {
                if let Some(egress) = receiver
                    .egress
                    .iter_mut()
                    .find(|egress| egress.from == video.owner && egress.source == video.source)
                {
                    egress.target = *layer;
                    if layer.is_none() && egress.current.is_some() {
                        egress.current = None;
                        egress.rewriter.stop();
                    }
                    if egress.target != egress.current
                        && let Some(layer) = egress.target
                    {
                        self.keyframes.push((PeerKey { room: room_id, participant: video.owner }, video.source, layer));
                    }
                }
            }
            // While a step up does not fit, sustain its rate (padding if need be): the estimate grows only so far
            // above what is sent. Once everything wanted fits, pad nothing: a padding packet costs a timer pass
            // and a datagram, and sustaining what was sent padded about 8 % of the datagrams of three meetings of ten.
            // Probe a quarter above what the tiles want either way (an estimate only grows as far as it is probed),
            // not toward everyone's top layer: str0m probes every 5 s at twice that rate, for every receiver.
            let audio = AUDIO_ALLOWANCE * ranked.len() as u64;
            let wanted = allocation.ideal.max(allocation.next_step);
            let sustain = if allocation.next_step > allocation.rate { allocation.next_step } else { 0 };
            receiver.rtc.bwe().set_bitrate(Bitrate::bps(sustain), Bitrate::bps(wanted + wanted / 4 + audio));
        }
        self.send_keyframe_requests(now);
        self.forward(now);
    }
}

/// Where a datagram from a new address goes.
enum Flow {
    /// A participant's session (its ICE check named it).
    Session(PeerKey),
    /// A reachability probe, answered.
    Probe,
    /// Nobody's.
    Unknown,
}

/// A published video track, for allocation.
struct Published {
    owner: ParticipantId,
    source: TrackSource,
    rates: [Option<u64>; 3],
}

#[cfg(test)]
mod tests;
