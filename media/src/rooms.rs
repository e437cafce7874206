//! The rooms a node hosts, each a task that owns its [`focus::Room`] and the outboxes of its connections.
//! Connections talk to their room through channels, so one room's work never blocks another's and a slow
//! client only fills its own bounded outbox (and is dropped when it is full). A member whose connection drops
//! stays for [`RESUME_GRACE_SECS`]: a new connection with the session's resume secret continues it (same id,
//! media untouched); the others see them leave only when the grace runs out.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use convene_signal::{ClientMessage, DialOutState, ParticipantId, RESUME_GRACE_SECS, Refusal, ServerMessage};
use lru::LruCache;
use subtle::ConstantTimeEq;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    focus::{self, Identity, Outbound, PhoneLeg, RoomPolicy},
    gateway::Dialer,
    plane::{Delivery, MediaCommand, MediaPlane, TapSink},
    recording::{Finished, Recorder, RecordingStore, manifest::Presence},
    sfu::{PeerKey, RoomId},
    signal_metrics::SignalMetrics,
    streaming::{LiveStream, StreamTarget},
};

/// Who started (or stopped) a recording or stream because of the room's settings, as participants see it.
pub const SETTINGS_STARTER: &str = "the room's settings";

/// Messages a connection may have waiting before it counts as too slow and is closed.
const OUTBOX: usize = 256;
/// Commands a room may have waiting.
const INBOX: usize = 1024;

enum Command {
    Connect {
        identity: Identity,
        version: u32,
        password: Option<String>,
        resume: Option<String>,
        /// The room's settings and the plan's allowance as they are now (boxed: commands stay small).
        policy: Box<RoomPolicy>,
        outbox: mpsc::Sender<Delivery>,
        /// The participant's id, the connection's own number and the room's number on the media plane.
        reply: oneshot::Sender<(ParticipantId, u64, RoomId)>,
    },
    Message(ParticipantId, ClientMessage),
    /// A connection (by participant and number) closed.
    Disconnect(ParticipantId, u64),
    /// The control plane starts or stops recording (`by`: who, in words).
    Record {
        start: bool,
        by: String,
        reply: oneshot::Sender<Result<Option<String>, String>>,
    },
    /// The room's recorder stopped (by itself when `reason` says why).
    RecordingEnded {
        recording: String,
        reason: Option<String>,
    },
    /// The control plane starts (`Some`: where to) or stops a live stream (`by`: who, in words).
    LiveStream {
        target: Option<StreamTarget>,
        by: String,
        reply: oneshot::Sender<Result<Option<String>, String>>,
    },
    /// The room's live stream stopped by itself (`reason` says why).
    LiveStreamEnded {
        stream: String,
        reason: Option<String>,
    },
    /// The control plane calls a phone into the meeting (`by`: who, in words); answers the call's id.
    DialOut {
        number: String,
        by: String,
        reply: oneshot::Sender<Result<String, DialOutError>>,
    },
    /// A phone call placed from the meeting changed state (the gateway says).
    DialOutChanged(focus::DialOutChange),
}

/// A room is found by its tenant and name.
pub type RoomKey = (String, String);

/// What the node tells the control plane about its rooms (meetings, presence, usage).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomEvent {
    /// Someone entered the room (admitted, not waiting in the lobby).
    Joined {
        /// Which room.
        room: RoomKey,
        /// The token's user id, or the node's id for the stay when the token has none.
        participant: String,
        /// Display name.
        name: String,
        /// Whether they moderate.
        moderator: bool,
        /// A phone: how it came in.
        #[serde(default)]
        phone: Option<PhoneLeg>,
        /// When.
        at: SystemTime,
    },
    /// Someone left (on their own, kicked, or the meeting ended).
    Left {
        /// Which room.
        room: RoomKey,
        /// As in `Joined`.
        participant: String,
        /// When.
        at: SystemTime,
    },
    /// A moderator removed someone: their token and user id must not open the room again while the token
    /// lives.
    Removed {
        /// Which room.
        room: RoomKey,
        /// The token's user id, if it had one.
        user_id: Option<String>,
        /// The token's digest.
        token: String,
        /// Until when (the token's expiry).
        until: Option<SystemTime>,
        /// Turned away from the lobby rather than removed from the room.
        rejected: bool,
        /// When.
        at: SystemTime,
    },
    /// A moderator ended the meeting for everyone: tokens issued before `at` must not start it again.
    Ended {
        /// Which room.
        room: RoomKey,
        /// When.
        at: SystemTime,
    },
    /// Recording started; its files are in the node's recordings store under the recording's id.
    RecordingStarted {
        /// Which room.
        room: RoomKey,
        /// The recording's id (a UUID).
        recording: String,
        /// Who started it, as people see them.
        by: String,
        /// Their token's user id, when a participant started it.
        by_user: Option<String>,
        /// Their token's email address, for news of the recording.
        #[serde(default)]
        by_email: Option<String>,
        /// When.
        at: SystemTime,
    },
    /// The meeting began to be streamed live.
    LiveStreamStarted {
        /// Which room.
        room: RoomKey,
        /// The stream's id.
        stream: String,
        /// Who started it, as people see them.
        by: String,
        /// When.
        at: SystemTime,
    },
    /// The live stream stopped: someone stopped it, the streaming service went away, or the meeting ended.
    LiveStreamEnded {
        /// Which room.
        room: RoomKey,
        /// The stream's id.
        stream: String,
        /// Who stopped it, as people see them.
        by: String,
        /// Why it stopped by itself, when nobody stopped it.
        reason: Option<String>,
        /// When.
        at: SystemTime,
    },
    /// Recording stopped: its files are complete.
    RecordingStopped {
        /// Which room.
        room: RoomKey,
        /// The recording's id.
        recording: String,
        /// Why it stopped by itself, when nobody stopped it.
        reason: Option<String>,
        /// Bytes written.
        bytes: u64,
        /// When.
        at: SystemTime,
    },
}

/// Receives room events; must not block (the room task calls it).
pub trait Reporter: Send + Sync + 'static {
    /// One event, in order per room.
    fn report(&self, event: RoomEvent);
}

/// The rooms of this node.
#[derive(Clone)]
pub struct Rooms {
    running: Arc<Mutex<HashMap<RoomKey, mpsc::Sender<Command>>>>,
    shutdown: CancellationToken,
    reporter: Arc<dyn Reporter>,
    metrics: SignalMetrics,
    draining: Arc<AtomicBool>,
    /// Where media goes; without one the rooms carry signalling only.
    media: Option<MediaPlane>,
    /// Numbers rooms for the media plane (a room's shard follows from it).
    next_room: Arc<AtomicU64>,
    /// When rooms were ended for everyone, so a connection racing the control plane's record of it cannot
    /// start the room again with an old token (bounded: the control plane's record is the lasting one).
    ended: Arc<Mutex<LruCache<RoomKey, SystemTime>>>,
    /// Where recordings are written; without one, meetings cannot be recorded here.
    recordings: Option<RecordingStore>,
    /// Live streams may go to loopback and private networks (development and tests).
    private_streams: bool,
    /// The rooms being recorded or streamed now, for pages shown before joining.
    on_air: Arc<Mutex<HashMap<RoomKey, OnAir>>>,
    /// The phone gateway's trunk, when it can call out.
    dialer: Option<Dialer>,
}

/// Ended rooms the node remembers by itself.
const REMEMBERED_ENDS: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(count) => count,
    None => NonZeroUsize::MIN,
};

/// Why a connection found no room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The node is draining: rooms already running take people, no new room starts.
    #[error("this node is draining")]
    Draining,
    /// The organisation's plan lets no new meeting start (the allowance says why, in words for people).
    #[error("{1}")]
    NotAllowed(Refusal, String),
    /// The room stopped while the connection was on its way, twice.
    #[error("the room stopped")]
    Stopped,
}

/// What people about to join a meeting are told is happening to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnAir {
    /// It is being recorded.
    pub recording: bool,
    /// It is streamed live.
    pub live_streaming: bool,
}

/// Why a phone could not be called into a meeting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialOutError {
    /// Nobody is in the meeting.
    #[error("the meeting has not started")]
    NotRunning,
    /// The meeting, plan or node does not allow it (words for people).
    #[error("{0}")]
    Forbidden(String),
    /// The number or the moment is wrong (words for people).
    #[error("{0}")]
    Invalid(String),
    /// The phone line cannot take the call now (words for people).
    #[error("{0}")]
    Unavailable(String),
}

/// Why recording could not start or stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// Nobody is in the meeting.
    #[error("the meeting has not started")]
    NotRunning,
    /// The room refused, in words for people (encrypted end to end, already recording, storage full).
    #[error("{0}")]
    Refused(String),
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms").field("running", &self.count()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Connect { .. } => "Connect",
            Command::Message(..) => "Message",
            Command::Disconnect(..) => "Disconnect",
            Command::Record { .. } => "Record",
            Command::RecordingEnded { .. } => "RecordingEnded",
            Command::LiveStream { .. } => "LiveStream",
            Command::LiveStreamEnded { .. } => "LiveStreamEnded",
            Command::DialOut { .. } => "DialOut",
            Command::DialOutChanged(_) => "DialOutChanged",
        })
    }
}

/// One connection's way into its room.
#[derive(Debug)]
pub struct Connection {
    /// Its id in the room.
    pub id: ParticipantId,
    /// Tells it from an earlier connection of the same participant (a resumed session).
    serial: u64,
    /// The room's number on the media plane (a room started again gets a new one).
    pub room_id: RoomId,
    room: mpsc::Sender<Command>,
    /// What to send to the client, in order.
    pub outbox: mpsc::Receiver<Delivery>,
}

impl Connection {
    /// Passes a client message to the room; false once the room is gone.
    pub async fn send(&self, message: ClientMessage) -> bool {
        self.room.send(Command::Message(self.id, message)).await.is_ok()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A busy room still hears of the departure (or its participant would linger in it and in presence):
        // the message then waits for room in the inbox on a task of its own.
        if let Err(mpsc::error::TrySendError::Full(command)) =
            self.room.try_send(Command::Disconnect(self.id, self.serial))
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let room = self.room.clone();
            runtime.spawn(async move {
                let _ = room.send(command).await;
            });
        }
    }
}

impl Rooms {
    /// No rooms yet; events go to `reporter`; media to `media`; connections close when `shutdown` is
    /// cancelled.
    pub fn new(
        shutdown: CancellationToken,
        reporter: Arc<dyn Reporter>,
        metrics: SignalMetrics,
        media: Option<MediaPlane>,
    ) -> Self {
        Self {
            running: Arc::default(),
            shutdown,
            reporter,
            metrics,
            draining: Arc::default(),
            media,
            next_room: Arc::default(),
            ended: Arc::new(Mutex::new(LruCache::new(REMEMBERED_ENDS))),
            recordings: None,
            private_streams: false,
            on_air: Arc::default(),
            dialer: None,
        }
    }

    /// Rooms whose moderators may call phones in through `dialer`.
    pub fn with_dialer(mut self, dialer: Dialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// Calls `number` into `key`'s meeting on behalf of `by` (words for the moderators' notices); answers
    /// the call's id (`dial_out_changed` tells the moderators how it goes).
    pub async fn dial_out(&self, key: &RoomKey, number: String, by: String) -> Result<String, DialOutError> {
        let room = self.running.lock().ok().and_then(|running| running.get(key).cloned());
        let room = room.ok_or(DialOutError::NotRunning)?;
        let (reply, answer) = oneshot::channel();
        room.send(Command::DialOut { number, by, reply }).await.map_err(|_| DialOutError::NotRunning)?;
        answer.await.map_err(|_| DialOutError::NotRunning)?
    }

    /// A phone call placed from `key`'s meeting changed state: its moderators hear of it.
    pub async fn dial_out_changed(&self, key: &RoomKey, change: focus::DialOutChange) {
        let room = self.running.lock().ok().and_then(|running| running.get(key).cloned());
        if let Some(room) = room {
            let _ = room.send(Command::DialOutChanged(change)).await;
        }
    }

    /// Whether `key`'s meeting is being recorded or streamed now.
    pub fn on_air(&self, key: &RoomKey) -> OnAir {
        self.on_air.lock().ok().and_then(|on_air| on_air.get(key).copied()).unwrap_or_default()
    }

    /// Rooms whose live streams may go to loopback and private networks (an operator's choice, for
    /// development and tests; otherwise only the public internet is reached).
    pub fn with_private_streams(mut self, allowed: bool) -> Self {
        self.private_streams = allowed;
        self
    }

    /// Rooms whose meetings can be recorded into `store`.
    pub fn with_recordings(mut self, store: RecordingStore) -> Self {
        self.recordings = Some(store);
        self
    }

    /// Starts (`start`) or stops recording `key`'s meeting on behalf of `by` (words for the participants'
    /// notice); answers the recording's id when one started.
    pub async fn record(&self, key: &RoomKey, start: bool, by: String) -> Result<Option<String>, RecordingError> {
        let room = self.running.lock().ok().and_then(|running| running.get(key).cloned());
        let room = room.ok_or(RecordingError::NotRunning)?;
        let (reply, answer) = oneshot::channel();
        room.send(Command::Record { start, by, reply }).await.map_err(|_| RecordingError::NotRunning)?;
        answer.await.map_err(|_| RecordingError::NotRunning)?.map_err(RecordingError::Refused)
    }

    /// Starts streaming `key`'s meeting live to `target` (`None`: stops it) on behalf of `by` (words for the
    /// participants' notice); answers the stream's id when one started.
    pub async fn live_stream(
        &self,
        key: &RoomKey,
        target: Option<StreamTarget>,
        by: String,
    ) -> Result<Option<String>, RecordingError> {
        let room = self.running.lock().ok().and_then(|running| running.get(key).cloned());
        let room = room.ok_or(RecordingError::NotRunning)?;
        let (reply, answer) = oneshot::channel();
        room.send(Command::LiveStream { target, by, reply }).await.map_err(|_| RecordingError::NotRunning)?;
        answer.await.map_err(|_| RecordingError::NotRunning)?.map_err(RecordingError::Refused)
    }

    /// Stops starting rooms; the running ones go on until their last participant leaves.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether [`Rooms::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The signalling figures, for the connection drivers.
    pub fn metrics(&self) -> &SignalMetrics {
        &self.metrics
    }

    /// Cancelled when the node stops: connections say goodbye instead of holding the shutdown.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts (`Some`) or stops (`None`) handing room `room_id`'s media to a listener of this process (the
    /// phone gateway's mixer) named `id`; false without a media plane or when its shard is busy.
    pub fn tap(&self, room_id: RoomId, id: String, sink: Option<TapSink>) -> bool {
        self.media
            .as_ref()
            .is_some_and(|media| media.send(MediaCommand::Record { room: room_id, recording: id, sink }).is_ok())
    }

    /// How many rooms are running.
    pub fn count(&self) -> usize {
        self.running.lock().map(|running| running.len()).unwrap_or(0)
    }

    /// Connects a verified identity to `key`'s room, starting the room with `policy` if it is not running.
    pub async fn connect(
        &self,
        key: RoomKey,
        policy: RoomPolicy,
        identity: Identity,
        version: u32,
        password: Option<String>,
        resume: Option<String>,
    ) -> Result<Connection, ConnectError> {
        if self.ended_before(&key, identity.token.issued_at) {
            return Err(ConnectError::NotAllowed(Refusal::Ended, focus::refusal_message(Refusal::Ended).to_owned()));
        }
        // A room that ends between the lookup and the send is started again, once.
        for _ in 0..2 {
            let room = self.room(&key, &policy)?;
            let (outbox, receiver) = mpsc::channel(OUTBOX);
            let (reply, id) = oneshot::channel();
            let command = Command::Connect {
                identity: identity.clone(),
                version,
                password: password.clone(),
                resume: resume.clone(),
                policy: Box::new(policy.clone()),
                outbox,
                reply,
            };
            if room.send(command).await.is_ok()
                && let Ok((id, serial, room_id)) = id.await
            {
                return Ok(Connection { id, serial, room_id, room, outbox: receiver });
            }
        }
        Err(ConnectError::Stopped)
    }

    /// Whether `key`'s meeting was ended for everyone after a token issued at `issued_at` (or of unknown age).
    fn ended_before(&self, key: &RoomKey, issued_at: Option<SystemTime>) -> bool {
        let Ok(mut ended) = self.ended.lock() else { return false };
        ended.get(key).is_some_and(|ended| issued_at.is_none_or(|issued| issued <= *ended))
    }

    fn room(&self, key: &RoomKey, policy: &RoomPolicy) -> Result<mpsc::Sender<Command>, ConnectError> {
        let mut running = self.running.lock().map_err(|_| ConnectError::Stopped)?;
        if let Some(room) = running.get(key).filter(|room| !room.is_closed()) {
            return Ok(room.clone());
        }
        if self.is_draining() {
            return Err(ConnectError::Draining);
        }
        // Checked under the registry's lock, so two meetings starting at once cannot both pass the limit.
        let allowance = &policy.allowance;
        if let Some((reason, message)) = &allowance.new_meetings_refused {
            return Err(ConnectError::NotAllowed(*reason, message.clone()));
        }
        if let Some(ceiling) = &allowance.meetings {
            let running_here = running.iter().filter(|(other, room)| other.0 == key.0 && !room.is_closed()).count();
            if running_here >= ceiling.max {
                return Err(ConnectError::NotAllowed(Refusal::PlanLimit, ceiling.message.clone()));
            }
        }
        let (sender, receiver) = mpsc::channel(INBOX);
        running.insert(key.clone(), sender.clone());
        let mut room = focus::Room::new(&key.1, policy.clone());
        room.set_phone_line(self.dialer.is_some());
        self.metrics.room(1);
        let task = RoomTask {
            key: key.clone(),
            room_id: self.next_room.fetch_add(1, Ordering::Relaxed),
            room,
            running: self.running.clone(),
            reporter: self.reporter.clone(),
            media: self.media.clone(),
            ended: self.ended.clone(),
            outboxes: HashMap::new(),
            reported: HashMap::new(),
            report_ids: HashMap::new(),
            sessions: HashMap::new(),
            current: HashMap::new(),
            next_serial: 0,
            recordings: self.recordings.clone(),
            private_streams: self.private_streams,
            on_air: self.on_air.clone(),
            dialer: self.dialer.clone(),
            recorder: None,
            streamer: None,
            recorded_people: Vec::new(),
            inbox: sender.downgrade(),
            recorded_itself: false,
        };
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            task.run(receiver).await;
            metrics.room(-1);
        });
        Ok(sender)
    }
}

/// A member's session, as far as resuming it goes.
struct Session {
    /// What `hello.resume` must carry.
    secret: String,
    /// The token's user id: a resume must come with a token for the same person.
    user_id: Option<String>,
    /// While the member has no connection: when the session ends unless resumed.
    away_until: Option<Instant>,
}

/// A `Command::Connect` taken apart (the reply aside).
struct Arrival {
    identity: Identity,
    version: u32,
    password: Option<String>,
    resume: Option<String>,
    outbox: mpsc::Sender<Delivery>,
}

/// One room's task: its focus, its connections and sessions, and what it told the control plane. Each
/// command has its handler, which takes the time from the loop (as the focus does) and answers what the
/// focus decided; `settle` then reports, delivers and tears down media in one place.
struct RoomTask {
    key: RoomKey,
    room_id: RoomId,
    room: focus::Room,
    running: Arc<Mutex<HashMap<RoomKey, mpsc::Sender<Command>>>>,
    reporter: Arc<dyn Reporter>,
    media: Option<MediaPlane>,
    ended: Arc<Mutex<LruCache<RoomKey, SystemTime>>>,
    outboxes: HashMap<ParticipantId, mpsc::Sender<Delivery>>,
    /// Who the control plane knows to be in the room, by their reported id.
    reported: HashMap<ParticipantId, String>,
    /// The id each participant will be reported under once they are in.
    report_ids: HashMap<ParticipantId, String>,
    sessions: HashMap<ParticipantId, Session>,
    /// Each participant's current connection; a closing one that is no longer current changes nothing.
    current: HashMap<ParticipantId, u64>,
    next_serial: u64,
    recordings: Option<RecordingStore>,
    private_streams: bool,
    on_air: Arc<Mutex<HashMap<RoomKey, OnAir>>>,
    dialer: Option<Dialer>,
    /// The recording going on; dropping it stops it.
    recorder: Option<Recorder>,
    /// The live stream going on; dropping it stops it.
    streamer: Option<LiveStream>,
    /// Who the recorder last heard was in the room.
    recorded_people: Vec<Presence>,
    /// The task's own inbox, for its recorder to say it stopped (weak: it must not keep the room alive).
    inbox: mpsc::WeakSender<Command>,
    /// The room's settings started its recording once already (a moderator who stops it has the last word).
    recorded_itself: bool,
}

impl RoomTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let grace_ends = self.sessions.values().filter_map(|session| session.away_until).min();
            // `None`: someone's grace ran out.
            let command = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => Some(command),
                    None => break,
                },
                () = until(grace_ends) => None,
            };
            let now = Instant::now();
            let out = match command {
                None => self.end_expired_sessions(now),
                Some(Command::Connect { identity, version, password, resume, policy, outbox, reply }) => {
                    let arrival = Arrival { identity, version, password, resume, outbox };
                    let (id, serial, out) = self.connect(arrival, *policy);
                    let _ = reply.send((id, serial, self.room_id));
                    out
                }
                Some(Command::Message(from, message)) => self.message(from, message),
                Some(Command::Disconnect(id, serial)) => self.disconnect(id, serial, now),
                Some(Command::Record { start, by, reply }) => {
                    let (answer, out) =
                        if start { self.start_recording(by, (None, None)) } else { self.stop_recording(by) };
                    let _ = reply.send(answer);
                    out
                }
                Some(Command::RecordingEnded { recording, reason }) => self.recording_ended(&recording, reason),
                Some(Command::LiveStream { target, by, reply }) => {
                    let (answer, out) = match target {
                        Some(target) => self.start_stream(by, &target),
                        None => self.stop_stream(by),
                    };
                    let _ = reply.send(answer);
                    out
                }
                Some(Command::LiveStreamEnded { stream, reason }) => self.stream_ended(&stream, reason),
                Some(Command::DialOut { number, by, reply }) => {
                    let (answer, out) = match self.room.dial_out_allowed(None, &number) {
                        Ok(number) => self.dial_out(number, by),
                        Err(("forbidden", words)) => (Err(DialOutError::Forbidden(words.to_owned())), Vec::new()),
                        Err((_, words)) => (Err(DialOutError::Invalid(words.to_owned())), Vec::new()),
                    };
                    let _ = reply.send(answer);
                    out
                }
                Some(Command::DialOutChanged(change)) => self.room.dial_out_changed(change),
            };
            let mut out = self.moderators_requests(out);
            out.extend(self.record_itself());
            self.settle(out, SystemTime::now());
            if let Ok(mut on_air) = self.on_air.lock() {
                let now = OnAir { recording: self.recorder.is_some(), live_streaming: self.streamer.is_some() };
                if now == OnAir::default() {
                    on_air.remove(&self.key);
                } else {
                    on_air.insert(self.key.clone(), now);
                }
            }
            if self.room.is_empty() && self.outboxes.is_empty() && stop_if_idle(&self.running, &self.key, &commands) {
                break;
            }
        }
        // The room stopped: so did its recording and stream (they go with the task).
        self.stream_stopped("the meeting".to_owned(), Some("the meeting ended".to_owned()));
        if let Ok(mut on_air) = self.on_air.lock() {
            on_air.remove(&self.key);
        }
    }

    /// Ends the sessions whose grace ran out by `now`.
    fn end_expired_sessions(&mut self, now: Instant) -> Vec<Outbound> {
        let over: Vec<ParticipantId> = self
            .sessions
            .iter()
            .filter(|(_, session)| session.away_until.is_some_and(|until| until <= now))
            .map(|(id, _)| *id)
            .collect();
        over.into_iter().flat_map(|id| self.room.disconnect(id)).collect()
    }

    /// A new connection: it resumes a session whose secret and person it carries, or joins afresh. Answers
    /// the participant's id and the connection's number.
    fn connect(&mut self, arrival: Arrival, policy: RoomPolicy) -> (ParticipantId, u64, Vec<Outbound>) {
        let Arrival { identity, version, password, resume, outbox } = arrival;
        let mut changed = self.room.set_policy(policy);
        // The room turned to end-to-end encryption: what comes next can be neither recorded nor streamed.
        if self.room.end_to_end_encrypted() && self.recorder.take().is_some() {
            let reason = Some(focus::RECORDING_NEEDS_CLEAR_MEDIA.to_owned());
            changed.extend(self.room.recording_changed(false, SETTINGS_STARTER.to_owned(), reason));
        }
        if self.room.end_to_end_encrypted() && self.streamer.is_some() {
            let reason = Some(focus::STREAMING_NEEDS_CLEAR_MEDIA.to_owned());
            changed.extend(self.stream_stopped(SETTINGS_STARTER.to_owned(), reason));
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        // The old connection may still look alive (a network that went away closes nothing): the new one
        // takes over.
        let resumed = resume.and_then(|secret| {
            self.sessions.iter().find_map(|(id, session)| {
                // Constant-time, so response timing says nothing about how much of a guess was right.
                let same_secret: bool = session.secret.as_bytes().ct_eq(secret.as_bytes()).into();
                let matches = same_secret && session.user_id == identity.user_id;
                matches.then_some(*id)
            })
        });
        if let Some(id) = resumed {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.away_until = None;
            }
            if let Some(old) = self.outboxes.insert(id, outbox.clone()) {
                let _ = old.try_send(Delivery::Close);
            }
            self.current.insert(id, serial);
            if let Some(media) = &self.media {
                let key = PeerKey { room: self.room_id, participant: id };
                let _ = media.send(MediaCommand::Resume { key, outbox });
            }
            let mut out = changed;
            out.extend(self.room.welcome(id).map(|welcome| Outbound::Send(id, welcome)));
            return (id, serial, out);
        }
        let user_id = identity.user_id.clone();
        let (id, out) = self.room.connect(identity, version, password.as_deref());
        self.report_ids.insert(id, user_id.clone().unwrap_or_else(|| format!("participant-{}", id.0)));
        if let Some(secret) = new_secret() {
            self.sessions.insert(id, Session { secret, user_id, away_until: None });
        }
        self.outboxes.insert(id, outbox);
        self.current.insert(id, serial);
        (id, serial, changed.into_iter().chain(out).collect())
    }

    /// A message from a participant: media to the shard, pins to both, the rest to the focus.
    fn message(&mut self, from: ParticipantId, message: ClientMessage) -> Vec<Outbound> {
        let key = PeerKey { room: self.room_id, participant: from };
        match (&self.media, self.room.is_member(from)) {
            (Some(media), true) if is_media(&message) => {
                to_media(media, self.room.end_to_end_encrypted(), key, message, &self.outboxes)
            }
            (Some(media), true) if matches!(message, ClientMessage::Pin { .. }) => {
                let out = self.room.handle(from, message);
                let _ = media.send(MediaCommand::Pin { key, pinned: self.room.pinned_by(from) });
                out
            }
            _ => self.room.handle(from, message),
        }
    }

    /// A connection closed: a member's leaves the session open to resume until the grace ends; anyone
    /// else is gone. An earlier connection of a session resumed since changes nothing.
    fn disconnect(&mut self, id: ParticipantId, serial: u64, now: Instant) -> Vec<Outbound> {
        if self.current.get(&id) != Some(&serial) {
            return Vec::new();
        }
        self.current.remove(&id);
        let connected = self.outboxes.remove(&id).is_some();
        match self.sessions.get_mut(&id) {
            Some(session) if connected && self.room.is_member(id) => {
                session.away_until = Some(now + Duration::from_secs(RESUME_GRACE_SECS));
                Vec::new()
            }
            _ => self.room.disconnect(id),
        }
    }

    /// Records removals and ends, sends what the focus decided, reports who came and went at `at`, tears
    /// down the media of those who left, and tells the recorder who is there.
    fn settle(&mut self, out: Vec<Outbound>, at: SystemTime) {
        let out = remember(&self.key, out, self.reporter.as_ref(), &self.ended, at);
        send_out(&mut self.room, out, &mut self.outboxes, &mut self.sessions);
        let left =
            report(&self.key, &self.room, (&mut self.reported, &mut self.report_ids), self.reporter.as_ref(), at);
        leave_media(self.media.as_ref(), self.room_id, left);
        if let Some(recorder) = &self.recorder {
            let people = presence(&self.room);
            if people != self.recorded_people {
                recorder.people(people.clone());
                self.recorded_people = people;
            }
        }
    }

    /// Carries out the recording, live-streaming and dial-out requests moderators made; a refusal goes to the
    /// moderator.
    fn moderators_requests(&mut self, out: Vec<Outbound>) -> Vec<Outbound> {
        let mut kept = Vec::with_capacity(out.len());
        for outbound in out {
            let (answer, out, by) = match outbound {
                Outbound::Record { start, by } => {
                    let name = self.room.name_of(by).unwrap_or_default().to_owned();
                    let (answer, out) = if start {
                        let user = self.report_ids.get(&by).or_else(|| self.reported.get(&by)).cloned();
                        let email = self.room.email_of(by).map(str::to_owned);
                        self.start_recording(name, (user, email))
                    } else {
                        self.stop_recording(name)
                    };
                    (answer, out, by)
                }
                Outbound::LiveStream { target, by } => {
                    let name = self.room.name_of(by).unwrap_or_default().to_owned();
                    let (answer, out) = match target.map(|(url, key)| StreamTarget::parse(&url, &key)) {
                        Some(Ok(target)) => self.start_stream(name, &target),
                        Some(Err(words)) => (Err(words), Vec::new()),
                        None => self.stop_stream(name),
                    };
                    (answer, out, by)
                }
                Outbound::DialOut { number, by } => {
                    let name = self.room.name_of(by).unwrap_or_default().to_owned();
                    let (answer, out) = self.dial_out(number, name);
                    (answer.map(Some).map_err(|error| error.to_string()), out, by)
                }
                Outbound::CancelDialOut { call } => {
                    if let Some(dialer) = &self.dialer {
                        dialer.cancel(&call);
                    }
                    continue;
                }
                Outbound::SendTones { call, tones } => {
                    if let Some(dialer) = &self.dialer {
                        dialer.send_tones(&call, tones);
                    }
                    continue;
                }
                other => {
                    kept.push(other);
                    continue;
                }
            };
            kept.extend(out);
            if let Err(message) = answer {
                kept.push(Outbound::Send(by, ServerMessage::Error { code: "unavailable".to_owned(), message }));
            }
        }
        kept
    }

    /// Has the gateway call `number` for `by` (words): moderators see it calling at once, then hear from
    /// the gateway how it goes.
    fn dial_out(&mut self, number: String, by: String) -> (Result<String, DialOutError>, Vec<Outbound>) {
        let Some(dialer) = &self.dialer else {
            return (
                Err(DialOutError::Forbidden("this server has no phone line for calling out".to_owned())),
                Vec::new(),
            );
        };
        let call = match crate::recording::new_id() {
            Ok(call) => call,
            Err(error) => return (Err(DialOutError::Unavailable(error.to_string())), Vec::new()),
        };
        let policy = self.room.policy().clone();
        if let Err(words) = dialer.place(call.clone(), self.key.clone(), policy, number.clone(), by.clone()) {
            return (Err(DialOutError::Unavailable(words)), Vec::new());
        }
        let calling =
            focus::DialOutChange { call: call.clone(), number, state: DialOutState::Calling, by, reason: None };
        (Ok(call), self.room.dial_out_changed(calling))
    }

    /// Starts recording for `by` (words; `by_user`: their token's user id and email); answers the recording's
    /// id.
    fn start_recording(
        &mut self,
        by: String,
        (by_user, by_email): (Option<String>, Option<String>),
    ) -> (Result<Option<String>, String>, Vec<Outbound>) {
        if self.room.end_to_end_encrypted() {
            return (Err(focus::RECORDING_NEEDS_CLEAR_MEDIA.to_owned()), Vec::new());
        }
        if self.recorder.is_some() {
            return (Err("the meeting is already being recorded".to_owned()), Vec::new());
        }
        let (Some(store), Some(media)) = (&self.recordings, &self.media) else {
            return (Err("this server does not record meetings".to_owned()), Vec::new());
        };
        let people = presence(&self.room);
        let (reporter, key, inbox) = (self.reporter.clone(), self.key.clone(), self.inbox.clone());
        let finished = Box::new(move |finished: Finished| {
            reporter.report(RoomEvent::RecordingStopped {
                room: key,
                recording: finished.id.clone(),
                reason: finished.reason.clone(),
                bytes: finished.bytes,
                at: finished.at,
            });
            if let Some(inbox) = inbox.upgrade() {
                let _ = inbox.try_send(Command::RecordingEnded { recording: finished.id, reason: finished.reason });
            }
        });
        let recorder = match Recorder::start(store, media, (self.room_id, &self.key.1), people.clone(), finished) {
            Ok(recorder) => recorder,
            Err(error) => return (Err(error.to_string()), Vec::new()),
        };
        let id = recorder.id().to_owned();
        self.reporter.report(RoomEvent::RecordingStarted {
            room: self.key.clone(),
            recording: id.clone(),
            by: by.clone(),
            by_user,
            by_email,
            at: SystemTime::now(),
        });
        self.recorder = Some(recorder);
        self.recorded_people = people;
        (Ok(Some(id)), self.room.recording_changed(true, by, None))
    }

    /// Starts the recording the room's settings ask for, once, when the first person is in.
    fn record_itself(&mut self) -> Vec<Outbound> {
        if self.recorded_itself || !self.room.records_itself() || self.room.participants().next().is_none() {
            return Vec::new();
        }
        self.recorded_itself = true;
        match self.start_recording(SETTINGS_STARTER.to_owned(), (None, None)) {
            (Ok(_), out) => out,
            (Err(error), _) => {
                tracing::warn!(%error, "a room that records itself could not start recording");
                Vec::new()
            }
        }
    }

    /// Stops the recording (its task finishes the files and reports it stopped).
    fn stop_recording(&mut self, by: String) -> (Result<Option<String>, String>, Vec<Outbound>) {
        match self.recorder.take() {
            Some(recorder) => (Ok(Some(recorder.id().to_owned())), self.room.recording_changed(false, by, None)),
            None => (Err("the meeting is not being recorded".to_owned()), Vec::new()),
        }
    }

    /// Starts streaming the meeting to `target` for `by` (words); answers the stream's id.
    fn start_stream(&mut self, by: String, target: &StreamTarget) -> (Result<Option<String>, String>, Vec<Outbound>) {
        if self.room.end_to_end_encrypted() {
            return (Err(focus::STREAMING_NEEDS_CLEAR_MEDIA.to_owned()), Vec::new());
        }
        if self.streamer.is_some() {
            return (Err("the meeting is already streamed live".to_owned()), Vec::new());
        }
        let Some(media) = &self.media else {
            return (Err("this server does not stream meetings".to_owned()), Vec::new());
        };
        let inbox = self.inbox.clone();
        let finished = Box::new(move |(stream, reason): (String, Option<String>)| {
            if let Some(inbox) = inbox.upgrade() {
                let _ = inbox.try_send(Command::LiveStreamEnded { stream, reason });
            }
        });
        match LiveStream::start(media, self.room_id, (target, self.private_streams), finished) {
            Ok(streamer) => {
                let id = streamer.id().to_owned();
                self.streamer = Some(streamer);
                let started = RoomEvent::LiveStreamStarted {
                    room: self.key.clone(),
                    stream: id.clone(),
                    by: by.clone(),
                    at: SystemTime::now(),
                };
                self.reporter.report(started);
                (Ok(Some(id)), self.room.live_stream_changed(true, by, None))
            }
            Err(error) => (Err(error.to_string()), Vec::new()),
        }
    }

    /// Stops the live stream.
    fn stop_stream(&mut self, by: String) -> (Result<Option<String>, String>, Vec<Outbound>) {
        let Some(id) = self.streamer.as_ref().map(|streamer| streamer.id().to_owned()) else {
            return (Err("the meeting is not streamed live".to_owned()), Vec::new());
        };
        (Ok(Some(id)), self.stream_stopped(by, None))
    }

    /// The live stream stopped by itself: everyone hears why.
    fn stream_ended(&mut self, stream: &str, reason: Option<String>) -> Vec<Outbound> {
        if self.streamer.as_ref().is_none_or(|streamer| streamer.id() != stream) {
            return Vec::new();
        }
        self.stream_stopped("the streaming service".to_owned(), reason)
    }

    /// Ends the live stream (dropping it stops it), reports it, and tells everyone: `by` stopped it, or it
    /// stopped by itself for `reason`.
    fn stream_stopped(&mut self, by: String, reason: Option<String>) -> Vec<Outbound> {
        let Some(streamer) = self.streamer.take() else { return Vec::new() };
        let ended = RoomEvent::LiveStreamEnded {
            room: self.key.clone(),
            stream: streamer.id().to_owned(),
            by: by.clone(),
            reason: reason.clone(),
            at: SystemTime::now(),
        };
        self.reporter.report(ended);
        self.room.live_stream_changed(false, by, reason)
    }

    /// The recorder stopped: if by itself (storage full or failing), everyone hears why.
    fn recording_ended(&mut self, recording: &str, reason: Option<String>) -> Vec<Outbound> {
        if self.recorder.as_ref().is_none_or(|recorder| recorder.id() != recording) {
            return Vec::new();
        }
        self.recorder = None;
        self.room.recording_changed(false, "the recorder".to_owned(), reason)
    }
}

/// Reports removals and the meeting's end before anything is sent, so they are on disk (and on their way
/// to the control plane) before the people they concern hear of them; answers the rest.
fn remember(
    key: &RoomKey,
    out: Vec<Outbound>,
    reporter: &dyn Reporter,
    ended: &Mutex<LruCache<RoomKey, SystemTime>>,
    at: SystemTime,
) -> Vec<Outbound> {
    out.into_iter()
        .filter(|outbound| match outbound {
            Outbound::Removed(removal) => {
                reporter.report(RoomEvent::Removed {
                    room: key.clone(),
                    user_id: removal.user_id.clone(),
                    token: removal.token.digest.clone(),
                    until: removal.token.expires_at,
                    rejected: removal.rejected,
                    at,
                });
                false
            }
            Outbound::Ended => {
                if let Ok(mut ended) = ended.lock() {
                    ended.put(key.clone(), at);
                }
                reporter.report(RoomEvent::Ended { room: key.clone(), at });
                false
            }
            Outbound::Send(..)
            | Outbound::Close(_)
            | Outbound::Record { .. }
            | Outbound::LiveStream { .. }
            | Outbound::DialOut { .. }
            | Outbound::CancelDialOut { .. }
            | Outbound::SendTones { .. } => true,
        })
        .collect()
}

/// Sends what the focus decided, each welcome with its session's resume secret, and forgets the sessions
/// of those no longer in the room.
fn send_out(
    room: &mut focus::Room,
    mut out: Vec<Outbound>,
    outboxes: &mut HashMap<ParticipantId, mpsc::Sender<Delivery>>,
    sessions: &mut HashMap<ParticipantId, Session>,
) {
    for outbound in &mut out {
        if let Outbound::Send(to, ServerMessage::Welcome { resume, .. }) = outbound
            && let Some(session) = sessions.get(to)
        {
            resume.clone_from(&session.secret);
        }
    }
    deliver(room, outboxes, out);
    sessions.retain(|id, _| room.is_member(*id) || room.is_waiting(*id));
}

/// Tears down the media of those who left.
fn leave_media(media: Option<&MediaPlane>, room_id: RoomId, left: Vec<ParticipantId>) {
    if let Some(media) = media {
        for participant in left {
            let _ = media.send(MediaCommand::Leave { key: PeerKey { room: room_id, participant } });
        }
    }
}

/// Leaves the registry under its lock, unless a connection is already on its way in; true when the room
/// task should end.
fn stop_if_idle(
    running: &Mutex<HashMap<RoomKey, mpsc::Sender<Command>>>,
    key: &RoomKey,
    commands: &mpsc::Receiver<Command>,
) -> bool {
    let Ok(mut registry) = running.lock() else { return true };
    if commands.is_empty() {
        registry.remove(key);
        return true;
    }
    false
}

/// Who is in the room, as the recorder notes them.
fn presence(room: &focus::Room) -> Vec<Presence> {
    room.participants()
        .map(|info| Presence {
            id: info.id,
            name: info.name.clone(),
            audio_muted: info.audio_muted,
            video_muted: info.video_muted,
        })
        .collect()
}

/// Waits until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A resume secret: 128 random bits, hex.
fn new_secret() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn is_media(message: &ClientMessage) -> bool {
    matches!(message, ClientMessage::Offer { .. } | ClientMessage::Answer { .. } | ClientMessage::ReceiveVideo { .. })
}

/// Hands a member's media message to the room's shard; an overloaded shard is the sender's error.
fn to_media(
    media: &MediaPlane,
    end_to_end_encrypted: bool,
    key: PeerKey,
    message: ClientMessage,
    outboxes: &HashMap<ParticipantId, mpsc::Sender<Delivery>>,
) -> Vec<Outbound> {
    let command = match message {
        ClientMessage::Offer { sdp, screen, publish_only } => {
            let Some(outbox) = outboxes.get(&key.participant) else { return Vec::new() };
            MediaCommand::Offer { key, sdp, screen, end_to_end_encrypted, publish_only, outbox: outbox.clone() }
        }
        ClientMessage::Answer { sdp } => MediaCommand::Answer { key, sdp },
        ClientMessage::ReceiveVideo { requests } => MediaCommand::ReceiveVideo { key, requests },
        _ => return Vec::new(),
    };
    match media.send(command) {
        Ok(()) => Vec::new(),
        Err(busy) => vec![Outbound::Send(
            key.participant,
            ServerMessage::Error { code: "rate_limited".to_owned(), message: busy.to_string() },
        )],
    }
}

/// Reports who entered and who left since the last command; returns who left.
fn report(
    key: &RoomKey,
    room: &focus::Room,
    (reported, report_ids): (&mut HashMap<ParticipantId, String>, &mut HashMap<ParticipantId, String>),
    reporter: &dyn Reporter,
    now: SystemTime,
) -> Vec<ParticipantId> {
    let present: HashMap<ParticipantId, &convene_signal::ParticipantInfo> =
        room.participants().map(|info| (info.id, info)).collect();
    let gone: Vec<ParticipantId> = reported.keys().filter(|id| !present.contains_key(id)).copied().collect();
    for id in &gone {
        if let Some(participant) = reported.remove(id) {
            report_ids.remove(id);
            reporter.report(RoomEvent::Left { room: key.clone(), participant, at: now });
        }
    }
    for (id, info) in present {
        if let std::collections::hash_map::Entry::Vacant(entry) = reported.entry(id) {
            let participant = report_ids.get(&id).cloned().unwrap_or_else(|| format!("participant-{}", id.0));
            entry.insert(participant.clone());
            let joined = RoomEvent::Joined {
                room: key.clone(),
                participant,
                name: info.name.clone(),
                moderator: info.moderator,
                phone: room.phone_of(id),
                at: now,
            };
            reporter.report(joined);
        }
    }
    // Refused and rejected connections never entered; forget their ids.
    report_ids.retain(|id, _| reported.contains_key(id) || room.is_waiting(*id));
    gone
}

/// Sends what the focus decided; a connection whose outbox is full or gone is closed and leaves the room.
fn deliver(
    room: &mut focus::Room,
    outboxes: &mut HashMap<ParticipantId, mpsc::Sender<Delivery>>,
    mut out: Vec<Outbound>,
) {
    while !out.is_empty() {
        let mut dropped = Vec::new();
        for outbound in out.drain(..) {
            match outbound {
                Outbound::Send(to, message) => {
                    // A full outbox is a client too slow to keep; a closed one is a connection that just
                    // dropped, whose disconnection is on its way (and may leave a session to resume).
                    if let Some(outbox) = outboxes.get(&to)
                        && let Err(mpsc::error::TrySendError::Full(_)) = outbox.try_send(Delivery::Message(message))
                    {
                        dropped.push(to);
                    }
                }
                Outbound::Close(id) => {
                    if let Some(outbox) = outboxes.remove(&id) {
                        let _ = outbox.try_send(Delivery::Close);
                    }
                }
                // Taken out before delivery.
                Outbound::Removed(_)
                | Outbound::Ended
                | Outbound::Record { .. }
                | Outbound::LiveStream { .. }
                | Outbound::DialOut { .. }
                | Outbound::CancelDialOut { .. }
                | Outbound::SendTones { .. } => {}
            }
        }
        for id in dropped {
            if outboxes.remove(&id).is_some() {
                out.extend(room.disconnect(id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use convene_signal::PROTOCOL_VERSION;

    use crate::focus::{Allowance, TokenFacts};

    use super::*;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<RoomEvent>>);

    impl Reporter for Recorded {
        fn report(&self, event: RoomEvent) {
            if let Ok(mut events) = self.0.lock() {
                events.push(event);
            }
        }
    }

    fn key() -> RoomKey {
        ("tenant".to_owned(), "standup".to_owned())
    }

    async fn join(rooms: &Rooms, name: &str) -> Connection {
        join_resuming(rooms, name, None).await.0
    }

    /// Joins (or resumes with `resume`); also gives the welcome's resume secret.
    async fn join_resuming(rooms: &Rooms, name: &str, resume: Option<&str>) -> (Connection, String) {
        let identity = Identity { user_id: Some(name.to_lowercase()), name: name.to_owned(), ..Identity::default() };
        let resume = resume.map(str::to_owned);
        let mut connection = rooms
            .connect(key(), RoomPolicy::default(), identity, PROTOCOL_VERSION, None, resume)
            .await
            .expect("joined");
        match connection.outbox.recv().await {
            Some(Delivery::Message(ServerMessage::Welcome { resume, .. })) => (connection, resume),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_connection_resumes_its_session_within_the_grace_and_leaves_after_it() {
        let events = Arc::new(Recorded::default());
        let rooms = Rooms::new(CancellationToken::new(), events.clone(), SignalMetrics::default(), None);
        let (ann, secret) = join_resuming(&rooms, "Ann", None).await;
        assert_eq!(secret.len(), 32, "{secret}");
        let mut bob = join(&rooms, "Bob").await;
        let ann_id = ann.id;
        drop(ann);
        tokio::time::sleep(std::time::Duration::from_secs(RESUME_GRACE_SECS - 1)).await;
        assert!(bob.outbox.try_recv().is_err(), "the others see nothing while Ann may come back");

        // Ann's secret with someone else's token, or a wrong secret, is a new session.
        let (mallory, _) = join_resuming(&rooms, "Mallory", Some(&secret)).await;
        let (stranger, _) = join_resuming(&rooms, "Ann", Some("0123")).await;
        assert!(mallory.id != ann_id && stranger.id != ann_id);
        let (ann, again) = join_resuming(&rooms, "Ann", Some(&secret)).await;
        assert_eq!((ann.id, &again), (ann_id, &secret), "the same session, the same secret");
        assert!(ann.send(ClientMessage::Chat { text: "back".into(), to: None }).await);
        let heard = loop {
            match bob.outbox.recv().await {
                Some(Delivery::Message(ServerMessage::Chat { from, .. })) => break from,
                Some(_) => {}
                None => panic!("Bob was dropped"),
            }
        };
        assert_eq!(heard, ann_id);

        // Gone for longer than the grace: the others see her leave, once.
        drop(ann);
        tokio::time::sleep(std::time::Duration::from_secs(RESUME_GRACE_SECS + 1)).await;
        let mut left = Vec::new();
        while let Ok(Delivery::Message(message)) = bob.outbox.try_recv() {
            if let ServerMessage::ParticipantLeft { id, .. } = message {
                left.push(id);
            }
        }
        assert_eq!(left, [ann_id]);
        let (late, _) = join_resuming(&rooms, "Ann", Some(&secret)).await;
        assert_ne!(late.id, ann_id, "an ended session does not come back");
        drop((mallory, stranger));
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_takes_over_from_a_connection_that_still_looks_alive() {
        let rooms = Rooms::new(CancellationToken::new(), Arc::new(Recorded::default()), SignalMetrics::default(), None);
        let (mut old, secret) = join_resuming(&rooms, "Ann", None).await;
        let mut bob = join(&rooms, "Bob").await;
        // The network went away without a close: the server still holds Ann's old connection.
        let (new, _) = join_resuming(&rooms, "Ann", Some(&secret)).await;
        assert_eq!(new.id, old.id);
        loop {
            match old.outbox.recv().await {
                Some(Delivery::Close) => break,
                Some(Delivery::Message(_)) => {}
                None => panic!("the old connection was dropped, not closed"),
            }
        }
        drop(old);
        tokio::time::sleep(std::time::Duration::from_secs(RESUME_GRACE_SECS + 1)).await;
        assert!(bob.outbox.try_recv().is_err(), "the old connection's end is not Ann's");
        assert!(new.send(ClientMessage::RaiseHand { raised: true }).await);
        let updated = bob.outbox.recv().await;
        assert!(matches!(updated, Some(Delivery::Message(ServerMessage::ParticipantUpdated { .. }))), "{updated:?}");
    }

    /// Waits for `condition` up to a little longer than the resume grace.
    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..(RESUME_GRACE_SECS + 5) * 20 {
            if condition() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the condition never held");
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_room_stops_and_a_later_connection_starts_it_again() {
        let events = Arc::new(Recorded::default());
        let rooms = Rooms::new(CancellationToken::new(), events.clone(), SignalMetrics::default(), None);
        let ann = join(&rooms, "Ann").await;
        let mut bob = join(&rooms, "Bob").await;
        assert_eq!(rooms.count(), 1);
        drop(ann);
        let left = bob.outbox.recv().await;
        assert!(matches!(left, Some(Delivery::Message(ServerMessage::ParticipantLeft { .. }))), "{left:?}");
        drop(bob);
        until(|| rooms.count() == 0).await;
        let cy = join(&rooms, "Cy").await;
        assert_eq!(rooms.count(), 1);
        rooms.drain();
        let _dan = join(&rooms, "Dan").await;
        let other = ("tenant".to_owned(), "another-room".to_owned());
        let identity = Identity { name: "Eve".to_owned(), moderator: true, ..Identity::default() };
        let refused = rooms.connect(other, RoomPolicy::default(), identity, PROTOCOL_VERSION, None, None).await;
        assert_eq!(refused.err(), Some(ConnectError::Draining), "a draining node starts no room");
        drop(cy);
        until(|| events.0.lock().map(|events| events.len()).unwrap_or(0) == 7).await;
        let seen: Vec<String> = events
            .0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|event| match event {
                RoomEvent::Joined { participant, .. } => format!("+{participant}"),
                RoomEvent::Left { participant, .. } => format!("-{participant}"),
                RoomEvent::Removed { token, .. } => format!("removed {token}"),
                RoomEvent::Ended { .. } => "ended".to_owned(),
                RoomEvent::RecordingStarted { .. } | RoomEvent::RecordingStopped { .. } => "recording".to_owned(),
                RoomEvent::LiveStreamStarted { .. } | RoomEvent::LiveStreamEnded { .. } => "streaming".to_owned(),
            })
            .collect();
        assert_eq!(seen, ["+ann", "+bob", "-ann", "-bob", "+cy", "+dan", "-cy"]);
    }

    #[tokio::test]
    async fn an_ended_meeting_does_not_start_again_with_a_token_from_before_the_end() {
        let events = Arc::new(Recorded::default());
        let rooms = Rooms::new(CancellationToken::new(), events.clone(), SignalMetrics::default(), None);
        let issued = SystemTime::now() - Duration::from_secs(60);
        let mut ann = Identity { name: "Ann".to_owned(), moderator: true, ..Identity::default() };
        ann.token.issued_at = Some(issued);
        let connect =
            |identity: Identity| rooms.connect(key(), RoomPolicy::default(), identity, PROTOCOL_VERSION, None, None);
        let mut connection = connect(ann.clone()).await.expect("the meeting starts");
        assert!(connection.send(ClientMessage::EndForAll).await);
        while let Some(delivery) = connection.outbox.recv().await {
            if delivery == Delivery::Close {
                break;
            }
        }
        drop(connection);
        let refused = connect(ann.clone()).await.err();
        let ended = focus::refusal_message(Refusal::Ended).to_owned();
        assert_eq!(refused, Some(ConnectError::NotAllowed(Refusal::Ended, ended)), "the same token");
        let unknown_age = Identity { token: TokenFacts::default(), ..ann.clone() };
        assert!(connect(unknown_age).await.is_err(), "a token without iat or nbf could be from before");
        ann.token.issued_at = Some(SystemTime::now() + Duration::from_secs(1));
        let _fresh = connect(ann).await.expect("a token issued after the end starts a new meeting");
        let recorded = events.0.lock().expect("not poisoned").clone();
        assert!(recorded.iter().any(|event| matches!(event, RoomEvent::Ended { .. })), "{recorded:?}");
    }

    #[tokio::test]
    async fn the_plan_limits_new_meetings_but_never_the_ones_going_on() {
        let rooms = Rooms::new(CancellationToken::new(), Arc::new(Recorded::default()), SignalMetrics::default(), None);
        let one_at_a_time = Allowance {
            meetings: Some(focus::Ceiling { max: 1, message: "one meeting at a time".into() }),
            ..Allowance::default()
        };
        let policy = RoomPolicy { allowance: one_at_a_time.clone(), ..RoomPolicy::default() };
        let identity = Identity { name: "Ann".to_owned(), moderator: true, ..Identity::default() };
        let connect = |key: RoomKey, policy: RoomPolicy| {
            rooms.connect(key, policy, identity.clone(), PROTOCOL_VERSION, None, None)
        };
        let ann = connect(key(), policy.clone()).await.expect("the first meeting starts");
        let second = ("tenant".to_owned(), "second".to_owned());
        let refused = connect(second.clone(), policy.clone()).await.err();
        assert_eq!(refused, Some(ConnectError::NotAllowed(Refusal::PlanLimit, "one meeting at a time".into())));
        let elsewhere = ("another-tenant".to_owned(), "second".to_owned());
        let _other_tenant = connect(elsewhere, policy.clone()).await.expect("limits are per organisation");
        let overdue =
            Allowance { new_meetings_refused: Some((Refusal::PaymentOverdue, "overdue".into())), ..one_at_a_time };
        let overdue = RoomPolicy { allowance: overdue, ..RoomPolicy::default() };
        let _joined = connect(key(), overdue.clone()).await.expect("a meeting going on takes newcomers");
        drop(ann);
        assert_eq!(
            connect(second, overdue).await.err(),
            Some(ConnectError::NotAllowed(Refusal::PaymentOverdue, "overdue".into()))
        );
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_without_holding_up_the_others() {
        let rooms = Rooms::new(CancellationToken::new(), Arc::new(Recorded::default()), SignalMetrics::default(), None);
        let mut talker = join(&rooms, "Talker").await;
        let mut listener = join(&rooms, "Listener").await;
        let mut stuck = join(&rooms, "Stuck").await;
        let stuck_id = stuck.id;
        let mut stuck_left = false;
        for n in 0..OUTBOX + 10 {
            assert!(talker.send(ClientMessage::Chat { text: format!("message {n}"), to: None }).await);
            tokio::task::yield_now().await;
            // The talker and the listener keep up; the stuck client never reads.
            while talker.outbox.try_recv().is_ok() {}
            while let Ok(Delivery::Message(message)) = listener.outbox.try_recv() {
                if let ServerMessage::ParticipantLeft { id, .. } = message {
                    assert_eq!(id, stuck_id);
                    stuck_left = true;
                }
            }
        }
        while !stuck_left {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), listener.outbox.recv()).await;
            match next.expect("the stuck client is dropped in time") {
                Some(Delivery::Message(ServerMessage::ParticipantLeft { id, .. })) => {
                    assert_eq!(id, stuck_id);
                    stuck_left = true;
                }
                Some(_) => {}
                None => panic!("the listener was dropped"),
            }
        }
        let mut received = 0;
        while let Ok(delivery) = stuck.outbox.try_recv() {
            assert!(matches!(delivery, Delivery::Message(_)));
            received += 1;
        }
        assert!(received <= OUTBOX, "the stuck client's outbox stayed bounded ({received})");
    }
}
