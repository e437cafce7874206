//! The SIP gateway: phone callers into meetings (Jigasi's job, here in the media node). rsipstack carries
//! SIP over UDP and TCP (transactions, retransmissions, dialogs); this module decides what to answer and
//! runs each call as a task ([`call`]) that speaks RTP with the trunk, holds the PIN conversation
//! ([`crate::phone::ivr`]) and then joins the room through the focus like any browser, so lobby, lock,
//! password, ceilings and removals hold for callers without special cases.
//!
//! Who may call what is the control plane's to say, through [`PhoneDirectory`]: the media node keeps no
//! records of its own.

mod bridge;
mod call;
mod dial;
mod mix;
mod relay;

pub use dial::{DialRequests, Dialer, Trunk, dialer};

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rsipstack::{
    EndpointBuilder,
    dialog::{dialog::DialogState, dialog_layer::DialogLayer},
    sip::{self as sip, Header, HeadersExt, Method, StatusCode},
    transaction::{Endpoint, TransactionReceiver, transaction::Transaction},
    transport::{TransportLayer, tcp_listener::TcpListenerConnection, udp::UdpConnection},
};
use tokio_util::sync::CancellationToken;

use crate::{
    focus::{Identity, RoomPolicy},
    phone::sdp::Offer,
    rooms::{RoomKey, Rooms},
};

/// How the gateway is reached and what it takes on.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where SIP is received, over UDP and TCP on the same port.
    pub addr: SocketAddr,
    /// The address trunks reach the gateway and its media at, for Contact headers and SDP (the bound one
    /// when it is not a wildcard).
    pub advertised_ip: Option<IpAddr>,
    /// Calls at once; the next is answered 503 with a Retry-After.
    pub max_calls: usize,
    /// The address the media node's socket is reached at from this process (callers' audio goes there).
    pub media_ip: IpAddr,
    /// Where SIP may come from (the trunks' and SBCs' addresses); `None`: anywhere.
    pub allowed_peers: Option<AllowedPeers>,
    /// The UDP ports calls' audio uses with trunks, for firewalls; `None`: any the system gives.
    pub rtp_ports: Option<RtpPorts>,
}

/// A range of UDP ports for calls' audio (one port a call): `20000-20999`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPorts {
    first: u16,
    last: u16,
}

impl RtpPorts {
    /// Reads `first-last` (inclusive; ports 1024 and up, so no privileged port is asked for).
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("`{text}` is not a range of ports like 20000-20999");
        let (first, last) = text.trim().split_once('-').ok_or_else(invalid)?;
        let first: u16 = first.trim().parse().map_err(|_| invalid())?;
        let last: u16 = last.trim().parse().map_err(|_| invalid())?;
        if first < 1024 || last < first {
            return Err(invalid());
        }
        Ok(Self { first, last })
    }

    /// Binds a free port of the range on `ip`, starting from a random one so calls spread over it.
    async fn bind(&self, ip: IpAddr) -> std::io::Result<tokio::net::UdpSocket> {
        let count = u32::from(self.last - self.first) + 1;
        let start = call::random_u32() % count;
        for step in 0..count {
            let port = self.first + u16::try_from((start + step) % count).unwrap_or_default();
            if let Ok(socket) = tokio::net::UdpSocket::bind((ip, port)).await {
                return Ok(socket);
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "every port of CONVENE_SIP_RTP_PORTS is in use"))
    }
}

/// The addresses and ranges SIP is taken from; datagrams and connections from elsewhere are dropped
/// unread, so scanners and toll fraud never reach a PIN prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeers(Vec<ipnet::IpNet>);

impl AllowedPeers {
    /// Reads comma-separated addresses and CIDR ranges: `203.0.113.7, 198.51.100.0/24, 2001:db8::/32`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let peers = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<ipnet::IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{part}` is not an address or a range like 203.0.113.0/24"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if peers.is_empty() {
            return Err("list at least one address or range".to_owned());
        }
        Ok(Self(peers))
    }

    /// Whether SIP from `ip` is taken.
    pub fn allows(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows as an IPv4-mapped IPv6 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::fmt::Display for AllowedPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&peers.join(", "))
    }
}

/// The control plane's answers about dial-in, asked by the gateway.
pub trait PhoneDirectory: Send + Sync + 'static {
    /// Whether `number` (the dialled number as the trunk sent it) is one of ours; calls to others get 404.
    fn serves(&self, number: &str) -> impl Future<Output = Result<bool, DirectoryError>> + Send;

    /// The meeting `pin` opens on the number `call` dialled, and where the caller joins it.
    fn admit(&self, call: &CallFacts, pin: &str) -> impl Future<Output = Result<Entry, DialInRefusal>> + Send;

    /// The meeting a trusted SBC named for a call (Jigasi's `Jitsi-Conference-Room` header: the room's name,
    /// or `room@conference.<tenant>.<meet host>`) on the number `call` dialled, and where the caller joins it.
    fn admit_to_room(&self, call: &CallFacts, room: &str) -> impl Future<Output = Result<Entry, DialInRefusal>> + Send;

    /// The caller another node's gateway passed here with `ticket` (the control plane's, for a meeting that
    /// runs on this node), as the room will know them.
    fn admit_relayed(&self, ticket: &str) -> impl Future<Output = Result<PhoneAdmission, DialInRefusal>> + Send;

    /// Whether `number` may be called into `room` now, by the records: the plan, the meeting's state and
    /// removals, which outlive the room's memory (a number removed before the room last closed stays out).
    fn may_call(&self, room: &RoomKey, number: &str) -> impl Future<Output = Result<(), DialInRefusal>> + Send;

    /// The number calls out of `tenant`'s meetings show (one of its dial-in numbers, so people can call
    /// back), if it has one.
    fn caller_id(&self, tenant: &str) -> impl Future<Output = Option<String>> + Send;
}

/// The control plane could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the dial-in directory cannot be reached")]
pub struct DirectoryError;

/// What the gateway knows of a call when it asks for its meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// The number dialled (the request URI's user part).
    pub number: String,
    /// The caller's number or name, as the trunk gave it (`None` when withheld).
    pub caller: Option<String>,
}

/// A caller let in, and the room they enter.
#[derive(Debug, Clone)]
pub struct PhoneAdmission {
    /// The room.
    pub room: RoomKey,
    /// Its settings and what the plan allows.
    pub policy: RoomPolicy,
    /// The caller as the room will know them.
    pub identity: Identity,
}

/// Where a caller let in goes.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Into a room on this node.
    Here(Box<PhoneAdmission>),
    /// To the meeting's node, whose gateway takes the call from this one.
    Relay(Relay),
}

/// A call to pass to the gateway of the node a meeting runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// That gateway's SIP address.
    pub gateway: SocketAddr,
    /// What lets the caller in there: the control plane's, short-lived and good once.
    pub ticket: String,
}

/// Why a PIN let no one in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialInRefusal {
    /// No meeting on this number has this PIN.
    UnknownPin,
    /// The meeting is over or cancelled.
    MeetingOver,
    /// The organisation's plan has no dial-in, or the meeting cannot take callers (end-to-end encrypted).
    NotAvailable,
    /// The caller was removed from the meeting.
    Removed,
    /// Too many wrong PINs from this caller lately, or the control plane failed: try later.
    Unavailable,
}

impl DialInRefusal {
    /// Why a moderator's call out was not placed, in their words.
    pub fn words(self) -> &'static str {
        match self {
            Self::UnknownPin => "the meeting was not found",
            Self::MeetingOver => "the meeting is over",
            Self::NotAvailable => "this meeting cannot take phone calls",
            Self::Removed => "this number was removed from the meeting",
            Self::Unavailable => "the phone gateway cannot check the number now",
        }
    }
}

/// New calls accepted in a burst, and per second after it: more are answered 503, so a flood costs the
/// gateway a reply each, not a lookup or a port.
const INVITES_BURST: f64 = 50.0;
const INVITES_PER_SECOND: f64 = 20.0;
/// How long a refused caller is told to wait.
const RETRY_AFTER_SECONDS: u32 = 30;
/// Wrong PINs and passwords allowed in `GUESS_WINDOW`, across calls (three a call would otherwise be
/// unlimited by redialling): per caller id (withheld numbers all count as one caller), per number dialled
/// (caller ids can be forged; this caps guessing any of a number's PINs at one every two seconds), and, for
/// passwords, per room, as the signalling socket counts them.
const GUESSES_PER_CALLER: u32 = 10;
const GUESSES_PER_NUMBER: u32 = 300;
const GUESSES_PER_ROOM: u32 = 100;
/// The window wrong guesses are counted over.
pub const GUESS_WINDOW: Duration = Duration::from_secs(600);

/// The key `call`'s caller's wrong guesses count under, with its limit.
fn caller_guesses(call: &CallFacts) -> (String, u32) {
    (format!("caller:{}", call.caller.as_deref().unwrap_or("withheld")), GUESSES_PER_CALLER)
}

/// The keys wrong PINs are counted under for `call` (its caller, the number it dialled), each with its limit
/// in [`GUESS_WINDOW`]; a control plane counts them again across its nodes' gateways.
pub fn pin_guess_keys(call: &CallFacts) -> [(String, u32); 2] {
    [caller_guesses(call), (format!("number:{}", call.number), GUESSES_PER_NUMBER)]
}
/// How long an in-dialog request waits for the ACK it overtook: 50 steps of 10 ms.
const ACK_WAIT_STEPS: u32 = 50;
const ACK_WAIT_STEP: Duration = Duration::from_millis(10);
/// The header a trusted SBC names a call's meeting in, as Jigasi reads it, and the one with its password.
const ROOM_HEADER: &str = "Jitsi-Conference-Room";
const ROOM_PASSWORD_HEADER: &str = "Jitsi-Conference-Room-Pass";
/// The header a node's gateway passes a caller to the meeting's node with: the control plane's ticket.
const RELAY_HEADER: &str = "X-Convene-Relay";
/// Ports tried when any port will do and the first is taken for TCP.
const ANY_PORT_ATTEMPTS: u32 = 20;
/// What OPTIONS and 405s say the gateway supports.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";

/// The SIP gateway, bound and ready to run.
pub struct Gateway<D> {
    endpoint: Endpoint,
    incoming: TransactionReceiver,
    /// Calls rooms ask for, and the trunk that places them.
    calling_out: Option<(Trunk, DialRequests)>,
    shared: Arc<Shared<D>>,
    local_addr: SocketAddr,
}

/// What every call's task uses.
struct Shared<D> {
    dialogs: Arc<DialogLayer>,
    directory: D,
    rooms: Rooms,
    /// The address in Contact headers and SDP.
    advertised_ip: IpAddr,
    /// Where RTP sockets are bound.
    bind_ip: IpAddr,
    /// Where the media node is reached.
    media_ip: IpAddr,
    /// The SIP port, for Contact headers.
    port: u16,
    calls: AtomicUsize,
    max_calls: usize,
    invites: Mutex<Bucket>,
    guesses: Mutex<Guesses>,
    /// Calls placed and not answered yet (when the gateway calls out).
    ringing: Option<dial::Ringing>,
    /// Calls placed and answered, for moderators' keys.
    keypads: Option<dial::Keypads>,
    /// Where calls' audio ports come from.
    rtp_ports: Option<RtpPorts>,
    /// SIP comes only from listed addresses, so a room header in an INVITE can be believed.
    trusts_room_header: bool,
    /// The meetings' mixers: what callers hear.
    mixers: mix::Mixers,
    shutdown: CancellationToken,
}

/// A token bucket over new calls.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * INVITES_PER_SECOND).min(INVITES_BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A socket could not be bound.
    #[error("cannot listen for SIP on {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    /// The gateway listens on every address and was given none to advertise.
    #[error("SIP listens on {0}, a wildcard: set CONVENE_MEDIA_PUBLIC_IP to the address trunks reach")]
    NoAdvertisedAddress(SocketAddr),
}

impl<D: PhoneDirectory> Gateway<D> {
    /// Binds UDP and TCP on `config.addr` (TCP on the port UDP got, when it asked for any); calls join
    /// `rooms` as `directory` says; everything stops when `shutdown` is cancelled.
    pub async fn bind(
        config: &GatewayConfig,
        directory: D,
        rooms: Rooms,
        calling_out: Option<(Trunk, DialRequests)>,
        shutdown: CancellationToken,
    ) -> Result<Self, BindError> {
        let advertised_ip = match config.advertised_ip {
            Some(ip) => ip,
            None if config.addr.ip().is_unspecified() => return Err(BindError::NoAdvertisedAddress(config.addr)),
            None => config.addr.ip(),
        };
        let io = |error: std::io::Error| BindError::Io(config.addr, error);
        let (udp, local_addr) = bind_udp_and_tcp(config.addr).await.map_err(io)?;
        let public = SocketAddr::new(advertised_ip, local_addr.port());
        let transports = TransportLayer::new(shutdown.child_token());
        if let Some(peers) = config.allowed_peers.clone() {
            transports.set_whitelist(move |ip| {
                let allowed = peers.allows(ip);
                async move { allowed }
            });
        }
        let udp = UdpConnection::from_socket(Arc::new(udp), Some(public), Some(shutdown.child_token()))
            .await
            .map_err(|error| io(std::io::Error::other(error.to_string())))?;
        transports.add_transport(udp.into());
        let tcp = TcpListenerConnection::new(local_addr, Some(public))
            .await
            .map_err(|error| io(std::io::Error::other(error.to_string())))?;
        transports.add_transport(tcp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(shutdown.child_token())
            .with_transport_layer(transports)
            .with_user_agent("Convene")
            .build();
        let incoming =
            endpoint.incoming_transactions().map_err(|error| io(std::io::Error::other(error.to_string())))?;
        let shared = Shared {
            dialogs: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            directory,
            rooms,
            advertised_ip,
            bind_ip: local_addr.ip(),
            media_ip: config.media_ip,
            port: local_addr.port(),
            calls: AtomicUsize::new(0),
            max_calls: config.max_calls,
            invites: Mutex::new(Bucket { tokens: INVITES_BURST, refilled: Instant::now() }),
            guesses: Mutex::default(),
            ringing: calling_out.as_ref().map(|(_, requests)| Arc::clone(&requests.ringing)),
            keypads: calling_out.as_ref().map(|(_, requests)| Arc::clone(&requests.keypads)),
            rtp_ports: config.rtp_ports.clone(),
            trusts_room_header: config.allowed_peers.is_some(),
            mixers: mix::Mixers::default(),
            shutdown,
        };
        Ok(Self { endpoint, incoming, calling_out, shared: Arc::new(shared), local_addr })
    }

    /// Where SIP is received (the real port when the setting asked for any).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where trunks and other nodes' gateways reach it: the advertised address, on the real port.
    pub fn advertised_addr(&self) -> SocketAddr {
        SocketAddr::new(self.shared.advertised_ip, self.local_addr.port())
    }

    /// Answers SIP until shutdown; calls in progress are hung up first.
    pub async fn run(self) {
        let Self { endpoint, mut incoming, shared, mut calling_out, .. } = self;
        let serving = endpoint.serve();
        tokio::pin!(serving);
        loop {
            let requested = async {
                match &mut calling_out {
                    Some((trunk, requests)) => requests.next().await.map(|request| (trunk.clone(), request)),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut serving => break,
                () = shared.shutdown.cancelled() => break,
                transaction = incoming.recv() => match transaction {
                    Some(transaction) => shared.clone().receive(transaction),
                    None => break,
                },
                requested = requested => match requested {
                    Some((trunk, request)) => {
                        tokio::spawn(shared.clone().dial(trunk, request));
                    }
                    // The rooms are gone: nothing more to call.
                    None => calling_out = None,
                },
            }
        }
        // Calls see the shutdown and say goodbye; give their BYEs a moment to leave.
        let deadline = Instant::now() + Duration::from_secs(2);
        while shared.calls.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        endpoint.shutdown();
    }
}

impl<D: PhoneDirectory> Shared<D> {
    /// One new server transaction. Never waits: anything slow happens on a task of its own, so one
    /// caller cannot hold up the others.
    fn receive(self: Arc<Self>, mut transaction: Transaction) {
        let in_dialog = transaction.original.to_header().ok().and_then(|to| to.tag().ok().flatten()).is_some();
        if in_dialog {
            match self.dialogs.match_dialog(&transaction) {
                Some(mut dialog) => {
                    tokio::spawn(async move {
                        // A request right behind the ACK may overtake it here, and a dialog not yet
                        // confirmed drops requests unanswered: give the ACK (sent first) a moment.
                        for _ in 0..ACK_WAIT_STEPS {
                            if !matches!(dialog.state(), DialogState::WaitAck(..)) {
                                break;
                            }
                            tokio::time::sleep(ACK_WAIT_STEP).await;
                        }
                        if let Err(error) = dialog.handle(&mut transaction).await {
                            tracing::debug!(%error, "an in-dialog SIP request failed");
                        }
                    });
                }
                None => reply_soon(transaction, StatusCode::CallTransactionDoesNotExist, vec![]),
            }
            return;
        }
        match transaction.original.method {
            Method::Invite => {
                tokio::spawn(async move { self.invited(transaction).await });
            }
            Method::Options => reply_soon(transaction, StatusCode::OK, capabilities()),
            // A stray ACK (its INVITE is gone) needs no answer.
            Method::Ack => {}
            // BYE, INFO, UPDATE outside a dialog: the call is gone.
            Method::Bye | Method::Info | Method::Update | Method::Cancel => {
                reply_soon(transaction, StatusCode::CallTransactionDoesNotExist, vec![]);
            }
            _ => reply_soon(transaction, StatusCode::MethodNotAllowed, vec![allow()]),
        }
    }

    /// A new call: refused (busy, unknown number, no common codec) or answered and handed to its task.
    async fn invited(self: Arc<Self>, mut transaction: Transaction) {
        let facts = CallFacts::of(&transaction.original);
        let calls = self.calls.load(Ordering::Relaxed);
        let flood = self.invites.lock().map_or(true, |mut bucket| !bucket.take(Instant::now()));
        if calls >= self.max_calls || flood || self.shutdown.is_cancelled() {
            let retry = Header::RetryAfter(RETRY_AFTER_SECONDS.to_string().into());
            return reply(&mut transaction, StatusCode::ServiceUnavailable, vec![retry]).await;
        }
        match self.directory.serves(&facts.number).await {
            Ok(true) => {}
            Ok(false) => return reply(&mut transaction, StatusCode::NotFound, vec![]).await,
            Err(_) => {
                let retry = Header::RetryAfter(RETRY_AFTER_SECONDS.to_string().into());
                return reply(&mut transaction, StatusCode::ServiceUnavailable, vec![retry]).await;
            }
        }
        let body = String::from_utf8_lossy(&transaction.original.body).into_owned();
        let offer = match Offer::parse(&body) {
            Ok(offer) => offer,
            Err(error) => {
                let warning = Header::Warning(format!("399 convene \"{error}\"").into());
                return reply(&mut transaction, StatusCode::NotAcceptableHere, vec![warning]).await;
            }
        };
        let socket = match self.rtp_socket().await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(%error, "no RTP port for a call");
                return reply(&mut transaction, StatusCode::ServiceUnavailable, vec![]).await;
            }
        };
        // Another node's gateway passes a caller on with the control plane's ticket; a trusted SBC (only where
        // SIP is taken from listed addresses) may name the meeting. No PIN then.
        let request = &transaction.original;
        let password = || request.header_value(ROOM_PASSWORD_HEADER).map(|words| words.trim().to_owned());
        let routed = match (request.header_value(RELAY_HEADER), request.header_value(ROOM_HEADER)) {
            (Some(ticket), _) => match self.directory.admit_relayed(ticket.trim()).await {
                Ok(admission) => Some((Entry::Here(Box::new(admission)), password())),
                Err(refusal) => return reply(&mut transaction, routing_refused(refusal), vec![]).await,
            },
            (None, Some(room)) if self.trusts_room_header => {
                match self.directory.admit_to_room(&facts, room.trim()).await {
                    Ok(entry) => Some((entry, password())),
                    Err(refusal) => return reply(&mut transaction, routing_refused(refusal), vec![]).await,
                }
            }
            (None, _) => None,
        };
        let contact = sip::Uri {
            scheme: Some(sip::Scheme::Sip),
            auth: Some(sip::Auth { user: facts.number.clone(), password: None }),
            host_with_port: SocketAddr::new(self.advertised_ip, self.port).into(),
            ..Default::default()
        };
        let (states, state_receiver) = self.dialogs.new_dialog_state_channel();
        let dialog = match self.dialogs.get_or_create_server_invite(&transaction, states, None, Some(contact)) {
            Ok(dialog) => dialog,
            Err(error) => {
                tracing::debug!(%error, "an INVITE made no dialog");
                return reply(&mut transaction, StatusCode::CallTransactionDoesNotExist, vec![]).await;
            }
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut handler = dialog.clone();
        let session_timer = call::SessionTimer::requested(&transaction.original);
        // The INVITE's transaction: 100 Trying, our answer's retransmissions until the ACK, CANCEL.
        tokio::spawn(async move {
            if let Err(error) = handler.handle(&mut transaction).await {
                tracing::debug!(%error, "an INVITE transaction failed");
            }
        });
        let call = match routed {
            Some(routed) => call::Call::routed(
                self.clone(),
                (dialog, state_receiver),
                (socket, offer),
                (facts, session_timer),
                routed,
            ),
            None => call::Call::new(self.clone(), dialog, state_receiver, (socket, offer), (facts, session_timer)),
        };
        call.run().await;
        self.calls.fetch_sub(1, Ordering::Relaxed);
    }

    /// A socket for a call's audio with the trunk: in the configured range, else any port.
    async fn rtp_socket(&self) -> std::io::Result<tokio::net::UdpSocket> {
        match &self.rtp_ports {
            Some(ports) => ports.bind(self.bind_ip).await,
            None => tokio::net::UdpSocket::bind((self.bind_ip, 0)).await,
        }
    }

    /// Whether a PIN (no `room`) or a room's password may be tried now by `call`'s caller; with `wrong`, counts
    /// a wrong one first.
    fn guess_allowed(&self, call: &CallFacts, room: Option<&RoomKey>, wrong: bool) -> bool {
        let keys = match room {
            Some((tenant, room)) => [caller_guesses(call), (format!("room:{tenant}/{room}"), GUESSES_PER_ROOM)],
            None => pin_guess_keys(call),
        };
        self.guesses.lock().is_ok_and(|mut guesses| guesses.allowed(&keys, wrong, Instant::now()))
    }
}

/// Wrong guesses counted per key over `GUESS_WINDOW`. Bounded: new calls are rate limited, so at most a
/// window's worth of callers and numbers are remembered.
#[derive(Debug, Default)]
struct Guesses(HashMap<String, (u32, Instant)>);

impl Guesses {
    /// With `wrong`, counts one for every key; then whether every key is under its limit.
    fn allowed(&mut self, keys: &[(String, u32)], wrong: bool, now: Instant) -> bool {
        self.0.retain(|_, (_, since)| now.saturating_duration_since(*since) < GUESS_WINDOW);
        keys.iter().all(|(key, limit)| {
            let entry = self.0.entry(key.clone()).or_insert((0, now));
            if wrong {
                entry.0 += 1;
            }
            entry.0 < *limit
        })
    }
}

impl CallFacts {
    /// What an INVITE says: the number dialled (the request URI's user part) and the caller, from
    /// P-Asserted-Identity (what a trunk vouches for), else From; withheld and anonymous callers are `None`.
    pub fn of(request: &sip::Request) -> Self {
        let asserted = request.header_value("P-Asserted-Identity").and_then(|value| {
            let uri = value.split(['<', '>']).find(|part| part.contains(':'))?.trim().to_owned();
            sip::Uri::try_from(uri.as_str()).ok()?.user().map(str::to_owned)
        });
        let from = || request.from_header().ok()?.uri().ok()?.user().map(str::to_owned);
        let caller = asserted.or_else(from).filter(|user| !user.is_empty() && !user.eq_ignore_ascii_case("anonymous"));
        Self { number: request.uri.user().unwrap_or_default().to_owned(), caller }
    }
}

/// Binds SIP's UDP socket and proves its port free for TCP too (rsipstack binds TCP later, in its
/// listener task, where a taken port would go unnoticed). Any port (`:0`) may be taken for TCP by
/// another socket, so a few are tried.
async fn bind_udp_and_tcp(addr: SocketAddr) -> std::io::Result<(tokio::net::UdpSocket, SocketAddr)> {
    let attempts = if addr.port() == 0 { ANY_PORT_ATTEMPTS } else { 1 };
    let mut attempt = 1;
    loop {
        let udp = tokio::net::UdpSocket::bind(addr).await?;
        let local_addr = udp.local_addr()?;
        match std::net::TcpListener::bind(local_addr) {
            Ok(_probe) => return Ok((udp, local_addr)),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && attempt < attempts => attempt += 1,
            Err(error) => return Err(error),
        }
    }
}

/// What a trunk hears when the meeting its room header names cannot take the call.
fn routing_refused(refusal: DialInRefusal) -> StatusCode {
    match refusal {
        DialInRefusal::UnknownPin => StatusCode::NotFound,
        DialInRefusal::MeetingOver => StatusCode::TemporarilyUnavailable,
        DialInRefusal::NotAvailable | DialInRefusal::Removed => StatusCode::Forbidden,
        DialInRefusal::Unavailable => StatusCode::ServiceUnavailable,
    }
}

fn allow() -> Header {
    Header::Allow(ALLOW.into())
}

/// What OPTIONS answers: the methods, the body type and the extensions the gateway takes.
fn capabilities() -> Vec<Header> {
    vec![allow(), Header::Accept("application/sdp".into()), Header::Supported("timer".into())]
}

async fn reply(transaction: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(error) = transaction.reply_with(status, headers, None).await {
        tracing::debug!(%error, "a SIP reply could not be sent");
    }
}

/// Replies on a task of its own (the transaction's retransmissions run there).
fn reply_soon(mut transaction: Transaction, status: StatusCode, headers: Vec<Header>) {
    tokio::spawn(async move { reply(&mut transaction, status, headers).await });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_guesses_lock_out_each_key_for_the_window_and_every_key_counts() {
        let mut guesses = Guesses::default();
        let start = Instant::now();
        let key = |name: &str, limit| (name.to_owned(), limit);
        for _ in 0..2 {
            assert!(guesses.allowed(&[key("caller:a", 3), key("number:n", 4)], true, start));
        }
        assert!(!guesses.allowed(&[key("caller:a", 3)], true, start), "the caller's third wrong guess");
        assert!(!guesses.allowed(&[key("caller:a", 3)], false, start), "and the caller stays out");
        assert!(guesses.allowed(&[key("caller:b", 3), key("number:n", 4)], true, start));
        assert!(!guesses.allowed(&[key("caller:c", 3), key("number:n", 4)], true, start), "the number's fourth");
        assert!(guesses.allowed(&[key("caller:a", 3)], false, start + GUESS_WINDOW), "the window passed");
    }

    #[test]
    fn allowed_peers_are_addresses_and_ranges_of_either_family() {
        let peers = AllowedPeers::parse(" 203.0.113.7, 198.51.100.0/24,2001:db8::/32 ").expect("a list");
        let allowed = |ip: &str| peers.allows(ip.parse().expect("an address"));
        assert!(allowed("203.0.113.7") && allowed("198.51.100.200") && allowed("2001:db8::1"));
        assert!(allowed("::ffff:198.51.100.9"), "IPv4 seen through a dual-stack socket");
        assert!(!allowed("203.0.113.8") && !allowed("127.0.0.1") && !allowed("2001:db9::1"));
        assert_eq!(peers.to_string(), "203.0.113.7/32, 198.51.100.0/24, 2001:db8::/32");
        for junk in ["", " , ", "10.0.0.0/33", "pbx.example.com", "10.0.0.1-10.0.0.9"] {
            assert!(AllowedPeers::parse(junk).is_err(), "{junk}");
        }
    }

    #[tokio::test]
    async fn rtp_ports_come_from_the_range_until_it_is_used_up() {
        assert_eq!(RtpPorts::parse(" 20000 - 20999 "), Ok(RtpPorts { first: 20000, last: 20999 }));
        for junk in ["", "20000", "80-90", "3000-2000", "20000-70000", "a-b"] {
            assert!(RtpPorts::parse(junk).is_err(), "{junk}");
        }
        let free = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()).expect("a port");
        let (first, last) = (free.port().max(1024), free.port().max(1024).saturating_add(1));
        let ports = RtpPorts { first, last };
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let mut taken = Vec::new();
        while let Ok(socket) = ports.bind(loopback).await {
            let port = socket.local_addr().expect("its address").port();
            assert!((first..=last).contains(&port), "{port}");
            taken.push(socket);
        }
        assert!(!taken.is_empty() && taken.len() <= 2, "every port once, then refused: {}", taken.len());
    }

    #[tokio::test]
    async fn a_port_taken_for_tcp_is_refused_when_named_and_passed_over_when_any_will_do() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a TCP port");
        let addr = taken.local_addr().expect("its address");
        let error = bind_udp_and_tcp(addr).await.expect_err("the named port is taken for TCP");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        let (_udp, any) = bind_udp_and_tcp("127.0.0.1:0".parse().expect("an address")).await.expect("any port");
        assert_ne!(any.port(), 0);
    }
}
