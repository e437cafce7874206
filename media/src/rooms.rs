//! The rooms a node hosts, each a task that owns its [`focus::Room`] and the outboxes of its connections.
//! Connections talk to their room through channels, so one room's work never blocks another's and a slow
//! client only fills its own bounded outbox (and is dropped when it is full).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use convene_signal::{ClientMessage, ParticipantId, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::focus::{self, Identity, Outbound, RoomPolicy};

/// Messages a connection may have waiting before it counts as too slow and is closed.
const OUTBOX: usize = 256;
/// Commands a room may have waiting.
const INBOX: usize = 1024;

/// What a connection's writer does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Send this frame.
    Message(ServerMessage),
    /// Close the connection.
    Close,
}

enum Command {
    Connect {
        identity: Identity,
        version: u32,
        password: Option<String>,
        outbox: mpsc::Sender<Delivery>,
        reply: oneshot::Sender<ParticipantId>,
    },
    Message(ParticipantId, ClientMessage),
    Disconnect(ParticipantId),
}

/// A room is found by its tenant and name.
pub type RoomKey = (String, String);

/// The rooms of this node.
#[derive(Debug, Clone)]
pub struct Rooms {
    running: Arc<Mutex<HashMap<RoomKey, mpsc::Sender<Command>>>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Connect { .. } => "Connect",
            Command::Message(..) => "Message",
            Command::Disconnect(..) => "Disconnect",
        })
    }
}

/// One connection's way into its room.
#[derive(Debug)]
pub struct Connection {
    /// Its id in the room.
    pub id: ParticipantId,
    room: mpsc::Sender<Command>,
    /// What to send to the client, in order.
    pub outbox: mpsc::Receiver<Delivery>,
}

impl Connection {
    /// Passes a client message to the room; false once the room is gone.
    pub async fn send(&self, message: ClientMessage) -> bool {
        self.room.send(Command::Message(self.id, message)).await.is_ok()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A full inbox means the room is busy; it also learns of the closed outbox when it next writes to it.
        let _ = self.room.try_send(Command::Disconnect(self.id));
    }
}

impl Rooms {
    /// No rooms yet; connections close when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { running: Arc::default(), shutdown }
    }

    /// Cancelled when the node stops: connections say goodbye instead of holding the shutdown.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// How many rooms are running.
    pub fn count(&self) -> usize {
        self.running.lock().map(|running| running.len()).unwrap_or(0)
    }

    /// Connects a verified identity to `key`'s room, starting the room with `policy` if it is not running.
    pub async fn connect(
        &self,
        key: RoomKey,
        policy: RoomPolicy,
        identity: Identity,
        version: u32,
        password: Option<String>,
    ) -> Option<Connection> {
        // A room that ends between the lookup and the send is started again, once.
        for _ in 0..2 {
            let room = self.room(&key, &policy)?;
            let (outbox, receiver) = mpsc::channel(OUTBOX);
            let (reply, id) = oneshot::channel();
            let command =
                Command::Connect { identity: identity.clone(), version, password: password.clone(), outbox, reply };
            if room.send(command).await.is_ok()
                && let Ok(id) = id.await
            {
                return Some(Connection { id, room, outbox: receiver });
            }
        }
        None
    }

    fn room(&self, key: &RoomKey, policy: &RoomPolicy) -> Option<mpsc::Sender<Command>> {
        let mut running = self.running.lock().ok()?;
        if let Some(room) = running.get(key).filter(|room| !room.is_closed()) {
            return Some(room.clone());
        }
        let (sender, receiver) = mpsc::channel(INBOX);
        running.insert(key.clone(), sender.clone());
        tokio::spawn(run(key.clone(), focus::Room::new(&key.1, policy.clone()), receiver, self.running.clone()));
        Some(sender)
    }
}

async fn run(
    key: RoomKey,
    mut room: focus::Room,
    mut commands: mpsc::Receiver<Command>,
    running: Arc<Mutex<HashMap<RoomKey, mpsc::Sender<Command>>>>,
) {
    let mut outboxes: HashMap<ParticipantId, mpsc::Sender<Delivery>> = HashMap::new();
    while let Some(command) = commands.recv().await {
        let out = match command {
            Command::Connect { identity, version, password, outbox, reply } => {
                let (id, out) = room.connect(identity, version, password.as_deref());
                outboxes.insert(id, outbox);
                let _ = reply.send(id);
                out
            }
            Command::Message(from, message) => room.handle(from, message),
            Command::Disconnect(id) => {
                outboxes.remove(&id);
                room.disconnect(id)
            }
        };
        deliver(&mut room, &mut outboxes, out);
        if room.is_empty() && outboxes.is_empty() {
            // Leave the registry under its lock, unless a connection is already on its way in.
            let Ok(mut registry) = running.lock() else { break };
            if commands.is_empty() {
                registry.remove(&key);
                break;
            }
        }
    }
}

/// Sends what the focus decided; a connection whose outbox is full or gone is closed and leaves the room.
fn deliver(
    room: &mut focus::Room,
    outboxes: &mut HashMap<ParticipantId, mpsc::Sender<Delivery>>,
    mut out: Vec<Outbound>,
) {
    while !out.is_empty() {
        let mut dropped = Vec::new();
        for outbound in out.drain(..) {
            match outbound {
                Outbound::Send(to, message) => {
                    if let Some(outbox) = outboxes.get(&to)
                        && outbox.try_send(Delivery::Message(message)).is_err()
                    {
                        dropped.push(to);
                    }
                }
                Outbound::Close(id) => {
                    if let Some(outbox) = outboxes.remove(&id) {
                        let _ = outbox.try_send(Delivery::Close);
                    }
                }
            }
        }
        for id in dropped {
            if outboxes.remove(&id).is_some() {
                out.extend(room.disconnect(id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use convene_signal::PROTOCOL_VERSION;

    use super::*;

    fn key() -> RoomKey {
        ("tenant".to_owned(), "standup".to_owned())
    }

    async fn join(rooms: &Rooms, name: &str) -> Connection {
        let identity = Identity { name: name.to_owned(), moderator: false };
        let mut connection =
            rooms.connect(key(), RoomPolicy::default(), identity, PROTOCOL_VERSION, None).await.expect("joined");
        let welcome = connection.outbox.recv().await;
        assert!(matches!(welcome, Some(Delivery::Message(ServerMessage::Welcome { .. }))), "{welcome:?}");
        connection
    }

    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..200 {
            if condition() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the condition never held");
    }

    #[tokio::test]
    async fn an_empty_room_stops_and_a_later_connection_starts_it_again() {
        let rooms = Rooms::new(CancellationToken::new());
        let ann = join(&rooms, "Ann").await;
        let mut bob = join(&rooms, "Bob").await;
        assert_eq!(rooms.count(), 1);
        drop(ann);
        let left = bob.outbox.recv().await;
        assert!(matches!(left, Some(Delivery::Message(ServerMessage::ParticipantLeft { .. }))), "{left:?}");
        drop(bob);
        until(|| rooms.count() == 0).await;
        let _again = join(&rooms, "Cy").await;
        assert_eq!(rooms.count(), 1);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_without_holding_up_the_others() {
        let rooms = Rooms::new(CancellationToken::new());
        let mut talker = join(&rooms, "Talker").await;
        let mut listener = join(&rooms, "Listener").await;
        let mut stuck = join(&rooms, "Stuck").await;
        let stuck_id = stuck.id;
        let mut stuck_left = false;
        for n in 0..OUTBOX + 10 {
            assert!(talker.send(ClientMessage::Chat { text: format!("message {n}"), to: None }).await);
            tokio::task::yield_now().await;
            // The talker and the listener keep up; the stuck client never reads.
            while talker.outbox.try_recv().is_ok() {}
            while let Ok(Delivery::Message(message)) = listener.outbox.try_recv() {
                if let ServerMessage::ParticipantLeft { id, .. } = message {
                    assert_eq!(id, stuck_id);
                    stuck_left = true;
                }
            }
        }
        while !stuck_left {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), listener.outbox.recv()).await;
            match next.expect("the stuck client is dropped in time") {
                Some(Delivery::Message(ServerMessage::ParticipantLeft { id, .. })) => {
                    assert_eq!(id, stuck_id);
                    stuck_left = true;
                }
                Some(_) => {}
                None => panic!("the listener was dropped"),
            }
        }
        let mut received = 0;
        while let Ok(delivery) = stuck.outbox.try_recv() {
            assert!(matches!(delivery, Delivery::Message(_)));
            received += 1;
        }
        assert!(received <= OUTBOX, "the stuck client's outbox stayed bounded ({received})");
    }
}
