//! Janus's HTTP REST API: a session with its handles, plugin requests matched to their events by transaction,
//! and the typed messages the bots read (anything Janus sends is parsed here, or refused with a `BotError`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::bot::BotError;
use crate::media;

/// The VideoRoom plugin's package name.
pub(super) const VIDEOROOM: &str = "janus.plugin.videoroom";
/// Janus holds a long poll for 30 s before it answers `keepalive`; the client waits a little longer.
const LONG_POLL: Duration = Duration::from_secs(40);
/// The most events one long poll returns.
const EVENTS_PER_POLL: usize = 16;
/// How much of an unreadable reply an error quotes.
const QUOTED_REPLY: usize = 300;

/// A plugin request Janus refused, or a failure on the way.
#[derive(Debug)]
pub(super) enum Failure {
    /// Janus or the plugin answered with an error code.
    Refused { request: String, code: u32, reason: String },
    /// The request did not get an answer.
    Bot(BotError),
}

impl Failure {
    /// Whether the plugin refused because a feed it was asked for is gone.
    pub(super) fn is_no_such_feed(&self) -> bool {
        matches!(self, Self::Refused { code: NO_SUCH_FEED, .. })
    }
}

/// The VideoRoom's "no such feed" error code.
const NO_SUCH_FEED: u32 = 428;

impl From<BotError> for Failure {
    fn from(error: BotError) -> Self {
        Self::Bot(error)
    }
}

impl From<Failure> for BotError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused { request, code, reason } => {
                Self::Protocol(format!("janus refused {request}: {reason} (error {code})"))
            }
            Failure::Bot(error) => error,
        }
    }
}

/// An SDP as Janus sends it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Jsep {
    #[serde(rename = "type")]
    pub(super) kind: SdpKind,
    pub(super) sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SdpKind {
    Offer,
    Answer,
}

/// What Janus sends: replies to requests and, through the long poll, events.
#[derive(Debug, Deserialize)]
#[serde(tag = "janus", rename_all = "lowercase")]
pub(super) enum Message {
    /// A synchronous reply: a new session or handle (`data`), or a plugin's answer (`plugindata`).
    Success {
        data: Option<Created>,
        plugindata: Option<PluginData>,
    },
    /// An asynchronous request was taken; its result comes as an event.
    Ack,
    Error {
        error: ApiError,
    },
    /// A plugin event, the result of a request when it carries its transaction.
    Event {
        transaction: Option<String>,
        sender: u64,
        plugindata: PluginData,
        jsep: Option<Jsep>,
    },
    /// Janus closed a handle's PeerConnection.
    Hangup {
        sender: u64,
        reason: Option<String>,
    },
    /// Janus detached a handle.
    Detached {
        sender: u64,
    },
    /// The session expired.
    Timeout,
    /// `keepalive`, `webrtcup`, `media`, `slowlink`, `trickle` and whatever later versions add.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub(super) struct Created {
    id: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct ApiError {
    code: u32,
    reason: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct PluginData {
    plugin: String,
    data: RoomEvent,
}

impl PluginData {
    /// The VideoRoom's data (the bots attach to nothing else).
    pub(super) fn videoroom(self) -> Result<RoomEvent, BotError> {
        if self.plugin == VIDEOROOM {
            Ok(self.data)
        } else {
            Err(BotError::Protocol(format!("an event from {}, not the VideoRoom", self.plugin)))
        }
    }
}

/// A VideoRoom reply or event; which fields are there depends on `videoroom`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RoomEvent {
    /// `created`, `joined`, `event`, `attached`, `updated`, `updating`, `talking` ...
    pub(super) videoroom: String,
    /// The participant's id (`joined`).
    pub(super) id: Option<u64>,
    /// The id that ties subscriptions to the participant (`joined`).
    pub(super) private_id: Option<u64>,
    /// Publishers already in the room (`joined`) or just started (`event`).
    #[serde(default)]
    pub(super) publishers: Vec<PublisherInfo>,
    /// A publisher stopped publishing (its id), or this one did (`"ok"`).
    pub(super) unpublished: Option<Departure>,
    /// A participant left (its id), or this one did (`"ok"`).
    pub(super) leaving: Option<Departure>,
    /// A subscription's streams, all of them (`attached`, `updated`).
    pub(super) streams: Option<Vec<SubscriptionStream>>,
    pub(super) error_code: Option<u32>,
    pub(super) error: Option<String>,
}

/// A publisher as the room announces it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PublisherInfo {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) display: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(super) enum Departure {
    Participant(u64),
    /// `"ok"`: the receiving participant itself.
    Myself(String),
}

impl Departure {
    /// The other participant who went, if it was another.
    pub(super) fn participant(&self) -> Option<u64> {
        match self {
            Self::Participant(id) => Some(*id),
            Self::Myself(_) => None,
        }
    }
}

/// One m-line of a subscription: which publisher's stream it carries, when active.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct SubscriptionStream {
    pub(super) mid: String,
    #[serde(rename = "type")]
    pub(super) kind: StreamKind,
    /// False once its publisher is gone (the m-line stays, inactive, for reuse).
    #[serde(default = "active_by_default")]
    pub(super) active: bool,
    pub(super) feed_id: Option<u64>,
    #[serde(default)]
    pub(super) feed_display: String,
}

fn active_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StreamKind {
    Audio,
    Video,
    Data,
}

/// A plugin event with the SDP it may carry.
#[derive(Debug)]
pub(super) struct PluginEvent {
    pub(super) data: RoomEvent,
    pub(super) jsep: Option<Jsep>,
}

impl PluginEvent {
    /// Whether a subscription's event asks it to renegotiate or describes its streams anew; Janus also sends
    /// one for every simulcast layer switch, which changes neither.
    pub(super) fn changes_subscription(&self) -> bool {
        self.jsep.is_some() || self.data.streams.is_some()
    }
}

#[derive(Debug, Deserialize)]
struct ServerInfo {
    #[serde(rename = "server-name")]
    server_name: String,
}

/// An HTTP client for Janus on loopback: no proxy, every request bounded by the caller's timeouts.
pub(super) fn client() -> Result<reqwest::Client, BotError> {
    reqwest::Client::builder().no_proxy().build().map_err(|error| http_error(&error))
}

/// The `server_name` of the Janus answering at `base` (`http://host:port/janus`).
pub(super) async fn server_name(http: &reqwest::Client, base: &str, timeout: Duration) -> Result<String, BotError> {
    let info: ServerInfo = get(http, &format!("{base}/info"), timeout).await?;
    Ok(info.server_name)
}

/// A Janus session: its handles' requests and the events of all of them.
pub(super) struct Session {
    http: reqwest::Client,
    /// `http://host:port/janus/<session id>`.
    url: String,
    timeout: Duration,
    transaction_prefix: u64,
    transactions_sent: AtomicU64,
    /// Requests waiting for their event; the long poll delivers them.
    waiting: Mutex<HashMap<String, oneshot::Sender<PluginEvent>>>,
}

impl Session {
    /// Creates a session at `base` (`http://host:port/janus`); `timeout` bounds each request and reply.
    pub(super) async fn create(http: reqwest::Client, base: &str, timeout: Duration) -> Result<Self, BotError> {
        let transaction_prefix = media::random_u64();
        let reply =
            post(&http, base, &json!({ "janus": "create", "transaction": format!("{transaction_prefix:x}") }), timeout)
                .await?;
        let id = created_id(reply, "create a session")?;
        Ok(Self {
            http,
            url: format!("{base}/{id}"),
            timeout,
            transaction_prefix,
            transactions_sent: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// Attaches a handle to `plugin`.
    pub(super) async fn attach(&self, plugin: &str) -> Result<u64, BotError> {
        let body = json!({ "janus": "attach", "plugin": plugin, "transaction": self.transaction() });
        let reply = post(&self.http, &self.url, &body, self.timeout).await?;
        created_id(reply, "attach a handle")
    }

    /// Sends a plugin request on `handle` (with an SDP, if any) and returns the plugin's answer: at once for
    /// synchronous requests, else the event with the same transaction, waited for up to the timeout.
    pub(super) async fn request(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<PluginEvent, Failure> {
        let request = body.get("request").and_then(Value::as_str).unwrap_or("a request").to_owned();
        let transaction = self.transaction();
        let (reply_tx, reply_rx) = oneshot::channel();
        // Waiting before sending: the event may come through the long poll before the POST's reply.
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(transaction.clone(), reply_tx);
        }
        let mut message = json!({ "janus": "message", "transaction": transaction, "body": body });
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let posted = post(&self.http, &format!("{}/{handle}", self.url), &message, self.timeout).await;
        let event = match posted {
            Ok(Message::Ack) => match tokio::time::timeout(self.timeout, reply_rx).await {
                Ok(Ok(event)) => Ok(event),
                Ok(Err(_)) => Err(Failure::Bot(BotError::Closed)),
                Err(_) => Err(Failure::Bot(BotError::Timeout)),
            },
            Ok(Message::Success { plugindata: Some(plugindata), .. }) => {
                plugindata.videoroom().map(|data| PluginEvent { data, jsep: None }).map_err(Failure::Bot)
            }
            Ok(Message::Error { error }) => {
                Err(Failure::Refused { request: request.clone(), code: error.code, reason: error.reason })
            }
            Ok(other) => Err(Failure::Bot(BotError::Protocol(format!("janus answered {request} with {other:?}")))),
            Err(error) => Err(Failure::Bot(error)),
        };
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&transaction);
        }
        let event = event?;
        match (event.data.error_code, &event.data.error) {
            (Some(code), reason) => Err(Failure::Refused { request, code, reason: reason.clone().unwrap_or_default() }),
            (None, _) => Ok(event),
        }
    }

    /// Hands an event to the request waiting for it; returns it when none waits (it is news, not a reply).
    pub(super) fn deliver(&self, transaction: Option<&str>, event: PluginEvent) -> Option<PluginEvent> {
        let waiter = transaction.and_then(|transaction| self.waiting.lock().ok()?.remove(transaction));
        match waiter {
            Some(waiter) => waiter.send(event).err(),
            None => Some(event),
        }
    }

    /// Fails every request still waiting (the long poll has ended).
    pub(super) fn abandon_waiting(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.clear();
        }
    }

    /// The next events: waits up to Janus's long-poll time (then Janus answers `keepalive`).
    pub(super) async fn poll(&self) -> Result<Vec<Message>, BotError> {
        get(&self.http, &format!("{}?maxev={EVENTS_PER_POLL}", self.url), LONG_POLL).await
    }

    /// Keeps the session from expiring.
    pub(super) async fn keepalive(&self) -> Result<(), BotError> {
        self.control(&self.url, "keepalive").await
    }

    /// Closes a handle's PeerConnection.
    pub(super) async fn hangup(&self, handle: u64) -> Result<(), BotError> {
        self.control(&format!("{}/{handle}", self.url), "hangup").await
    }

    /// Ends the session, detaching its handles.
    pub(super) async fn destroy(&self) -> Result<(), BotError> {
        self.control(&self.url, "destroy").await
    }

    async fn control(&self, url: &str, janus: &str) -> Result<(), BotError> {
        match post(&self.http, url, &json!({ "janus": janus, "transaction": self.transaction() }), self.timeout).await?
        {
            Message::Success { .. } | Message::Ack => Ok(()),
            Message::Error { error } => {
                Err(BotError::Protocol(format!("janus refused {janus}: {} (error {})", error.reason, error.code)))
            }
            other => Err(BotError::Protocol(format!("janus answered {janus} with {other:?}"))),
        }
    }

    fn transaction(&self) -> String {
        let sent = self.transactions_sent.fetch_add(1, Ordering::Relaxed);
        format!("{:x}-{sent}", self.transaction_prefix)
    }
}

/// The id in a `success` reply to `create` or `attach`.
fn created_id(reply: Message, what: &str) -> Result<u64, BotError> {
    match reply {
        Message::Success { data: Some(created), .. } => Ok(created.id),
        Message::Error { error } => {
            Err(BotError::Protocol(format!("janus refused to {what}: {} (error {})", error.reason, error.code)))
        }
        other => Err(BotError::Protocol(format!("janus answered {what} with {other:?}"))),
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value, timeout: Duration) -> Result<Message, BotError> {
    let response = http.post(url).json(body).timeout(timeout).send().await.map_err(|error| http_error(&error))?;
    read(response).await
}

async fn get<T: DeserializeOwned>(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<T, BotError> {
    let response = http.get(url).timeout(timeout).send().await.map_err(|error| http_error(&error))?;
    read(response).await
}

/// Janus answers 200 with a JSON body, errors included; any other status is a transport failure.
async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, BotError> {
    let response = response.error_for_status().map_err(|error| http_error(&error))?;
    let text = response.text().await.map_err(|error| http_error(&error))?;
    serde_json::from_str(&text).map_err(|error| {
        let quoted: String = text.chars().take(QUOTED_REPLY).collect();
        BotError::Protocol(format!("unreadable janus reply ({error}): {quoted}"))
    })
}

/// reqwest's error with its causes (the top level alone rarely says what happened).
fn http_error(error: &reqwest::Error) -> BotError {
    if error.is_timeout() {
        return BotError::Timeout;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    BotError::Signal(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_and_replies_parse_into_their_variants() {
        let event: Message = serde_json::from_str(
            r#"{"janus":"event","session_id":1,"sender":7,"transaction":"t-1",
            "plugindata":{"plugin":"janus.plugin.videoroom",
            "data":{"videoroom":"event","room":5,"publishers":[{"id":9,"display":"stage","streams":[]}]}}}"#,
        )
        .unwrap();
        let Message::Event { transaction, sender, plugindata, jsep } = event else { panic!("{event:?}") };
        assert_eq!((transaction.as_deref(), sender, jsep.is_none()), (Some("t-1"), 7, true));
        assert_eq!(plugindata.data.publishers[0].id, 9);
        assert_eq!(plugindata.data.publishers[0].display, "stage");

        let left: Message = serde_json::from_str(
            r#"{"janus":"event","sender":7,"plugindata":{"plugin":"janus.plugin.videoroom",
            "data":{"videoroom":"event","leaving":"ok"}}}"#,
        )
        .unwrap();
        let Message::Event { plugindata, .. } = left else { panic!() };
        assert_eq!(plugindata.data.leaving.as_ref().and_then(Departure::participant), None);

        let keepalive: Vec<Message> =
            serde_json::from_str(r#"[{"janus":"keepalive"},{"janus":"webrtcup","sender":3}]"#).unwrap();
        assert!(keepalive.iter().all(|message| matches!(message, Message::Other)));
        assert!(serde_json::from_str::<Message>(r#"{"janus":"event","sender":"seven"}"#).is_err());
    }

    #[test]
    fn a_subscription_maps_mids_to_feeds() {
        let data: RoomEvent = serde_json::from_str(
            r#"{"videoroom":"updated","room":5,"streams":[
              {"type":"audio","active":true,"mindex":0,"mid":"0","ready":false,"send":true,
               "feed_id":9,"feed_display":"a","feed_mid":"0","codec":"opus"},
              {"type":"video","active":false,"mindex":1,"mid":"1","ready":false,"send":true}]}"#,
        )
        .unwrap();
        let streams = data.streams.clone().unwrap();
        assert_eq!((streams[0].kind, streams[0].feed_id, streams[0].active), (StreamKind::Audio, Some(9), true));
        assert_eq!((streams[1].kind, streams[1].feed_id, streams[1].active), (StreamKind::Video, None, false));
        assert!(PluginEvent { data, jsep: None }.changes_subscription(), "a new layout");
    }

    #[test]
    fn a_layer_switch_does_not_change_a_subscription_but_an_offer_does() {
        // Janus sends one of these for every simulcast layer switch: hundreds in a meeting's first seconds.
        let switch: RoomEvent =
            serde_json::from_str(r#"{"videoroom":"event","room":5,"mid":"1","substream":2}"#).unwrap();
        assert!(!PluginEvent { data: switch, jsep: None }.changes_subscription());
        let update: RoomEvent = serde_json::from_str(r#"{"videoroom":"updating","room":5}"#).unwrap();
        let offer = Jsep { kind: SdpKind::Offer, sdp: "v=0".to_owned() };
        assert!(PluginEvent { data: update, jsep: Some(offer) }.changes_subscription());
    }
}
