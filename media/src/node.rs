//! The driver: owns the UDP socket, feeds datagrams to the sans-IO [`stun`](crate::stun) code and sends
//! what it returns. One task; the SFU will replace this loop with per-core shards.

use std::{io, net::SocketAddr};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::stun;

/// Largest UDP payload we read; anything longer is truncated by the kernel and then fails to parse.
const MAX_DATAGRAM: usize = 1500;

/// The media node's counters, registered in the process registry served at `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MediaMetrics {
    received: Counter,
    answered: Counter,
    dropped: Family<DropLabels, Counter>,
}

/// Reasons are a closed set ([`stun::Dropped`]), so the label family stays small.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

impl MediaMetrics {
    /// Creates the counters and registers them under `convene_media_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let media = registry.sub_registry_with_prefix("convene_media");
        media.register("datagrams_received", "UDP datagrams read from the media port", metrics.received.clone());
        media.register("stun_replies", "STUN Binding responses sent", metrics.answered.clone());
        media.register("datagrams_dropped", "Datagrams that got no reply, by reason", metrics.dropped.clone());
        metrics
    }
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
    /// Any other failure (no such local address, no permission for the port).
    #[error("cannot bind the media port {addr}: {source} (check CONVENE_MEDIA_UDP_ADDR)")]
    Other {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

/// A bound media node, ready to [`run`](MediaNode::run).
#[derive(Debug)]
pub struct MediaNode {
    socket: UdpSocket,
    metrics: MediaMetrics,
}

impl MediaNode {
    /// Binds the media port. Binding happens before anything else starts, so a taken port fails fast.
    pub async fn bind(addr: SocketAddr, metrics: MediaMetrics) -> Result<Self, BindError> {
        let socket = UdpSocket::bind(addr).await.map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => BindError::InUse { addr },
            _ => BindError::Other { addr, source },
        })?;
        Ok(Self { socket, metrics })
    }

    /// The bound address (useful when the port was 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves datagrams until `shutdown` is cancelled. Per-datagram errors (an ICMP-induced `recv` error,
    /// a full send buffer) are counted or logged and never end the loop.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut inbound = [0u8; MAX_DATAGRAM];
        let mut reply = [0u8; stun::MAX_REPLY_LEN];
        loop {
            let (len, from) = tokio::select! {
                () = shutdown.cancelled() => break,
                received = self.socket.recv_from(&mut inbound) => match received {
                    Ok(received) => received,
                    Err(error) => {
                        tracing::debug!(%error, "media socket receive error");
                        continue;
                    }
                },
            };
            self.metrics.received.inc();
            match stun::answer_binding(&inbound[..len], from, &mut reply) {
                Ok(reply_len) => match self.socket.send_to(&reply[..reply_len], from).await {
                    Ok(_) => {
                        self.metrics.answered.inc();
                    }
                    Err(error) => tracing::debug!(%error, %from, "could not send STUN reply"),
                },
                Err(reason) => {
                    self.metrics.dropped.get_or_create(&DropLabels { reason: reason.label() }).inc();
                }
            }
        }
        tracing::info!("media node stopped");
    }
}
