//! A media node's line to its control plane: heartbeats with its load, delivery of its outbox's room
//! events, and its phone gateway's questions. All are plain HTTP posts with the node secret; the outbox
//! retries what does not go through.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use convene_domain::{RoomName, TenantId};
use convene_media::{
    MediaMetrics,
    gateway::{CallFacts, DialInRefusal, DirectoryError, Entry, PhoneAdmission, PhoneDirectory, Relay},
    outbox::{Deliver, Envelope, Undelivered},
    rooms::{RoomKey, Rooms},
};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::nodes::{
    registry::HEARTBEAT_EVERY,
    wire::{EVENTS_PATH, HEARTBEAT_PATH, Heartbeat, PHONE_PATH, PhoneAnswer, PhoneQuestion},
};

/// A request the control plane has not answered in this long has failed (a heartbeat is due again by then).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Posts to the control plane as this node.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    http: reqwest::Client,
    base: Url,
    secret: SecretString,
}

impl ControlPlane {
    /// A client of the control plane at `base` (an `http://` origin), holding the node secret.
    pub fn new(base: Url, secret: SecretString) -> Result<Self, reqwest::Error> {
        // Redirects are not followed: the secret goes only where it was configured to.
        let http =
            reqwest::Client::builder().timeout(REQUEST_TIMEOUT).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { http, base, secret })
    }

    async fn post<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<(), String> {
        self.send(path, body).await.map(drop)
    }

    /// Posts `body` and answers the response of a 2xx.
    async fn send<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<reqwest::Response, String> {
        let url = self.base.join(path).map_err(|error| error.to_string())?;
        let response = self
            .http
            .post(url)
            .bearer_auth(self.secret.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|error| format!("the control plane is unreachable: {error}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("the control plane answered {status}: {}", body.chars().take(300).collect::<String>()))
    }

    /// Sends a heartbeat every [`HEARTBEAT_EVERY`] until `shutdown`, with the load the rooms and the media
    /// counters show. A control plane that cannot be reached is logged once when it goes and once when it is
    /// back.
    pub async fn run_heartbeats(
        self,
        mut beat: Heartbeat,
        (rooms, media, gateway): (Rooms, MediaMetrics, GatewayAddress),
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut last = (Instant::now(), media.bytes_out(), cpu_seconds());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let count = |value: i64| u32::try_from(value.max(0)).unwrap_or(u32::MAX);
            beat.draining = rooms.is_draining();
            beat.sip = gateway.get().copied();
            beat.participants = count(rooms.metrics().connections_open());
            beat.rooms = count(rooms.metrics().rooms_running());
            let now = (Instant::now(), media.bytes_out(), cpu_seconds());
            let seconds = now.0.duration_since(last.0).as_secs_f64().max(0.001);
            let per_second = |value: f64| (value / seconds).clamp(0.0, f64::from(u32::MAX)) as u32;
            beat.mbit_out = per_second(now.1.saturating_sub(last.1) as f64 * 8.0 / 1e6);
            beat.cpu_millicores = per_second((now.2 - last.2) * 1000.0);
            last = now;
            match self.post(HEARTBEAT_PATH, &beat).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("heartbeats reach the control plane again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "a heartbeat did not reach the control plane");
                }
                Err(_) => {}
            }
        }
    }
}

/// Where the node's phone gateway takes SIP, once it is bound (it starts after the heartbeats).
pub type GatewayAddress = std::sync::Arc<std::sync::OnceLock<std::net::SocketAddr>>;

/// This process's CPU time so far (0 where `/proc` cannot be read: the figure is for operators only).
fn cpu_seconds() -> f64 {
    convene_media::process::usage(None).map_or(0.0, |usage| usage.cpu_seconds)
}

impl Deliver for ControlPlane {
    fn deliver<'a>(
        &'a self,
        envelope: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = Result<(), Undelivered>> + Send + 'a>> {
        Box::pin(async move { self.post(EVENTS_PATH, envelope).await.map_err(Undelivered) })
    }
}

/// The node's phone gateway's directory: the control plane, asked over HTTP as this node (callers let in
/// join the meeting here; the control plane places it here).
#[derive(Debug, Clone)]
pub struct PhoneLine {
    /// The control plane.
    pub control: ControlPlane,
    /// This node's id.
    pub node: String,
}

impl PhoneLine {
    /// The answer; `None` when the control plane could not be asked (logged).
    async fn ask(&self, question: &PhoneQuestion) -> Option<PhoneAnswer> {
        let answer = match self.control.send(PHONE_PATH, question).await {
            Ok(response) => {
                response.json::<PhoneAnswer>().await.map_err(|error| format!("an unreadable answer: {error}"))
            }
            Err(error) => Err(error),
        };
        answer.map_err(|error| tracing::warn!(%error, "the phone gateway could not ask the control plane")).ok()
    }

    /// Where the caller `question` asks about goes: into a meeting here, or to the meeting's node.
    async fn entry(&self, question: PhoneQuestion) -> Result<Entry, DialInRefusal> {
        match self.ask(&question).await {
            Some(PhoneAnswer::Admitted { tenant, room, policy, identity }) => {
                Ok(Entry::Here(Box::new(PhoneAdmission {
                    room: (tenant.to_string(), room.to_string()),
                    policy: *policy,
                    identity: *identity,
                })))
            }
            Some(PhoneAnswer::Relay { gateway, ticket }) => Ok(Entry::Relay(Relay { gateway, ticket })),
            other => Err(refusal(other)),
        }
    }
}

/// Why an answer lets no one in: the refusal it carries, else try later (an answer to another question,
/// from a control plane of another version, is logged).
fn refusal(answer: Option<PhoneAnswer>) -> DialInRefusal {
    match answer {
        Some(PhoneAnswer::Refused { refusal }) => refusal,
        Some(other) => {
            tracing::error!(answer = ?other, "the control plane answered a phone question with something else");
            DialInRefusal::Unavailable
        }
        None => DialInRefusal::Unavailable,
    }
}

impl PhoneDirectory for PhoneLine {
    async fn serves(&self, number: &str) -> Result<bool, DirectoryError> {
        match self.ask(&PhoneQuestion::Serves { number: number.to_owned() }).await {
            Some(PhoneAnswer::Serves { ours }) => Ok(ours),
            other => {
                refusal(other);
                Err(DirectoryError)
            }
        }
    }

    async fn admit(&self, call: &CallFacts, pin: &str) -> Result<Entry, DialInRefusal> {
        let (node, number, caller) = (self.node.clone(), call.number.clone(), call.caller.clone());
        self.entry(PhoneQuestion::Admit { node, number, caller, pin: pin.to_owned() }).await
    }

    async fn admit_to_room(&self, call: &CallFacts, room: &str) -> Result<Entry, DialInRefusal> {
        let (node, number, caller) = (self.node.clone(), call.number.clone(), call.caller.clone());
        self.entry(PhoneQuestion::AdmitToRoom { node, number, caller, room: room.to_owned() }).await
    }

    async fn admit_relayed(&self, ticket: &str) -> Result<PhoneAdmission, DialInRefusal> {
        match self.entry(PhoneQuestion::AdmitRelayed { node: self.node.clone(), ticket: ticket.to_owned() }).await? {
            Entry::Here(admission) => Ok(*admission),
            Entry::Relay(_) => {
                tracing::error!("the control plane would pass a relayed call on again");
                Err(DialInRefusal::Unavailable)
            }
        }
    }

    async fn may_call(&self, room: &RoomKey, number: &str) -> Result<(), DialInRefusal> {
        // Rooms here were placed by the control plane, so their keys parse.
        let (Ok(tenant), Ok(room)) = (TenantId::parse(&room.0), RoomName::parse(&room.1)) else {
            return Err(DialInRefusal::UnknownPin);
        };
        match self.ask(&PhoneQuestion::MayCall { tenant, room, number: number.to_owned() }).await {
            Some(PhoneAnswer::MayCall) => Ok(()),
            other => Err(refusal(other)),
        }
    }

    async fn caller_id(&self, tenant: &str) -> Option<String> {
        let tenant = TenantId::parse(tenant).ok()?;
        match self.ask(&PhoneQuestion::CallerId { tenant }).await {
            Some(PhoneAnswer::CallerId { number }) => number,
            other => {
                refusal(other);
                None
            }
        }
    }
}
