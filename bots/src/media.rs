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
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
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
                shared.keyframe_wanted[layer].store(true, Ordering::Relaxed);
                shared.keyframe_requests[layer].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends every layer's frame for each tick: the same RTP timestamp and frame number across layers.
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
    let fps = options.fps.clamp(1, 120);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / fps);
    // Late ticks are not made up in a burst: a slow machine sends fewer frames, like a real encoder.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let seed = random_u64();
    let timestamp_base = seed as u32;
    let layer_count = video.tracks.len();
    let mut sequence: Vec<u16> = (0..layer_count).map(|layer| (seed >> (16 * layer)) as u16).collect();
    let mut picture_ids: Vec<u16> =
        (0..layer_count).map(|layer| (seed >> (5 + 16 * layer)) as u16 % PICTURE_ID_MODULO).collect();
    // A layer wants a keyframe until one was actually written (writes before DTLS completes are dropped).
    let mut pending_key = vec![true; layer_count];
    let mut last_periodic = tokio::time::Instant::now();
    let mut frame: u32 = 0;
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let periodic = last_periodic.elapsed() >= options.keyframe_interval;
        if periodic {
            last_periodic = tokio::time::Instant::now();
        }
        let timestamp = timestamp_base.wrapping_add(frame.wrapping_mul(90_000 / fps));
        let sent_us = now_us();
        for (layer, (track, profile)) in video.tracks.iter().zip(&video.profile.layers).enumerate() {
            let requested = shared.keyframe_wanted[layer].swap(false, Ordering::Relaxed);
            let keyframe = periodic || requested || pending_key[layer];
            let delta_bytes = usize::try_from(profile.bitrate_bps / 8 / fps).unwrap_or(0);
            let vp8 = Vp8Frame {
                layer: u8::try_from(layer).unwrap_or(0),
                picture_id: picture_ids[layer],
                keyframe,
                width: profile.width,
                height: profile.height,
                frame,
                size: if keyframe { delta_bytes * 4 } else { delta_bytes },
            };
            let packets = payload::packetize_vp8(&vp8, sent_us);
            let last = packets.len().saturating_sub(1);
            let mut written = 0;
            for (index, payload) in packets.into_iter().enumerate() {
                shared.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                let packet = rtp_packet(sequence[layer], timestamp, index == last, VP8_PAYLOAD_TYPE, payload);
                sequence[layer] = sequence[layer].wrapping_add(1);
                match track.write_rtp_with_extensions(&packet, &[]).await {
                    Ok(n) => written += n,
                    Err(error) => tracing::trace!(%error, "bot video write"),
                }
                shared.packets.fetch_add(1, Ordering::Relaxed);
            }
            picture_ids[layer] = (picture_ids[layer] + 1) % PICTURE_ID_MODULO;
            shared.frames[layer].fetch_add(1, Ordering::Relaxed);
            if keyframe && written > 0 {
                pending_key[layer] = false;
                shared.keyframes[layer].fetch_add(1, Ordering::Relaxed);
            }
        }
        frame = frame.wrapping_add(1);
    }
}

/// 20 ms packets with the audio level extension; the marker bit starts a talkspurt.
async fn send_audio(
    audio: AudioSend,
    shared: Arc<SendShared>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    cancel: CancellationToken,
) {
    if !connected(&mut state, &cancel).await {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let seed = random_u64();
    let mut sequence = seed as u16;
    let mut timestamp = (seed >> 16) as u32;
    let mut was_speaking = false;
    let mut count: u32 = 0;
    let _keep = &audio.sender;
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let speaking = shared.speaking.load(Ordering::Relaxed);
        let trailer = Trailer { layer: AUDIO_LAYER, sent_us: now_us(), frame: count, packet: 0 };
        // 80 to 120 bytes, varying like a VBR encoder's output.
        let size = 80 + usize::try_from(count.wrapping_mul(37) % 41).unwrap_or(0);
        let packet = rtp_packet(
            sequence,
            timestamp,
            speaking && !was_speaking,
            OPUS_PAYLOAD_TYPE,
            payload::audio_payload(size, &trailer),
        );
        let level =
            AudioLevelExtension { level: if speaking { LEVEL_SPEAKING } else { LEVEL_SILENCE }, voice: speaking };
        if let Err(error) = audio.track.write_rtp_with_extensions(&packet, &[HeaderExtension::AudioLevel(level)]).await
        {
            tracing::trace!(%error, "bot audio write");
        }
        shared.packets.fetch_add(1, Ordering::Relaxed);
        shared.bytes.fetch_add(size as u64, Ordering::Relaxed);
        shared.audio_packets.fetch_add(1, Ordering::Relaxed);
        was_speaking = speaking;
        sequence = sequence.wrapping_add(1);
        timestamp = timestamp.wrapping_add(960);
        count = count.wrapping_add(1);
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
