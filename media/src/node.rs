//! The driver: shards, each an OS thread with its own UDP socket, its own [`Sfu`] and a single-threaded
//! runtime, sharing nothing. A room lives on one shard (chosen by its number), so forwarding never crosses
//! threads; shard `i` listens on the configured port plus `i`. Rooms talk to their shard through a bounded
//! command channel ([`MediaPlane`], in [`crate::plane`]); the shard answers participants straight into their connections'
//! outboxes. Counters are plain integers in the shard, added to Prometheus once a second (a shared
//! registry on the packet path costs more than it tells).

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use convene_signal::ServerMessage;
use str0m::format::Codec;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    batch_io::BatchSocket,
    media_metrics::{MediaMetrics, Reported},
    plane::{Delivery, MediaCommand, MediaPlane, TapSink},
    sfu::{OfferTerms, PeerKey, RoomId, Sfu, SfuConfig, SfuOutput, Tap},
};

/// Commands a shard may have waiting (offers, answers, pins, departures).
const COMMANDS: usize = 4096;
/// Kernel socket buffers: a few hundred milliseconds of a busy shard's traffic.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;
/// How often shard counters reach Prometheus.
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// Assumed bandwidth toward a receiver before its estimate arrives: enough for a stage and nine thumbnails.
const INITIAL_ESTIMATE: u64 = 8_000_000;
/// At most this many people's video goes to one receiver.
const LAST_N: usize = 25;

/// Where and how the node listens.
#[derive(Debug, Clone, Copy)]
pub struct NodeConfig {
    /// Shard 0's UDP address; shard `i` uses its port plus `i` (or any free port when it is 0).
    pub udp_addr: SocketAddr,
    /// The address clients reach the node at, when it is not the bound one (behind NAT, or bound to all
    /// interfaces).
    pub public_ip: Option<IpAddr>,
    /// The port clients send shard 0's media to, when a NAT maps it to another (shard `i`: this plus `i`).
    pub public_port: Option<u16>,
    /// How many shards (threads); 0 means one per core.
    pub shards: usize,
    /// The height of publishers' full layer (720 or 1080).
    pub top_height: u32,
}

/// Binding the media port failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Something else listens on the port.
    #[error("{addr} is already in use: stop the process using it or set CONVENE_MEDIA_UDP_ADDR to a free address")]
    InUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Bound to all interfaces, with no address to tell clients.
    #[error("the media node listens on {addr}, which clients cannot send to: set CONVENE_MEDIA_PUBLIC_IP")]
    NoPublicAddress {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Any other failure (no such local address, no permission for the port).
    #[error("cannot bind the media port {addr}: {source} (check CONVENE_MEDIA_UDP_ADDR)")]
    Other {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

struct Shard {
    socket: std::net::UdpSocket,
    sfu: Sfu,
    commands: mpsc::Receiver<MediaCommand>,
}

/// A bound media node, ready to [`run`](MediaNode::run).
pub struct MediaNode {
    shards: Vec<Shard>,
    plane: MediaPlane,
    local_addr: SocketAddr,
    metrics: MediaMetrics,
    health: MediaHealth,
}

/// Which of a node's shards stopped by panicking. A node missing a shard cannot carry the rooms placed on it,
/// so its health and readiness checks fail (and an orchestrator restarts it) instead of saying all is well.
#[derive(Debug, Clone, Default)]
pub struct MediaHealth {
    stopped: Arc<Mutex<Vec<usize>>>,
}

impl MediaHealth {
    /// Watches shard `shard` for as long as the returned guard lives on its thread.
    pub fn watch(&self, shard: usize) -> ShardWatch {
        ShardWatch { shard, health: self.clone() }
    }

    /// The shards that stopped by panicking.
    pub fn stopped_shards(&self) -> Vec<usize> {
        self.stopped.lock().map(|stopped| stopped.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

/// Notes its shard as stopped if the thread holding it unwinds.
#[derive(Debug)]
pub struct ShardWatch {
    shard: usize,
    health: MediaHealth,
}

impl Drop for ShardWatch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(shard = self.shard, "a media shard panicked; this node is no longer healthy");
            let mut stopped = self.health.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            stopped.push(self.shard);
        }
    }
}

impl std::fmt::Debug for MediaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaNode").field("local_addr", &self.local_addr).field("shards", &self.shards.len()).finish()
    }
}

impl MediaNode {
    /// Binds every shard's port. Binding happens before anything else starts, so a taken port fails fast.
    pub fn bind(config: NodeConfig, metrics: MediaMetrics) -> Result<Self, BindError> {
        let count = if config.shards == 0 {
            std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1)
        } else {
            config.shards
        };
        let public_ip = match config.public_ip {
            Some(ip) => ip,
            None if config.udp_addr.ip().is_unspecified() => {
                return Err(BindError::NoPublicAddress { addr: config.udp_addr });
            }
            None => config.udp_addr.ip(),
        };
        let mut shards = Vec::with_capacity(count);
        let mut senders = Vec::with_capacity(count);
        for index in 0..count {
            let port = match config.udp_addr.port() {
                0 => 0,
                base => u16::try_from(usize::from(base) + index).map_err(|_| BindError::Other {
                    addr: config.udp_addr,
                    source: io::Error::other("the shards' ports run past 65535"),
                })?,
            };
            let addr = SocketAddr::new(config.udp_addr.ip(), port);
            let socket = bind_socket(addr)?;
            let bound = socket.local_addr().map_err(|source| BindError::Other { addr, source })?;
            let public_port = match config.public_port {
                Some(base) => u16::try_from(usize::from(base) + index).map_err(|_| BindError::Other {
                    addr: config.udp_addr,
                    source: io::Error::other("the shards' public ports run past 65535"),
                })?,
                None => bound.port(),
            };
            let sfu = Sfu::new(SfuConfig {
                address: SocketAddr::new(public_ip, public_port),
                initial_estimate: INITIAL_ESTIMATE,
                trust_bwe: true,
                last_n: LAST_N,
                top_height: config.top_height,
            });
            let (sender, commands) = mpsc::channel(COMMANDS);
            senders.push(sender);
            shards.push(Shard { socket, sfu, commands });
        }
        let local_addr = shards
            .first()
            .and_then(|shard| shard.socket.local_addr().ok())
            .ok_or(BindError::Other { addr: config.udp_addr, source: io::Error::other("no shard") })?;
        Ok(Self { shards, plane: MediaPlane::new(senders), local_addr, metrics, health: MediaHealth::default() })
    }

    /// Shard 0's address: the one health checks probe (every shard answers probes).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether every shard still runs.
    pub fn health(&self) -> MediaHealth {
        self.health.clone()
    }

    /// The rooms' way in.
    pub fn plane(&self) -> MediaPlane {
        self.plane.clone()
    }

    /// Runs every shard on a thread of its own until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut threads = Vec::new();
        for (index, shard) in self.shards.into_iter().enumerate() {
            let (shutdown, metrics) = (shutdown.clone(), self.metrics.clone());
            let watch = self.health.watch(index);
            let spawned = std::thread::Builder::new().name(format!("media-shard-{index}")).spawn(move || {
                let _watch = watch;
                run_shard(index, shard, &shutdown, &metrics);
            });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => tracing::error!(%error, index, "could not start a media shard"),
            }
        }
        shutdown.cancelled().await;
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                if thread.join().is_err() {
                    tracing::error!("a media shard panicked");
                }
            }
        });
        let _ = joined.await;
        tracing::info!("media node stopped");
    }
}

fn bind_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
    let socket = std::net::UdpSocket::bind(addr).map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => BindError::InUse { addr },
        _ => BindError::Other { addr, source },
    })?;
    socket.set_nonblocking(true).map_err(|source| BindError::Other { addr, source })?;
    // Larger kernel buffers absorb bursts (keyframes, many receivers at once); the kernel may cap them.
    let socket = socket2::Socket::from(socket);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    Ok(socket.into())
}

fn run_shard(index: usize, shard: Shard, shutdown: &CancellationToken, metrics: &MediaMetrics) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "could not start a media shard's runtime");
            return;
        }
    };
    runtime.block_on(serve_shard(index, shard, shutdown, metrics));
}

async fn serve_shard(index: usize, shard: Shard, shutdown: &CancellationToken, metrics: &MediaMetrics) {
    let Shard { socket, mut sfu, mut commands } = shard;
    let mut socket = match BatchSocket::new(socket) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(%error, "could not use a media shard's socket");
            return;
        }
    };
    let mut outboxes: HashMap<PeerKey, mpsc::Sender<Delivery>> = HashMap::new();
    let mut recorders: Recorders = HashMap::new();
    let mut reported = Reported::new(index);
    let mut next_metrics = Instant::now() + METRICS_EVERY;
    loop {
        let wake = sfu.poll_timeout().unwrap_or_else(|| Instant::now() + METRICS_EVERY).min(next_metrics);
        tokio::select! {
            () = shutdown.cancelled() => break,
            command = commands.recv() => match command {
                Some(command) => handle(&mut sfu, (&mut outboxes, &mut recorders), command),
                None => break,
            },
            // One batch a turn: what it carried is forwarded before the next is read, because a packet waits
            // for its whole turn (four batches a turn cost 20 % more delay at p99 for 3 % less CPU).
            readable = socket.readable() => {
                if readable.is_ok()
                    && let Err(error) =
                        socket.receive(|source, datagram| sfu.handle_receive(Instant::now(), source, datagram))
                {
                    // An ICMP error for an earlier send surfaces here; it concerns one peer only.
                    tracing::debug!(%error, "media socket receive error");
                }
            },
            () = tokio::time::sleep_until(wake.into()) => {},
        }
        let now = Instant::now();
        if sfu.poll_timeout().is_some_and(|due| due <= now) {
            sfu.handle_timeout(now);
        }
        flush(&mut sfu, &mut socket, &outboxes, &mut recorders);
        if now >= next_metrics {
            reported.publish(&sfu, socket.sent(), metrics);
            next_metrics = now + METRICS_EVERY;
        }
    }
}

/// The queues of the recorders, live streams and phone mixers of the rooms tapped on a shard, by their ids.
type Recorders = HashMap<RoomId, Vec<(String, TapSink)>>;

/// What a room's taps want of it.
fn tap_of(taps: &[(String, TapSink)]) -> Tap {
    match (taps.is_empty(), taps.iter().any(|(_, sink)| sink.video)) {
        (true, _) => Tap::Off,
        (false, true) => Tap::Everything,
        (false, false) => Tap::Voices,
    }
}

fn handle(
    sfu: &mut Sfu,
    (outboxes, recorders): (&mut HashMap<PeerKey, mpsc::Sender<Delivery>>, &mut Recorders),
    command: MediaCommand,
) {
    let now = Instant::now();
    let refused = match command {
        MediaCommand::Offer { key, sdp, screen, end_to_end_encrypted, publish_only, outbox } => {
            outboxes.insert(key, outbox);
            let terms = OfferTerms { screen: screen.as_deref(), end_to_end_encrypted, publish_only };
            sfu.handle_offer(key, &sdp, terms, now).err().map(|error| (key, error))
        }
        MediaCommand::Resume { key, outbox } => {
            outboxes.insert(key, outbox);
            sfu.resume(key);
            None
        }
        MediaCommand::Answer { key, sdp } => sfu.handle_answer(key, &sdp, now).err().map(|error| (key, error)),
        MediaCommand::Pin { key, pinned } => {
            sfu.pin(key, pinned, now);
            None
        }
        MediaCommand::ReceiveVideo { key, requests } => {
            sfu.receive_video(key, &requests, now);
            None
        }
        MediaCommand::Leave { key } => {
            outboxes.remove(&key);
            sfu.leave(key, now);
            None
        }
        MediaCommand::Record { room, recording, sink } => {
            let taps = recorders.entry(room).or_default();
            taps.retain(|(id, _)| *id != recording);
            if let Some(sink) = sink {
                taps.push((recording, sink));
            }
            let tap = tap_of(taps);
            if tap == Tap::Off {
                recorders.remove(&room);
            }
            sfu.record(room, tap, now);
            None
        }
        MediaCommand::RecordingKeyframe { key, source } => {
            sfu.recording_keyframe(key, source, true, now);
            None
        }
        MediaCommand::StageKeyframe { key, source } => {
            sfu.recording_keyframe(key, source, false, now);
            None
        }
    };
    if let Some((key, error)) = refused
        && let Some(outbox) = outboxes.get(&key)
    {
        // Debug, not warn: any participant can send bad SDP, and the log must not be theirs to fill.
        tracing::debug!(
            room = key.room,
            participant = key.participant.0,
            %error,
            "a participant's media message was refused"
        );
        let message = ServerMessage::Error { code: "invalid".to_owned(), message: error.to_string() };
        let _ = outbox.try_send(Delivery::Message(message));
    }
}

/// Sends what the SFU produced: datagrams on the socket in runs (dropped when the kernel buffer is full, as
/// the network would), signalling into outboxes (a full one is the room's to deal with), recorded packets
/// into their recorder's queue (a full one loses the packet: recording never slows forwarding).
fn flush(
    sfu: &mut Sfu,
    socket: &mut BatchSocket,
    outboxes: &HashMap<PeerKey, mpsc::Sender<Delivery>>,
    recorders: &mut Recorders,
) {
    let mut gone = Vec::new();
    while let Some(output) = sfu.poll_output() {
        match output {
            SfuOutput::Transmit { destination, contents } => socket.send(destination, &contents),
            SfuOutput::Signal { to, message } => {
                if let Some(outbox) = outboxes.get(&to) {
                    let _ = outbox.try_send(Delivery::Message(message));
                }
            }
            SfuOutput::Record { room, packet } => {
                let voice = packet.codec == Codec::Opus;
                let wanted = recorders.get(&room).into_iter().flatten().filter(|(_, sink)| voice || sink.video);
                for (id, sink) in wanted {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = sink.queue.try_send(packet.clone()) {
                        gone.push((room, id.clone()));
                    }
                }
            }
        }
    }
    socket.flush();
    // A recorder that stopped without saying so (its stop was lost to a full queue) is let go.
    for (room, id) in gone {
        let Some(taps) = recorders.get_mut(&room) else { continue };
        taps.retain(|(tap, _)| *tap != id);
        let tap = tap_of(taps);
        if tap == Tap::Off {
            recorders.remove(&room);
        }
        sfu.record(room, tap, Instant::now());
    }
}
