//! The signalling WebSocket: `GET /_signal/{room}` upgrades; the first text frame must be `hello` with the
//! room token, verified with the tenant's public keys and admitted against the records; then frames pass to
//! the room's focus and back. Where this process hosts rooms (`up`) the room is here; on a control plane
//! with media nodes the socket is passed on to the room's node (`nodes::proxy`), whose
//! `/_node/v1/signal` takes the admitted joiner and then runs the same loop. The paths cannot clash with a
//! room (room names have no underscore).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, http::header, rt, web};
use actix_ws::{AggregatedMessage, Session};
use convene_domain::RoomName;
use convene_media::{
    plane::Delivery,
    rooms::{ConnectError, Rooms},
    signal_metrics::{FrameOutcome, SignalMetrics},
};
use convene_signal::{ClientMessage, MAX_MESSAGE_BYTES, ParseError, Refusal, ServerMessage};
use secrecy::SecretString;

use crate::{
    http::AppState,
    meetings::{
        admission::{Admission, Admitted, Refused},
        room_commands::HostedRooms,
    },
    nodes::{
        proxy::MediaNodes,
        wire::{Handoff, authorized},
    },
    platform::rate_limit::RateLimiter,
};

/// A connection that has not said `hello` this long after opening is closed, whatever else it sends.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client may send this many messages in a burst, refilled at `BUDGET_PER_SECOND`; more are dropped.
const BUDGET_BURST: f64 = 50.0;
const BUDGET_PER_SECOND: f64 = 20.0;

/// A token bucket over one connection's messages: chat and reactions are human-paced, so a flood is a
/// broken or hostile client, and dropping its excess keeps the room's inbox for everyone else.
struct Budget {
    tokens: f64,
    refilled: tokio::time::Instant,
    /// Whether the client has been told it is over budget since it last was within it.
    warned: bool,
}

impl Budget {
    fn new() -> Self {
        Self { tokens: BUDGET_BURST, refilled: tokio::time::Instant::now(), warned: false }
    }

    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * BUDGET_PER_SECOND).min(BUDGET_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.warned = false;
            true
        } else {
            false
        }
    }
}

/// Wrong room passwords allowed per person (token user id, else the token) and per client address in
/// `GUESS_WINDOW`, and per room from everyone: enough for typos, far too few to guess.
const GUESSES_PER_PERSON: u32 = 10;
const GUESSES_PER_ADDRESS: u32 = 10;
const GUESSES_PER_ROOM: u32 = 100;
const GUESS_WINDOW: Duration = Duration::from_secs(600);

/// Wrong room passwords, counted across connections (a fresh socket must not mean a fresh guess).
#[derive(Debug, Clone, Default)]
pub struct PasswordGuesses(std::sync::Arc<RateLimiter>);

impl PasswordGuesses {
    fn keys(room: &(String, String), person: &str, address: &str) -> [(String, u32); 3] {
        [
            (format!("person:{}/{}/{person}", room.0, room.1), GUESSES_PER_PERSON),
            (format!("address:{address}"), GUESSES_PER_ADDRESS),
            (format!("room:{}/{}", room.0, room.1), GUESSES_PER_ROOM),
        ]
    }

    /// Whether another guess may be made.
    fn allowed(&self, room: &(String, String), person: &str, address: &str) -> bool {
        let now = std::time::Instant::now();
        Self::keys(room, person, address).iter().all(|(key, limit)| self.0.allows(key, *limit, GUESS_WINDOW, now))
    }

    /// Counts a wrong guess.
    fn wrong(&self, room: &(String, String), person: &str, address: &str) {
        let now = std::time::Instant::now();
        for (key, limit) in Self::keys(room, person, address) {
            self.0.allow(&key, limit, GUESS_WINDOW, now);
        }
    }
}

/// A media node's side of the signalling: its rooms, and the secret a passed-on socket must carry.
#[derive(Debug, Clone)]
pub struct NodeServices {
    /// The rooms this node hosts, with its id.
    pub hosted: HostedRooms,
    /// The secret its control plane holds.
    pub secret: SecretString,
    /// Wrong room passwords, counted across connections (rooms live on one node).
    pub password_guesses: PasswordGuesses,
    /// What its phone gateway asks the control plane.
    pub phone_line: crate::nodes::client::PhoneLine,
    /// Where its phone gateway takes SIP, once it runs one (heartbeats carry it).
    pub gateway_address: crate::nodes::client::GatewayAddress,
}

/// Registers the joiners' endpoint, for a control plane that hosts rooms or has media nodes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signal);
}

/// Registers a media node's endpoint for the joiners its control plane passes on.
pub fn configure_node(cfg: &mut web::ServiceConfig) {
    cfg.service(node_signal);
}

/// Where this process sends the joiners it admits.
enum Host {
    /// Rooms in this process.
    Here(Rooms),
    /// The rooms' media nodes.
    Nodes(MediaNodes),
}

impl Host {
    /// Where its signalling figures are counted.
    fn metrics(&self) -> SignalMetrics {
        match self {
            Host::Here(rooms) => rooms.metrics().clone(),
            Host::Nodes(nodes) => nodes.metrics.clone(),
        }
    }
}

fn upgrade(
    request: &HttpRequest,
    body: web::Payload,
) -> actix_web::Result<(HttpResponse, Session, actix_ws::AggregatedMessageStream)> {
    let (response, session, stream) = actix_ws::handle(request, body)?;
    let stream =
        stream.max_frame_size(MAX_MESSAGE_BYTES).aggregate_continuations().max_continuation_size(MAX_MESSAGE_BYTES);
    Ok((response, session, stream))
}

fn client_address(request: &HttpRequest) -> String {
    request.peer_addr().map(|addr| addr.ip().to_string()).unwrap_or_default()
}

#[get("/_signal/{room}")]
async fn signal(
    request: HttpRequest,
    body: web::Payload,
    room: web::Path<String>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let Ok(room) = RoomName::parse(&room) else { return Ok(HttpResponse::NotFound().finish()) };
    let host = match (&state.rooms, &state.nodes) {
        (Some(rooms), _) => Host::Here(rooms.clone()),
        (None, Some(nodes)) => Host::Nodes(nodes.clone()),
        // Nothing to signal to.
        (None, None) => return Ok(HttpResponse::NotFound().finish()),
    };
    let address = client_address(&request);
    let (response, session, stream) = upgrade(&request, body)?;
    rt::spawn(async move {
        let metrics = host.metrics();
        metrics.connection(1);
        serve(session, stream, room, (state.admission.clone(), address), host, state.password_guesses.clone()).await;
        metrics.connection(-1);
    });
    Ok(response)
}

/// `GET /_node/v1/signal` on a media node: a joiner its control plane admitted, passed on with the node
/// secret. The first frame is the [`Handoff`]; the joiner's own frames follow.
#[get("/_node/v1/signal")]
async fn node_signal(
    request: HttpRequest,
    body: web::Payload,
    node: web::Data<NodeServices>,
) -> actix_web::Result<HttpResponse> {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    if !authorized(header, &node.secret) {
        return Ok(HttpResponse::Unauthorized().finish());
    }
    let (response, session, mut stream) = upgrade(&request, body)?;
    let node = node.into_inner();
    rt::spawn(async move {
        let rooms = node.hosted.rooms.clone();
        rooms.metrics().connection(1);
        let handoff = match tokio::time::timeout(HELLO_TIMEOUT, stream.recv()).await {
            Ok(Some(Ok(AggregatedMessage::Text(text)))) => serde_json::from_str::<Handoff>(&text),
            _ => {
                let _ = session.close(None).await;
                rooms.metrics().connection(-1);
                return;
            }
        };
        match handoff {
            Ok(handoff) => {
                let entry = Entry {
                    key: (handoff.tenant.to_string(), handoff.room.as_str().to_owned()),
                    identity: handoff.identity,
                    policy: handoff.policy,
                    version: handoff.version,
                    password: handoff.password,
                    resume: handoff.resume,
                    address: handoff.address,
                };
                enter(session, stream, entry, node.password_guesses.clone(), rooms.clone()).await;
            }
            Err(error) => {
                tracing::warn!(%error, "the control plane passed on a joiner this node cannot read");
                unavailable(session, rooms.metrics()).await;
            }
        }
        rooms.metrics().connection(-1);
    });
    Ok(response)
}

async fn send(session: &mut Session, metrics: &SignalMetrics, message: &ServerMessage) -> bool {
    if let ServerMessage::Refused { reason, .. } = message {
        metrics.refused(*reason);
    }
    session.text(message.to_json()).await.is_ok()
}

async fn refuse(mut session: Session, metrics: &SignalMetrics, reason: Refusal, message: String) {
    let _ = send(&mut session, metrics, &ServerMessage::Refused { reason, message }).await;
    let _ = session.close(None).await;
}

/// Turns a connection away for a failure on our side: the person may try again.
async fn unavailable(session: Session, metrics: &SignalMetrics) {
    let reason = Refusal::Unavailable;
    refuse(session, metrics, reason, convene_media::focus::refusal_message(reason).to_owned()).await;
}

async fn serve(
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    room: RoomName,
    (admission, address): (Admission, String),
    host: Host,
    guesses: PasswordGuesses,
) {
    let metrics = host.metrics();
    // The handshake: one `hello`, in time. One deadline for the whole handshake: pings must not extend it,
    // or an unauthenticated socket could be held open for ever.
    let hello_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    let hello = loop {
        match tokio::time::timeout_at(hello_deadline, stream.recv()).await {
            Ok(Some(Ok(AggregatedMessage::Text(text)))) => break ClientMessage::parse(&text),
            Ok(Some(Ok(AggregatedMessage::Ping(bytes)))) => {
                if session.pong(&bytes).await.is_err() {
                    return;
                }
            }
            Ok(Some(Ok(AggregatedMessage::Pong(_)))) => {}
            Ok(Some(Ok(AggregatedMessage::Binary(_)))) => {
                break Err(ParseError::Malformed("frames are JSON text".into()));
            }
            _ => {
                let _ = session.close(None).await;
                return;
            }
        }
    };
    let (version, token, password, chosen_name, resume) = match hello {
        Ok(ClientMessage::Hello { version, token, password, name, resume }) => (version, token, password, name, resume),
        Ok(_) => {
            metrics.frame(FrameOutcome::Malformed);
            let message = "say hello with the room token first".to_owned();
            return refuse(session, &metrics, Refusal::InvalidToken, message).await;
        }
        Err(error) => {
            metrics.frame(FrameOutcome::Malformed);
            return refuse(session, &metrics, Refusal::InvalidToken, error.to_string()).await;
        }
    };
    let admitted = match admission.admit(&room, &token, chrono::Utc::now()).await {
        Ok(admitted) => admitted,
        Err(Refused::Token(error)) => return refuse(session, &metrics, Refusal::InvalidToken, error.to_string()).await,
        Err(Refused::Room(reason, message)) => return refuse(session, &metrics, reason, message.to_owned()).await,
        Err(Refused::Unavailable) => return unavailable(session, &metrics).await,
    };
    let Admitted { tenant, mut identity, policy, region } = admitted;
    identity.chosen_name = chosen_name;
    match host {
        Host::Here(rooms) => {
            let key = (tenant.to_string(), room.as_str().to_owned());
            let entry = Entry { key, identity, policy, version, password, resume, address };
            enter(session, stream, entry, guesses, rooms).await;
        }
        Host::Nodes(nodes) => {
            let handoff = Handoff { tenant, room, identity, policy, version, password, resume, address };
            match nodes.pass_on(&handoff, region.as_ref()).await {
                Some(node) => crate::nodes::proxy::pump(session, stream, node).await,
                None => unavailable(session, &metrics).await,
            }
        }
    }
}

/// A joiner let in, entering their room on this node.
struct Entry {
    key: convene_media::rooms::RoomKey,
    identity: convene_media::focus::Identity,
    policy: convene_media::focus::RoomPolicy,
    version: u32,
    password: Option<String>,
    resume: Option<String>,
    /// Their address, for the limit on password guesses.
    address: String,
}

/// Puts an admitted joiner into their room and carries frames between them and its focus until either
/// side ends.
async fn enter(
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    entry: Entry,
    guesses: PasswordGuesses,
    rooms: Rooms,
) {
    let metrics = rooms.metrics().clone();
    let Entry { key, identity, policy, version, password, resume, address } = entry;
    let person = identity.user_id.clone().unwrap_or_else(|| identity.token.digest.clone());
    if password.is_some() && !guesses.allowed(&key, &person, &address) {
        let message = "too many wrong passwords; try again in a few minutes".to_owned();
        return refuse(session, &metrics, Refusal::WrongPassword, message).await;
    }
    // For the debug log: which token (a prefix of its digest, not the token) and whether a resume was asked.
    let (token_tag, resume_asked) = (identity.token.digest.chars().take(8).collect::<String>(), resume.is_some());
    let mut connection = match rooms.connect(key.clone(), policy, identity, version, password, resume).await {
        Ok(connection) => connection,
        Err(ConnectError::NotAllowed(reason, message)) => return refuse(session, &metrics, reason, message).await,
        Err(error) => {
            tracing::info!(%error, "a signalling connection found no room");
            return unavailable(session, &metrics).await;
        }
    };
    tracing::debug!(participant = connection.id.0, room = ?connection.room_id, token = %token_tag, resume_asked, "joined");
    let shutdown = rooms.shutdown().clone();
    let mut budget = Budget::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let reason = actix_ws::CloseReason { code: actix_ws::CloseCode::Away, description: None };
                let _ = session.close(Some(reason)).await;
                break;
            }
            delivery = connection.outbox.recv() => match delivery {
                Some(Delivery::Message(message)) => {
                    if let ServerMessage::Refused { reason: Refusal::WrongPassword, .. } = message {
                        guesses.wrong(&key, &person, &address);
                    }
                    if !send(&mut session, &metrics, &message).await {
                        break;
                    }
                }
                Some(Delivery::Close) | None => {
                    let _ = session.close(None).await;
                    break;
                }
            },
            frame = stream.recv() => match frame {
                Some(Ok(AggregatedMessage::Text(_) | AggregatedMessage::Binary(_))) if !budget.take() => {
                    metrics.frame(FrameOutcome::RateLimited);
                    if !budget.warned {
                        budget.warned = true;
                        let error = ServerMessage::Error {
                            code: "rate_limited".to_owned(),
                            message: "too many messages; some were dropped".to_owned(),
                        };
                        if !send(&mut session, &metrics, &error).await {
                            break;
                        }
                    }
                }
                Some(Ok(AggregatedMessage::Text(text))) => match ClientMessage::parse(&text) {
                    Ok(message) => {
                        metrics.frame(FrameOutcome::Accepted);
                        if !connection.send(message).await {
                            break;
                        }
                    }
                    Err(error) => {
                        metrics.frame(FrameOutcome::Malformed);
                        if !send(&mut session, &metrics, &ServerMessage::malformed(&error)).await {
                            break;
                        }
                    }
                },
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    metrics.frame(FrameOutcome::Malformed);
                    let error = ParseError::Malformed("frames are JSON text".into());
                    if !send(&mut session, &metrics, &ServerMessage::malformed(&error)).await {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                // Close frames, protocol errors (oversized frames among them) and the end of the stream.
                _ => break,
            },
        }
    }
    // Dropping the connection tells the room this participant left.
    drop(connection);
}
