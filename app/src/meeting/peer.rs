//! The media engine: one `RTCPeerConnection` to the media node. The client publishes with its own offer
//! (camera as three simulcast layers `q`, `h`, `f`, the microphone, and a screen when shared); the node sends
//! everyone else's media with offers of its own, which the client answers, and a track table saying whose
//! media each m-line carries. Negotiation runs one step at a time; when both sides offer at once the node
//! gives way (it drops its offer and makes it again), so the client ignores a node offer while its own waits.
//! When the network changes under a live session, the client's next offer restarts ICE: new credentials,
//! the same session and tracks.

use std::{
    cell::RefCell,
    collections::{BTreeMap, VecDeque},
    rc::Rc,
    time::Duration,
};

use convene_signal::{ClientMessage, MediaQuality, ParticipantId, TrackInfo, TrackSource};
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{
    MediaStream, MediaStreamTrack, RtcConfiguration, RtcIceGatheringState, RtcOfferOptions, RtcPeerConnection,
    RtcRtpSender, RtcRtpTransceiver, RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType,
    RtcSessionDescriptionInit, RtcTrackEvent,
};

use super::browser::{BrowserError, field_number, field_string, from_json, settle, sleep};
use super::frame_crypto::FrameCrypto;

/// The node is ICE-lite and takes no trickled candidates: an offer goes out once gathering is complete, or
/// after this long with what was gathered.
const GATHERING_TIMEOUT: Duration = Duration::from_secs(5);
const GATHERING_POLL: Duration = Duration::from_millis(50);
/// High-fidelity audio's Opus bitrate.
const MUSIC_BITRATE: u32 = 128_000;

/// What the engine reports to the page.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    /// Remote streams came or went: tiles look theirs up again.
    StreamsChanged,
    /// The connection's state (`new`, `connecting`, `connected`, `disconnected`, `failed`, `closed`).
    Connection(String),
    /// Negotiation failed; the meeting goes on without the change.
    Failed(String),
}

/// What arrives from one participant, summed over their tracks (`getStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceivedStats {
    /// Camera frames decoded.
    pub video_frames: u64,
    /// Screen frames decoded.
    pub screen_frames: u64,
    /// Audio bytes received.
    pub audio_bytes: u64,
    /// Packets received, all tracks.
    pub packets: u64,
    /// Packets lost, all tracks.
    pub lost: u64,
    /// The camera's decoded height.
    pub height: u32,
}

/// How well someone comes through, from what arrived since the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// Little loss, video moving.
    Good,
    /// Some loss.
    Fair,
    /// Heavy loss, or video frozen.
    Poor,
}

impl Quality {
    /// Compares two readings a second apart.
    pub fn between(before: &ReceivedStats, now: &ReceivedStats) -> Self {
        let packets = now.packets.saturating_sub(before.packets);
        let lost = now.lost.saturating_sub(before.lost);
        let loss = if packets + lost == 0 { 0.0 } else { lost as f64 / (packets + lost) as f64 };
        let video_was_moving = before.video_frames > 0;
        let frozen = video_was_moving && now.video_frames == before.video_frames;
        if frozen || loss > 0.1 {
            Quality::Poor
        } else if loss > 0.02 {
            Quality::Fair
        } else {
            Quality::Good
        }
    }

    /// The word for styles and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Fair => "fair",
            Quality::Poor => "poor",
        }
    }
}

/// A negotiation step.
enum Step {
    /// Send (again) what the client publishes.
    Publish,
    /// The node's answer to the client's offer.
    Answer(String),
    /// The node's offer of everyone else's media.
    Offer(String, Vec<TrackInfo>),
}

struct State {
    tracks: Vec<TrackInfo>,
    remote: BTreeMap<(ParticipantId, TrackSource), MediaStream>,
    steps: VecDeque<Step>,
    negotiating: bool,
    awaiting_answer: bool,
    /// The next offer restarts ICE.
    restart_ice: bool,
    /// An ICE restart went out and the connection has not come back since.
    restarting: bool,
    camera: Option<RtcRtpSender>,
    microphone: Option<RtcRtpSender>,
    screen: Option<RtcRtpTransceiver>,
}

struct Inner {
    pc: RtcPeerConnection,
    quality: MediaQuality,
    /// End-to-end encryption, when the meeting asks for it.
    crypto: Option<Rc<FrameCrypto>>,
    send: Rc<dyn Fn(ClientMessage)>,
    on_event: Rc<dyn Fn(PeerEvent)>,
    state: RefCell<State>,
    _handlers: [Closure<dyn FnMut(JsValue)>; 2],
}

/// The media session; cloning shares it. [`Peer::close`] ends it.
#[derive(Clone)]
pub struct Peer(Rc<Inner>);

impl Peer {
    /// A connection that sends signalling with `send` and reports with `on_event`; with `crypto`, every
    /// frame sent is encrypted and every frame received decrypted.
    pub fn new(
        quality: MediaQuality,
        crypto: Option<Rc<FrameCrypto>>,
        send: Rc<dyn Fn(ClientMessage)>,
        on_event: Rc<dyn Fn(PeerEvent)>,
    ) -> Result<Self, BrowserError> {
        // One transport for everything, as the node has.
        let mut settings = json!({ "bundlePolicy": "max-bundle", "rtcpMuxPolicy": "require" });
        if let (Some(crypto), Some(settings)) = (&crypto, settings.as_object_mut()) {
            settings.extend(crypto.configuration().as_object().cloned().unwrap_or_default());
        }
        let configuration: RtcConfiguration = from_json(&settings);
        let pc = RtcPeerConnection::new_with_configuration(&configuration)?;
        let state = RefCell::new(State {
            tracks: Vec::new(),
            remote: BTreeMap::new(),
            steps: VecDeque::new(),
            negotiating: false,
            awaiting_answer: false,
            restart_ice: false,
            restarting: false,
            camera: None,
            microphone: None,
            screen: None,
        });
        Ok(Self(Rc::new_cyclic(|weak: &std::rc::Weak<Inner>| {
            let on_track = {
                let weak = weak.clone();
                Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                    if let Some(inner) = weak.upgrade() {
                        Peer(inner).track_arrived(&event.unchecked_into());
                    }
                })
            };
            let on_state = {
                let weak = weak.clone();
                Closure::<dyn FnMut(JsValue)>::new(move |_| {
                    if let Some(inner) = weak.upgrade() {
                        let state = field_string(&inner.pc, "connectionState").unwrap_or_default();
                        (inner.on_event)(PeerEvent::Connection(state));
                    }
                })
            };
            pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
            pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
            Inner { pc, quality, crypto, send, on_event, state, _handlers: [on_track, on_state] }
        })))
    }

    /// Publishes the camera (three simulcast layers) and the microphone of `stream`, then offers. Without a
    /// stream the offer still goes out (the node sends others' media only after answering one), with an
    /// inactive m-line to carry the transport.
    pub fn publish(&self, stream: Option<&MediaStream>) -> Result<(), BrowserError> {
        let inner = &self.0;
        let Some(stream) = stream else {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Inactive);
            inner.pc.add_transceiver_with_str_and_init("audio", &init);
            self.push(Step::Publish);
            return Ok(());
        };
        if let Some(camera) = super::local_media::first_track(stream, "video") {
            let layers = simulcast_layers(inner.quality.max_height);
            let transceiver = self.add_sender(&camera, &layers)?;
            inner.state.borrow_mut().camera = Some(transceiver.sender());
        }
        if let Some(microphone) = super::local_media::first_track(stream, "audio") {
            let encodings =
                if inner.quality.high_fidelity_audio { json!([{ "maxBitrate": MUSIC_BITRATE }]) } else { json!([{}]) };
            let transceiver = self.add_sender(&microphone, &encodings)?;
            inner.state.borrow_mut().microphone = Some(transceiver.sender());
        }
        self.push(Step::Publish);
        Ok(())
    }

    /// Shares a screen track as a second video (one layer: text stays sharp), then offers again.
    pub fn share_screen(&self, track: &MediaStreamTrack) -> Result<(), BrowserError> {
        let transceiver = self.add_sender(track, &json!([{ "maxBitrate": 2_500_000 }]))?;
        self.0.state.borrow_mut().screen = Some(transceiver);
        self.push(Step::Publish);
        Ok(())
    }

    /// Stops sharing: the screen's m-line stops and the others' tiles for it go.
    pub fn stop_screen(&self) {
        let screen = self.0.state.borrow_mut().screen.take();
        if let Some(transceiver) = screen {
            transceiver.stop();
            self.push(Step::Publish);
        }
    }

    /// Replaces the camera or microphone with another device's track, without renegotiating.
    pub async fn replace(&self, track: &MediaStreamTrack) -> Result<(), BrowserError> {
        let sender = {
            let state = self.0.state.borrow();
            if track.kind() == "audio" { state.microphone.clone() } else { state.camera.clone() }
        };
        match sender {
            Some(sender) => settle(sender.replace_track(Some(track))).await.map(drop),
            None => Err(BrowserError("nothing of that kind is being sent".to_owned())),
        }
    }

    /// Restarts ICE on this session (the node answers with new credentials); false when a restart is already
    /// under way.
    pub fn restart_ice(&self) -> bool {
        {
            let mut state = self.0.state.borrow_mut();
            if std::mem::replace(&mut state.restarting, true) {
                return false;
            }
            state.restart_ice = true;
        }
        self.push(Step::Publish);
        true
    }

    /// Whether an ICE restart has not brought the connection back yet.
    pub fn is_restarting(&self) -> bool {
        self.0.state.borrow().restarting
    }

    /// The connection is up (again).
    pub fn connected(&self) {
        self.0.state.borrow_mut().restarting = false;
    }

    /// Signalling resumed over a new socket: an offer whose answer the old one lost is made again (the node
    /// re-offers its side by itself).
    pub fn resumed(&self) {
        let lost = std::mem::take(&mut self.0.state.borrow_mut().awaiting_answer);
        if lost {
            self.push(Step::Publish);
        }
    }

    /// The node's answer to the client's offer.
    pub fn answer_arrived(&self, sdp: String) {
        self.push(Step::Answer(sdp));
    }

    /// The node's offer, with whose media each m-line carries.
    pub fn offer_arrived(&self, sdp: String, tracks: Vec<TrackInfo>) {
        self.push(Step::Offer(sdp, tracks));
    }

    /// A participant's stream of a source, when it arrived.
    pub fn stream(&self, participant: ParticipantId, source: TrackSource) -> Option<MediaStream> {
        self.0.state.borrow().remote.get(&(participant, source)).cloned()
    }

    /// Someone left: their streams go.
    pub fn forget(&self, participant: ParticipantId) {
        self.0.state.borrow_mut().remote.retain(|(owner, _), _| *owner != participant);
        (self.0.on_event)(PeerEvent::StreamsChanged);
    }

    /// Ends the session.
    pub fn close(&self) {
        self.0.state.borrow_mut().restarting = false;
        self.0.pc.set_ontrack(None);
        self.0.pc.set_onconnectionstatechange(None);
        self.0.pc.close();
    }

    /// What arrived from each participant so far.
    pub async fn received(&self) -> BTreeMap<ParticipantId, ReceivedStats> {
        let mut received: BTreeMap<ParticipantId, ReceivedStats> = BTreeMap::new();
        let Ok(report) = settle(self.0.pc.get_stats()).await else { return received };
        let tracks = self.0.state.borrow().tracks.clone();
        let entries = report.unchecked_into::<js_sys::Map>();
        entries.for_each(&mut |entry, _| {
            if field_string(&entry, "type").as_deref() != Some("inbound-rtp") {
                return;
            }
            let Some(mid) = field_string(&entry, "mid") else { return };
            let Some(track) = tracks.iter().find(|track| track.mid == mid) else { return };
            let count = |name| field_number(&entry, name).unwrap_or(0.0) as u64;
            let stats = received.entry(track.participant).or_default();
            stats.packets += count("packetsReceived");
            stats.lost += count("packetsLost");
            match track.source {
                TrackSource::Microphone => stats.audio_bytes += count("bytesReceived"),
                TrackSource::Camera => {
                    stats.video_frames += count("framesDecoded");
                    stats.height = u32::try_from(count("frameHeight")).unwrap_or(0);
                }
                TrackSource::Screen => stats.screen_frames += count("framesDecoded"),
            }
        });
        received
    }

    /// Sends a track with these encodings (encrypted in an end-to-end encrypted meeting).
    fn add_sender(
        &self,
        track: &MediaStreamTrack,
        encodings: &serde_json::Value,
    ) -> Result<RtcRtpTransceiver, BrowserError> {
        let init = RtcRtpTransceiverInit::new();
        init.set_direction(RtcRtpTransceiverDirection::Sendonly);
        init.set_send_encodings(&from_json::<JsValue>(encodings));
        let transceiver = self.0.pc.add_transceiver_with_media_stream_track_and_init(track, &init);
        if let Some(crypto) = &self.0.crypto {
            crypto.encrypt(&transceiver.sender())?;
        }
        Ok(transceiver)
    }

    fn track_arrived(&self, event: &RtcTrackEvent) {
        let Some(mid) = event.transceiver().mid() else { return };
        let owner = self.0.state.borrow().tracks.iter().find(|track| track.mid == mid).cloned();
        let Some(track) = owner else { return };
        if let Some(crypto) = &self.0.crypto
            && let Err(error) = crypto.decrypt(&event.receiver(), track.participant)
        {
            (self.0.on_event)(PeerEvent::Failed(error.0));
        }
        let Ok(stream) = MediaStream::new() else { return };
        stream.add_track(&event.track());
        self.0.state.borrow_mut().remote.insert((track.participant, track.source), stream);
        (self.0.on_event)(PeerEvent::StreamsChanged);
    }

    fn push(&self, step: Step) {
        let start = {
            let mut state = self.0.state.borrow_mut();
            state.steps.push_back(step);
            !std::mem::replace(&mut state.negotiating, true)
        };
        if start {
            let peer = self.clone();
            wasm_bindgen_futures::spawn_local(async move { peer.negotiate().await });
        }
    }

    /// Takes the steps in order until none is left.
    async fn negotiate(&self) {
        loop {
            let step = {
                let mut state = self.0.state.borrow_mut();
                match state.steps.pop_front() {
                    Some(step) => step,
                    None => {
                        state.negotiating = false;
                        return;
                    }
                }
            };
            if let Err(error) = self.take(step).await {
                (self.0.on_event)(PeerEvent::Failed(error.0));
            }
        }
    }

    async fn take(&self, step: Step) -> Result<(), BrowserError> {
        let pc = &self.0.pc;
        match step {
            Step::Publish => {
                let restart = std::mem::take(&mut self.0.state.borrow_mut().restart_ice);
                let options = RtcOfferOptions::new();
                options.set_ice_restart(restart);
                let offer = settle(pc.create_offer_with_rtc_offer_options(&options)).await?;
                set_local(pc, &offer).await?;
                let sdp = gathered(pc).await;
                let screen = self.0.state.borrow().screen.as_ref().and_then(RtcRtpTransceiver::mid);
                self.0.state.borrow_mut().awaiting_answer = true;
                (self.0.send)(ClientMessage::Offer { sdp, screen, publish_only: false });
            }
            Step::Answer(sdp) => {
                if !std::mem::replace(&mut self.0.state.borrow_mut().awaiting_answer, false) {
                    return Ok(());
                }
                let sdp = if self.0.quality.high_fidelity_audio { stereo_opus(&sdp) } else { sdp };
                settle(pc.set_remote_description(&description(RtcSdpType::Answer, &sdp))).await?;
            }
            Step::Offer(sdp, tracks) => {
                // The node drops its own offer when the client's arrives, and makes it again after answering.
                if self.0.state.borrow().awaiting_answer {
                    return Ok(());
                }
                self.0.state.borrow_mut().tracks = tracks;
                settle(pc.set_remote_description(&description(RtcSdpType::Offer, &sdp))).await?;
                let answer = settle(pc.create_answer()).await?;
                set_local(pc, &answer).await?;
                let sdp = gathered(pc).await;
                (self.0.send)(ClientMessage::Answer { sdp });
                let live: Vec<(ParticipantId, TrackSource)> = {
                    let state = self.0.state.borrow();
                    state.tracks.iter().map(|track| (track.participant, track.source)).collect()
                };
                self.0.state.borrow_mut().remote.retain(|key, _| live.contains(key));
                (self.0.on_event)(PeerEvent::StreamsChanged);
            }
        }
        Ok(())
    }
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let description = RtcSessionDescriptionInit::new(kind);
    description.set_sdp(sdp);
    description
}

async fn set_local(pc: &RtcPeerConnection, description: &JsValue) -> Result<(), BrowserError> {
    let kind = if field_string(description, "type").as_deref() == Some("answer") {
        RtcSdpType::Answer
    } else {
        RtcSdpType::Offer
    };
    let sdp = field_string(description, "sdp").unwrap_or_default();
    settle(pc.set_local_description(&self::description(kind, &sdp))).await.map(drop)
}

/// The local description once ICE gathering completed (or timed out).
async fn gathered(pc: &RtcPeerConnection) -> String {
    let polls = GATHERING_TIMEOUT.as_millis() / GATHERING_POLL.as_millis();
    for _ in 0..polls {
        if pc.ice_gathering_state() == RtcIceGatheringState::Complete {
            break;
        }
        sleep(GATHERING_POLL).await;
    }
    pc.local_description().map(|description| description.sdp()).unwrap_or_default()
}

/// The camera's layers, lowest first, with the node's RIDs: a quarter, half and the full height.
fn simulcast_layers(max_height: u32) -> serde_json::Value {
    // Bitrates as Jitsi's defaults for VP8: low, standard, and high or full HD.
    let top = if max_height >= 1080 { 3_000_000 } else { 1_500_000 };
    json!([
        { "rid": "q", "scaleResolutionDownBy": 4.0, "maxBitrate": 200_000 },
        { "rid": "h", "scaleResolutionDownBy": 2.0, "maxBitrate": 500_000 },
        { "rid": "f", "scaleResolutionDownBy": 1.0, "maxBitrate": top },
    ])
}

/// The node's answer with stereo Opus at music bitrate: the browser sends what its peer says it takes.
pub fn stereo_opus(sdp: &str) -> String {
    let opus: Vec<String> = sdp
        .lines()
        .filter_map(|line| line.strip_prefix("a=rtpmap:"))
        .filter(|rest| rest.to_ascii_lowercase().contains(" opus/48000"))
        .filter_map(|rest| rest.split(' ').next().map(str::to_owned))
        .collect();
    let mut out = String::with_capacity(sdp.len() + 128);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        let is_opus_fmtp = body
            .strip_prefix("a=fmtp:")
            .and_then(|rest| rest.split(' ').next())
            .is_some_and(|pt| opus.iter().any(|opus| opus == pt));
        if is_opus_fmtp && !body.contains("stereo=1") {
            out.push_str(&format!("{body};stereo=1;sprop-stereo=1;maxaveragebitrate={MUSIC_BITRATE}{ending}"));
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_fidelity_answers_ask_for_stereo_opus_and_leave_other_codecs_alone() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=fmtp:96 x-google=1\r\n";
        let stereo = stereo_opus(sdp);
        assert!(
            stereo
                .contains("a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1;maxaveragebitrate=128000\r\n")
        );
        assert!(stereo.contains("a=fmtp:96 x-google=1\r\n"));
        assert_eq!(stereo_opus(&stereo), stereo, "applied once");
    }

    #[test]
    fn quality_follows_loss_and_frozen_video() {
        let before = ReceivedStats { video_frames: 100, packets: 1000, ..ReceivedStats::default() };
        let moving = ReceivedStats { video_frames: 130, packets: 1100, ..before };
        assert_eq!(Quality::between(&before, &moving), Quality::Good);
        assert_eq!(Quality::between(&before, &ReceivedStats { lost: 5, ..moving }), Quality::Fair);
        assert_eq!(Quality::between(&before, &ReceivedStats { lost: 30, ..moving }), Quality::Poor);
        assert_eq!(Quality::between(&before, &ReceivedStats { packets: 1100, ..before }), Quality::Poor, "frozen");
    }
}
