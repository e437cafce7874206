//! One participant's WebRTC session with the node: the str0m `Rtc`, the tracks it publishes (ingress) and
//! the tracks it receives from the others (egress), and the SDP negotiation that adds and removes the
//! latter. The node is the polite side: a client offer cancels the node's own offer in flight, which is made
//! again after the client's is answered.

use std::time::{Duration, Instant};

use convene_signal::{ParticipantId, TrackInfo, TrackSource};
use str0m::{
    Input, Rtc, RtcError,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    format::CodecSpec,
    media::{Direction, MediaKind, Mid, Pt, Rid},
};

use super::{allocator::Layer, rewrite::Rewriter};

/// A layer's rate is measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_millis(500);
/// A layer with no packet for this long is not arriving (the publisher stopped it, or lost bandwidth).
const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Keyframe requests for one layer go upstream at most this often.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);
/// Datagrams a participant may send per second: a 1080p publisher with three layers, audio, RTX and RTCP
/// sends about 1,000, so this is four times that.
const INBOUND_PER_SECOND: u32 = 4_000;
/// The burst allowed on top (a keyframe on every layer at once).
const INBOUND_BURST: u32 = 1_000;
/// How long a forwarded video packet is kept for a NACK: a second, the floor of libwebrtc's own sender (str0m
/// keeps three). A later resend comes after the receiver gave up on its frame, and the shorter cache is a
/// third of the memory every forwarded packet is written into.
const RESEND_WINDOW: Duration = Duration::from_secs(1);
/// At most this many packets in that window: str0m's default, a second of 1080p's top layer.
const RESEND_PACKETS: usize = 1_000;
/// Queued resends are dropped past this share of what a stream sends (str0m's default).
const RESEND_RATIO_CAP: f32 = 0.15;

/// What one participant may publish: a microphone, and a camera and a screen. More would fan out to every
/// member of the room (and stall the shard other tenants' rooms share), so an offer with more is refused.
const MAX_AUDIO_SENT: usize = 1;
const MAX_VIDEO_SENT: usize = 2;
/// Media sections an offer may have at all: its own three, and one per track it receives from up to a few
/// hundred others. Bounds the work a single offer causes.
const MAX_MEDIA_SECTIONS: usize = 1024;

/// Refuses an offer that publishes more than one microphone, camera and screen, or has absurdly many
/// sections, before it is parsed. A section sends unless it is stopped (port 0) or its direction says
/// otherwise (`sendrecv` is the default, at session or media level).
fn check_publications(sdp: &str) -> Result<(), NegotiationError> {
    let direction_of = |line: &str| match line.trim_end() {
        "a=sendrecv" | "a=sendonly" => Some(true),
        "a=recvonly" | "a=inactive" => Some(false),
        _ => None,
    };
    let mut session_sends = true;
    // Each section: its kind and whether it sends.
    let mut sections: Vec<(&str, Option<bool>)> = Vec::new();
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            if sections.len() == MAX_MEDIA_SECTIONS {
                return Err(NegotiationError::Refused(format!("at most {MAX_MEDIA_SECTIONS} media sections")));
            }
            let mut fields = media.split(' ');
            let kind = fields.next().unwrap_or_default();
            // Port 0 is a stopped section (a screen share that ended): it sends nothing.
            let stopped = fields.next() == Some("0");
            sections.push((kind, stopped.then_some(false)));
        } else if let Some(sends) = direction_of(line) {
            match sections.last_mut() {
                Some((_, Some(false))) => {}
                Some((_, direction)) => *direction = Some(sends),
                None => session_sends = sends,
            }
        }
    }
    let sent =
        |kind: &str| sections.iter().filter(|(media, sends)| *media == kind && sends.unwrap_or(session_sends)).count();
    if sent("audio") > MAX_AUDIO_SENT || sent("video") > MAX_VIDEO_SENT {
        return Err(NegotiationError::Refused("publish at most one microphone, one camera and one screen".to_owned()));
    }
    Ok(())
}

/// A token bucket over one participant's inbound datagrams.
#[derive(Debug, Clone, Copy)]
pub(super) struct InboundBudget {
    tokens: u32,
    refilled: Instant,
}

impl InboundBudget {
    pub(super) fn new(now: Instant) -> Self {
        Self { tokens: INBOUND_BURST, refilled: now }
    }

    /// Takes one datagram's token; false when the participant is over budget.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned =
            u32::try_from(elapsed.as_micros() * u128::from(INBOUND_PER_SECOND) / 1_000_000).unwrap_or(u32::MAX);
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(INBOUND_BURST);
            self.refilled = now;
        }
        match self.tokens.checked_sub(1) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }
}

/// One simulcast layer as it arrives.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LayerIn {
    window_start: Option<Instant>,
    window_bytes: u64,
    rate: u64,
    last_packet: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

impl LayerIn {
    fn record(&mut self, bytes: usize, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
            self.rate = self.window_bytes.saturating_mul(8_000_000) / micros;
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
        self.last_packet = Some(now);
    }

    /// The measured rate in bits per second while the layer arrives.
    pub(super) fn rate(&self, now: Instant) -> Option<u64> {
        let arriving = self.last_packet.is_some_and(|last| now.saturating_duration_since(last) < LAYER_TIMEOUT);
        // Before the first window closes, count the layer as cheap rather than unknown.
        arriving.then_some(self.rate.max(1))
    }

    /// Whether a keyframe may be requested now (and notes that one is).
    pub(super) fn keyframe_due(&mut self, now: Instant) -> bool {
        if self.last_keyframe_request.is_some_and(|last| now.saturating_duration_since(last) < KEYFRAME_INTERVAL) {
            return false;
        }
        self.last_keyframe_request = Some(now);
        true
    }
}

/// A track the participant publishes.
#[derive(Debug)]
pub(super) struct Ingress {
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    pub(super) source: TrackSource,
    pub(super) layers: [LayerIn; 3],
}

impl Ingress {
    pub(super) fn record(&mut self, layer: Layer, bytes: usize, now: Instant) {
        self.layers[layer.index()].record(bytes, now);
    }

    pub(super) fn rates(&self, now: Instant) -> [Option<u64>; 3] {
        self.layers.map(|layer| layer.rate(now))
    }
}

/// Where an egress track is in negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EgressState {
    /// Needs an m-line in the next offer.
    ToOpen,
    /// Offered, waiting for the answer.
    Offered(Mid),
    /// Negotiated: media flows.
    Open(Mid),
    /// Its source left: the m-line goes inactive in the next offer.
    ToStop(Mid),
    /// Offered inactive, waiting for the answer.
    Stopping(Mid),
}

/// Another participant's track this participant receives.
#[derive(Debug)]
pub(super) struct Egress {
    pub(super) from: ParticipantId,
    pub(super) source: TrackSource,
    pub(super) kind: MediaKind,
    pub(super) state: EgressState,
    pub(super) rewriter: Rewriter,
    /// The layer the allocator chose (video); `None` sends nothing.
    pub(super) target: Option<Layer>,
    /// The layer being forwarded; changes to `target` on its next keyframe.
    pub(super) current: Option<Layer>,
    /// When the last packet went out, to keep timestamps in pace across switches.
    pub(super) last_sent: Option<Instant>,
    /// Incoming payload type to outgoing, learnt per codec.
    pub(super) payload_types: Vec<(Pt, Pt)>,
    /// Whether its source left while it was being offered.
    pub(super) source_gone: bool,
    /// Packets written into it, for the log line when it ends.
    pub(super) packets: u64,
}

impl Egress {
    pub(super) fn new(from: ParticipantId, source: TrackSource, kind: MediaKind) -> Self {
        Self {
            from,
            source,
            kind,
            state: EgressState::ToOpen,
            rewriter: Rewriter::new(),
            target: None,
            current: None,
            last_sent: None,
            payload_types: Vec::new(),
            source_gone: false,
            packets: 0,
        }
    }

    /// Logs (at debug) what it carried, as it ends: a receiver missing a track is told from a sender that
    /// never sent by these lines.
    pub(super) fn log_end(&self, receiver: ParticipantId, room: super::RoomId, why: &str) {
        tracing::debug!(
            room,
            receiver = receiver.0,
            from = self.from.0,
            source = source_name(self.source),
            state = ?self.state,
            target = ?self.target,
            current = ?self.current,
            packets = self.packets,
            "{why}"
        );
    }

    /// The m-line once media can flow on it.
    pub(super) fn open_mid(&self) -> Option<Mid> {
        match self.state {
            EgressState::Open(mid) => Some(mid),
            _ => None,
        }
    }

    /// The source is gone: stop sending and take the m-line out.
    pub(super) fn close(&mut self) {
        self.target = None;
        self.current = None;
        self.rewriter.stop();
        self.state = match self.state {
            EgressState::Open(mid) => EgressState::ToStop(mid),
            EgressState::Offered(_) => {
                self.source_gone = true;
                self.state
            }
            other => other,
        };
    }
}

/// A participant's session.
pub(super) struct Peer {
    pub(super) rtc: Rtc,
    pub(super) ingress: Vec<Ingress>,
    pub(super) egress: Vec<Egress>,
    pending: Option<SdpPendingOffer>,
    /// Set once the participant's first offer is answered; the node offers only after that.
    pub(super) started: bool,
    /// The m-line the participant said carries a shared screen.
    pub(super) screen: Option<Mid>,
    /// Bandwidth estimated toward the participant, bits per second.
    pub(super) estimate: u64,
    /// Whom the participant pinned.
    pub(super) pinned: Option<ParticipantId>,
    /// Tile heights the participant asked for.
    pub(super) requests: Vec<(ParticipantId, u32)>,
    /// When the str0m session next needs time.
    pub(super) deadline: Instant,
    /// The latest time its timers ran to, a moment ahead of the shard's clock after passes asked for at once.
    pub(super) timers_ran_to: Instant,
    /// What the participant may still send.
    pub(super) inbound: InboundBudget,
    /// The participant receives no one's media: no m-line is offered to it for others' tracks.
    pub(super) publish_only: bool,
    /// NACKs each outgoing stream had reported, by m-line and RID (str0m's figures are running totals).
    nacks: Vec<(Mid, Option<Rid>, u64)>,
}

/// Negotiation went wrong; the participant is told and the session goes on as before.
#[derive(Debug, thiserror::Error)]
pub enum NegotiationError {
    /// The SDP did not parse.
    #[error("the SDP could not be read: {0}")]
    Unreadable(String),
    /// The SDP parsed but cannot be used.
    #[error("the SDP was refused: {0}")]
    Refused(String),
    /// An answer came with no offer waiting for it.
    #[error("there is no offer to answer")]
    NoOffer,
}

impl Peer {
    pub(super) fn new(rtc: Rtc, estimate: u64, now: Instant) -> Self {
        Self {
            rtc,
            ingress: Vec::new(),
            egress: Vec::new(),
            pending: None,
            started: false,
            screen: None,
            estimate,
            pinned: None,
            requests: Vec::new(),
            deadline: now,
            timers_ran_to: now,
            inbound: InboundBudget::new(now),
            publish_only: false,
            nacks: Vec::new(),
        }
    }

    /// Runs the session's timers up to `now` (time never goes back); a failure concerns this session only.
    pub(super) fn run_timers(&mut self, now: Instant, participant: ParticipantId) {
        self.timers_ran_to = self.timers_ran_to.max(now);
        if let Err(error) = self.rtc.handle_input(Input::Timeout(self.timers_ran_to)) {
            tracing::debug!(%error, participant = participant.0, "media session timer failed");
        }
    }

    /// Answers the participant's offer; a node offer in flight is dropped and made again later.
    pub(super) fn accept_offer(&mut self, sdp: &str, screen: Option<&str>) -> Result<String, NegotiationError> {
        check_publications(sdp)?;
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|error| NegotiationError::Unreadable(error.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|error| refused(&error))?;
        self.screen = screen.map(Mid::from);
        self.withdraw_offer();
        self.started = true;
        Ok(answer.to_sdp_string())
    }

    /// Forgets the node's offer waiting for an answer (the participant's own offer crossed it, or the
    /// connection that carried it dropped): what it offered is offered again.
    pub(super) fn withdraw_offer(&mut self) {
        self.pending = None;
        for egress in &mut self.egress {
            egress.state = match egress.state {
                EgressState::Offered(_) => EgressState::ToOpen,
                EgressState::Stopping(mid) => EgressState::ToStop(mid),
                other => other,
            };
        }
        self.egress.retain(|egress| !(egress.source_gone && egress.state == EgressState::ToOpen));
    }

    /// Applies the participant's answer to the node's offer.
    pub(super) fn accept_answer(&mut self, sdp: &str) -> Result<(), NegotiationError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|error| NegotiationError::Unreadable(error.to_string()))?;
        let pending = self.pending.take().ok_or(NegotiationError::NoOffer)?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|error| refused(&error))?;
        for egress in &mut self.egress {
            egress.state = match egress.state {
                EgressState::Offered(mid) if egress.source_gone => EgressState::ToStop(mid),
                EgressState::Offered(mid) => {
                    // Forwarded media leaves unpaced, as LiveKit, mediasoup and Janus send it: the allocator
                    // keeps each receiver within its estimate, and pacing only held keyframes back (probes and
                    // padding stay paced). The answer just made the m-line's stream.
                    if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
                        stream.set_unpaced(true);
                        if egress.kind == MediaKind::Video {
                            stream.set_rtx_cache(RESEND_PACKETS, RESEND_WINDOW, Some(RESEND_RATIO_CAP));
                        }
                    }
                    EgressState::Open(mid)
                }
                other => other,
            };
        }
        self.egress.retain(|egress| !matches!(egress.state, EgressState::Stopping(_)));
        Ok(())
    }

    /// Makes an offer for the egress tracks that changed, when the participant is ready for one.
    pub(super) fn offer(&mut self) -> Option<(String, Vec<TrackInfo>)> {
        if !self.started || self.pending.is_some() {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for egress in &mut self.egress {
            match egress.state {
                EgressState::ToOpen => {
                    let stream = egress.from.0.to_string();
                    let track = format!("{}-{}", egress.from.0, source_name(egress.source));
                    let mid = change.add_media(egress.kind, Direction::SendOnly, Some(stream), Some(track), None);
                    egress.state = EgressState::Offered(mid);
                }
                EgressState::ToStop(mid) => {
                    change.stop_media(mid);
                    egress.state = EgressState::Stopping(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        let tracks = self
            .egress
            .iter()
            .filter_map(|egress| match egress.state {
                EgressState::Offered(mid) | EgressState::Open(mid) if !egress.source_gone => {
                    Some(TrackInfo { mid: mid.to_string(), participant: egress.from, source: egress.source })
                }
                _ => None,
            })
            .collect();
        Some((offer.to_sdp_string(), tracks))
    }

    /// Takes a stream's running NACK total; returns how many are new.
    pub(super) fn nacks_reported(&mut self, mid: Mid, rid: Option<Rid>, total: u64) -> u64 {
        match self.nacks.iter_mut().find(|(m, r, _)| *m == mid && *r == rid) {
            Some((_, _, seen)) => {
                let new = total.saturating_sub(*seen);
                *seen = total;
                new
            }
            None => {
                self.nacks.push((mid, rid, total));
                total
            }
        }
    }

    /// The codec of an incoming payload type.
    pub(super) fn codec_of(&self, pt: Pt) -> Option<CodecSpec> {
        self.rtc.codec_config().params().iter().find(|params| params.pt() == pt).map(|params| params.spec())
    }
}

/// A session's payload type for a codec (the same parameters if it has them, else the same codec).
pub(super) fn payload_type_for(rtc: &Rtc, codec: CodecSpec) -> Option<Pt> {
    let params = rtc.codec_config().params();
    params
        .iter()
        .find(|params| params.spec() == codec)
        .or_else(|| params.iter().find(|params| params.spec().codec == codec.codec))
        .map(|params| params.pt())
}

fn refused(error: &RtcError) -> NegotiationError {
    NegotiationError::Refused(error.to_string())
}

fn source_name(source: TrackSource) -> &'static str {
    match source {
        TrackSource::Microphone => "microphone",
        TrackSource::Camera => "camera",
        TrackSource::Screen => "screen",
    }
}
