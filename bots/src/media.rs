//! The WebRTC side of a bot: the webrtc-rs API it builds peer connections with, its publication (simulcast VP8
//! and Opus, generated in real time) and the receive loops that feed the stats.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use convene_signal::MediaKind;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use webrtc::api::interceptor_registry::{configure_nack, configure_rtcp_reports, configure_twcc};
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::extension::HeaderExtension;
use webrtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCPFeedback, RTCRtpTransceiverInit};
use webrtc::sdp::extmap;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use crate::payload::{self, AUDIO_LAYER, PICTURE_ID_MODULO, Trailer, Vp8Frame};
use crate::stats::{Received, Recorder, SendStats};

/// The simulcast RIDs, lowest layer first, as the node expects them.
pub const RIDS: [&str; 3] = ["q", "h", "f"];
const VP8_PAYLOAD_TYPE: u8 = 96;
const RTX_PAYLOAD_TYPE: u8 = 97;
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Audio level (RFC 6464, -dBov) while speaking and in silence.
const LEVEL_SPEAKING: u8 = 25;
const LEVEL_SILENCE: u8 = 127;

/// One simulcast layer: its size and bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerProfile {
    /// Width in pixels (written into keyframes).
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Average bitrate of delta frames, in bits per second (keyframes are four times a delta frame).
    pub bitrate_bps: u32,
}

/// The camera a bot publishes: three simulcast layers (RIDs `q`, `h`, `f`) or one layer without simulcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoProfile {
    /// Lowest first; one entry (no simulcast) or three.
    pub layers: Vec<LayerProfile>,
}

impl VideoProfile {
    /// 720p simulcast: 180p at 0.3 Mbit/s, 360p at 0.9, 720p at 3.3.
    pub fn p720() -> Self {
        Self {
            layers: vec![
                LayerProfile { width: 320, height: 180, bitrate_bps: 300_000 },
                LayerProfile { width: 640, height: 360, bitrate_bps: 900_000 },
                LayerProfile { width: 1280, height: 720, bitrate_bps: 3_300_000 },
            ],
        }
    }

    /// 1080p simulcast: 270p at 0.5 Mbit/s, 540p at 1.5, 1080p at 7.5.
    pub fn p1080() -> Self {
        Self {
            layers: vec![
                LayerProfile { width: 480, height: 270, bitrate_bps: 500_000 },
                LayerProfile { width: 960, height: 540, bitrate_bps: 1_500_000 },
                LayerProfile { width: 1920, height: 1080, bitrate_bps: 7_500_000 },
            ],
        }
    }

    /// One layer, no simulcast.
    pub fn single(layer: LayerProfile) -> Self {
        Self { layers: vec![layer] }
    }

    pub(crate) fn is_valid(&self) -> bool {
        matches!(self.layers.len(), 1 | 3) && self.layers.iter().all(|layer| layer.bitrate_bps > 0)
    }
}

/// What a bot publishes and how.
#[derive(Debug, Clone)]
pub(crate) struct MediaOptions {
    pub(crate) video: Option<VideoProfile>,
    pub(crate) audio: bool,
    pub(crate) fps: u32,
    pub(crate) keyframe_interval: Duration,
}

/// State the media tasks share with the bot.
#[derive(Debug, Default)]
pub(crate) struct SendShared {
    pub(crate) speaking: AtomicBool,
    keyframe_wanted: [AtomicBool; 3],
    frames: [AtomicU64; 3],
    keyframes: [AtomicU64; 3],
    keyframe_requests: [AtomicU64; 3],
    packets: AtomicU64,
    bytes: AtomicU64,
    audio_packets: AtomicU64,
}

impl SendShared {
    /// The node asked for a keyframe on a layer (PLI or FIR); the next frame of that layer is one.
    pub(crate) fn keyframe_asked(&self, layer: usize) {
        if let Some(wanted) = self.keyframe_wanted.get(layer) {
            wanted.store(true, Ordering::Relaxed);
            self.keyframe_requests[layer].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> SendStats {
        let load = |counters: &[AtomicU64; 3]| counters.each_ref().map(|c| c.load(Ordering::Relaxed));
        SendStats {
            frames: load(&self.frames),
            keyframes: load(&self.keyframes),
            keyframe_requests: load(&self.keyframe_requests),
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            audio_packets: self.audio_packets.load(Ordering::Relaxed),
        }
    }
}

/// Microseconds since the UNIX epoch.
pub(crate) fn now_us() -> u64 {
    micros(since_epoch())
}

/// A time since the UNIX epoch in the microseconds the stats count in.
pub(crate) fn micros(since_epoch: Duration) -> u64 {
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}

/// The wall clock, as the kernel stamps received datagrams.
pub(crate) fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A random number (no extra dependency: the standard hasher is randomly keyed).
pub(crate) fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(now_us());
    hasher.finish()
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() }
}

fn opus() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn rtx() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: "video/rtx".to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
        rtcp_feedback: vec![],
    }
}

fn vp8() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![feedback("ccm", "fir")],
    }
}

/// The webrtc-rs API the bots build peer connections with: VP8 (with RTX) and Opus,
/// NACK, RTCP reports and transport-cc; UDP over IPv4, no mDNS, loopback candidates included (only those
/// when `loopback_only`).
pub(crate) fn build_api(loopback_only: bool) -> Result<API, webrtc::Error> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters { capability: opus(), payload_type: OPUS_PAYLOAD_TYPE, ..Default::default() },
        RTPCodecType::Audio,
    )?;
    media.register_codec(
        RTCRtpCodecParameters { capability: vp8(), payload_type: VP8_PAYLOAD_TYPE, ..Default::default() },
        RTPCodecType::Video,
    )?;
    // RTX as a browser offers it: an SFU's bandwidth probes go out as RTX padding, and webrtc-rs counts the
    // repair stream in its transport-cc feedback (it does not hand repaired packets to the track).
    media.register_codec(
        RTCRtpCodecParameters { capability: rtx(), payload_type: RTX_PAYLOAD_TYPE, ..Default::default() },
        RTPCodecType::Video,
    )?;
    for (uri, kind) in [
        (extmap::SDES_MID_URI, RTPCodecType::Audio),
        (extmap::AUDIO_LEVEL_URI, RTPCodecType::Audio),
        (extmap::SDES_MID_URI, RTPCodecType::Video),
        (extmap::SDES_RTP_STREAM_ID_URI, RTPCodecType::Video),
        (extmap::SDES_REPAIR_RTP_STREAM_ID_URI, RTPCodecType::Video),
    ] {
        media.register_header_extension(RTCRtpHeaderExtensionCapability { uri: uri.to_owned() }, kind, None)?;
    }
    let mut registry = Registry::new();
    registry = configure_nack(registry, &mut media);
    registry = configure_rtcp_reports(registry);
    registry = configure_twcc(registry, &mut media)?;

    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_network_types(vec![NetworkType::Udp4]);
    if loopback_only {
        settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    }
    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// The connection state as a watch, so tasks can wait for `Connected`.
pub(crate) fn watch_state(pc: &RTCPeerConnection) -> watch::Receiver<RTCPeerConnectionState> {
    let (tx, rx) = watch::channel(RTCPeerConnectionState::New);
    pc.on_peer_connection_state_change(Box::new(move |state| {
        tracing::debug!(?state, "bot peer connection");
        let _ = tx.send(state);
        Box::pin(async {})
    }));
    rx
}

struct VideoSend {
    profile: VideoProfile,
    tracks: Vec<Arc<TrackLocalStaticRTP>>,
    sender: Arc<RTCRtpSender>,
}

struct AudioSend {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<RTCRtpSender>,
}

/// A bot's publication: its transceivers, before the media starts flowing.
pub(crate) struct Publisher {
    video: Option<VideoSend>,
    audio: Option<AudioSend>,
    options: MediaOptions,
}

impl Publisher {
    /// Adds the sendonly transceivers: audio first, then video (so the mids are `0` and `1`).
    pub(crate) async fn add_to(pc: &RTCPeerConnection, options: &MediaOptions) -> Result<Self, webrtc::Error> {
        let stream = format!("bot-{:016x}", random_u64());
        let init =
            || Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, send_encodings: vec![] });
        let mut audio = None;
        if options.audio {
            let track = Arc::new(TrackLocalStaticRTP::new(opus(), "microphone".to_owned(), stream.clone()));
            let transceiver =
                pc.add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal + Send + Sync>, init()).await?;
            audio = Some(AudioSend { track, sender: transceiver.sender().await });
        }
        let mut video = None;
        if let Some(profile) = &options.video {
            let tracks: Vec<_> = if profile.layers.len() == 1 {
                vec![Arc::new(TrackLocalStaticRTP::new(vp8(), "camera".to_owned(), stream.clone()))]
            } else {
                RIDS.iter()
                    .map(|rid| {
                        Arc::new(TrackLocalStaticRTP::new_with_rid(
                            vp8(),
                            "camera".to_owned(),
                            (*rid).to_owned(),
                            stream.clone(),
                        ))
                    })
                    .collect()
            };
            let mut layers = tracks.iter();
            let first = layers.next().ok_or(webrtc::Error::ErrRTPSenderNoBaseEncoding)?;
            let transceiver =
                pc.add_transceiver_from_track(first.clone() as Arc<dyn TrackLocal + Send + Sync>, init()).await?;
            let sender = transceiver.sender().await;
            for track in layers {
                sender.add_encoding(track.clone() as Arc<dyn TrackLocal + Send + Sync>).await?;
            }
            video = Some(VideoSend { profile: profile.clone(), tracks, sender });
        }
        Ok(Self { video, audio, options: options.clone() })
    }

    /// Starts the generators and the RTCP readers; they stop when `cancel` fires.
    pub(crate) fn start(
        self,
        shared: &Arc<SendShared>,
        state: &watch::Receiver<RTCPeerConnectionState>,
        cancel: &CancellationToken,
    ) {
        if let Some(video) = self.video {
            let simulcast = video.tracks.len() > 1;
            for (layer, rid) in RIDS.iter().enumerate().take(video.tracks.len()) {
                let (sender, shared, cancel) = (video.sender.clone(), shared.clone(), cancel.clone());
                let rid = simulcast.then_some(*rid);
                tokio::spawn(read_rtcp(sender, rid, layer, Some(shared), cancel));
            }
            let options = self.options.clone();
            tokio::spawn(send_video(video, options, shared.clone(), state.clone(), cancel.clone()));
        }
        if let Some(audio) = self.audio {
            tokio::spawn(read_rtcp(audio.sender.clone(), None, 0, None, cancel.clone()));
            tokio::spawn(send_audio(audio, shared.clone(), state.clone(), cancel.clone()));
        }
    }
}

/// Waits until the connection is up (media written before is dropped by webrtc-rs); false when cancelled or
/// the connection is gone.
async fn connected(state: &mut watch::Receiver<RTCPeerConnectionState>, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        up = state.wait_for(|state| matches!(state, RTCPeerConnectionState::Connected | RTCPeerConnectionState::Closed)) =>
            up.is_ok_and(|state| *state == RTCPeerConnectionState::Connected),
    }
}

/// Reads a sender's RTCP: interceptors (NACK, TWCC) only see RTCP that is read. PLI and FIR for a video
/// layer's SSRC ask for a keyframe on that layer.
async fn read_rtcp(
    sender: Arc<RTCRtpSender>,
    rid: Option<&'static str>,
    layer: usize,
    shared: Option<Arc<SendShared>>,
    cancel: CancellationToken,
) {
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            read = async {
                match rid {
                    Some(rid) => sender.read_rtcp_simulcast(rid).await,
                    None => sender.read_rtcp().await,
                }
            } => read,
        };
        let packets = match read {
            Ok((packets, _)) => packets,
            Err(webrtc::Error::ErrClosedPipe | webrtc::Error::ErrRTPSenderNoTrackForRID) => return,
            Err(error) => {
                tracing::debug!(%error, "bot rtcp read");
                // Bounded retry: the loop ends with the bot.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(shared) = &shared else { continue };
        for packet in packets {
            let any = packet.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                shared.keyframe_asked(layer);
            }
        }
    }
}

/// The packets of one layer's frame, ready to send.
pub(crate) struct LayerFrame {
    /// 0 (q), 1 (h) or 2 (f).
    pub(crate) layer: usize,
    pub(crate) keyframe: bool,
    pub(crate) timestamp: u32,
    /// Extended sequence numbers (a stack without rollover tracking takes the low 16 bits) and payloads; the
    /// last packet carries the marker.
    pub(crate) packets: Vec<(u64, Bytes)>,
}

/// The camera: every layer's frame for each tick, with the same RTP timestamp and frame number across layers.
/// Stack-independent; the stack writes what it gives and says which keyframes went out.
pub(crate) struct VideoSource {
    profile: VideoProfile,
    fps: u32,
    keyframe_interval: Duration,
    timestamp_base: u32,
    sequence: Vec<u64>,
    picture_ids: Vec<u16>,
    /// A layer wants a keyframe until one was actually written (writes before DTLS completes are dropped).
    pending_key: Vec<bool>,
    last_periodic: tokio::time::Instant,
    frame: u32,
}

impl VideoSource {
    pub(crate) fn new(profile: VideoProfile, options: &MediaOptions) -> Self {
        let seed = random_u64();
        let layer_count = profile.layers.len();
        Self {
            fps: options.fps.clamp(1, 120),
            keyframe_interval: options.keyframe_interval,
            timestamp_base: seed as u32,
            sequence: (0..layer_count).map(|layer| u64::from((seed >> (16 * layer)) as u16)).collect(),
            picture_ids: (0..layer_count).map(|layer| (seed >> (5 + 16 * layer)) as u16 % PICTURE_ID_MODULO).collect(),
            pending_key: vec![true; layer_count],
            last_periodic: tokio::time::Instant::now(),
            frame: 0,
            profile,
        }
    }

    /// The time between frames.
    pub(crate) fn period(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }

    /// The next frame of every layer; a layer sends a keyframe when asked (PLI, FIR), periodically, and until
    /// one was written.
    pub(crate) fn next_frames(&mut self, shared: &SendShared) -> Vec<LayerFrame> {
        let periodic = self.last_periodic.elapsed() >= self.keyframe_interval;
        if periodic {
            self.last_periodic = tokio::time::Instant::now();
        }
        let timestamp = self.timestamp_base.wrapping_add(self.frame.wrapping_mul(90_000 / self.fps));
        let sent_us = now_us();
        let mut frames = Vec::with_capacity(self.profile.layers.len());
        for (layer, profile) in self.profile.layers.iter().enumerate() {
            let requested = shared.keyframe_wanted[layer].swap(false, Ordering::Relaxed);
            let keyframe = periodic || requested || self.pending_key[layer];
            let delta_bytes = usize::try_from(profile.bitrate_bps / 8 / self.fps).unwrap_or(0);
            let vp8 = Vp8Frame {
                layer: u8::try_from(layer).unwrap_or(0),
                picture_id: self.picture_ids[layer],
                keyframe,
                width: profile.width,
                height: profile.height,
                frame: self.frame,
                size: if keyframe { delta_bytes * 4 } else { delta_bytes },
            };
            let packets: Vec<(u64, Bytes)> = payload::packetize_vp8(&vp8, sent_us)
                .into_iter()
                .map(|payload| {
                    let sequence = self.sequence[layer];
                    self.sequence[layer] += 1;
                    shared.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                    shared.packets.fetch_add(1, Ordering::Relaxed);
                    (sequence, payload)
                })
                .collect();
            self.picture_ids[layer] = (self.picture_ids[layer] + 1) % PICTURE_ID_MODULO;
            shared.frames[layer].fetch_add(1, Ordering::Relaxed);
            frames.push(LayerFrame { layer, keyframe, timestamp, packets });
        }
        self.frame = self.frame.wrapping_add(1);
        frames
    }

    /// A layer's keyframe went out.
    pub(crate) fn keyframe_written(&mut self, layer: usize, shared: &SendShared) {
        self.pending_key[layer] = false;
        shared.keyframes[layer].fetch_add(1, Ordering::Relaxed);
    }
}

/// One microphone packet, ready to send.
pub(crate) struct AudioPacket {
    pub(crate) sequence: u64,
    pub(crate) timestamp: u32,
    /// The first packet of a talkspurt.
    pub(crate) marker: bool,
    pub(crate) speaking: bool,
    /// RFC 6464's level, in -dBov (0 loudest, 127 silence).
    pub(crate) level: u8,
    pub(crate) payload: Bytes,
}

/// The microphone: a 20 ms packet per tick, 80 to 120 bytes, varying like a VBR encoder's output.
pub(crate) struct AudioSource {
    sequence: u64,
    timestamp: u32,
    was_speaking: bool,
    count: u32,
}

impl AudioSource {
    pub(crate) const PERIOD: Duration = Duration::from_millis(20);

    pub(crate) fn new() -> Self {
        let seed = random_u64();
        Self { sequence: u64::from(seed as u16), timestamp: (seed >> 16) as u32, was_speaking: false, count: 0 }
    }

    pub(crate) fn next_packet(&mut self, shared: &SendShared) -> AudioPacket {
        let speaking = shared.speaking.load(Ordering::Relaxed);
        let trailer = Trailer { layer: AUDIO_LAYER, sent_us: now_us(), frame: self.count, packet: 0 };
        let size = 80 + usize::try_from(self.count.wrapping_mul(37) % 41).unwrap_or(0);
        let packet = AudioPacket {
            sequence: self.sequence,
            timestamp: self.timestamp,
            marker: speaking && !self.was_speaking,
            speaking,
            level: if speaking { LEVEL_SPEAKING } else { LEVEL_SILENCE },
            payload: payload::audio_payload(size, &trailer),
        };
        shared.packets.fetch_add(1, Ordering::Relaxed);
        shared.bytes.fetch_add(size as u64, Ordering::Relaxed);
        shared.audio_packets.fetch_add(1, Ordering::Relaxed);
        self.was_speaking = speaking;
        self.sequence += 1;
        self.timestamp = self.timestamp.wrapping_add(960);
        self.count = self.count.wrapping_add(1);
        packet
    }
}

/// A tick that does not make up late ticks in a burst: a slow machine sends fewer frames, like a real encoder.
pub(crate) fn ticks(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// Writes the camera's frames for each tick.
async fn send_video(
    video: VideoSend,
    options: MediaOptions,
    shared: Arc<SendShared>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    cancel: CancellationToken,
) {
    if !connected(&mut state, &cancel).await {
        return;
    }
    let mut source = VideoSource::new(video.profile.clone(), &options);
    let mut ticks = ticks(source.period());
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for frame in source.next_frames(&shared) {
            let track = &video.tracks[frame.layer];
            let last = frame.packets.len().saturating_sub(1);
            let mut written = 0;
            for (index, (sequence, payload)) in frame.packets.into_iter().enumerate() {
                let packet = rtp_packet(sequence as u16, frame.timestamp, index == last, VP8_PAYLOAD_TYPE, payload);
                match track.write_rtp_with_extensions(&packet, &[]).await {
                    Ok(n) => written += n,
                    Err(error) => tracing::trace!(%error, "bot video write"),
                }
            }
            if frame.keyframe && written > 0 {
                source.keyframe_written(frame.layer, &shared);
            }
        }
    }
}

/// Writes a microphone packet every 20 ms with the audio level extension.
async fn send_audio(
    audio: AudioSend,
    shared: Arc<SendShared>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    cancel: CancellationToken,
) {
    if !connected(&mut state, &cancel).await {
        return;
    }
    let mut source = AudioSource::new();
    let mut ticks = ticks(AudioSource::PERIOD);
    let _keep = &audio.sender;
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let packet = source.next_packet(&shared);
        let level = AudioLevelExtension { level: packet.level, voice: packet.speaking };
        let rtp =
            rtp_packet(packet.sequence as u16, packet.timestamp, packet.marker, OPUS_PAYLOAD_TYPE, packet.payload);
        if let Err(error) = audio.track.write_rtp_with_extensions(&rtp, &[HeaderExtension::AudioLevel(level)]).await {
            tracing::trace!(%error, "bot audio write");
        }
    }
}

fn rtp_packet(sequence_number: u16, timestamp: u32, marker: bool, payload_type: u8, payload: Bytes) -> Packet {
    Packet {
        header: Header { version: 2, marker, payload_type, sequence_number, timestamp, ..Default::default() },
        payload,
    }
}

/// Feeds every track the peer connection receives into `recorder`; the loops end with `cancel` or the track.
pub(crate) fn receive_into(pc: &RTCPeerConnection, recorder: Arc<Mutex<Recorder>>, cancel: CancellationToken) {
    pc.on_track(Box::new(move |track, receiver, transceiver| {
        let (recorder, cancel) = (recorder.clone(), cancel.clone());
        Box::pin(async move {
            let mid = transceiver.mid().map(|mid| mid.to_string()).unwrap_or_default();
            let level_id = receiver
                .get_parameters()
                .await
                .header_extensions
                .iter()
                .find(|extension| extension.uri == extmap::AUDIO_LEVEL_URI)
                .and_then(|extension| u8::try_from(extension.id).ok());
            let rid = track.rid().to_owned();
            let kind = if track.kind() == RTPCodecType::Audio { MediaKind::Audio } else { MediaKind::Video };
            if let Ok(mut recorder) = recorder.lock() {
                recorder.start_track(&mid, &rid, kind, track.ssrc());
            }
            tracing::debug!(%mid, %rid, ?kind, ssrc = track.ssrc(), "bot receives a track");
            tokio::spawn(async move {
                loop {
                    let read = tokio::select! {
                        _ = cancel.cancelled() => return,
                        read = track.read_rtp() => read,
                    };
                    let Ok((packet, _)) = read else { return };
                    let received = Received {
                        kind,
                        ssrc: packet.header.ssrc,
                        sequence_number: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        payload: &packet.payload,
                        audio_level: level_id
                            .and_then(|id| packet.header.get_extension(id))
                            .and_then(|level| level.first().map(|byte| byte & 0x7f)),
                        marker: packet.header.marker,
                        now_us: now_us(),
                    };
                    if let Ok(mut recorder) = recorder.lock() {
                        recorder.record(&mid, &rid, received);
                    }
                }
            });
        })
    }));
}
