//! The light media stack: str0m in RTP mode, one UDP socket per bot, no interceptors and no bandwidth
//! estimation of its own, and many bots' sessions on each of a few threads ([`hub`]), so that one machine can
//! drive the customer's scale and the figures measure the SFU rather than the load generator. It sends the
//! same payloads and feeds the same stats as the webrtc-rs stack, which stays the conformance check
//! (browser-like RTX, NACK and transport-cc interceptors). A session serves Convene's bots and Janus's alike:
//! it speaks SDP, and the bot around it speaks the SFU's signalling.

mod hub;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_media::batch_io::BatchSocket;
use convene_signal::{ClientMessage, MediaKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot, watch};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

use crate::bot::{BotError, Negotiation, Shared};
use crate::media::{AudioSource, MediaOptions, RIDS, SendShared, VideoSource, micros, now_us, since_epoch};
use crate::stats::{Received, Recorder};

impl From<str0m::RtcError> for BotError {
    fn from(error: str0m::RtcError) -> Self {
        Self::WebRtc(error.to_string())
    }
}

/// The bot's own UDP socket failed.
impl From<std::io::Error> for BotError {
    fn from(error: std::io::Error) -> Self {
        Self::WebRtc(format!("the bot's socket failed: {error}"))
    }
}

impl From<str0m::error::SdpError> for BotError {
    fn from(error: str0m::error::SdpError) -> Self {
        Self::Protocol(format!("unreadable SDP: {error}"))
    }
}

/// What a light session shares with the bot it serves (Convene's or Janus's): where what it receives is
/// recorded, what its sources share with the bot, and how a failure on the media thread ends the bot.
pub(crate) struct SessionOwner {
    pub(crate) recorder: Arc<Mutex<Recorder>>,
    pub(crate) send: Arc<SendShared>,
    /// Ends the bot once: the first reason sticks.
    pub(crate) end: Box<dyn Fn(BotError) + Send>,
}

/// A negotiation step for a session; each answers the SDP to send the SFU, if any.
pub(crate) enum Step {
    /// Offer what the bot publishes (once; nothing when it publishes nothing).
    Offer,
    /// Take the SFU's answer to that offer.
    Accept(String),
    /// Answer the SFU's offer (nothing when it crosses the bot's own pending offer).
    Answer(String),
}

/// A light session on a media thread, as the bot's tasks hold it: cloned freely, closed when the last clone
/// is dropped.
#[derive(Clone)]
pub(crate) struct LightPeer(Arc<hub::SessionHandle>);

impl LightPeer {
    /// Opens a session that publishes what `options` say, on a socket of its own at `address` (a loopback
    /// address the SFU's candidates can reach); `state` follows its connection.
    pub(crate) fn open(
        owner: SessionOwner,
        address: Ipv4Addr,
        options: &MediaOptions,
        state: watch::Sender<RTCPeerConnectionState>,
    ) -> Result<Self, BotError> {
        let session = Session::open(owner, address, state, options)?;
        Ok(Self(Arc::new(hub::open(session)?)))
    }

    /// Runs a step on the session's thread. An error has already ended the session, and the bot with it.
    pub(crate) async fn negotiate(&self, step: Step) -> Result<Option<String>, BotError> {
        self.0.negotiate(step).await
    }
}

/// What a bot publishes, once the node answered its offer.
struct Published {
    audio: Option<(Mid, Pt)>,
    video: Option<(Mid, Pt)>,
}

/// A bot's media session on a media thread of the [`hub`]: its peer, socket and sources.
struct Session {
    peer: Peer,
    socket: BatchSocket<std::net::UdpSocket>,
    /// When str0m next wants time.
    rtc_due: Instant,
    /// Something happened since str0m's output was last taken.
    touched: bool,
    /// When the last datagram read arrived: arrivals handed to str0m never go back in time.
    last_arrival: Instant,
    started: bool,
    camera: Option<Source<VideoSource>>,
    microphone: Option<Source<AudioSource>>,
}

/// The str0m instance and what the bot knows about its negotiation and streams.
struct Peer {
    rtc: Rtc,
    local: SocketAddr,
    owner: SessionOwner,
    state: watch::Sender<RTCPeerConnectionState>,
    pending: Option<SdpPendingOffer>,
    /// The m-lines the bot publishes on, before the answer names their payload types.
    offered: (Option<Mid>, Option<Mid>),
    published: Option<Published>,
    /// Received streams already announced to the recorder, with their m-line and kind (looked up once, not
    /// for every packet).
    receiving: HashMap<Ssrc, (Mid, MediaKind)>,
    /// When the kernel received the datagram being read, in microseconds since the UNIX epoch: a packet's
    /// delay ends there, not when this thread came round to it.
    arrived_us: Option<u64>,
    /// What the bot publishes: a microphone, a camera.
    audio: bool,
    video: bool,
    simulcast: bool,
}

/// A source and when it next gives media: from when the bot can send, once a period, never making up late
/// ticks in a burst (a slow machine sends fewer frames, like a real encoder).
struct Source<S> {
    source: S,
    period: Duration,
    next: Option<Instant>,
}

impl<S> Source<S> {
    fn new(source: S, period: Duration) -> Self {
        Self { source, period, next: None }
    }

    /// When the next tick is due; the first as soon as the bot can send.
    fn due(&self, now: Instant) -> Instant {
        self.next.unwrap_or(now)
    }

    /// Whether a tick is due at `now`, and if so the one after is set.
    fn tick(&mut self, now: Instant) -> bool {
        let next = self.due(now);
        if next > now {
            return false;
        }
        let following = next + self.period;
        self.next = Some(if following > now { following } else { now + self.period });
        true
    }
}

/// Runs a bot's negotiation until it is cancelled or fails: each step runs on the session's media thread,
/// and what it answers goes to the node from here.
pub(crate) async fn drive(
    shared: Arc<Shared>,
    options: MediaOptions,
    state: watch::Sender<RTCPeerConnectionState>,
    mut steps: mpsc::Receiver<Negotiation>,
    offered: oneshot::Sender<Result<(), BotError>>,
) {
    let mut offered = Some(offered);
    let owner = SessionOwner {
        recorder: shared.recorder.clone(),
        send: shared.send.clone(),
        end: Box::new({
            let shared = shared.clone();
            move |error| shared.end(error)
        }),
    };
    let session = match LightPeer::open(owner, Ipv4Addr::LOCALHOST, &options, state) {
        Ok(session) => session,
        Err(error) => {
            if let Some(offered) = offered.take() {
                let _ = offered.send(Err(error.clone()));
            }
            shared.end(error);
            return;
        }
    };
    let cancel = shared.cancel.clone();
    loop {
        let step = tokio::select! {
            _ = cancel.cancelled() => return,
            step = steps.recv() => match step {
                Some(step) => step,
                None => return,
            },
        };
        let first_offer = matches!(step, Negotiation::Start) && offered.is_some();
        let result = match convene_step(&shared, &session, step).await {
            Ok(Some(message)) => shared.outgoing.send(message).await.map_err(|_| BotError::Left),
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        if first_offer && let Some(offered) = offered.take() {
            let _ = offered.send(result.clone());
        }
        if result.is_err() {
            // Dropping the handle ends the session; an error on the media thread ended the bot there.
            return;
        }
    }
}

/// A step of Convene's negotiation on the session, and the message that answers it.
async fn convene_step(
    shared: &Shared,
    session: &LightPeer,
    step: Negotiation,
) -> Result<Option<ClientMessage>, BotError> {
    Ok(match step {
        Negotiation::Start => session.negotiate(Step::Offer).await?.map(|sdp| ClientMessage::Offer {
            sdp,
            screen: None,
            publish_only: false,
        }),
        Negotiation::Answer(sdp) => {
            session.negotiate(Step::Accept(sdp)).await?;
            None
        }
        Negotiation::Offer { sdp, tracks } => {
            let answer = session.negotiate(Step::Answer(sdp)).await?;
            if answer.is_some()
                && let Ok(mut mapping) = shared.tracks.lock()
            {
                *mapping = tracks;
            }
            answer.map(|sdp| ClientMessage::Answer { sdp })
        }
    })
}

impl Session {
    fn open(
        owner: SessionOwner,
        address: Ipv4Addr,
        state: watch::Sender<RTCPeerConnectionState>,
        options: &MediaOptions,
    ) -> Result<Self, BotError> {
        let socket = std::net::UdpSocket::bind((address, 0))?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let socket = BatchSocket::over(socket)?;
        let now = Instant::now();
        let mut rtc =
            Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).enable_vp8(true).build(now);
        let candidate = Candidate::host(local, "udp").map_err(|error| BotError::WebRtc(error.to_string()))?;
        rtc.add_local_candidate(candidate);
        let camera = options.video.clone().map(|profile| {
            let source = VideoSource::new(profile, options);
            let period = source.period();
            Source::new(source, period)
        });
        let peer = Peer {
            rtc,
            local,
            owner,
            state,
            pending: None,
            offered: (None, None),
            published: None,
            receiving: HashMap::new(),
            arrived_us: None,
            audio: options.audio,
            video: options.video.is_some(),
            simulcast: options.video.as_ref().is_some_and(|video| video.layers.len() > 1),
        };
        Ok(Self {
            peer,
            socket,
            rtc_due: now,
            touched: true,
            last_arrival: now,
            started: false,
            camera,
            microphone: options.audio.then(|| Source::new(AudioSource::new(), AudioSource::PERIOD)),
        })
    }

    /// When the session next has something to do: str0m's timer, or a source's tick once the bot can send.
    fn due(&self, now: Instant) -> Instant {
        let mut due = self.rtc_due;
        if self.peer.sending() {
            due =
                [self.camera.as_ref().map(|camera| camera.due(now)), self.microphone.as_ref().map(|mic| mic.due(now))]
                    .into_iter()
                    .flatten()
                    .fold(due, Instant::min);
        }
        due
    }

    /// Runs a negotiation step; answers the SDP for the SFU, if any.
    fn negotiate(&mut self, step: Step) -> Result<Option<String>, BotError> {
        self.touched = true;
        match step {
            Step::Offer if !self.started => {
                self.started = true;
                self.peer.offer()
            }
            Step::Offer => Ok(None),
            Step::Accept(sdp) => self.peer.accept_answer(&sdp).map(|()| None),
            // As the webrtc-rs stack: Convene's node withdraws an offer that crosses ours and offers again later.
            Step::Answer(_) if self.peer.pending.is_some() => Ok(None),
            Step::Answer(sdp) => self.peer.answer(&sdp).map(Some),
        }
    }

    /// Runs what is due at `now` (str0m's timer, the sources' ticks) and sends what str0m then has to send.
    fn run_due(&mut self, now: Instant) -> Result<(), BotError> {
        let Self { peer, socket, rtc_due, touched, camera, microphone, .. } = self;
        if *rtc_due <= now {
            peer.rtc.handle_input(Input::Timeout(now))?;
            *touched = true;
        }
        if peer.sending() {
            if let Some(camera) = camera.as_mut()
                && camera.tick(now)
            {
                peer.write_video(&mut camera.source);
                *touched = true;
            }
            if let Some(microphone) = microphone.as_mut()
                && microphone.tick(now)
            {
                peer.write_audio(&mut microphone.source);
                *touched = true;
            }
        }
        if std::mem::take(touched) {
            *rtc_due = peer.poll(|destination, contents| socket.send(destination, contents))?;
            socket.flush();
        }
        Ok(())
    }

    /// Reads what waits on the socket, up to `batches` system calls; answers whether more may be waiting.
    /// In RTP mode str0m holds a received packet only until the next `poll_output`, so each datagram's output
    /// is taken before the next goes in; replies (receiver reports, NACKs) go out after the batch.
    fn read(&mut self, batches: usize) -> Result<bool, BotError> {
        let Self { peer, socket, rtc_due, last_arrival, .. } = self;
        let mut replies = Vec::new();
        let mut failure = None;
        let mut more = true;
        for _ in 0..batches {
            let read = socket.receive_timed(|source, contents, arrived| {
                let Ok(contents) = contents.try_into() else { return };
                peer.arrived_us = arrived.map(micros);
                *last_arrival = arrival(Instant::now(), arrived).max(*last_arrival);
                let receive = Receive { proto: Protocol::Udp, source, destination: peer.local, contents };
                if let Err(error) = peer.rtc.handle_input(Input::Receive(*last_arrival, receive)) {
                    tracing::debug!(%error, "a datagram the light bot could not take");
                }
                match peer.poll(|destination, contents| replies.push((destination, contents.to_vec()))) {
                    Ok(due) => *rtc_due = due,
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            })?;
            if read == 0 {
                more = false;
                break;
            }
        }
        peer.arrived_us = None;
        for (destination, contents) in replies {
            socket.send(destination, &contents);
        }
        socket.flush();
        failure.map_or(Ok(more), Err)
    }

    /// Ends the session: a failure ends the bot with its reason.
    fn finish(mut self, result: Result<(), BotError>) {
        let _ = self.peer.state.send(RTCPeerConnectionState::Closed);
        match result {
            Ok(()) | Err(BotError::Left) => {}
            Err(error) => {
                tracing::warn!(%error, "light bot failed");
                (self.peer.owner.end)(error);
            }
        }
        self.peer.rtc.disconnect();
    }
}

impl Peer {
    fn sending(&self) -> bool {
        self.published.is_some() && self.rtc.is_connected()
    }

    /// The bot's first offer: its microphone and camera (three simulcast layers, or one), send-only; nothing
    /// when it publishes neither.
    fn offer(&mut self) -> Result<Option<String>, BotError> {
        let mut change = self.rtc.sdp_api();
        let audio =
            self.audio.then(|| change.add_media(str0m::media::MediaKind::Audio, Direction::SendOnly, None, None, None));
        let simulcast = self.simulcast.then(|| {
            let mut simulcast = Simulcast::new();
            RIDS.iter().for_each(|rid| simulcast.add_send_layer(SimulcastLayer::new(rid)));
            simulcast
        });
        let video = self
            .video
            .then(|| change.add_media(str0m::media::MediaKind::Video, Direction::SendOnly, None, None, simulcast));
        let Some((offer, pending)) = change.apply() else { return Ok(None) };
        self.offered = (audio, video);
        self.pending = Some(pending);
        Ok(Some(offer.to_sdp_string()))
    }

    fn accept_answer(&mut self, sdp: &str) -> Result<(), BotError> {
        let Some(pending) = self.pending.take() else {
            return Err(BotError::Protocol("an answer without an offer".to_owned()));
        };
        let answer = SdpAnswer::from_sdp_string(sdp)?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        let payload_type = |rtc: &Rtc, mid: Option<Mid>| {
            let mid = mid?;
            let pt = *rtc.media(mid)?.remote_pts().first()?;
            Some((mid, pt))
        };
        self.published = Some(Published {
            audio: payload_type(&self.rtc, self.offered.0),
            video: payload_type(&self.rtc, self.offered.1),
        });
        Ok(())
    }

    fn answer(&mut self, sdp: &str) -> Result<String, BotError> {
        let offer = SdpOffer::from_sdp_string(sdp)?;
        Ok(self.rtc.sdp_api().accept_offer(offer)?.to_sdp_string())
    }

    fn poll(&mut self, mut transmit: impl FnMut(SocketAddr, &[u8])) -> Result<Instant, BotError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(due) => return Ok(due),
                Output::Transmit(out) => transmit(out.destination, &out.contents),
                Output::Event(event) => self.event(event)?,
            }
        }
    }

    fn event(&mut self, event: Event) -> Result<(), BotError> {
        match event {
            Event::Connected => {
                let _ = self.state.send(RTCPeerConnectionState::Connected);
            }
            // ICE may recover (a loaded machine misses consent checks for a while); a node that is gone ends the
            // bot through its signalling instead.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                let _ = self.state.send(RTCPeerConnectionState::Disconnected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Connected | IceConnectionState::Completed)
                if self.rtc.is_connected() =>
            {
                let _ = self.state.send(RTCPeerConnectionState::Connected);
            }
            Event::RtpPacket(packet) => self.record(&packet),
            Event::KeyframeRequest(request) => {
                let layer = request.rid.map_or(Some(0), |rid| RIDS.iter().position(|r| rid == Rid::from(*r)));
                if let Some(layer) = layer {
                    self.owner.send.keyframe_asked(layer);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn record(&mut self, packet: &RtpPacket) {
        let ssrc = packet.header.ssrc;
        let Ok(mut recorder) = self.owner.recorder.lock() else { return };
        let (mid, kind) = match self.receiving.get(&ssrc) {
            Some(track) => *track,
            None => {
                let Some(mid) = self.rtc.direct_api().stream_rx(&ssrc).map(|stream| stream.mid()) else { return };
                let Some(kind) = self.rtc.media(mid).map(|media| media.kind()) else { return };
                let kind = if kind.is_audio() { MediaKind::Audio } else { MediaKind::Video };
                self.receiving.insert(ssrc, (mid, kind));
                recorder.start_track(&mid, "", kind, *ssrc);
                (mid, kind)
            }
        };
        recorder.record(
            &mid,
            "",
            Received {
                kind,
                ssrc: *ssrc,
                sequence_number: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                payload: &packet.payload,
                audio_level: packet.header.ext_vals.audio_level.map(i8::unsigned_abs),
                marker: packet.header.marker,
                now_us: self.arrived_us.unwrap_or_else(now_us),
            },
        );
    }

    fn write_video(&mut self, source: &mut VideoSource) {
        let Some((mid, pt)) = self.published.as_ref().and_then(|published| published.video) else { return };
        let now = Instant::now();
        for frame in source.next_frames(&self.owner.send) {
            let rid = self.simulcast.then(|| Rid::from(RIDS[frame.layer]));
            let mut api = self.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, rid) else { continue };
            let last = frame.packets.len().saturating_sub(1);
            for (index, (sequence, payload)) in frame.packets.into_iter().enumerate() {
                let write = RtpWrite::new(pt, sequence.into(), frame.timestamp, now, &payload[..])
                    .marker(index == last)
                    .nackable(true);
                stream.write_rtp(write);
            }
            if frame.keyframe {
                source.keyframe_written(frame.layer, &self.owner.send);
            }
        }
    }

    fn write_audio(&mut self, source: &mut AudioSource) {
        let Some((mid, pt)) = self.published.as_ref().and_then(|published| published.audio) else { return };
        let packet = source.next_packet(&self.owner.send);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else { return };
        let level = -i8::try_from(packet.level).unwrap_or(127);
        let ext_vals = ExtensionValues {
            audio_level: Some(level),
            voice_activity: Some(packet.speaking),
            ..ExtensionValues::default()
        };
        let write = RtpWrite::new(pt, packet.sequence.into(), packet.timestamp, Instant::now(), &packet.payload[..])
            .marker(packet.marker)
            .ext_vals(ext_vals);
        stream.write_rtp(write);
    }
}

/// When a datagram the kernel stamped `stamp` (wall clock) arrived, on str0m's monotonic clock read `now`:
/// the arrival times the bot reports in transport-wide feedback are then when packets came, not when a busy
/// thread came round to them, which the sender's delay-based estimate would take for a congested network.
fn arrival(now: Instant, stamp: Option<Duration>) -> Instant {
    let waited = stamp.map_or(Duration::ZERO, |stamp| since_epoch().saturating_sub(stamp));
    now.checked_sub(waited).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_arrived_when_the_kernel_stamped_it_never_in_the_future() {
        let now = Instant::now();
        let waited = arrival(now, Some(since_epoch() - Duration::from_millis(30)));
        assert!((now - waited).abs_diff(Duration::from_millis(30)) < Duration::from_millis(5), "{:?}", now - waited);
        assert_eq!(arrival(now, None), now, "no stamp: now");
        assert_eq!(arrival(now, Some(since_epoch() + Duration::from_secs(1))), now, "a stamp ahead of the clock");
    }

    #[test]
    fn a_source_ticks_once_a_period_from_its_first_and_never_makes_up_late_ticks_in_a_burst() {
        let period = Duration::from_millis(20);
        let mut source = Source::new((), period);
        let start = Instant::now();
        assert_eq!(source.due(start), start, "due as soon as the bot can send");
        assert!(source.tick(start));
        assert!(!source.tick(start), "once per period");
        assert!(!source.tick(start + period / 2));
        assert!(source.tick(start + period));
        // Three periods late: one tick, and the next a whole period later.
        let late = start + period * 4;
        assert!(source.tick(late));
        assert!(!source.tick(late + period / 2));
        assert_eq!(source.due(late), late + period);
    }
}
