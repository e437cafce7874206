//! A UDP relay standing in for the network between browsers and the media node: the node advertises the
//! relay's port (`CONVENE_MEDIA_PUBLIC_PORT`, as behind a NAT) and a test can cut the path both ways to
//! see how clients ride out a network outage.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{net::UdpSocket, task::JoinSet};

/// At most this many clients through one relay; later ones are dropped (a test has a handful).
const MAX_CLIENTS: usize = 16;
/// Larger than any datagram WebRTC sends.
const DATAGRAM: usize = 2048;

/// A running relay, stopped when dropped.
pub struct UdpRelay {
    /// Where clients send (the address the node advertises).
    pub address: SocketAddr,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    /// Relays between clients on loopback and `upstream`, each client through a socket of its own so the
    /// node sees one source per client.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let address = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(relay(front, upstream, cut.clone()));
        Ok(Self { address, cut, task })
    }

    /// Drops every datagram both ways while `cut`.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(front: Arc<UdpSocket>, upstream: SocketAddr, cut: Arc<AtomicBool>) {
    // The per-client tasks live in the set, so aborting this task stops them too.
    let mut back_channels = JoinSet::new();
    let mut clients: Vec<(SocketAddr, Arc<UdpSocket>)> = Vec::new();
    let mut buffer = vec![0u8; DATAGRAM];
    loop {
        // An error is an ICMP report for an earlier datagram (a client gone): it concerns that one only.
        let Ok((length, client)) = front.recv_from(&mut buffer).await else { continue };
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        let back = match clients.iter().find(|(known, _)| *known == client) {
            Some((_, back)) => back.clone(),
            None if clients.len() < MAX_CLIENTS => {
                let Ok(back) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                if back.connect(upstream).await.is_err() {
                    continue;
                }
                let back = Arc::new(back);
                back_channels.spawn(answers(back.clone(), front.clone(), client, cut.clone()));
                clients.push((client, back.clone()));
                back
            }
            None => continue,
        };
        let _ = back.send(&buffer[..length]).await;
    }
}

/// The node's datagrams for one client, sent on from the relay's front address.
async fn answers(back: Arc<UdpSocket>, front: Arc<UdpSocket>, client: SocketAddr, cut: Arc<AtomicBool>) {
    let mut buffer = vec![0u8; DATAGRAM];
    loop {
        let Ok(length) = back.recv(&mut buffer).await else { continue };
        if !cut.load(Ordering::SeqCst) {
            let _ = front.send_to(&buffer[..length], client).await;
        }
    }
}
