//! Passing an admitted joiner's signalling socket to the room's media node, and the node's side of it.
//! The control plane keeps the joiner's socket and opens one to the node with the node secret; frames then
//! pass both ways unchanged, and the node's own loop applies the per-connection limits. When the node's
//! socket ends (the node stopped or died), the joiner's is closed as "going away": the client connects
//! again, and the room is placed afresh if its node is gone.

use std::{sync::Arc, time::Duration};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use chrono::Utc;
use convene_domain::Region;
use convene_media::signal_metrics::SignalMetrics;
use futures_util::{SinkExt, StreamExt};
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest as _, http::HeaderValue},
};

use crate::{
    meetings::room_sessions::SessionRecorder,
    nodes::{
        registry::{self, Placed},
        wire::{Handoff, SIGNAL_PATH},
    },
    platform::rate_limit::SharedLimiter,
};

/// A node that has not taken the socket in this long is treated as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket to a media node carrying one joiner.
pub type NodeSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The control plane's side: its media nodes, where their events go, and how joiners reach them.
#[derive(Debug, Clone)]
pub struct MediaNodes {
    /// The node registry's database.
    pub db: DatabaseConnection,
    /// The secret the nodes hold.
    pub secret: SecretString,
    /// Records the nodes' room events.
    pub events: Arc<SessionRecorder>,
    /// The signalling figures of the sockets passed on.
    pub metrics: SignalMetrics,
    /// Sends the API's commands to nodes (no redirects; times out).
    pub http: reqwest::Client,
    /// Windows counted across the control plane's replicas: wrong PINs typed at any node's phone gateway (each
    /// gateway counts its own too), and relay tickets redeemed (each once).
    pub limits: SharedLimiter,
}

impl MediaNodes {
    /// Places the handoff's room (in `region` if its node is chosen now) and opens a socket to its node with the handoff sent. A node that refuses
    /// the connection (its process is gone) is avoided and the room placed once more; any other failure (a
    /// slow or briefly unreachable node) moves nothing, since the meeting's other people are still there,
    /// and the joiner is told to try again. `None` when no node takes it.
    pub async fn pass_on(&self, handoff: &Handoff, region: Option<&Region>) -> Option<NodeSocket> {
        let room = (handoff.tenant, &handoff.room);
        let mut avoid: Option<String> = None;
        for _ in 0..2 {
            let placed = match registry::place(&self.db, room, (region, avoid.as_deref(), None), Utc::now()).await {
                Ok(Some(placed)) => placed,
                Ok(None) => {
                    tracing::warn!(room = handoff.room.as_str(), "no media node can take the room");
                    return None;
                }
                Err(error) => {
                    tracing::error!(%error, "could not place a room on a media node");
                    return None;
                }
            };
            match self.connect(&placed, handoff).await {
                Ok(socket) => return Some(socket),
                Err((refused, error)) => {
                    tracing::warn!(node = %placed.node, %error, refused, "a media node did not take a joiner");
                    if !refused {
                        return None;
                    }
                    avoid = Some(placed.node);
                }
            }
        }
        None
    }

    /// A socket to `node` with the handoff sent; on failure, whether the node refused the connection.
    async fn connect(&self, node: &Placed, handoff: &Handoff) -> Result<NodeSocket, (bool, String)> {
        let other = |error: String| (false, error);
        let url = format!("{}{SIGNAL_PATH}", node.url.trim_end_matches('/')).replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().map_err(|error| other(error.to_string()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.secret.expose_secret()))
            .map_err(|_| other("the node secret is not a valid header value".to_owned()))?;
        request.headers_mut().insert("authorization", bearer);
        let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect_async(request))
            .await
            .map_err(|_| other("timed out".to_owned()))?
            .map_err(|error| {
                let refused =
                    matches!(&error, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                (refused, error.to_string())
            })?;
        let handoff = serde_json::to_string(handoff).map_err(|error| other(error.to_string()))?;
        socket.send(Message::text(handoff)).await.map_err(|error| other(error.to_string()))?;
        Ok(socket)
    }
}

/// Carries frames between a joiner and their node until either side ends.
pub async fn pump(mut session: Session, mut stream: AggregatedMessageStream, mut node: NodeSocket) {
    loop {
        tokio::select! {
            frame = stream.recv() => match frame {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    if node.send(Message::text(text.to_string())).await.is_err() {
                        break;
                    }
                }
                // The node answers binary frames as malformed.
                Some(Ok(AggregatedMessage::Binary(bytes))) => {
                    if node.send(Message::binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        let _ = node.close(None).await;
                        return;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                // The joiner closed or broke the protocol: the node hears they left.
                _ => {
                    let _ = node.close(None).await;
                    let _ = session.close(None).await;
                    return;
                }
            },
            frame = node.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if session.text(text.as_str()).await.is_err() {
                        let _ = node.close(None).await;
                        return;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    // The node ended the connection (removed, refused, room over, stopping): so does the
                    // joiner's, the same way.
                    let reason = frame.map(|frame| CloseReason {
                        code: CloseCode::from(u16::from(frame.code)),
                        description: Some(frame.reason.to_string()).filter(|reason| !reason.is_empty()),
                    });
                    let _ = session.close(reason).await;
                    return;
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    // The node is gone: the client connects again and lands where the room is placed next.
    let reason = CloseReason { code: CloseCode::Away, description: Some("the media node went away".to_owned()) };
    let _ = session.close(Some(reason)).await;
}
