//! What media nodes and the control plane say to each other, over HTTP with the node secret as a bearer
//! token. Everything is checked at the edge: a node is trusted with its secret, not with its sizes.

use convene_domain::{Region, RoomName, TenantId};
use convene_media::{
    focus::{Identity, RoomPolicy},
    gateway::DialInRefusal,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::meetings::room_commands::{CommandError, Done, RoomCommand};

/// A node's heartbeat, posted to the control plane.
pub const HEARTBEAT_PATH: &str = "/_node/v1/heartbeat";
/// A node's room events, one outbox envelope per request.
pub const EVENTS_PATH: &str = "/_node/v1/events";
/// The node's WebSocket for joiners the control plane admitted.
pub const SIGNAL_PATH: &str = "/_node/v1/signal";
/// The node's endpoint for the control plane's commands to a running meeting.
pub const COMMAND_PATH: &str = "/_node/v1/command";
/// A node's phone gateway asking about numbers, PINs and callers.
pub const PHONE_PATH: &str = "/_node/v1/phone";

/// How a node's load and state look to the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The node's id (its outbox's, stable across restarts).
    pub node: String,
    /// How the control plane reaches the node's HTTP listener.
    pub url: String,
    /// Its region.
    pub region: Region,
    /// The CPU cores it may use: a node with more takes more.
    pub cores: u32,
    /// When this run started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// Takes no new rooms.
    pub draining: bool,
    /// Signalling connections open.
    pub participants: u32,
    /// Rooms running.
    pub rooms: u32,
    /// Media forwarded since the last heartbeat, in Mbit/s.
    pub mbit_out: u32,
    /// CPU the node used since the last heartbeat, in thousandths of a core.
    pub cpu_millicores: u32,
    /// Where its phone gateway takes SIP, if it runs one: other nodes' gateways pass callers of its
    /// meetings there. Left out when there is none, so a node without one still speaks to a control plane
    /// from before the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<std::net::SocketAddr>,
}

/// A heartbeat the control plane will not keep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadHeartbeat(String);

impl Heartbeat {
    /// Checks what would be stored: lengths the columns hold, an `http://` origin, at least one core.
    pub fn check(&self) -> Result<(), BadHeartbeat> {
        if !valid_node_id(&self.node) {
            return Err(BadHeartbeat("node: 1 to 64 letters, digits, `-`, `_` or `.`".to_owned()));
        }
        let url_ok = self.url.len() <= 512
            && url::Url::parse(&self.url)
                .is_ok_and(|url| url.scheme() == "http" && url.host_str().is_some() && url.path() == "/");
        if !url_ok {
            return Err(BadHeartbeat("url: an http:// origin of at most 512 characters".to_owned()));
        }
        if self.cores == 0 {
            return Err(BadHeartbeat("cores: at least 1".to_owned()));
        }
        if self.started_ms < 0 {
            return Err(BadHeartbeat("started_ms: milliseconds since the Unix epoch".to_owned()));
        }
        if self.sip.is_some_and(|sip| sip.ip().is_unspecified() || sip.port() == 0) {
            return Err(BadHeartbeat("sip: an address and port other nodes can reach".to_owned()));
        }
        Ok(())
    }
}

/// A node id as outboxes make them (`node-` and hex): 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
}

/// A joiner the control plane admitted, handed to the room's node as the first frame of the passed-on
/// socket; the joiner's own frames follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// The room's organisation.
    pub tenant: TenantId,
    /// The room.
    pub room: RoomName,
    /// Who they are, from their verified token (with the name they chose).
    pub identity: Identity,
    /// The room's settings and the plan's allowance, as the control plane decided them now.
    pub policy: RoomPolicy,
    /// The joiner's protocol version, from their `hello`.
    pub version: u32,
    /// The room password they gave.
    pub password: Option<String>,
    /// Their `resume` secret.
    pub resume: Option<String>,
    /// Their address, for the limit on password guesses.
    pub address: String,
}

/// A command for a meeting on the node, from the API through the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCommand {
    /// The room's organisation.
    pub tenant: TenantId,
    /// The room.
    pub room: RoomName,
    /// On whose behalf, as participants' notices say it.
    pub by: String,
    /// What to do.
    pub command: RoomCommand,
}

impl NodeCommand {
    /// Whether `by` is fit for participants' screens: short, no control characters.
    pub fn check(&self) -> Result<(), &'static str> {
        let fits = (1..=200).contains(&self.by.chars().count()) && !self.by.chars().any(char::is_control);
        if fits { Ok(()) } else { Err("by: 1 to 200 printable characters") }
    }
}

/// What the node answers a [`NodeCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandAnswer {
    /// Done; the recording's, stream's or call's id when it made one.
    Done {
        /// The id.
        id: Option<String>,
    },
    /// Nobody is in the meeting on this node.
    NotRunning,
    /// The meeting refused, in words for people.
    Refused {
        /// Why.
        message: String,
    },
}

impl From<Result<Done, CommandError>> for CommandAnswer {
    fn from(outcome: Result<Done, CommandError>) -> Self {
        match outcome {
            Ok(done) => Self::Done { id: done.id },
            Err(CommandError::NotRunning) => Self::NotRunning,
            Err(refused) => Self::Refused { message: refused.to_string() },
        }
    }
}

/// Whether an `Authorization` header carries `secret`, compared in constant time.
pub fn authorized(header: Option<&str>, secret: &SecretString) -> bool {
    use subtle::ConstantTimeEq;
    let Some(given) = header.and_then(|value| value.strip_prefix("Bearer ")) else { return false };
    given.as_bytes().ct_eq(secret.expose_secret().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> Heartbeat {
        Heartbeat {
            node: "node-1".to_owned(),
            url: "http://10.0.0.7:3000/".to_owned(),
            region: Region::parse("eu-west-1").unwrap(),
            cores: 2,
            started_ms: 1,
            draining: false,
            participants: 3,
            rooms: 1,
            mbit_out: 40,
            cpu_millicores: 350,
            sip: Some("10.0.0.7:5060".parse().unwrap()),
        }
    }

    #[test]
    fn a_heartbeat_is_checked_before_it_is_kept() {
        assert_eq!(beat().check(), Ok(()));
        let bad = [
            Heartbeat { node: String::new(), ..beat() },
            Heartbeat { node: "x".repeat(65), ..beat() },
            Heartbeat { node: "node 1".to_owned(), ..beat() },
            Heartbeat { url: "https://10.0.0.7/".to_owned(), ..beat() },
            Heartbeat { url: "http://10.0.0.7/path".to_owned(), ..beat() },
            Heartbeat { url: "not a url".to_owned(), ..beat() },
            Heartbeat { url: format!("http://{}.example/", "a".repeat(600)), ..beat() },
            Heartbeat { cores: 0, ..beat() },
            Heartbeat { started_ms: -1, ..beat() },
            Heartbeat { sip: Some("0.0.0.0:5060".parse().unwrap()), ..beat() },
            Heartbeat { sip: Some("10.0.0.7:0".parse().unwrap()), ..beat() },
        ];
        for heartbeat in bad {
            assert!(heartbeat.check().is_err(), "{heartbeat:?} was taken");
        }
        let without_gateway = serde_json::to_value(Heartbeat { sip: None, ..beat() }).unwrap();
        assert!(without_gateway.get("sip").is_none(), "older control planes refuse fields they do not know");
        let mut json = serde_json::to_value(beat()).unwrap();
        json["region"] = "EU".into();
        assert!(serde_json::from_value::<Heartbeat>(json).is_err(), "a region in capitals was read");
    }

    #[test]
    fn only_the_node_secret_authorizes() {
        let secret = SecretString::from("s".repeat(32));
        assert!(authorized(Some(&format!("Bearer {}", "s".repeat(32))), &secret));
        assert!(!authorized(Some(&format!("Bearer {}", "s".repeat(31))), &secret));
        assert!(!authorized(Some(&"s".repeat(32)), &secret));
        assert!(!authorized(Some("Bearer "), &secret));
        assert!(!authorized(None, &secret));
    }
}

/// A node's phone gateway asking the control plane what `convene up`'s gateway asks its database: the
/// gateway's `PhoneDirectory`, over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case", deny_unknown_fields)]
pub enum PhoneQuestion {
    /// Whether a dialled number is one of ours.
    Serves {
        /// As the trunk sent it.
        number: String,
    },
    /// The meeting a PIN opens on a number, for a caller; the meeting is placed on the asking node.
    Admit {
        /// The asking node.
        node: String,
        /// The number dialled.
        number: String,
        /// The caller's number, when the trunk gave it.
        caller: Option<String>,
        /// The PIN typed.
        pin: String,
    },
    /// A caller another node's gateway passed to the asking node with a ticket this control plane issued.
    AdmitRelayed {
        /// The asking node.
        node: String,
        /// The ticket, as the other gateway presented it.
        ticket: String,
    },
    /// The meeting a trusted SBC named for a call; the meeting is placed on the asking node.
    AdmitToRoom {
        /// The asking node.
        node: String,
        /// The number dialled.
        number: String,
        /// The caller's number, when the trunk gave it.
        caller: Option<String>,
        /// The room as the SBC named it.
        room: String,
    },
    /// Whether a number may be called into a meeting now.
    MayCall {
        /// The room's organisation.
        tenant: TenantId,
        /// The room.
        room: RoomName,
        /// The number to call.
        number: String,
    },
    /// The number calls out of an organisation's meetings show.
    CallerId {
        /// The organisation.
        tenant: TenantId,
    },
}

impl PhoneQuestion {
    /// Whether every field fits what a phone call carries: short, printable, a node id where one is named.
    pub fn check(&self) -> Result<(), &'static str> {
        let fits = |text: &str, most: usize| text.len() <= most && !text.chars().any(char::is_control);
        let ok = match self {
            Self::Serves { number } => fits(number, 64),
            Self::Admit { node, number, caller, pin } => {
                valid_node_id(node)
                    && fits(number, 64)
                    && fits(caller.as_deref().unwrap_or_default(), 128)
                    && fits(pin, 32)
            }
            Self::AdmitToRoom { node, number, caller, room } => {
                valid_node_id(node)
                    && fits(number, 64)
                    && fits(caller.as_deref().unwrap_or_default(), 128)
                    && fits(room, 512)
            }
            Self::AdmitRelayed { node, ticket } => valid_node_id(node) && fits(ticket, 1024),
            Self::MayCall { number, .. } => fits(number, 64),
            Self::CallerId { .. } => true,
        };
        if ok { Ok(()) } else { Err("a field is too long, has control characters, or names no node") }
    }
}

/// The control plane's answer to a [`PhoneQuestion`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case", deny_unknown_fields)]
pub enum PhoneAnswer {
    /// Whether the number is ours.
    Serves {
        /// It is.
        ours: bool,
    },
    /// The caller is let into this room, which runs on the asking node.
    Admitted {
        /// The room's organisation.
        tenant: TenantId,
        /// The room.
        room: RoomName,
        /// Its settings and the plan's allowance.
        policy: Box<RoomPolicy>,
        /// The caller as the room will know them.
        identity: Box<Identity>,
    },
    /// The caller is let into a meeting that runs on another node: the asking gateway passes the call to that
    /// node's gateway with the ticket.
    Relay {
        /// That gateway's SIP address.
        gateway: std::net::SocketAddr,
        /// What lets the caller in there, once, for a few seconds.
        ticket: String,
    },
    /// The number may be called.
    MayCall,
    /// Why not.
    Refused {
        /// As the gateway tells the caller or the moderator.
        refusal: DialInRefusal,
    },
    /// The number to show when calling out, if the organisation has one.
    CallerId {
        /// In international form.
        number: Option<String>,
    },
}
