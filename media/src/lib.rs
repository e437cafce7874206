//! The media node's data plane.
//!
//! The node owns its UDP ports (one per shard) and runs the SFU there: str0m peers, demultiplexed by ICE
//! credentials and then by address. STUN Binding requests that carry no ICE credentials are answered
//! directly, which is how load balancers, operators and `/readyz` check that a port is reachable.
//!
//! Layout follows str0m: [`stun`] is sans-IO (bytes in, bytes out, no sockets, no clock); [`node`] is the thin
//! driver that owns the socket; [`probe`] is the client side used by health checks. [`focus`] is the room
//! focus (membership, roles, lobby, moderation, chat), also sans-IO: parsed signalling messages in, messages
//! to send out. [`rooms`] runs each room as a task behind channels; the WebSocket endpoint (in `convene-api`,
//! which serves every role's HTTP) feeds it. [`plane`] is the contract between room tasks and shards, so
//! neither depends on the other; [`outbox`] carries room events to the control plane from disk;
//! [`recording`] writes recorded rooms' tracks to files. [`phone`] is the phone leg's audio (G.711, the
//! keys callers press, RTP, SDP, prompts and the PIN conversation), sans-IO; [`gateway`] is the SIP gateway
//! that drives it and brings callers into rooms through the focus.

pub mod batch_io;
pub mod focus;
pub mod gateway;
mod media_metrics;
pub mod node;
pub mod outbox;
pub mod phone;
pub mod plane;
pub mod probe;
pub mod process;
pub mod recording;
pub mod rooms;
pub mod sfu;
pub mod signal_metrics;
pub mod streaming;
pub mod stun;

pub use media_metrics::MediaMetrics;
pub use node::{BindError, MediaHealth, MediaNode, NodeConfig};
pub use plane::{Busy, Delivery, MediaCommand, MediaPlane};
pub use probe::{ProbeError, probe};
