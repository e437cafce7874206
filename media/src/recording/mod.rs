//! Recording inside the media node, without a browser and without transcoding: the SFU hands a recorded
//! room's packets (every microphone, one layer of every video) to a recorder task through a bounded queue
//! that drops rather than slows forwarding; the task puts them back into frames ([`frames`]) and appends
//! each track to its own WebM file ([`webm`]), with a [`manifest`] of who was there and when. Files are
//! written in Matroska's live mode and flushed every second, so a crash loses about a second; the manifest
//! is rewritten whole (to a temporary file, then renamed) whenever it changes.
//!
//! One recording's files live in `<recordings root>/<recording id>/`. The control plane hears of a
//! recording from the room's outbox events, never from here.

pub mod frames;
pub mod manifest;
mod track;
pub mod webm;

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use convene_signal::{ParticipantId, TrackSource};
use tokio::sync::mpsc;

use self::{
    manifest::{Manifest, Presence},
    track::TrackFile,
};
use crate::{
    plane::{MediaCommand, MediaPlane, TapSink},
    sfu::{PeerKey, RecordedPacket, RoomId, speaker::Speakers},
};

/// Packets a recorder may have waiting: about a second of a large meeting's recorded tracks.
const PACKET_QUEUE: usize = 8192;
/// Updates from the room (who is there) a recorder may have waiting.
const UPDATE_QUEUE: usize = 256;
/// How often files are flushed and the manifest rewritten if it changed.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Keyframe requests for one video at most this often.
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);
/// The manifest's name in a recording's directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Where recordings are written: one directory per recording under `root`, and at most `quota` bytes in all
/// (a recording that would pass it stops, and the meeting goes on).
#[derive(Debug, Clone)]
pub struct RecordingStore {
    root: PathBuf,
    quota: u64,
}

impl RecordingStore {
    /// Recordings under `root`, at most `quota` bytes.
    pub fn new(root: PathBuf, quota: u64) -> Self {
        Self { root, quota }
    }

    /// The directory of recording `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Bytes the recordings under the root take now.
    pub fn used(&self) -> u64 {
        directory_size(&self.root)
    }
}

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The recordings directory could not be written.
    #[error("the recording could not be written: {0}")]
    Storage(#[from] io::Error),
    /// The recordings disk holds its quota already.
    #[error("the recordings storage is full")]
    Full,
    /// The room's shard is overloaded.
    #[error("the media node is busy; try again")]
    Busy,
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The recording.
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// When it stopped.
    pub at: SystemTime,
    /// Why it stopped by itself (storage full or failing), when nobody stopped it.
    pub reason: Option<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// A recording going on, held by its room. Dropping it stops the recording.
#[derive(Debug)]
pub struct Recorder {
    id: String,
    updates: mpsc::Sender<Vec<Presence>>,
}

impl Recorder {
    /// Starts recording room `room_id` (named `room`) with `people` in it: the shard starts handing over its
    /// media, and a task writes it under `store` until the recorder is dropped (or storage fails), then
    /// calls `finished`.
    pub fn start(
        store: &RecordingStore,
        plane: &MediaPlane,
        (room_id, room): (RoomId, &str),
        people: Vec<Presence>,
        finished: Box<dyn FnOnce(Finished) + Send>,
    ) -> Result<Self, StartError> {
        let used = store.used();
        if used >= store.quota {
            return Err(StartError::Full);
        }
        let id = new_id()?;
        let dir = store.dir(&id);
        fs::create_dir_all(&dir)?;
        let started_at = SystemTime::now();
        let mut manifest = Manifest::new(&id, room, unix_ms(started_at));
        manifest.observe(0, &[], &people);
        write_manifest(&dir, &manifest)?;
        let (sink, packets) = mpsc::channel(PACKET_QUEUE);
        let command = MediaCommand::Record {
            room: room_id,
            recording: id.clone(),
            sink: Some(TapSink { queue: sink, video: true }),
        };
        plane.send(command).map_err(|_| StartError::Busy)?;
        let (updates, updates_in) = mpsc::channel(UPDATE_QUEUE);
        let task = Task {
            dir,
            room_id,
            plane: plane.clone(),
            started: Instant::now(),
            manifest,
            people,
            tracks: HashMap::new(),
            speakers: Speakers::default(),
            dirty: false,
            budget: store.quota - used,
            written: 0,
        };
        tokio::spawn(task.run(packets, updates_in, finished));
        Ok(Self { id, updates })
    }

    /// The recording's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Who is in the room now (the recorder notes what changed); dropped if the recorder lags far behind.
    pub fn people(&self, people: Vec<Presence>) {
        let _ = self.updates.try_send(people);
    }
}

/// The recorder's task: owns the files.
struct Task {
    dir: PathBuf,
    room_id: RoomId,
    plane: MediaPlane,
    started: Instant,
    manifest: Manifest,
    people: Vec<Presence>,
    tracks: HashMap<(ParticipantId, TrackSource), TrackFile>,
    /// Who speaks, from the microphones' audio levels, for the manifest's timeline.
    speakers: Speakers<ParticipantId>,
    /// The manifest changed since it was last written.
    dirty: bool,
    /// Bytes this recording may still write before the store's quota.
    budget: u64,
    written: u64,
}

impl Task {
    async fn run(
        mut self,
        mut packets: mpsc::Receiver<RecordedPacket>,
        mut updates: mpsc::Receiver<Vec<Presence>>,
        finished: Box<dyn FnOnce(Finished) + Send>,
    ) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let reason = loop {
            tokio::select! {
                packet = packets.recv() => match packet {
                    Some(packet) => {
                        if let Err(error) = self.write(&packet) {
                            break Some(error);
                        }
                    }
                    // The shard let go of the room (it stopped): nothing more will come.
                    None => break None,
                },
                people = updates.recv() => match people {
                    Some(people) => self.observe(people),
                    None => break None,
                },
                _ = flush.tick() => {
                    if let Err(error) = self.flush() {
                        break Some(error);
                    }
                }
            }
        };
        // Stop the shard's copies first, then take what is already queued.
        let recording = self.manifest.recording.clone();
        let _ = self.plane.send(MediaCommand::Record { room: self.room_id, recording, sink: None });
        packets.close();
        let mut reason = reason;
        while let Ok(packet) = packets.try_recv() {
            if reason.is_none()
                && let Err(error) = self.write(&packet)
            {
                reason = Some(error);
            }
        }
        let at = SystemTime::now();
        self.manifest.stopped_at_unix_ms = Some(unix_ms(at));
        self.manifest.stop_reason.clone_from(&reason);
        self.dirty = true;
        if let Err(error) = self.finish() {
            tracing::warn!(%error, dir = %self.dir.display(), "a recording's last writes failed");
        }
        finished(Finished { id: self.manifest.recording.clone(), dir: self.dir, at, reason, bytes: self.written });
    }

    /// Appends a packet to its track's file; the error says, for people, why recording must stop.
    fn write(&mut self, packet: &RecordedPacket) -> Result<(), String> {
        let at = packet.at.saturating_duration_since(self.started);
        if let Some(level) = packet.audio_level {
            self.speakers.level(packet.participant, level.unsigned_abs(), packet.at);
            if let Some(speaker) = self.speakers.update(packet.at) {
                self.manifest.spoke(millis(at), speaker);
                self.dirty = true;
            }
        }
        let key = (packet.participant, packet.source);
        if !self.tracks.contains_key(&key) {
            let Some(track) = TrackFile::create(&self.dir, packet).map_err(|error| storage_failed(&error))? else {
                return Ok(());
            };
            self.manifest.tracks.push(track.entry().clone());
            self.tracks.insert(key, track);
            self.dirty = true;
        }
        let Some(track) = self.tracks.get_mut(&key) else { return Ok(()) };
        let written = track.write(packet, at).map_err(|error| storage_failed(&error))?;
        self.written += written;
        if self.written > self.budget {
            return Err("the recordings storage is full".to_owned());
        }
        if track.needs_keyframe(packet.at, KEYFRAME_EVERY) {
            let key = PeerKey { room: self.room_id, participant: packet.participant };
            let _ = self.plane.send(MediaCommand::RecordingKeyframe { key, source: packet.source });
        }
        Ok(())
    }

    fn observe(&mut self, people: Vec<Presence>) {
        let at_ms = millis(self.started.elapsed());
        self.manifest.observe(at_ms, &self.people, &people);
        self.people = people;
        self.dirty = true;
    }

    /// Flushes every file and rewrites the manifest with the tracks' progress.
    fn flush(&mut self) -> Result<(), String> {
        for track in self.tracks.values_mut() {
            track.flush().map_err(|error| storage_failed(&error))?;
            if let Some(entry) = self.manifest.tracks.iter_mut().find(|entry| entry.file == track.entry().file)
                && entry != track.entry()
            {
                entry.clone_from(track.entry());
                self.dirty = true;
            }
        }
        if std::mem::take(&mut self.dirty) {
            write_manifest(&self.dir, &self.manifest).map_err(|error| storage_failed(&error))?;
        }
        Ok(())
    }

    /// The last flush, and the files made durable.
    fn finish(&mut self) -> io::Result<()> {
        self.flush().map_err(io::Error::other)?;
        for track in self.tracks.values_mut() {
            track.sync()?;
        }
        Ok(())
    }
}

fn storage_failed(error: &io::Error) -> String {
    tracing::warn!(%error, "recording stopped: storage failed");
    "the recording could not be written".to_owned()
}

/// Writes the manifest whole: to a temporary file, then renamed over the old one.
fn write_manifest(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    let temporary = dir.join(format!("{MANIFEST_FILE}.new"));
    fs::write(&temporary, serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?)?;
    fs::rename(temporary, dir.join(MANIFEST_FILE))
}

/// Reads a recording's manifest.
pub fn read_manifest(dir: &Path) -> io::Result<Manifest> {
    serde_json::from_slice(&fs::read(dir.join(MANIFEST_FILE))?).map_err(io::Error::other)
}

/// Bytes the files under `dir` take, subdirectories included (0 for a directory that cannot be read).
pub fn directory_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_size(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A new recording id: a time-ordered (version 7) UUID, so ids sort by when recordings started, as the
/// control plane's lists page by id.
pub(crate) fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    let millis = unix_ms(SystemTime::now()).to_be_bytes();
    bytes[..6].copy_from_slice(&millis[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

fn unix_ms(at: SystemTime) -> u64 {
    millis(at.duration_since(UNIX_EPOCH).unwrap_or_default())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use str0m::format::Codec;
    use tokio::sync::oneshot;

    use super::*;
    use crate::sfu::allocator::Layer;

    /// A packet of Ann's (participant 1) microphone or camera at frame `n`, arrived `n` × 33 ms after `start`.
    fn packet(source: TrackSource, n: u64, start: Instant) -> RecordedPacket {
        let (codec, payload): (Codec, Vec<u8>) = match source {
            TrackSource::Microphone => (Codec::Opus, vec![0xfc; 100]),
            _ => {
                // A VP8 descriptor starting the frame, then a keyframe (640×360) at frames 0 and 100, else an
                // interframe.
                let mut payload = if n.is_multiple_of(100) {
                    vec![0x10, 0x50, 0x2c, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]
                } else {
                    vec![0x10, 0x51, 0x2c, 0x00]
                };
                payload.resize(1000, 0);
                (Codec::Vp8, payload)
            }
        };
        RecordedPacket {
            participant: ParticipantId(1),
            source,
            codec,
            layer: Layer::Medium,
            seq: n,
            timestamp: u32::try_from(n * 3000).unwrap(),
            marker: true,
            payload: Arc::from(payload),
            // Ann speaks up.
            audio_level: (source == TrackSource::Microphone).then_some(-20),
            at: start + Duration::from_millis(n * 33),
        }
    }

    fn person(id: u64, name: &str) -> Presence {
        Presence { id: ParticipantId(id), name: name.to_owned(), audio_muted: false, video_muted: false }
    }

    #[tokio::test]
    async fn a_recorder_writes_each_track_and_its_manifest_asks_for_keyframes_and_stops_at_the_quota() {
        let root = tempfile::tempdir().unwrap();
        let store = RecordingStore::new(root.path().to_owned(), 150_000);
        let (shard, mut commands) = mpsc::channel(64);
        let plane = MediaPlane::new(vec![shard]);
        let (done, finished) = oneshot::channel();
        let finish = Box::new(move |finished: Finished| {
            let _ = done.send(finished);
        });
        let recorder = Recorder::start(&store, &plane, (0, "standup"), vec![person(1, "Ann")], finish).unwrap();
        let Some(MediaCommand::Record { room: 0, recording, sink: Some(TapSink { queue: sink, .. }) }) =
            commands.recv().await
        else {
            panic!("the shard is asked to hand the room's media over");
        };
        assert_eq!(recording, recorder.id());

        let start = Instant::now();
        for n in 0..30 {
            sink.send(packet(TrackSource::Microphone, n, start)).await.unwrap();
            // Frame 10 of the camera is lost.
            if n != 10 {
                sink.send(packet(TrackSource::Camera, n, start)).await.unwrap();
            }
        }
        recorder.people(vec![person(1, "Ann"), person(2, "Bob")]);
        // The loss is noticed once later frames waited past the reorder window: a keyframe is asked for.
        let asked = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(MediaCommand::RecordingKeyframe { key, source }) = commands.recv().await {
                    return (key.participant, source);
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(asked, (ParticipantId(1), TrackSource::Camera));
        tokio::time::sleep(FLUSH_EVERY + Duration::from_millis(300)).await;
        let dir = store.dir(recorder.id());
        let manifest = read_manifest(&dir).unwrap();
        let files: Vec<&str> = manifest.tracks.iter().map(|track| track.file.as_str()).collect();
        assert_eq!(files, ["1-microphone.webm", "1-camera.webm"]);
        assert!(manifest.tracks.iter().all(|track| track.bytes > 0 && track.first_ms == Some(0)), "{manifest:?}");
        let names: Vec<String> = manifest
            .events
            .iter()
            .filter_map(|event| match &event.what {
                manifest::Happening::Joined { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["Ann", "Bob"]);
        let spoke = manifest.events.iter().find(|event| event.what == manifest::Happening::Speaking);
        assert_eq!(spoke.map(|event| event.participant), Some(ParticipantId(1)), "{manifest:?}");

        // Far more than the quota (from the keyframe at frame 100 on): the recording stops by itself and says
        // why; the shard lets go of the room.
        for n in 30..400 {
            let _ = sink.try_send(packet(TrackSource::Camera, n, start));
            tokio::task::yield_now().await;
        }
        let finished = tokio::time::timeout(Duration::from_secs(5), finished).await.unwrap().unwrap();
        assert_eq!(finished.reason.as_deref(), Some("the recordings storage is full"));
        assert!(finished.bytes > 150_000 && finished.bytes < 200_000, "{}", finished.bytes);
        let stop = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(MediaCommand::Record { sink: None, recording, .. }) = commands.recv().await {
                    return recording;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(stop, finished.id);
        let manifest = read_manifest(&dir).unwrap();
        assert_eq!(manifest.stop_reason.as_deref(), Some("the recordings storage is full"));
        assert!(manifest.stopped_at_unix_ms.is_some());
        drop(recorder);
    }
}
