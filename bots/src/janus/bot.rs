//! A participant in a Janus VideoRoom: one handle publishes the bots' simulcast VP8 and Opus, another
//! subscribes to everyone else in one PeerConnection (Janus 1.x multistream), asking for the stage's high
//! layer and everyone else's low layer, as a client with one stage and thumbnails would. The two connections
//! run on either media stack ([`BotStack`]), as Convene's bots do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convene_signal::{ParticipantId, TrackInfo, TrackSource};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

use super::api::{Departure, Failure, Jsep, Message, PluginEvent, RoomEvent, SdpKind, Session, StreamKind};
use super::api::{SubscriptionStream, VIDEOROOM, client};
use super::server::ICE_ADDRESS;
use crate::bot::{self, BotError, BotStack};
use crate::light::{LightPeer, SessionOwner, Step};
use crate::media::{self, MediaOptions, Publisher, SendShared, VideoProfile};
use crate::stats::{self, BotStats, DelayHistogram, Recorder};

/// Janus expires a session after 60 s without a request.
const KEEPALIVE: Duration = Duration::from_secs(25);
/// Subscription events Janus sends on its own that change it (offers it postponed or made when a publisher
/// went); the many that only report a layer switch are not queued.
const SUBSCRIPTION_EVENTS: usize = 16;
/// The simulcast layer asked for: the stage's highest, everyone else's lowest.
const STAGE_SUBSTREAM: u8 = 2;
const THUMBNAIL_SUBSTREAM: u8 = 0;
/// The longest wait for each step of leaving.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a [`JanusBot`] joins and what it publishes.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// The HTTP API's root, e.g. `http://127.0.0.1:8088/janus` ([`super::JanusServer::url`]).
    pub url: String,
    /// The VideoRoom.
    pub room: u64,
    /// The display name others see (and choose their stage by).
    pub display: String,
    /// The camera; `None` publishes no video.
    pub video: Option<VideoProfile>,
    /// Publish a microphone.
    pub audio: bool,
    /// Speak (audio level 25) rather than stay silent (127).
    pub speaking: bool,
    /// Video frames per second.
    pub fps: u32,
    /// A keyframe on every layer this often (besides the first and those Janus asks for).
    pub keyframe_interval: Duration,
    /// The display name of the publisher shown large: its camera in the highest layer, everyone else's in
    /// the lowest.
    pub stage: Option<String>,
    /// The longest wait for each request and each step of joining.
    pub timeout: Duration,
    /// The media stack of both connections.
    pub stack: BotStack,
}

impl JanusOptions {
    /// A bot with a 720p simulcast camera and a silent microphone at 30 fps, keyframes every 10 s, no stage.
    pub fn new(url: impl Into<String>, room: u64, display: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            room,
            display: display.into(),
            video: Some(VideoProfile::p720()),
            audio: true,
            speaking: false,
            fps: 30,
            keyframe_interval: Duration::from_secs(10),
            stage: None,
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

#[derive(Debug, Clone, Copy)]
struct Handles {
    publisher: u64,
    subscriber: u64,
}

impl Handles {
    fn name(&self, handle: u64) -> &'static str {
        match handle {
            handle if handle == self.publisher => "publisher",
            handle if handle == self.subscriber => "subscriber",
            _ => "unknown",
        }
    }
}

/// The publisher's and the subscriber's connections, closed together when the bot ends.
enum Connections {
    WebRtc {
        publisher: Arc<RTCPeerConnection>,
        subscriber: Arc<RTCPeerConnection>,
    },
    /// Sessions on the light bots' media threads: closed when the last clone is dropped.
    Light {
        _publisher: LightPeer,
        _subscriber: LightPeer,
    },
}

impl Connections {
    /// Opens both on the stack `options` chose: the publisher with the bot's sources, the subscriber recording
    /// what arrives into `shared`'s recorder.
    async fn open(options: &JanusOptions, shared: &Arc<Shared>) -> Result<(Self, Publishing, Subscribing), BotError> {
        match options.stack {
            BotStack::WebRtc => {
                let api = media::build_api(true)?;
                let publisher = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
                let subscriber = match api.new_peer_connection(RTCConfiguration::default()).await {
                    Ok(subscriber) => Arc::new(subscriber),
                    Err(error) => {
                        let _ = publisher.close().await;
                        return Err(error.into());
                    }
                };
                let connections = Self::WebRtc { publisher: publisher.clone(), subscriber: subscriber.clone() };
                let publisher_state = media::watch_state(&publisher);
                let subscriber_state = media::watch_state(&subscriber);
                let publication = match Publisher::add_to(&publisher, &options.media()).await {
                    Ok(publication) => publication,
                    Err(error) => {
                        connections.close().await;
                        return Err(error.into());
                    }
                };
                media::receive_into(&subscriber, shared.recorder.clone(), shared.cancel.clone());
                let publishing = Publishing::WebRtc { pc: publisher, publication, state: publisher_state };
                Ok((connections, publishing, Subscribing::WebRtc { pc: subscriber, state: subscriber_state }))
            }
            BotStack::Light => {
                // Janus sends from its ICE address on an interface of its own, from where the kernel refuses
                // to send to 127.0.0.1: the sessions' sockets sit at that address too.
                let owner = || SessionOwner {
                    recorder: shared.recorder.clone(),
                    send: shared.send.clone(),
                    end: Box::new({
                        let shared = shared.clone();
                        move |error| shared.end(error)
                    }),
                };
                let new = || watch::Sender::new(RTCPeerConnectionState::New);
                let publisher = LightPeer::open(owner(), ICE_ADDRESS, &options.media(), new())?;
                let receive_only = MediaOptions { video: None, audio: false, ..options.media() };
                let subscriber = LightPeer::open(owner(), ICE_ADDRESS, &receive_only, new())?;
                let connections = Self::Light { _publisher: publisher.clone(), _subscriber: subscriber.clone() };
                Ok((connections, Publishing::Light(publisher), Subscribing::Light(subscriber)))
            }
        }
    }

    async fn close(self) {
        if let Self::WebRtc { publisher, subscriber } = self {
            for pc in [publisher, subscriber] {
                let _ = tokio::time::timeout(LEAVE_TIMEOUT, pc.close()).await;
            }
        }
    }
}

/// The publisher's connection until Janus answers its offer.
enum Publishing {
    WebRtc { pc: Arc<RTCPeerConnection>, publication: Publisher, state: watch::Receiver<RTCPeerConnectionState> },
    Light(LightPeer),
}

impl Publishing {
    /// The offer to publish with; none when the bot publishes nothing.
    async fn offer(&self, timeout: Duration) -> Result<Option<String>, BotError> {
        match self {
            Self::WebRtc { pc, .. } => {
                if pc.get_transceivers().await.is_empty() {
                    return Ok(None);
                }
                let offer = pc.create_offer(None).await?;
                Ok(Some(bot::set_local_and_gather(pc, offer, timeout).await?))
            }
            Self::Light(peer) => peer.negotiate(Step::Offer).await,
        }
    }

    /// Takes Janus's answer; the sources send once the connection is up.
    async fn accept(self, answer: String, shared: &Shared) -> Result<(), BotError> {
        match self {
            Self::WebRtc { pc, publication, state } => {
                pc.set_remote_description(RTCSessionDescription::answer(answer)?).await?;
                publication.start(&shared.send, &state, &shared.cancel);
            }
            Self::Light(peer) => {
                peer.negotiate(Step::Accept(answer)).await?;
            }
        }
        Ok(())
    }
}

/// The subscriber's connection, which answers Janus's offers.
enum Subscribing {
    WebRtc { pc: Arc<RTCPeerConnection>, state: watch::Receiver<RTCPeerConnectionState> },
    Light(LightPeer),
}

impl Subscribing {
    async fn answer(&self, offer: String, timeout: Duration) -> Result<String, BotError> {
        match self {
            Self::WebRtc { pc, state } => {
                bot::ready_for_offer(pc, state, timeout).await?;
                pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
                let answer = pc.create_answer(None).await?;
                bot::set_local_and_gather(pc, answer, timeout).await
            }
            // The subscriber never offers, so its session always answers.
            Self::Light(peer) => peer
                .negotiate(Step::Answer(offer))
                .await?
                .ok_or_else(|| BotError::Protocol("the subscription's session had an offer pending".to_owned())),
        }
    }
}

struct Shared {
    session: Arc<Session>,
    handles: Handles,
    room: u64,
    /// The Janus publisher id, once joined.
    id: AtomicU64,
    recorder: Arc<Mutex<Recorder>>,
    /// Whose media each subscribed m-line carries.
    tracks: Mutex<Vec<TrackInfo>>,
    send: Arc<SendShared>,
    joining_us: u64,
    /// The room's publishers (id to display name), as the publisher handle hears of them.
    publishers: watch::Sender<BTreeMap<u64, String>>,
    failure: Mutex<Option<BotError>>,
    cancel: CancellationToken,
}

impl Shared {
    /// Ends the bot once: the first reason sticks.
    fn end(&self, error: BotError) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
        self.cancel.cancel();
    }

    /// Follows publishers arriving (`joined`, `publishers`) and going (`unpublished`, `leaving`).
    fn note_room(&self, event: &RoomEvent) {
        let departed: Vec<u64> =
            [&event.unpublished, &event.leaving].into_iter().flatten().filter_map(Departure::participant).collect();
        if event.publishers.is_empty() && departed.is_empty() {
            return;
        }
        self.publishers.send_modify(|room| {
            for publisher in &event.publishers {
                room.insert(publisher.id, publisher.display.clone());
            }
            for id in &departed {
                room.remove(id);
            }
        });
    }

    async fn request(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<PluginEvent, Failure> {
        self.session.request(handle, body, jsep).await
    }
}

/// A participant in a Janus VideoRoom, over Janus's HTTP API and two PeerConnections. Dropping it ends all
/// its tasks, destroys its session and closes its connections.
pub struct JanusBot {
    shared: Arc<Shared>,
    teardown: JoinHandle<()>,
    _guard: DropGuard,
}

impl std::fmt::Debug for JanusBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanusBot").field("id", &self.id()).field("failure", &self.failure()).finish()
    }
}

impl JanusBot {
    /// Creates a session, joins the room as a publisher, publishes (returning once Janus answered the offer)
    /// and starts the subscription task, which subscribes to everyone else as they publish.
    pub async fn join(options: JanusOptions) -> Result<Self, BotError> {
        if options.video.as_ref().is_some_and(|video| !video.is_valid()) {
            return Err(BotError::Options("a video profile has one or three layers, each with a bitrate".to_owned()));
        }
        let joining_us = media::now_us();
        let timeout = options.timeout;
        let session = Arc::new(Session::create(client()?, &options.url, timeout).await?);
        // From here on, failing (or dropping the bot) destroys the session and closes both connections.
        let cancel = CancellationToken::new();
        let (opened, connections) = oneshot::channel();
        let teardown = tokio::spawn(tear_down(session.clone(), connections, cancel.clone()));
        let guard = cancel.clone().drop_guard();

        let handles =
            Handles { publisher: session.attach(VIDEOROOM).await?, subscriber: session.attach(VIDEOROOM).await? };
        let send = Arc::new(SendShared::default());
        send.speaking.store(options.speaking, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            session,
            handles,
            room: options.room,
            id: AtomicU64::new(0),
            recorder: Arc::new(Mutex::new(Recorder::default())),
            tracks: Mutex::new(Vec::new()),
            send,
            joining_us,
            publishers: watch::Sender::new(BTreeMap::new()),
            failure: Mutex::new(None),
            cancel: cancel.clone(),
        });
        let (connections, publishing, subscribing) = Connections::open(&options, &shared).await?;
        if let Err(connections) = opened.send(connections) {
            connections.close().await;
            return Err(BotError::Left);
        }
        let (subscription_events, subscription_events_rx) = mpsc::channel(SUBSCRIPTION_EVENTS);
        tokio::spawn(poll_events(shared.clone(), subscription_events));
        tokio::spawn(keep_alive(shared.clone()));
        let bot = Self { shared, teardown, _guard: guard };
        let private_id = match bot.enter(&options, publishing).await {
            Ok(private_id) => private_id,
            // A request fails plainly when the bot ended meanwhile: the reason it ended says more.
            Err(error) => return Err(bot.failure().unwrap_or(error)),
        };
        let subscription = Subscription {
            shared: bot.shared.clone(),
            peer: subscribing,
            private_id,
            stage: options.stage,
            timeout,
            joined: false,
            feeds: BTreeSet::new(),
            streams: Vec::new(),
            layers: HashMap::new(),
        };
        tokio::spawn(subscription.run(subscription_events_rx));
        Ok(bot)
    }

    /// Joins the room as a publisher and publishes; returns the id to tie the subscription to.
    async fn enter(&self, options: &JanusOptions, publishing: Publishing) -> Result<Option<u64>, BotError> {
        let shared = &self.shared;
        let join = json!({ "request": "join", "ptype": "publisher", "room": options.room, "display": options.display });
        let joined = shared.request(shared.handles.publisher, join, None).await?;
        let id =
            joined.data.id.filter(|_| joined.data.videoroom == "joined").ok_or_else(|| {
                BotError::Protocol(format!("expected joined with an id, got {}", joined.data.videoroom))
            })?;
        shared.id.store(id, Ordering::Relaxed);
        shared.note_room(&joined.data);
        let Some(sdp) = publishing.offer(options.timeout).await? else { return Ok(joined.data.private_id) };
        // The bots list their RIDs lowest first; Janus assumes highest first unless told.
        let jsep = json!({ "type": "offer", "sdp": sdp, "trickle": false, "rid_order": "lmh" });
        let published = shared.request(shared.handles.publisher, json!({ "request": "publish" }), Some(jsep)).await?;
        let answer = published
            .jsep
            .filter(|jsep| jsep.kind == SdpKind::Answer)
            .ok_or_else(|| BotError::Protocol("janus took the publication without an answer".to_owned()))?;
        publishing.accept(answer.sdp, shared).await?;
        Ok(joined.data.private_id)
    }

    /// The bot's Janus publisher id.
    pub fn id(&self) -> ParticipantId {
        ParticipantId(self.shared.id.load(Ordering::Relaxed))
    }

    /// Why the bot ended on its own (Janus hung up, the session failed ...), if it did.
    pub fn failure(&self) -> Option<BotError> {
        self.shared.failure.lock().ok().and_then(|failure| failure.clone())
    }

    /// What the bot has received and sent so far; `time_to_join` counts from the start of [`JanusBot::join`].
    pub fn stats(&self) -> BotStats {
        let mapping = self.shared.tracks.lock().map(|tracks| tracks.clone()).unwrap_or_default();
        stats::bot_stats(
            &self.shared.recorder,
            Some(self.id()),
            &mapping,
            self.shared.joining_us,
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

    /// Leaves the room, hangs up both connections, destroys the session and closes both PeerConnections,
    /// waiting briefly for each step.
    pub async fn leave(self) {
        let (session, handles) = (&self.shared.session, self.shared.handles);
        // Leaving first tells the others at once; the hangups close Janus's side of both connections.
        let leave = session.request(handles.publisher, json!({ "request": "leave" }), None);
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, leave).await;
        for handle in [handles.publisher, handles.subscriber] {
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, session.hangup(handle)).await;
        }
        self.shared.end(BotError::Left);
        let _ = tokio::time::timeout(LEAVE_TIMEOUT * 3, self.teardown).await;
    }
}

/// Once the bot ends: destroys the session (Janus then detaches both handles) and closes both connections,
/// if the bot got as far as opening them.
async fn tear_down(session: Arc<Session>, connections: oneshot::Receiver<Connections>, cancel: CancellationToken) {
    cancel.cancelled().await;
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, session.destroy()).await;
    if let Ok(connections) = connections.await {
        connections.close().await;
    }
}

/// Janus expires an idle session; a keepalive is a request.
async fn keep_alive(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(KEEPALIVE) => {}
        }
        if let Err(error) = shared.session.keepalive().await {
            shared.end(error);
            return;
        }
    }
}

/// Long-polls the session's events: replies go to their requests, room news to the room view, the
/// subscription's own events to its task; a hangup, a detach or a failed poll ends the bot.
async fn poll_events(shared: Arc<Shared>, subscription: mpsc::Sender<PluginEvent>) {
    let ended = loop {
        let polled = tokio::select! {
            _ = shared.cancel.cancelled() => break None,
            polled = shared.session.poll() => polled,
        };
        let messages = match polled {
            Ok(messages) => messages,
            Err(error) => break Some(error),
        };
        if let Some(error) = messages.into_iter().find_map(|message| dispatch(&shared, &subscription, message).err()) {
            break Some(error);
        }
    };
    shared.session.abandon_waiting();
    if let Some(error) = ended {
        tracing::debug!(%error, "janus bot events ended");
        shared.end(error);
    }
}

fn dispatch(shared: &Shared, subscription: &mpsc::Sender<PluginEvent>, message: Message) -> Result<(), BotError> {
    let handles = shared.handles;
    match message {
        Message::Event { transaction, sender, plugindata, jsep } => {
            let event = PluginEvent { data: plugindata.videoroom()?, jsep };
            let Some(event) = shared.session.deliver(transaction.as_deref(), event) else { return Ok(()) };
            if sender == handles.publisher {
                shared.note_room(&event.data);
            } else if sender == handles.subscriber && event.changes_subscription() {
                subscription.try_send(event).map_err(|_| {
                    BotError::Protocol("janus sent more subscription updates than the bot queues".to_owned())
                })?;
            }
            Ok(())
        }
        Message::Hangup { sender, reason } => Err(BotError::WebRtc(format!(
            "janus hung up the {} connection: {}",
            handles.name(sender),
            reason.unwrap_or_default()
        ))),
        Message::Detached { sender } => {
            Err(BotError::Protocol(format!("janus detached the {} handle", handles.name(sender))))
        }
        Message::Timeout => Err(BotError::Protocol("the janus session expired".to_owned())),
        Message::Success { .. } | Message::Ack | Message::Error { .. } | Message::Other => Ok(()),
    }
}

/// The subscriber handle and its PeerConnection: one task, one negotiation at a time.
struct Subscription {
    shared: Arc<Shared>,
    peer: Subscribing,
    private_id: Option<u64>,
    stage: Option<String>,
    timeout: Duration,
    /// Whether the handle joined (it can only join with a feed to subscribe to).
    joined: bool,
    /// The publishers subscribed to.
    feeds: BTreeSet<u64>,
    /// The subscription's m-lines, as Janus last described them.
    streams: Vec<SubscriptionStream>,
    /// The layer asked for on each video m-line, and for whose camera.
    layers: HashMap<String, (u64, u8)>,
}

/// What wakes the subscription task.
enum Wake {
    Room,
    Event(Box<PluginEvent>),
    Ended,
}

impl Subscription {
    async fn run(mut self, mut events: mpsc::Receiver<PluginEvent>) {
        let mut room = self.shared.publishers.subscribe();
        room.mark_changed();
        let cancel = self.shared.cancel.clone();
        loop {
            let wake = tokio::select! {
                _ = cancel.cancelled() => Wake::Ended,
                changed = room.changed() => if changed.is_ok() { Wake::Room } else { Wake::Ended },
                event = events.recv() => event.map_or(Wake::Ended, |event| Wake::Event(Box::new(event))),
            };
            let step = match wake {
                Wake::Room => {
                    let publishers = room.borrow_and_update().clone();
                    self.follow(&publishers).await
                }
                Wake::Event(event) => self.apply(*event).await,
                Wake::Ended => return,
            };
            if let Err(error) = step {
                tracing::warn!(%error, "janus bot subscription failed");
                self.shared.end(error);
                return;
            }
        }
    }

    /// Subscribes to publishers new in the room and unsubscribes from those gone.
    async fn follow(&mut self, publishers: &BTreeMap<u64, String>) -> Result<(), BotError> {
        let me = self.shared.id.load(Ordering::Relaxed);
        let gone: Vec<u64> = self.feeds.iter().filter(|feed| !publishers.contains_key(feed)).copied().collect();
        let new: Vec<u64> = publishers.keys().filter(|id| **id != me && !self.feeds.contains(id)).copied().collect();
        for feed in &gone {
            self.feeds.remove(feed);
        }
        // By the subscription's own mids: once a publisher has left, Janus no longer finds it by its id (and
        // skips its own update of the subscription), so an unsubscribe by feed would change nothing.
        let stale: Vec<Value> = self
            .streams
            .iter()
            .filter(|stream| stream.active && stream.feed_id.is_some_and(|feed| gone.contains(&feed)))
            .map(|stream| json!({ "sub_mid": stream.mid }))
            .collect();
        if !stale.is_empty() {
            let body = json!({ "request": "unsubscribe", "streams": stale });
            let event = self.shared.request(self.shared.handles.subscriber, body, None).await?;
            self.apply(event).await?;
        }
        if new.is_empty() {
            return Ok(());
        }
        match self.subscribe(&new).await {
            // One of them went meanwhile (Janus refuses the whole request): the others one by one.
            Err(failure) if failure.is_no_such_feed() && new.len() > 1 => {
                for feed in new {
                    match self.subscribe(&[feed]).await {
                        Err(failure) if failure.is_no_such_feed() => {}
                        other => other?,
                    }
                }
                Ok(())
            }
            other => Ok(other?),
        }
    }

    /// Joins with `feeds`, or adds them to the subscription; either way Janus offers the new layout.
    async fn subscribe(&mut self, feeds: &[u64]) -> Result<(), Failure> {
        let mut body = if self.joined {
            json!({ "request": "subscribe", "streams": feed_list(feeds) })
        } else {
            json!({ "request": "join", "ptype": "subscriber", "room": self.shared.room, "streams": feed_list(feeds) })
        };
        if let (false, Some(private_id)) = (self.joined, self.private_id) {
            body["private_id"] = private_id.into();
        }
        let event = self.shared.request(self.shared.handles.subscriber, body, None).await?;
        self.joined = true;
        self.feeds.extend(feeds);
        Ok(self.apply(event).await?)
    }

    /// Takes a subscription event: its layout (whose stream each m-line carries), its offer, and then the
    /// layers to ask for.
    async fn apply(&mut self, event: PluginEvent) -> Result<(), BotError> {
        if let Some(streams) = event.data.streams {
            self.streams = streams;
            if let Ok(mut tracks) = self.shared.tracks.lock() {
                *tracks = self.streams.iter().filter_map(track_info).collect();
            }
        }
        if let Some(offer) = event.jsep {
            self.answer(offer).await?;
        }
        self.choose_layers().await
    }

    async fn answer(&self, offer: Jsep) -> Result<(), BotError> {
        if offer.kind != SdpKind::Offer {
            return Err(BotError::Protocol("janus sent the subscription an answer".to_owned()));
        }
        let sdp = self.peer.answer(offer.sdp, self.timeout).await?;
        let jsep = json!({ "type": "answer", "sdp": sdp, "trickle": false });
        self.shared.request(self.shared.handles.subscriber, json!({ "request": "start" }), Some(jsep)).await?;
        Ok(())
    }

    /// Asks for the stage's highest layer and everyone else's lowest, on the m-lines not asked yet.
    async fn choose_layers(&mut self) -> Result<(), BotError> {
        let cameras: Vec<(&str, u64, u8)> = self
            .streams
            .iter()
            .filter(|stream| stream.active && stream.kind == StreamKind::Video)
            .filter_map(|stream| {
                let on_stage = self.stage.as_deref() == Some(stream.feed_display.as_str());
                let substream = if on_stage { STAGE_SUBSTREAM } else { THUMBNAIL_SUBSTREAM };
                Some((stream.mid.as_str(), stream.feed_id?, substream))
            })
            .collect();
        self.layers.retain(|mid, _| cameras.iter().any(|(camera, ..)| camera == mid));
        let changes: Vec<(String, u64, u8)> = cameras
            .into_iter()
            .filter(|(mid, feed, substream)| self.layers.get(*mid) != Some(&(*feed, *substream)))
            .map(|(mid, feed, substream)| (mid.to_owned(), feed, substream))
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let streams: Vec<Value> =
            changes.iter().map(|(mid, _, substream)| json!({ "mid": mid, "substream": substream })).collect();
        let body = json!({ "request": "configure", "streams": streams });
        self.shared.request(self.shared.handles.subscriber, body, None).await?;
        for (mid, feed, substream) in changes {
            self.layers.insert(mid, (feed, substream));
        }
        Ok(())
    }
}

fn feed_list(feeds: &[u64]) -> Vec<Value> {
    feeds.iter().map(|feed| json!({ "feed": feed })).collect()
}

/// Whose media an active m-line carries.
fn track_info(stream: &SubscriptionStream) -> Option<TrackInfo> {
    let source = match stream.kind {
        StreamKind::Audio => TrackSource::Microphone,
        StreamKind::Video => TrackSource::Camera,
        StreamKind::Data => return None,
    };
    let participant = ParticipantId(stream.feed_id.filter(|_| stream.active)?);
    Some(TrackInfo { mid: stream.mid.clone(), participant, source })
}
