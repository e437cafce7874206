//! The media node's data plane.
//!
//! Today it owns the node's UDP port and answers STUN Binding requests that carry no ICE credentials, which
//! is how load balancers, operators and `/readyz` check that the port is reachable. The SFU (str0m peers
//! demultiplexed on this same port) arrives with the media issue and takes the ICE checks this node
//! currently drops.
//!
//! Layout follows str0m: [`stun`] is sans-IO (bytes in, bytes out, no sockets, no clock); [`node`] is the thin
//! driver that owns the socket; [`probe`] is the client side used by health checks. [`focus`] is the room
//! focus (membership, roles, lobby, moderation, chat), also sans-IO: parsed signalling messages in, messages
//! to send out. [`rooms`] runs each room as a task behind channels; the WebSocket endpoint (in `convene-api`,
//! which serves every role's HTTP) feeds it.

mod batch_io;
pub mod focus;
pub mod node;
pub mod outbox;
pub mod probe;
pub mod process;
pub mod rooms;
pub mod sfu;
pub mod signal_metrics;
pub mod stun;

pub use node::{BindError, MediaCommand, MediaHealth, MediaMetrics, MediaNode, MediaPlane, NodeConfig};
pub use probe::{ProbeError, probe};
