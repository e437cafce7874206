//! A bot's session: the signalling WebSocket, the negotiation (one task, in order) and the public handle.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convene_signal::{ClientMessage, PROTOCOL_VERSION, ParticipantId, Refusal, ServerMessage, TrackInfo};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::HOST;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::{CancellationToken, DropGuard};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use crate::light;
use crate::media::{self, MediaOptions, Publisher, SendShared, VideoProfile};
use crate::stats::{self, BotStats, DelayHistogram, Recorder};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Server messages kept for the caller; beyond this the oldest are dropped.
const EVENT_QUEUE: usize = 1024;
/// Outgoing signalling messages waiting for the socket.
const OUTGOING_QUEUE: usize = 64;
/// Node offers and answers waiting for the negotiation task (the reader waits when it is full).
const NEGOTIATION_QUEUE: usize = 16;

/// How a bot joins and what it publishes.
#[derive(Debug, Clone)]
pub struct BotOptions {
    /// The signalling WebSocket, e.g. `ws://127.0.0.1:8080/_signal/standup`.
    pub signal_url: String,
    /// The `Host` header: the meet host, e.g. `meet.localhost:8080`.
    pub host: String,
    /// The room JWT.
    pub token: String,
    /// The room password, when it has one.
    pub password: Option<String>,
    /// The camera; `None` publishes no video.
    pub video: Option<VideoProfile>,
    /// Publish a microphone.
    pub audio: bool,
    /// Start speaking (audio level 25) rather than silent (127); see [`Bot::set_speaking`].
    pub speaking: bool,
    /// Video frames per second.
    pub fps: u32,
    /// A keyframe on every layer this often (besides the first and those asked for with PLI or FIR).
    pub keyframe_interval: Duration,
    /// Offer only loopback ICE candidates (the node listens on 127.0.0.1).
    pub loopback_only: bool,
    /// The longest wait for each step of joining (connect, `welcome`, ICE gathering).
    pub timeout: Duration,
    /// The media stack.
    pub stack: BotStack,
}

/// The WebRTC implementation a bot's media runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BotStack {
    /// webrtc-rs with a browser's interceptors (RTX, NACK, transport-cc, RTCP reports): the conformance check,
    /// about 11 µs of CPU per packet.
    #[default]
    WebRtc,
    /// str0m in RTP mode, one task and socket per bot: cheaper per packet, for loading the node. Loopback only
    /// (the node under test runs on the same machine), whatever `loopback_only` says.
    Light,
}

impl std::str::FromStr for BotStack {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "webrtc" => Ok(Self::WebRtc),
            "light" => Ok(Self::Light),
            other => Err(format!("unknown bot stack {other:?}: use light or webrtc")),
        }
    }
}

impl std::fmt::Display for BotStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WebRtc => "webrtc",
            Self::Light => "light",
        })
    }
}

impl BotOptions {
    /// A bot with a 720p simulcast camera and a silent microphone at 30 fps, keyframes every 10 s.
    pub fn new(signal_url: impl Into<String>, host: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            signal_url: signal_url.into(),
            host: host.into(),
            token: token.into(),
            password: None,
            video: Some(VideoProfile::p720()),
            audio: true,
            speaking: false,
            fps: 30,
            keyframe_interval: Duration::from_secs(10),
            loopback_only: true,
            timeout: Duration::from_secs(10),
            stack: BotStack::WebRtc,
        }
    }

    fn media(&self) -> MediaOptions {
        MediaOptions {
            video: self.video.clone(),
            audio: self.audio,
            fps: self.fps,
            keyframe_interval: self.keyframe_interval,
        }
    }
}

/// Why a bot could not join, or is gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// The options cannot work (a video profile needs one or three layers).
    #[error("invalid options: {0}")]
    Options(String),
    /// The WebSocket failed.
    #[error("signalling failed: {0}")]
    Signal(String),
    /// webrtc-rs failed (creating the connection, or applying an SDP).
    #[error("webrtc failed: {0}")]
    WebRtc(String),
    /// The node sent something out of turn.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The node refused the bot, or removed it.
    #[error("refused ({reason:?}): {message}")]
    Refused {
        /// The stable code.
        reason: Refusal,
        /// The node's words.
        message: String,
    },
    /// The node closed the socket.
    #[error("the signalling connection closed")]
    Closed,
    /// The bot was left (or dropped).
    #[error("the bot left")]
    Left,
    /// Nothing came in time.
    #[error("timed out")]
    Timeout,
}

impl From<webrtc::Error> for BotError {
    fn from(error: webrtc::Error) -> Self {
        Self::WebRtc(error.to_string())
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for BotError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::Signal(error.to_string())
    }
}

/// Where a bot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Waiting in the lobby for a moderator.
    Lobby,
    /// In the room (media negotiation runs in the background).
    InRoom,
    /// Refused, removed, disconnected or left; the error says which.
    Gone(BotError),
}

/// Node messages for the negotiation task, in arrival order.
#[derive(Debug)]
pub(crate) enum Negotiation {
    /// Welcome: publish (send the first offer).
    Start,
    Answer(String),
    Offer {
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
}

/// What the bot's tasks share with its handle.
pub(crate) struct Shared {
    id: AtomicU64,
    admission: watch::Sender<Admission>,
    pub(crate) outgoing: mpsc::Sender<ClientMessage>,
    events: Mutex<VecDeque<ServerMessage>>,
    events_changed: Notify,
    dropped_events: AtomicU64,
    pub(crate) recorder: Arc<Mutex<Recorder>>,
    pub(crate) tracks: Mutex<Vec<TrackInfo>>,
    pub(crate) send: Arc<SendShared>,
    hello_us: u64,
    media_state: watch::Receiver<RTCPeerConnectionState>,
    pub(crate) cancel: CancellationToken,
}

impl Shared {
    fn push_event(&self, message: ServerMessage) {
        if let Ok(mut events) = self.events.lock() {
            if events.len() >= EVENT_QUEUE {
                events.pop_front();
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
            events.push_back(message);
        }
        self.events_changed.notify_waiters();
    }

    /// Ends the bot once: the first reason sticks.
    pub(crate) fn end(&self, error: BotError) {
        self.admission.send_if_modified(|admission| {
            if matches!(admission, Admission::Gone(_)) {
                return false;
            }
            *admission = Admission::Gone(error);
            true
        });
        self.cancel.cancel();
        self.events_changed.notify_waiters();
    }
}

/// A meeting participant without a browser. Dropping it ends all its tasks and closes its connection.
pub struct Bot {
    shared: Arc<Shared>,
    /// The webrtc-rs connection; the light stack's session lives on its own task.
    pc: Option<Arc<RTCPeerConnection>>,
    writer: Option<JoinHandle<()>>,
    _guard: DropGuard,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot").field("id", &self.id()).field("admission", &self.admission()).finish()
    }
}

impl Bot {
    /// Connects, says `hello` and returns once the node answered: in the room (the first offer is sent by
    /// then) or in the lobby (the offer follows `welcome`, see [`Bot::wait_admitted`]).
    pub async fn connect(options: BotOptions) -> Result<Self, BotError> {
        if options.video.as_ref().is_some_and(|video| !video.is_valid()) {
            return Err(BotError::Options("a video profile has one or three layers, each with a bitrate".to_owned()));
        }
        let timeout = options.timeout;
        let mut request = options.signal_url.as_str().into_client_request()?;
        let host = HeaderValue::from_str(&options.host).map_err(|error| BotError::Options(error.to_string()))?;
        request.headers_mut().insert(HOST, host);
        let (socket, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| BotError::Timeout)??;
        let (mut sink, mut stream) = socket.split();

        let hello_us = media::now_us();
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            token: options.token.clone(),
            password: options.password.clone(),
            name: None,
            resume: None,
        };
        send_frame(&mut sink, &hello).await?;
        let first =
            tokio::time::timeout(timeout, next_server_message(&mut stream)).await.map_err(|_| BotError::Timeout)??;
        let (id, admission) = match &first {
            ServerMessage::Welcome { you, .. } => (*you, Admission::InRoom),
            ServerMessage::Lobby { you } => (*you, Admission::Lobby),
            ServerMessage::Refused { reason, message } => {
                return Err(BotError::Refused { reason: *reason, message: message.clone() });
            }
            other => return Err(BotError::Protocol(format!("expected welcome, lobby or refused, got {other:?}"))),
        };

        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let cancel = CancellationToken::new();
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let send = Arc::new(SendShared::default());
        send.speaking.store(options.speaking, Ordering::Relaxed);
        let (negotiation, negotiation_rx) = mpsc::channel(NEGOTIATION_QUEUE);
        let (offered, offered_rx) = oneshot::channel();
        let shared_with = |media_state| {
            Arc::new(Shared {
                id: AtomicU64::new(id.0),
                admission: watch::Sender::new(admission.clone()),
                outgoing,
                events: Mutex::new(VecDeque::new()),
                events_changed: Notify::new(),
                dropped_events: AtomicU64::new(0),
                recorder: recorder.clone(),
                tracks: Mutex::new(Vec::new()),
                send,
                hello_us,
                media_state,
                cancel: cancel.clone(),
            })
        };
        let (shared, pc) = match options.stack {
            BotStack::WebRtc => {
                let api = media::build_api(options.loopback_only)?;
                let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
                let media_state = media::watch_state(&pc);
                let publisher = match Publisher::add_to(&pc, &options.media()).await {
                    Ok(publisher) => publisher,
                    Err(error) => {
                        let _ = pc.close().await;
                        return Err(error.into());
                    }
                };
                media::receive_into(&pc, recorder.clone(), cancel.clone());
                let shared = shared_with(media_state);
                tokio::spawn(negotiate(shared.clone(), pc.clone(), publisher, negotiation_rx, offered, timeout));
                (shared, Some(pc))
            }
            BotStack::Light => {
                let (state, media_state) = watch::channel(RTCPeerConnectionState::New);
                let shared = shared_with(media_state);
                tokio::spawn(light::drive(shared.clone(), options.media(), state, negotiation_rx, offered));
                (shared, None)
            }
        };
        shared.push_event(first);
        let writer = tokio::spawn(write_loop(sink, outgoing_rx, cancel.clone()));
        tokio::spawn(read_loop(stream, shared.clone(), negotiation.clone()));
        let bot = Self { shared, pc, writer: Some(writer), _guard: cancel.drop_guard() };
        if admission == Admission::InRoom {
            let _ = negotiation.send(Negotiation::Start).await;
            match tokio::time::timeout(timeout, offered_rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => return Err(error),
                Ok(Err(_)) => return Err(bot.gone_reason()),
                Err(_) => return Err(BotError::Timeout),
            }
        }
        Ok(bot)
    }

    /// [`Bot::connect`], then waits (up to the options' timeout) until the bot is in the room.
    pub async fn join(options: BotOptions) -> Result<Self, BotError> {
        let timeout = options.timeout;
        let bot = Self::connect(options).await?;
        bot.wait_admitted(timeout).await?;
        Ok(bot)
    }

    /// The bot's id in this room session.
    pub fn id(&self) -> ParticipantId {
        ParticipantId(self.shared.id.load(Ordering::Relaxed))
    }

    /// Lobby, in the room, or gone.
    pub fn admission(&self) -> Admission {
        self.shared.admission.borrow().clone()
    }

    /// Refused, removed, disconnected or left.
    pub fn is_gone(&self) -> bool {
        matches!(*self.shared.admission.borrow(), Admission::Gone(_))
    }

    /// Whether the WebRTC connection to the node is up.
    pub fn media_connected(&self) -> bool {
        *self.shared.media_state.borrow() == RTCPeerConnectionState::Connected
    }

    /// Waits until a moderator admitted the bot (the node sent `welcome`); at once when already in the room.
    pub async fn wait_admitted(&self, timeout: Duration) -> Result<(), BotError> {
        let mut admission = self.shared.admission.subscribe();
        let waited = tokio::time::timeout(timeout, admission.wait_for(|a| !matches!(a, Admission::Lobby))).await;
        match waited.map_err(|_| BotError::Timeout)?.as_deref() {
            Ok(Admission::InRoom) => Ok(()),
            Ok(Admission::Gone(error)) => Err(error.clone()),
            _ => Err(BotError::Left),
        }
    }

    /// Waits until the WebRTC connection is up.
    pub async fn wait_media_connected(&self, timeout: Duration) -> Result<(), BotError> {
        let mut state = self.shared.media_state.clone();
        let mut admission = self.shared.admission.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            tokio::select! {
                up = state.wait_for(|s| *s == RTCPeerConnectionState::Connected) => up.map(|_| ()).map_err(|_| BotError::Left),
                gone = admission.wait_for(|a| matches!(a, Admission::Gone(_))) => Err(gone.map_or(BotError::Left, |a| match &*a {
                    Admission::Gone(error) => error.clone(),
                    _ => BotError::Left,
                })),
            }
        })
        .await;
        waited.map_err(|_| BotError::Timeout)?
    }

    /// Sends a message to the node (chat, pin, receive_video, moderation ...).
    pub async fn send(&self, message: ClientMessage) -> Result<(), BotError> {
        if self.is_gone() {
            return Err(self.gone_reason());
        }
        self.shared.outgoing.send(message).await.map_err(|_| self.gone_reason())
    }

    /// The oldest queued server message (everything but offers and answers: welcome, lobby, participant and
    /// room changes, chat, refusals, errors ...).
    pub async fn next_message(&self, timeout: Duration) -> Result<ServerMessage, BotError> {
        self.wait_for(timeout, |_| true).await
    }

    /// The oldest queued server message `predicate` accepts, removed from the queue; the others stay queued.
    /// Fails with the reason once the bot is gone and no queued message matches, or with `Timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&ServerMessage) -> bool,
    ) -> Result<ServerMessage, BotError> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.shared.events_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Ok(mut events) = self.shared.events.lock()
                && let Some(position) = events.iter().position(&mut predicate)
                && let Some(message) = events.remove(position)
            {
                return Ok(message);
            }
            if self.is_gone() {
                return Err(self.gone_reason());
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => return Err(BotError::Timeout),
            }
        }
    }

    /// Server messages dropped because the queue was full.
    pub fn dropped_messages(&self) -> u64 {
        self.shared.dropped_events.load(Ordering::Relaxed)
    }

    /// The node's latest `tracks`: whose media each received m-line carries.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.shared.tracks.lock().map(|tracks| tracks.clone()).unwrap_or_default()
    }

    /// Speaking (audio level 25, with the marker bit on the first packet) or silent (127).
    pub fn set_speaking(&self, speaking: bool) {
        self.shared.send.speaking.store(speaking, Ordering::Relaxed);
    }

    /// What the bot has received and sent so far.
    pub fn stats(&self) -> BotStats {
        let mapping = self.tracks();
        stats::bot_stats(
            &self.shared.recorder,
            Some(self.id()),
            &mapping,
            self.shared.hello_us,
            self.shared.send.snapshot(),
        )
    }

    /// The one-way delays of what the bot received, to merge with other bots'.
    pub fn delays(&self) -> DelayHistogram {
        stats::delays(&self.shared.recorder)
    }

    /// Starts the received counters and the delay histogram afresh (to measure a window).
    pub fn reset_stats(&self) {
        stats::reset(&self.shared.recorder);
    }

    /// Says `leave`, closes the socket and the WebRTC connection, and waits (briefly) for both.
    pub async fn leave(mut self) {
        let _ = self.shared.outgoing.try_send(ClientMessage::Leave);
        self.shared.end(BotError::Left);
        if let Some(writer) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
        }
        if let Some(pc) = &self.pc {
            let _ = tokio::time::timeout(Duration::from_secs(2), pc.close()).await;
        }
    }

    fn gone_reason(&self) -> BotError {
        match &*self.shared.admission.borrow() {
            Admission::Gone(error) => error.clone(),
            _ => BotError::Left,
        }
    }
}

async fn send_frame(sink: &mut SplitSink<Socket, Message>, message: &ClientMessage) -> Result<(), BotError> {
    let text = serde_json::to_string(message).map_err(|error| BotError::Protocol(error.to_string()))?;
    sink.send(Message::text(text)).await.map_err(BotError::from)
}

/// The next server message; pings are answered by tungstenite, other frames skipped.
async fn next_server_message(stream: &mut SplitStream<Socket>) -> Result<ServerMessage, BotError> {
    while let Some(frame) = stream.next().await {
        match frame? {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|error| BotError::Protocol(format!("unreadable server message: {error}")));
            }
            Message::Close(_) => return Err(BotError::Closed),
            _ => {}
        }
    }
    Err(BotError::Closed)
}

/// Sends queued messages until cancelled, then flushes what is queued (a `leave`) and closes the socket.
async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut outgoing: mpsc::Receiver<ClientMessage>,
    cancel: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            biased;
            message = outgoing.recv() => message,
            _ = cancel.cancelled() => None,
        };
        let Some(message) = message else { break };
        if send_frame(&mut sink, &message).await.is_err() {
            return;
        }
    }
    while let Ok(message) = outgoing.try_recv() {
        if send_frame(&mut sink, &message).await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

async fn read_loop(mut stream: SplitStream<Socket>, shared: Arc<Shared>, negotiation: mpsc::Sender<Negotiation>) {
    loop {
        let message = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            message = next_server_message(&mut stream) => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "bot signalling ended");
                shared.end(error);
                return;
            }
        };
        let to_negotiation = match message {
            ServerMessage::Answer { sdp } => Some(Negotiation::Answer(sdp)),
            ServerMessage::Offer { sdp, tracks } => Some(Negotiation::Offer { sdp, tracks }),
            ServerMessage::Welcome { you, .. } => {
                shared.id.store(you.0, Ordering::Relaxed);
                let admitted = shared.admission.send_if_modified(|admission| {
                    let lobby = *admission == Admission::Lobby;
                    if lobby {
                        *admission = Admission::InRoom;
                    }
                    lobby
                });
                shared.push_event(message);
                admitted.then_some(Negotiation::Start)
            }
            ServerMessage::Refused { reason, message } => {
                let error = BotError::Refused { reason, message: message.clone() };
                shared.push_event(ServerMessage::Refused { reason, message });
                shared.end(error);
                return;
            }
            ServerMessage::Error { ref code, message: ref text } => {
                // A refused offer or answer leaves a negotiation unfinished: worth seeing in a benchmark's log.
                tracing::warn!(code, message = text, "the node refused a bot's message");
                shared.push_event(message);
                None
            }
            other => {
                shared.push_event(other);
                None
            }
        };
        if let Some(step) = to_negotiation {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                _ = negotiation.send(step) => {}
            }
        }
    }
}

/// All SDP work, one step at a time: the bot's own offer and the node's offers never overlap (a node offer
/// that arrives while the bot's offer waits for its answer is applied after the answer).
async fn negotiate(
    shared: Arc<Shared>,
    pc: Arc<RTCPeerConnection>,
    publisher: Publisher,
    mut steps: mpsc::Receiver<Negotiation>,
    offered: oneshot::Sender<Result<(), BotError>>,
    timeout: Duration,
) {
    let mut publisher = Some(publisher);
    let mut offered = Some(offered);
    let mut awaiting_answer = false;
    let cancel = shared.cancel.clone();
    loop {
        let step = tokio::select! {
            _ = cancel.cancelled() => break,
            step = steps.recv() => step,
        };
        let Some(step) = step else { break };
        let result = match step {
            Negotiation::Start => {
                let result = start(&shared, &pc, &mut publisher, timeout).await;
                awaiting_answer = result.as_ref().is_ok_and(|sent| *sent);
                if let Some(offered) = offered.take() {
                    let _ = offered.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
                }
                result.map(|_| ())
            }
            Negotiation::Answer(sdp) if awaiting_answer => {
                awaiting_answer = false;
                match RTCSessionDescription::answer(sdp) {
                    Ok(answer) => pc.set_remote_description(answer).await.map_err(BotError::from),
                    Err(error) => Err(error.into()),
                }
            }
            Negotiation::Answer(_) => Err(BotError::Protocol("an answer without an offer".to_owned())),
            // The node withdraws its offer when ours crosses it and offers again once it has answered, as
            // the meeting client knows: answering the withdrawn one would leave its tracks half-open.
            Negotiation::Offer { .. } if awaiting_answer => Ok(()),
            Negotiation::Offer { sdp, tracks } => answer_offer(&shared, &pc, sdp, tracks, timeout).await,
        };
        if let Err(error) = result {
            // A bot leaving while the node renegotiates (others leave too) is how a meeting ends, not a failure.
            if matches!(error, BotError::Left) {
                tracing::debug!("bot negotiation stopped: the bot left");
            } else {
                tracing::warn!(%error, "bot negotiation failed");
            }
            shared.end(error);
            break;
        }
    }
    let _ = pc.close().await;
}

/// Sends the bot's first offer, with its ICE candidates (the node is ICE-lite and does not trickle), and starts
/// the media; false when the bot publishes nothing (it then only answers the node's offers).
async fn start(
    shared: &Arc<Shared>,
    pc: &RTCPeerConnection,
    publisher: &mut Option<Publisher>,
    timeout: Duration,
) -> Result<bool, BotError> {
    let Some(publisher) = publisher.take() else { return Ok(false) };
    if pc.get_transceivers().await.is_empty() {
        return Ok(false);
    }
    let offer = pc.create_offer(None).await?;
    let sdp = set_local_and_gather(pc, offer, timeout).await?;
    shared
        .outgoing
        .send(ClientMessage::Offer { sdp, screen: None, publish_only: false })
        .await
        .map_err(|_| BotError::Left)?;
    publisher.start(&shared.send, &shared.media_state, &shared.cancel);
    Ok(true)
}

async fn answer_offer(
    shared: &Shared,
    pc: &RTCPeerConnection,
    sdp: String,
    tracks: Vec<TrackInfo>,
    timeout: Duration,
) -> Result<(), BotError> {
    ready_for_offer(pc, &shared.media_state, timeout).await?;
    if let Ok(mut mapping) = shared.tracks.lock() {
        *mapping = tracks;
    }
    pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
    let answer = pc.create_answer(None).await?;
    let sdp = set_local_and_gather(pc, answer, timeout).await?;
    receivers_started(pc, timeout).await;
    shared.outgoing.send(ClientMessage::Answer { sdp }).await.map_err(|_| BotError::Left)
}

/// Returns once every m-line that receives has its track, or after `within`. webrtc-rs starts a
/// renegotiation's receivers on a task of its own after `set_local_description`; a packet that arrives first
/// is taken for an undeclared simulcast stream, the probe fails (no RID), and that track never receives. The
/// node forwards as soon as it has the answer, so the answer waits (browsers demultiplex by SSRC and MID and
/// need no such wait).
async fn receivers_started(pc: &RTCPeerConnection, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut waiting = false;
        for transceiver in pc.get_transceivers().await {
            let receives = matches!(
                transceiver.current_direction(),
                RTCRtpTransceiverDirection::Recvonly | RTCRtpTransceiverDirection::Sendrecv
            );
            if receives && transceiver.receiver().await.tracks().await.is_empty() {
                waiting = true;
                break;
            }
        }
        if !waiting || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Returns once `pc` can take a remote offer: at once before the first exchange, else when it is connected.
/// webrtc-rs starts its transports in the background after the first exchange; an offer applied before they
/// are up restarts ICE and flips the DTLS role. Browsers cope; the bots wait.
pub(crate) async fn ready_for_offer(
    pc: &RTCPeerConnection,
    state: &watch::Receiver<RTCPeerConnectionState>,
    timeout: Duration,
) -> Result<(), BotError> {
    if pc.remote_description().await.is_none() {
        return Ok(());
    }
    let mut state = state.clone();
    let up = state.wait_for(|state| {
        matches!(
            state,
            RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        )
    });
    match tokio::time::timeout(timeout, up).await {
        Ok(Ok(state)) if *state == RTCPeerConnectionState::Connected => Ok(()),
        Ok(_) => Err(BotError::WebRtc("the media connection failed".to_owned())),
        Err(_) => Err(BotError::Timeout),
    }
}

/// Sets the local description and returns it once ICE gathering is complete (at once after the first time).
pub(crate) async fn set_local_and_gather(
    pc: &RTCPeerConnection,
    description: RTCSessionDescription,
    timeout: Duration,
) -> Result<String, BotError> {
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(description).await?;
    tokio::time::timeout(timeout, gathered.recv()).await.map_err(|_| BotError::Timeout)?;
    let local = pc.local_description().await.ok_or_else(|| BotError::WebRtc("no local description".to_owned()))?;
    Ok(local.sdp)
}
