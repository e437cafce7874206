//! The light media stack: str0m in RTP mode, one UDP socket and one task per bot, no interceptors and no
//! bandwidth estimation of its own, so that one machine can drive the customer's scale and the figures measure
//! the SFU rather than the load generator. It sends the same payloads and feeds the same stats as the
//! webrtc-rs stack, which stays the conformance check (browser-like RTX, NACK and transport-cc interceptors).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_media::batch_io::BatchSocket;
use convene_signal::{ClientMessage, MediaKind, TrackInfo};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot, watch};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

use crate::bot::{BotError, Negotiation, Shared};
use crate::media::{AudioSource, MediaOptions, RIDS, VideoSource, now_us, ticks};
use crate::stats::Received;

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

/// What a bot publishes, once the node answered its offer.
struct Published {
    audio: Option<(Mid, Pt)>,
    video: Option<(Mid, Pt)>,
}

/// A bot's media session: the str0m instance and what the driver knows about it.
struct Session {
    rtc: Rtc,
    local: SocketAddr,
    shared: Arc<Shared>,
    state: watch::Sender<RTCPeerConnectionState>,
    pending: Option<SdpPendingOffer>,
    /// The m-lines the bot publishes on, before the answer names their payload types.
    offered: (Option<Mid>, Option<Mid>),
    published: Option<Published>,
    /// Received streams already announced to the recorder.
    receiving: HashSet<Ssrc>,
    /// What the bot publishes: a microphone, a camera.
    audio: bool,
    video: bool,
    simulcast: bool,
}

/// Runs a bot's media until it is cancelled or fails: negotiation steps in order, the socket, str0m's timers
/// and the sources' ticks, all on this one task.
pub(crate) async fn drive(
    shared: Arc<Shared>,
    options: MediaOptions,
    state: watch::Sender<RTCPeerConnectionState>,
    mut steps: mpsc::Receiver<Negotiation>,
    offered: oneshot::Sender<Result<(), BotError>>,
) {
    let mut offered = Some(offered);
    let (mut session, mut socket) = match Session::open(shared.clone(), state, &options) {
        Ok(opened) => opened,
        Err(error) => {
            if let Some(offered) = offered.take() {
                let _ = offered.send(Err(error.clone()));
            }
            shared.end(error);
            return;
        }
    };
    let mut video = options.video.clone().map(|profile| VideoSource::new(profile, &options));
    let mut video_ticks = ticks(video.as_ref().map_or(Duration::from_secs(1), VideoSource::period));
    let mut audio = options.audio.then(AudioSource::new);
    let mut audio_ticks = ticks(AudioSource::PERIOD);
    let mut started = false;
    let cancel = shared.cancel.clone();
    let result: Result<(), BotError> = loop {
        let due = match session.drain(&mut socket) {
            Ok(due) => due,
            Err(error) => break Err(error),
        };
        let sending = session.published.is_some() && session.rtc.is_connected();
        let step = tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            readable = socket.readable() => {
                if let Err(error) = readable.map_err(BotError::from).and_then(|()| session.receive_batch(&mut socket)) {
                    break Err(error);
                }
                None
            }
            step = steps.recv() => match step {
                Some(step) => Some(step),
                None => break Ok(()),
            },
            _ = tokio::time::sleep_until(due.into()) => {
                if let Err(error) = session.rtc.handle_input(Input::Timeout(Instant::now())) {
                    break Err(error.into());
                }
                None
            }
            _ = video_ticks.tick(), if sending && video.is_some() => {
                if let Some(source) = video.as_mut() { session.write_video(source); }
                None
            }
            _ = audio_ticks.tick(), if sending && audio.is_some() => {
                if let Some(source) = audio.as_mut() { session.write_audio(source); }
                None
            }
        };
        let Some(step) = step else { continue };
        let result = match step {
            Negotiation::Start if !started => {
                started = true;
                let result = session.offer().await;
                if let Some(offered) = offered.take() {
                    let _ = offered.send(result.clone());
                }
                result
            }
            Negotiation::Start => Ok(()),
            Negotiation::Answer(sdp) => session.accept_answer(&sdp),
            // As the webrtc-rs stack: the node withdraws an offer that crosses ours and offers again later.
            Negotiation::Offer { .. } if session.pending.is_some() => Ok(()),
            Negotiation::Offer { sdp, tracks } => session.answer(&sdp, tracks).await,
        };
        if let Err(error) = result {
            break Err(error);
        }
    };
    let _ = session.state.send(RTCPeerConnectionState::Closed);
    match result {
        Ok(()) | Err(BotError::Left) => {}
        Err(error) => {
            tracing::warn!(%error, "light bot failed");
            shared.end(error);
        }
    }
    session.rtc.disconnect();
}

impl Session {
    fn open(
        shared: Arc<Shared>,
        state: watch::Sender<RTCPeerConnectionState>,
        options: &MediaOptions,
    ) -> Result<(Self, BatchSocket), BotError> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let socket = BatchSocket::new(socket)?;
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(|error| BotError::WebRtc(error.to_string()))?;
        rtc.add_local_candidate(candidate);
        let session = Self {
            rtc,
            local,
            shared,
            state,
            pending: None,
            offered: (None, None),
            published: None,
            receiving: HashSet::new(),
            audio: options.audio,
            video: options.video.is_some(),
            simulcast: options.video.as_ref().is_some_and(|video| video.layers.len() > 1),
        };
        Ok((session, socket))
    }

    /// The bot's first offer: its microphone and camera (three simulcast layers, or one), send-only; nothing
    /// when it publishes neither.
    async fn offer(&mut self) -> Result<(), BotError> {
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
        let Some((offer, pending)) = change.apply() else { return Ok(()) };
        self.offered = (audio, video);
        self.pending = Some(pending);
        let sdp = offer.to_sdp_string();
        self.shared
            .outgoing
            .send(ClientMessage::Offer { sdp, screen: None, publish_only: false })
            .await
            .map_err(|_| BotError::Left)
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

    async fn answer(&mut self, sdp: &str, tracks: Vec<TrackInfo>) -> Result<(), BotError> {
        if let Ok(mut mapping) = self.shared.tracks.lock() {
            *mapping = tracks;
        }
        let offer = SdpOffer::from_sdp_string(sdp)?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?;
        let sdp = answer.to_sdp_string();
        self.shared.outgoing.send(ClientMessage::Answer { sdp }).await.map_err(|_| BotError::Left)
    }

    /// Reads one batch of datagrams (one system call). In RTP mode str0m holds a received packet only until
    /// the next `poll_output`, so each datagram's output is taken before the next goes in.
    fn receive_batch(&mut self, socket: &mut BatchSocket) -> Result<(), BotError> {
        let mut replies = Vec::new();
        let mut failure = None;
        socket.receive(|source, contents| {
            let Ok(contents) = contents.try_into() else { return };
            let receive = Receive { proto: Protocol::Udp, source, destination: self.local, contents };
            if let Err(error) = self.rtc.handle_input(Input::Receive(Instant::now(), receive)) {
                tracing::debug!(%error, "a datagram the light bot could not take");
            }
            if let Err(error) = self.poll(|destination, contents| replies.push((destination, contents.to_vec()))) {
                failure.get_or_insert(error);
            }
        })?;
        for (destination, contents) in replies {
            socket.send(destination, &contents);
        }
        socket.flush();
        failure.map_or(Ok(()), Err)
    }

    /// Sends what str0m has to send (runs to one destination in one system call) and takes its events;
    /// returns when str0m next wants time.
    fn drain(&mut self, socket: &mut BatchSocket) -> Result<Instant, BotError> {
        let due = self.poll(|destination, contents| socket.send(destination, contents));
        socket.flush();
        due
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
                    self.shared.send.keyframe_asked(layer);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn record(&mut self, packet: &RtpPacket) {
        let ssrc = packet.header.ssrc;
        let Some(mid) = self.rtc.direct_api().stream_rx(&ssrc).map(|stream| stream.mid()) else { return };
        let Some(kind) = self.rtc.media(mid).map(|media| media.kind()) else { return };
        let kind = if kind.is_audio() { MediaKind::Audio } else { MediaKind::Video };
        let mid = mid.to_string();
        let Ok(mut recorder) = self.shared.recorder.lock() else { return };
        if self.receiving.insert(ssrc) {
            recorder.start_track(&mid, "", kind, *ssrc);
        }
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
                now_us: now_us(),
            },
        );
    }

    fn write_video(&mut self, source: &mut VideoSource) {
        let Some((mid, pt)) = self.published.as_ref().and_then(|published| published.video) else { return };
        let now = Instant::now();
        for frame in source.next_frames(&self.shared.send) {
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
                source.keyframe_written(frame.layer, &self.shared.send);
            }
        }
    }

    fn write_audio(&mut self, source: &mut AudioSource) {
        let Some((mid, pt)) = self.published.as_ref().and_then(|published| published.audio) else { return };
        let packet = source.next_packet(&self.shared.send);
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
