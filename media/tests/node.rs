//! The media node over real loopback sockets: it answers probes, survives noise and stops on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{net::SocketAddr, time::Duration};

use convene_media::{BindError, MediaMetrics, MediaNode, NodeConfig, ProbeError, probe};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn start() -> (SocketAddr, Registry, CancellationToken, tokio::task::JoinHandle<()>) {
    let mut registry = Registry::default();
    let metrics = MediaMetrics::register(&mut registry);
    let node = MediaNode::bind(config(([127, 0, 0, 1], 0).into()), metrics).unwrap_or_else(|error| panic!("{error}"));
    let addr = node.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(node.run(shutdown.clone()));
    (addr, registry, shutdown, task)
}

fn config(udp_addr: SocketAddr) -> NodeConfig {
    NodeConfig { udp_addr, public_ip: None, public_port: None, shards: 2, top_height: 720 }
}

/// Shards publish their counters once a second.
async fn metrics_showing(registry: &Registry, expected: &[&str]) -> String {
    for _ in 0..40 {
        let text = metrics_text(registry);
        if expected.iter().all(|line| text.contains(line)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("metrics never showed {expected:?}:\n{}", metrics_text(registry));
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap_or_else(|error| panic!("{error}"));
    text
}

#[tokio::test]
async fn answers_probes_and_survives_noise() {
    let (addr, registry, shutdown, task) = start().await;

    let noise = UdpSocket::bind("127.0.0.1:0").await.unwrap_or_else(|error| panic!("{error}"));
    for datagram in [&b""[..], b"hello", &[0x80; 200], &[0u8; 20]] {
        noise.send_to(datagram, addr).await.unwrap_or_else(|error| panic!("{error}"));
    }

    let mapped = probe(addr, PROBE_TIMEOUT).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(mapped.ip(), addr.ip(), "the node reports the prober's loopback address");

    metrics_showing(
        &registry,
        &["convene_media_stun_replies_total 1", r#"convene_media_datagrams_dropped_total{reason="unknown_sender"} 4"#],
    )
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap_or_else(|_| panic!("the node did not stop"))
        .unwrap_or_else(|error| panic!("{error}"));
}

#[tokio::test]
async fn a_taken_port_is_reported_as_in_use() {
    let (addr, _registry, shutdown, _task) = start().await;
    let second = MediaNode::bind(config(addr), MediaMetrics::default());
    assert!(matches!(second, Err(BindError::InUse { .. })), "{second:?}");
    let message = second.map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("CONVENE_MEDIA_UDP_ADDR"), "{message}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_silent_port_fails_the_probe() {
    // Bind a socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap_or_else(|error| panic!("{error}"));
    let addr = silent.local_addr().unwrap_or_else(|error| panic!("{error}"));
    let result = probe(addr, Duration::from_millis(200)).await;
    assert!(matches!(result, Err(ProbeError::Timeout(_))), "{result:?}");
}

#[test]
fn a_node_bound_to_every_interface_needs_a_public_address() {
    let any = MediaNode::bind(config(([0, 0, 0, 0], 0).into()), MediaMetrics::default());
    assert!(matches!(any, Err(BindError::NoPublicAddress { .. })), "{any:?}");
    assert!(any.map(|_| ()).unwrap_err().to_string().contains("CONVENE_MEDIA_PUBLIC_IP"));
    let public = NodeConfig { public_ip: Some([127, 0, 0, 1].into()), ..config(([0, 0, 0, 0], 0).into()) };
    assert!(MediaNode::bind(public, MediaMetrics::default()).is_ok());
}
