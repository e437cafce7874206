//! The node's durable outbox: every room event is written to disk before the control plane hears of it,
//! and delivered from there in order, retried until the control plane takes it. A restart or an
//! unreachable control plane loses nothing; each event carries the node's id and a sequence number so the
//! control plane counts a redelivered one once.
//!
//! On disk, in its own directory: `node-id` (this node's name, made once), segments
//! `segment-<first seq>.jsonl` of one JSON event per line, `delivered` (the last sequence number the
//! control plane took) and `alive` (when the node last said it was running). A new start appends
//! [`NodeEvent::Started`] with that time, so rooms the node was hosting when it stopped can be closed then.
//! Segments whose events were all delivered are deleted.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    future::Future,
    io::{self, BufRead, BufReader, Write},
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::rooms::{Reporter, RoomEvent};

/// Events per segment file before a new one starts.
const SEGMENT_EVENTS: u64 = 1024;
/// How often the node notes that it is alive.
const ALIVE_EVERY: Duration = Duration::from_secs(10);
/// The longest pause between delivery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Deliveries recorded on disk at least this often (a redelivery after a crash is harmless).
const ACKNOWLEDGE_EVERY: u64 = 256;

/// What the node tells the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    /// The node started; rooms it hosted before ended when it was last known alive.
    Started {
        /// When it started.
        at: SystemTime,
        /// When the previous run was last known alive (`None` on a first start).
        last_alive: Option<SystemTime>,
    },
    /// Something happened in a room.
    Room(RoomEvent),
}

/// One event as it is stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node's id.
    pub node: String,
    /// Its place in the node's sequence (from 1, never reused).
    pub seq: u64,
    /// What happened.
    pub event: NodeEvent,
}

/// A failed delivery, to be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Undelivered(pub String);

/// Where events go: the control plane. Must be idempotent by `(node, seq)`.
pub trait Deliver: Send + Sync + 'static {
    /// Takes one event; an error is retried later with the same envelope.
    fn deliver<'a>(
        &'a self,
        envelope: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = Result<(), Undelivered>> + Send + 'a>>;
}

/// The outbox's front door: a [`Reporter`] for the rooms.
#[derive(Debug, Clone)]
pub struct Outbox {
    node: String,
    events: mpsc::UnboundedSender<NodeEvent>,
}

impl Reporter for Outbox {
    fn report(&self, event: RoomEvent) {
        // Fails only once the writer has stopped, after shutdown.
        let _ = self.events.send(NodeEvent::Room(event));
    }
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, notes the start, and delivers to `sink` until `shutdown`
    /// (a delivery failing then waits for the next start).
    pub fn open(dir: &Path, sink: Arc<dyn Deliver>, shutdown: CancellationToken) -> io::Result<(Self, Running)> {
        fs::create_dir_all(dir)?;
        let node = node_id(dir)?;
        let delivered = read_number(&dir.join("delivered"))?.unwrap_or(0);
        let (backlog, last_seq) = read_backlog(dir, delivered)?;
        let last_alive = read_number(&dir.join("alive"))?.map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let mut journal = Journal::open(dir, last_seq)?;
        let started = NodeEvent::Started { at: SystemTime::now(), last_alive };
        let mut backlog = backlog;
        let (envelope, written) = journal.append(&node, started);
        written?;
        journal.sync()?;
        backlog.push_back(envelope);
        mark_alive(dir)?;

        let (events, incoming) = mpsc::unbounded_channel();
        let (written, to_deliver) = mpsc::unbounded_channel();
        let deliverer = tokio::spawn(deliver(dir.to_owned(), sink, backlog, to_deliver, shutdown));
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write(dir.to_owned(), node.clone(), journal, incoming, written, stop.clone()));
        let task = tokio::spawn(async move {
            let _ = writer.await;
            let _ = deliverer.await;
        });
        Ok((Self { node, events }, Running { stop, task }))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// The outbox's tasks.
#[derive(Debug)]
pub struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Call once the rooms have stopped: writes what was reported, delivers it if the control plane takes
    /// it before shutdown, and ends.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The segment being appended to.
struct Journal {
    dir: PathBuf,
    file: File,
    next_seq: u64,
    in_segment: u64,
}

impl Journal {
    fn open(dir: &Path, last_seq: u64) -> io::Result<Self> {
        let next_seq = last_seq + 1;
        // A file of this name can only hold a line torn by a crash (nothing in it was read): start it afresh.
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(segment_path(dir, next_seq))?;
        Ok(Self { dir: dir.to_owned(), file, next_seq, in_segment: 0 })
    }

    /// Numbers the event and writes it; the envelope comes back even when the disk refused it, so the event
    /// is still delivered (though not safe across a restart).
    fn append(&mut self, node: &str, event: NodeEvent) -> (Envelope, io::Result<()>) {
        let envelope = Envelope { node: node.to_owned(), seq: self.next_seq, event };
        self.next_seq += 1;
        let written = self.write_line(&envelope);
        (envelope, written)
    }

    fn write_line(&mut self, envelope: &Envelope) -> io::Result<()> {
        if self.in_segment >= SEGMENT_EVENTS {
            self.file.sync_all()?;
            self.file = OpenOptions::new().create(true).append(true).open(segment_path(&self.dir, envelope.seq))?;
            self.in_segment = 0;
        }
        let mut line = serde_json::to_vec(envelope).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.in_segment += 1;
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Writes reported events to disk (a batch, then one sync) and only then passes them on; after `stop`, what
/// is queued is written and the writer ends.
async fn write(
    dir: PathBuf,
    node: String,
    mut journal: Journal,
    mut incoming: mpsc::UnboundedReceiver<NodeEvent>,
    written: mpsc::UnboundedSender<Envelope>,
    stop: CancellationToken,
) {
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    let mut batch = Vec::new();
    let mut stopping = false;
    while !stopping {
        tokio::select! {
            () = stop.cancelled() => {
                stopping = true;
                while let Ok(event) = incoming.try_recv() {
                    batch.push(event);
                }
            }
            received = incoming.recv_many(&mut batch, 256) => stopping = received == 0,
            _ = alive.tick() => {
                if let Err(error) = mark_alive(&dir) {
                    tracing::warn!(%error, "the media outbox cannot note that the node is alive");
                }
            }
        }
        if !batch.is_empty() {
            let mut envelopes = Vec::with_capacity(batch.len());
            let mut failure = None;
            for event in batch.drain(..) {
                let (envelope, result) = journal.append(&node, event);
                envelopes.push(envelope);
                failure = failure.or(result.err());
            }
            if let Some(error) = failure.or_else(|| journal.sync().err()) {
                // Said loudly: the events still go out, but are not safe across a restart.
                tracing::error!(%error, dir = %dir.display(), "the media outbox cannot write to disk");
            }
            for envelope in envelopes {
                let _ = written.send(envelope);
            }
        }
    }
    let _ = mark_alive(&dir);
}

/// Delivers in order, retrying each event with a growing pause, and records what was taken.
async fn deliver(
    dir: PathBuf,
    sink: Arc<dyn Deliver>,
    mut pending: VecDeque<Envelope>,
    mut written: mpsc::UnboundedReceiver<Envelope>,
    shutdown: CancellationToken,
) {
    let mut open = true;
    let mut unacknowledged: Option<u64> = None;
    loop {
        if pending.is_empty()
            && let Some(seq) = unacknowledged.take()
            && let Err(error) = acknowledge(&dir, seq)
        {
            tracing::warn!(%error, seq, "the media outbox cannot record a delivery; it will be delivered again");
        }
        if pending.is_empty() {
            if !open {
                return;
            }
            match written.recv().await {
                Some(envelope) => pending.push_back(envelope),
                None => open = false,
            }
            continue;
        }
        while let Ok(envelope) = written.try_recv() {
            pending.push_back(envelope);
        }
        let Some(envelope) = pending.front() else { continue };
        let mut pause = Duration::from_millis(100);
        loop {
            match sink.deliver(envelope).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, seq = envelope.seq, "a node event was not delivered; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        // What is left stays on disk for the next start.
                        () = shutdown.cancelled() => return,
                    }
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
        let seq = envelope.seq;
        pending.pop_front();
        unacknowledged = Some(seq);
        if seq % ACKNOWLEDGE_EVERY == 0
            && let Err(error) = acknowledge(&dir, seq)
        {
            tracing::warn!(%error, seq, "the media outbox cannot record a delivery; it will be delivered again");
        }
    }
}

/// Notes `seq` as delivered and deletes the segments before it.
fn acknowledge(dir: &Path, seq: u64) -> io::Result<()> {
    write_atomically(&dir.join("delivered"), &seq.to_string())?;
    let segments = segments(dir)?;
    // A segment is done when the next one starts at or before the first undelivered event.
    for pair in segments.windows(2) {
        if let [(_, path), (next_first, _)] = pair
            && *next_first <= seq + 1
        {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The events after `delivered`, in order, and the last sequence number on disk. A line cut short by a
/// crash ends its segment.
fn read_backlog(dir: &Path, delivered: u64) -> io::Result<(VecDeque<Envelope>, u64)> {
    let mut backlog = VecDeque::new();
    let mut last = delivered;
    for (_, path) in segments(dir)? {
        for line in BufReader::new(File::open(&path)?).lines() {
            let Ok(envelope) = serde_json::from_str::<Envelope>(&line?) else {
                tracing::warn!(path = %path.display(), "an unreadable line ends a media outbox segment");
                break;
            };
            last = last.max(envelope.seq);
            if envelope.seq > delivered {
                backlog.push_back(envelope);
            }
        }
    }
    Ok((backlog, last))
}

/// The segments, by their first sequence number.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("segment-"))
            .and_then(|name| name.strip_suffix(".jsonl"))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("segment-{first:020}.jsonl"))
}

/// This node's id, made on the first start.
fn node_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("node-id");
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is empty", path.display()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).map_err(io::Error::other)?;
            let id = format!("node-{}", random.iter().map(|byte| format!("{byte:02x}")).collect::<String>());
            write_atomically(&path, &id)?;
            Ok(id)
        }
        Err(error) => Err(error),
    }
}

fn mark_alive(dir: &Path) -> io::Result<()> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    write_atomically(&dir.join("alive"), &now.as_millis().to_string())
}

fn read_number(path: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a number", path.display()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Replaces a small file so that a crash leaves the old contents or the new, never half.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let temporary = path.with_extension("new");
    let mut file = File::create(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    /// A control plane that can be down, and that remembers what it took.
    #[derive(Default)]
    struct ControlPlane {
        down: AtomicBool,
        taken: Mutex<Vec<Envelope>>,
    }

    impl Deliver for ControlPlane {
        fn deliver<'a>(
            &'a self,
            envelope: &'a Envelope,
        ) -> Pin<Box<dyn Future<Output = Result<(), Undelivered>> + Send + 'a>> {
            Box::pin(async move {
                if self.down.load(Ordering::Relaxed) {
                    return Err(Undelivered("connection refused".to_owned()));
                }
                let mut taken = self.taken.lock().unwrap();
                // Idempotent by (node, seq), as the real one is.
                if !taken.iter().any(|seen| seen.node == envelope.node && seen.seq == envelope.seq) {
                    taken.push(envelope.clone());
                }
                Ok(())
            })
        }
    }

    fn joined(name: &str) -> RoomEvent {
        RoomEvent::Joined {
            room: ("acme".to_owned(), "standup".to_owned()),
            participant: name.to_lowercase(),
            name: name.to_owned(),
            moderator: false,
            phone: None,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    async fn settle(plane: &ControlPlane, count: usize) {
        for _ in 0..200 {
            if plane.taken.lock().unwrap().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("only {} of {count} events arrived", plane.taken.lock().unwrap().len());
    }

    fn room_events(plane: &ControlPlane) -> Vec<RoomEvent> {
        let taken = plane.taken.lock().unwrap();
        taken
            .iter()
            .filter_map(|envelope| match &envelope.event {
                NodeEvent::Room(event) => Some(event.clone()),
                NodeEvent::Started { .. } => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn events_survive_an_outage_and_a_restart_in_order_and_once() {
        let dir = std::env::temp_dir().join(format!("convene-outbox-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let plane = Arc::new(ControlPlane::default());

        // The control plane is down: events wait on disk.
        plane.down.store(true, Ordering::Relaxed);
        let shutdown = CancellationToken::new();
        let (outbox, task) = Outbox::open(&dir, plane.clone(), shutdown.clone()).unwrap();
        let node = outbox.node().to_owned();
        for name in ["Ann", "Bob"] {
            outbox.report(joined(name));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(plane.taken.lock().unwrap().is_empty());
        // The node stops before the control plane returns.
        shutdown.cancel();
        drop(outbox);
        task.finish().await;

        // Restarted, with the control plane back: the backlog, then the new start, then new events.
        plane.down.store(false, Ordering::Relaxed);
        let shutdown = CancellationToken::new();
        let (outbox, task) = Outbox::open(&dir, plane.clone(), shutdown.clone()).unwrap();
        assert_eq!(outbox.node(), node, "the node keeps its id");
        outbox.report(joined("Cy"));
        settle(&plane, 5).await;
        let taken = plane.taken.lock().unwrap().clone();
        let seqs: Vec<u64> = taken.iter().map(|envelope| envelope.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5], "in order, each once");
        assert!(matches!(taken[0].event, NodeEvent::Started { last_alive: None, .. }));
        assert!(matches!(taken[3].event, NodeEvent::Started { last_alive: Some(_), .. }));
        assert_eq!(room_events(&plane), vec![joined("Ann"), joined("Bob"), joined("Cy")]);
        drop(outbox);
        task.finish().await;

        // A third start delivers nothing old again.
        let (outbox, task) = Outbox::open(&dir, plane.clone(), CancellationToken::new()).unwrap();
        settle(&plane, 6).await;
        drop(outbox);
        task.finish().await;
        assert_eq!(plane.taken.lock().unwrap().len(), 6);
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn delivered_segments_are_deleted_and_a_torn_last_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("convene-outbox-segments-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let plane = Arc::new(ControlPlane::default());
        let (outbox, task) = Outbox::open(&dir, plane.clone(), CancellationToken::new()).unwrap();
        let count = usize::try_from(SEGMENT_EVENTS).unwrap() * 2 + 10;
        for index in 0..count {
            outbox.report(joined(&format!("P{index}")));
        }
        settle(&plane, count + 1).await;
        drop(outbox);
        task.finish().await;
        assert_eq!(segments(&dir).unwrap().len(), 1, "only the segment being written remains");

        // A crash in the middle of a line: the restart reads up to it and goes on.
        let (_, last) = segments(&dir).unwrap().pop().unwrap();
        OpenOptions::new().append(true).open(&last).unwrap().write_all(b"{\"node\":\"x\",\"se").unwrap();
        let (outbox, task) = Outbox::open(&dir, plane.clone(), CancellationToken::new()).unwrap();
        outbox.report(joined("After"));
        settle(&plane, count + 3).await;
        drop(outbox);
        task.finish().await;
        assert_eq!(room_events(&plane).last(), Some(&joined("After")));
        let _ = fs::remove_dir_all(&dir);
    }
}
