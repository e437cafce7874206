//! Checks that a media node answers on its UDP port, the way `/readyz` and operators do.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use tokio::{net::UdpSocket, time::Instant};

use crate::stun;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time: the node is down, or a firewall drops UDP.
    #[error("no STUN answer from {0} in time")]
    Timeout(SocketAddr),
    /// The local socket failed.
    #[error("probe socket error: {0}")]
    Io(#[from] io::Error),
}

/// Sends a Binding request to `target` and waits up to `timeout` for the matching answer; returns the
/// address the node saw us at. Stray datagrams (other transactions, noise) are skipped, not trusted.
pub async fn probe(target: SocketAddr, timeout: Duration) -> Result<SocketAddr, ProbeError> {
    let local: SocketAddr = match (target.is_ipv4(), target.ip().is_loopback()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    let mut transaction = [0u8; 12];
    getrandom::fill(&mut transaction).map_err(|error| io::Error::other(error.to_string()))?;
    let mut request = [0u8; stun::MAX_REPLY_LEN];
    let len = stun::binding_request(&transaction, &mut request);
    socket.send_to(&request[..len], target).await?;

    let deadline = Instant::now() + timeout;
    let mut inbound = [0u8; 1500];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut inbound)).await;
        let (len, from) = match received {
            Err(_) => return Err(ProbeError::Timeout(target)),
            Ok(result) => result?,
        };
        if from != target {
            continue;
        }
        if let Some(mapped) = stun::mapped_address(&inbound[..len], &transaction) {
            return Ok(mapped);
        }
    }
}
