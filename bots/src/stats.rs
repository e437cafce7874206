//! What a bot measures of the media it receives: per track counters, sequence and picture-id continuity, and
//! one-way delay (sender and receiver share a clock on one machine).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use convene_signal::{MediaKind, ParticipantId, TrackInfo, TrackSource};

use crate::payload::{self, AUDIO_LAYER, PICTURE_ID_MODULO};

/// Received sequence numbers remembered for duplicate detection (retransmissions after NACK).
const SEEN_WINDOW: u64 = 2048;
/// The last bytes kept of each of the latest video frames, and how many frames.
const FRAME_TAIL: usize = 16;
const FRAME_TAILS: usize = 16;

/// One-way delay histogram: 100 µs buckets up to 100 ms, then 1 ms buckets up to 5 s, then one overflow bucket.
const FINE_BUCKETS: usize = 1000;
const COARSE_BUCKETS: usize = 4900;

/// A bounded histogram of delays; histograms of many bots merge into one.
#[derive(Clone)]
pub struct DelayHistogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        Self { buckets: vec![0; FINE_BUCKETS + COARSE_BUCKETS + 1], count: 0 }
    }
}

impl std::fmt::Debug for DelayHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayHistogram")
            .field("count", &self.count)
            .field("p50_ms", &self.quantile_ms(0.5))
            .field("p99_ms", &self.quantile_ms(0.99))
            .finish()
    }
}

impl DelayHistogram {
    /// Samples so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
    }

    pub(crate) fn record(&mut self, delay_us: u64) {
        let index = if delay_us < 100_000 {
            usize::try_from(delay_us / 100).unwrap_or(0)
        } else {
            FINE_BUCKETS + usize::try_from((delay_us - 100_000) / 1000).unwrap_or(usize::MAX).min(COARSE_BUCKETS)
        };
        if let Some(bucket) = self.buckets.get_mut(index) {
            *bucket += 1;
            self.count += 1;
        }
    }

    /// The delay below which `quantile` (0..=1) of the samples fall, in milliseconds (a bucket's upper edge).
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The rank of the sample wanted, 1-based; float to int is saturating.
        let rank = ((quantile.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(if index < FINE_BUCKETS {
                    (index + 1) as f64 / 10.0
                } else {
                    100.0 + (index - FINE_BUCKETS + 1) as f64
                });
            }
        }
        None
    }
}

/// Continuity of one RTP stream.
#[derive(Debug, Default)]
struct Sequence {
    /// Extended (wrap-free) numbers: the first and highest received.
    base: Option<u64>,
    highest: u64,
    unique: u64,
    /// Bit `n % SEEN_WINDOW` set: extended number `n` was received (for numbers within the window).
    seen: Vec<u64>,
    last_timestamp: u32,
    last_picture_id: Option<u16>,
}

/// How a packet relates to those before it.
#[derive(Debug, PartialEq, Eq)]
enum Arrival {
    /// Newer than everything so far.
    InOrder,
    /// Older than the highest, not seen before: it fills a gap.
    Late,
    /// Seen before (a retransmission), or too old to tell.
    Duplicate,
}

impl Sequence {
    fn extend(&self, seq: u16) -> u64 {
        if self.base.is_none() {
            return u64::from(seq) + (1 << 16); // room below for late packets
        }
        let highest = self.highest;
        let delta = seq.wrapping_sub(highest as u16) as i16;
        highest.saturating_add_signed(i64::from(delta))
    }

    fn bit(&mut self, ext: u64) -> (usize, u64) {
        if self.seen.is_empty() {
            self.seen = vec![0; usize::try_from(SEEN_WINDOW / 64).unwrap_or(32)];
        }
        let slot = ext % SEEN_WINDOW;
        (usize::try_from(slot / 64).unwrap_or(0), 1 << (slot % 64))
    }

    fn arrive(&mut self, seq: u16) -> Arrival {
        let ext = self.extend(seq);
        let Some(base) = self.base else {
            self.base = Some(ext);
            self.highest = ext;
            self.unique = 1;
            let (word, mask) = self.bit(ext);
            self.seen[word] |= mask;
            return Arrival::InOrder;
        };
        if ext > self.highest {
            // Forget the numbers skipped over (they may have been set a window ago).
            for skipped in (self.highest + 1).max(ext.saturating_sub(SEEN_WINDOW))..ext {
                let (word, mask) = self.bit(skipped);
                self.seen[word] &= !mask;
            }
            let (word, mask) = self.bit(ext);
            self.seen[word] |= mask;
            self.highest = ext;
            self.unique += 1;
            return Arrival::InOrder;
        }
        if ext < base || self.highest - ext >= SEEN_WINDOW {
            return Arrival::Duplicate;
        }
        let (word, mask) = self.bit(ext);
        if self.seen[word] & mask != 0 {
            return Arrival::Duplicate;
        }
        self.seen[word] |= mask;
        self.unique += 1;
        Arrival::Late
    }

    fn gaps(&self) -> u64 {
        // After a reset the base is one past the highest: nothing expected yet.
        self.base.map_or(0, |base| (self.highest + 1).saturating_sub(base).saturating_sub(self.unique))
    }
}

/// Counters of one received track (one m-line, or one simulcast layer when a peer sends several).
#[derive(Debug, Default)]
pub(crate) struct TrackCounters {
    kind: Option<MediaKind>,
    ssrc: u32,
    packets: u64,
    bytes: u64,
    bot_packets: u64,
    layer: Option<u8>,
    layer_switches: u64,
    keyframes: u64,
    frames: u64,
    audio_level: Option<u8>,
    /// Gaps of streams this track had before (a new SSRC on the same m-line starts a new sequence).
    past_gaps: u64,
    pid_discontinuities: u64,
    ts_backwards: u64,
    sequence: Sequence,
    frame_tails: VecDeque<Vec<u8>>,
}

/// Everything a bot measured, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// By m-line and RID, in a list: a bot receives a few dozen tracks at most, and every packet received
    /// finds its own, which a scan does without allocating its key.
    tracks: Vec<(String, String, TrackCounters)>,
    delay: DelayHistogram,
    first_media_us: Option<u64>,
}

/// A received packet, reduced to what the stats need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received<'a> {
    pub(crate) kind: MediaKind,
    pub(crate) ssrc: u32,
    pub(crate) sequence_number: u16,
    pub(crate) timestamp: u32,
    pub(crate) payload: &'a [u8],
    /// The audio-level extension's level (0 loudest, 127 silence), when the packet has one.
    pub(crate) audio_level: Option<u8>,
    /// The RTP marker bit: the last packet of a video frame.
    pub(crate) marker: bool,
    pub(crate) now_us: u64,
}

impl Recorder {
    /// A new stream on an m-line (`rid` is empty unless the peer sends simulcast).
    pub(crate) fn start_track(&mut self, mid: &str, rid: &str, kind: MediaKind, ssrc: u32) {
        let track = self.track(mid, rid);
        track.kind = Some(kind);
        if track.ssrc != ssrc {
            track.past_gaps += track.sequence.gaps();
            track.sequence = Sequence::default();
            track.ssrc = ssrc;
        }
    }

    /// The track's counters, made on its first packet.
    fn track(&mut self, mid: &str, rid: &str) -> &mut TrackCounters {
        let index = match self.tracks.iter().position(|(m, r, _)| m == mid && r == rid) {
            Some(index) => index,
            None => {
                self.tracks.push((mid.to_owned(), rid.to_owned(), TrackCounters::default()));
                self.tracks.len() - 1
            }
        };
        &mut self.tracks[index].2
    }

    pub(crate) fn record(&mut self, mid: &str, rid: &str, packet: Received<'_>) {
        let track = self.track(mid, rid);
        track.kind = Some(packet.kind);
        if track.ssrc != packet.ssrc && track.packets > 0 {
            track.past_gaps += track.sequence.gaps();
            track.sequence = Sequence::default();
        }
        track.ssrc = packet.ssrc;
        track.packets += 1;
        track.bytes += packet.payload.len() as u64;
        let arrival = track.sequence.arrive(packet.sequence_number);
        if packet.audio_level.is_some() {
            track.audio_level = packet.audio_level;
        }
        if arrival == Arrival::InOrder {
            let previous = track.sequence.last_timestamp;
            if track.sequence.unique > 1 && (packet.timestamp.wrapping_sub(previous) as i32) < 0 {
                track.ts_backwards += 1;
            }
            track.sequence.last_timestamp = packet.timestamp;
        }
        if packet.kind == MediaKind::Video && packet.marker && arrival != Arrival::Duplicate {
            let tail = packet.payload.len().saturating_sub(FRAME_TAIL);
            track.frame_tails.push_back(packet.payload[tail..].to_vec());
            if track.frame_tails.len() > FRAME_TAILS {
                track.frame_tails.pop_front();
            }
        }
        let (trailer, layer) = match packet.kind {
            MediaKind::Audio => {
                let trailer = payload::parse_audio(packet.payload);
                (trailer, trailer.map(|_| AUDIO_LAYER))
            }
            MediaKind::Video => {
                let info = payload::parse_vp8(packet.payload);
                if let Some(info) = info.filter(|info| info.frame_start && arrival != Arrival::Duplicate) {
                    track.frames += 1;
                    track.keyframes += u64::from(info.keyframe == Some(true));
                    if let Some(picture_id) = info.picture_id {
                        if let Some(last) = track.sequence.last_picture_id
                            && arrival == Arrival::InOrder
                            && picture_id != (last + 1) % PICTURE_ID_MODULO
                        {
                            track.pid_discontinuities += 1;
                        }
                        if arrival == Arrival::InOrder {
                            track.sequence.last_picture_id = Some(picture_id);
                        }
                    }
                }
                let trailer = info.and_then(|info| info.trailer);
                (trailer, trailer.map(|trailer| trailer.layer))
            }
        };
        let Some(trailer) = trailer else { return };
        track.bot_packets += 1;
        if let Some(layer) = layer {
            if track.layer.is_some_and(|last| last != layer) {
                track.layer_switches += 1;
            }
            track.layer = Some(layer);
        }
        if arrival != Arrival::Duplicate {
            self.delay.record(packet.now_us.saturating_sub(trailer.sent_us));
        }
        self.first_media_us.get_or_insert(packet.now_us);
    }

    /// Forgets the counters, keeping the streams' continuity state (so a reset causes no false gaps).
    pub(crate) fn reset(&mut self) {
        for (_, _, track) in &mut self.tracks {
            let sequence = std::mem::take(&mut track.sequence);
            *track = TrackCounters {
                kind: track.kind,
                ssrc: track.ssrc,
                layer: track.layer,
                audio_level: track.audio_level,
                sequence: Sequence {
                    base: sequence.base.map(|_| sequence.highest + 1),
                    highest: sequence.highest,
                    unique: 0,
                    ..sequence
                },
                ..TrackCounters::default()
            };
        }
        self.delay = DelayHistogram::default();
    }

    pub(crate) fn snapshot(&self, mapping: &[TrackInfo]) -> (Vec<TrackStats>, DelayHistogram) {
        let mut tracks: Vec<TrackStats> = self
            .tracks
            .iter()
            .map(|(mid, rid, track)| {
                let info = mapping.iter().find(|info| &info.mid == mid);
                TrackStats {
                    mid: mid.clone(),
                    rid: (!rid.is_empty()).then(|| rid.clone()),
                    participant: info.map(|info| info.participant),
                    source: info.map(|info| info.source),
                    kind: track.kind.unwrap_or(MediaKind::Video),
                    ssrc: track.ssrc,
                    packets: track.packets,
                    bytes: track.bytes,
                    bot_packets: track.bot_packets,
                    layer: track.layer,
                    layer_switches: track.layer_switches,
                    frames: track.frames,
                    keyframes: track.keyframes,
                    seq_gaps: track.past_gaps + track.sequence.gaps(),
                    pid_discontinuities: track.pid_discontinuities,
                    ts_backwards: track.ts_backwards,
                    audio_level: track.audio_level,
                    frame_tails: track.frame_tails.iter().cloned().collect(),
                }
            })
            .collect();
        tracks.sort_by(|a, b| (&a.mid, &a.rid).cmp(&(&b.mid, &b.rid)));
        (tracks, self.delay.clone())
    }
}

/// What a bot reports: `mapping` says whose media each mid carries; `time_to_join` counts from `joining_us`.
pub(crate) fn bot_stats(
    recorder: &Mutex<Recorder>,
    id: Option<ParticipantId>,
    mapping: &[TrackInfo],
    joining_us: u64,
    sent: SendStats,
) -> BotStats {
    let Ok(recorder) = recorder.lock() else {
        return BotStats::new(id, None, Vec::new(), &DelayHistogram::default(), sent);
    };
    let (tracks, delay) = recorder.snapshot(mapping);
    let time_to_join = recorder.first_media_us.map(|us| Duration::from_micros(us.saturating_sub(joining_us)));
    BotStats::new(id, time_to_join, tracks, &delay, sent)
}

/// The one-way delays of what a bot received, to merge with other bots'.
pub(crate) fn delays(recorder: &Mutex<Recorder>) -> DelayHistogram {
    recorder.lock().map(|recorder| recorder.snapshot(&[]).1).unwrap_or_default()
}

/// Starts a bot's received counters and delay histogram afresh (to measure a window).
pub(crate) fn reset(recorder: &Mutex<Recorder>) {
    if let Ok(mut recorder) = recorder.lock() {
        recorder.reset();
    }
}

/// What a bot received on one track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackStats {
    /// The m-line.
    pub mid: String,
    /// The simulcast layer's RID, when the sender sent simulcast on this m-line (never from an SFU).
    pub rid: Option<String>,
    /// Whose media it is, from the node's latest `tracks`.
    pub participant: Option<ParticipantId>,
    /// Microphone, camera or screen, from the node's latest `tracks`.
    pub source: Option<TrackSource>,
    /// Audio or video.
    pub kind: MediaKind,
    /// The SSRC last seen.
    pub ssrc: u32,
    /// RTP packets received, retransmissions included.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Packets that carried a bot trailer.
    pub bot_packets: u64,
    /// The layer of the last bot packet: 0 (q), 1 (h), 2 (f), 3 (audio).
    pub layer: Option<u8>,
    /// How often the layer changed.
    pub layer_switches: u64,
    /// Video frames started (first packets seen).
    pub frames: u64,
    /// Keyframes started.
    pub keyframes: u64,
    /// Sequence numbers never received within the received range.
    pub seq_gaps: u64,
    /// Frames whose picture id was not the previous frame's plus one.
    pub pid_discontinuities: u64,
    /// In-order packets whose RTP timestamp went backwards.
    pub ts_backwards: u64,
    /// The last audio level received (RFC 6464: 0 loudest, 127 silence; bots send 25 speaking, 127 silent).
    pub audio_level: Option<u8>,
    /// The last bytes of the latest video frames, oldest first (what an end-to-end encrypted frame ends
    /// with: its IV and key index).
    pub frame_tails: Vec<Vec<u8>>,
}

/// What a bot sent (its own publication).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Video frames sent per layer (q, h, f).
    pub frames: [u64; 3],
    /// Keyframes sent per layer.
    pub keyframes: [u64; 3],
    /// PLI or FIR received per layer.
    pub keyframe_requests: [u64; 3],
    /// RTP packets handed to webrtc-rs (video and audio).
    pub packets: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Audio packets among them.
    pub audio_packets: u64,
}

/// A snapshot of a bot's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct BotStats {
    /// The bot's id in the room, once welcomed.
    pub id: Option<ParticipantId>,
    /// From sending `hello` to the first bot media packet received.
    pub time_to_join: Option<Duration>,
    /// Per received track, ordered by mid.
    pub tracks: Vec<TrackStats>,
    /// RTP packets received, all tracks.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Audio packets received.
    pub audio_packets: u64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Layer switches, all tracks.
    pub layer_switches: u64,
    /// Sequence gaps, all tracks.
    pub seq_gaps: u64,
    /// Picture-id discontinuities, all tracks.
    pub pid_discontinuities: u64,
    /// Timestamps going backwards, all tracks.
    pub ts_backwards: u64,
    /// Gaps over packets expected: `seq_gaps / (packets + seq_gaps)`.
    pub loss: f64,
    /// One-way delay of bot packets, median, in milliseconds (0.1 ms resolution below 100 ms).
    pub delay_p50_ms: Option<f64>,
    /// One-way delay, 99th percentile, in milliseconds.
    pub delay_p99_ms: Option<f64>,
    /// What the bot sent.
    pub sent: SendStats,
}

impl BotStats {
    pub(crate) fn new(
        id: Option<ParticipantId>,
        time_to_join: Option<Duration>,
        tracks: Vec<TrackStats>,
        delay: &DelayHistogram,
        sent: SendStats,
    ) -> Self {
        let sum = |field: fn(&TrackStats) -> u64| tracks.iter().map(field).sum::<u64>();
        let packets = sum(|t| t.packets);
        let seq_gaps = sum(|t| t.seq_gaps);
        Self {
            id,
            time_to_join,
            packets,
            bytes: sum(|t| t.bytes),
            audio_packets: tracks.iter().filter(|t| t.kind == MediaKind::Audio).map(|t| t.packets).sum(),
            keyframes: sum(|t| t.keyframes),
            layer_switches: sum(|t| t.layer_switches),
            seq_gaps,
            pid_discontinuities: sum(|t| t.pid_discontinuities),
            ts_backwards: sum(|t| t.ts_backwards),
            loss: if packets + seq_gaps == 0 { 0.0 } else { seq_gaps as f64 / (packets + seq_gaps) as f64 },
            delay_p50_ms: delay.quantile_ms(0.5),
            delay_p99_ms: delay.quantile_ms(0.99),
            tracks,
            sent,
        }
    }

    /// The tracks of one participant.
    pub fn of(&self, participant: ParticipantId) -> impl Iterator<Item = &TrackStats> {
        self.tracks.iter().filter(move |track| track.participant == Some(participant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Vp8Frame, packetize_vp8};

    fn video(recorder: &mut Recorder, seq: u16, timestamp: u32, payload: &[u8]) {
        let packet = Received {
            kind: MediaKind::Video,
            ssrc: 1,
            sequence_number: seq,
            timestamp,
            payload,
            audio_level: None,
            marker: false,
            now_us: 2_000,
        };
        recorder.record("1", "", packet);
    }

    fn only(recorder: &Recorder) -> TrackStats {
        let (tracks, _) = recorder.snapshot(&[]);
        assert_eq!(tracks.len(), 1);
        tracks[0].clone()
    }

    #[test]
    fn gaps_are_counted_across_the_sequence_number_wrap_and_late_packets_fill_them() {
        let mut recorder = Recorder::default();
        for seq in [65530_u16, 65531, 65533, 65535, 0, 1, 4] {
            video(&mut recorder, seq, 0, &[]);
        }
        // Missing: 65532, 65534, 2, 3.
        assert_eq!(only(&recorder).seq_gaps, 4);
        video(&mut recorder, 65534, 0, &[]);
        video(&mut recorder, 65534, 0, &[]); // a retransmission
        let track = only(&recorder);
        assert_eq!((track.seq_gaps, track.packets), (3, 9));
        // A packet from before the first one is not counted against the range.
        video(&mut recorder, 65529, 0, &[]);
        assert_eq!(only(&recorder).seq_gaps, 3);
    }

    #[test]
    fn picture_id_discontinuities_layer_switches_and_backward_timestamps_are_seen() {
        let mut recorder = Recorder::default();
        let mut seq = 0_u16;
        let mut send = |recorder: &mut Recorder, layer: u8, picture_id: u16, timestamp: u32, keyframe: bool| {
            let frame = Vp8Frame { layer, picture_id, keyframe, width: 320, height: 180, frame: 0, size: 1500 };
            for payload in packetize_vp8(&frame, 1_000) {
                video(recorder, seq, timestamp, &payload);
                seq = seq.wrapping_add(1);
            }
        };
        send(&mut recorder, 0, 0x7ffe, 0, true);
        send(&mut recorder, 0, 0x7fff, 3000, false);
        send(&mut recorder, 1, 0, 6000, true); // wraps: continuous
        send(&mut recorder, 1, 2, 9000, false); // skips 1
        send(&mut recorder, 1, 3, 6000, false); // timestamp backwards
        let track = only(&recorder);
        assert_eq!(track.frames, 5);
        assert_eq!(track.keyframes, 2);
        assert_eq!(track.pid_discontinuities, 1);
        assert_eq!(track.ts_backwards, 1);
        assert_eq!((track.layer, track.layer_switches), (Some(1), 1));
        assert_eq!((track.packets, track.bot_packets, track.seq_gaps), (10, 10, 0));
        let (_, delay) = recorder.snapshot(&[]);
        assert_eq!(delay.quantile_ms(0.5), Some(1.1)); // 1 ms: the bucket [1.0, 1.1)
    }

    #[test]
    fn percentiles_come_from_bounded_buckets() {
        let mut histogram = DelayHistogram::default();
        assert_eq!(histogram.quantile_ms(0.5), None);
        for ms in 1..=100_u64 {
            histogram.record(ms * 1000 - 50);
        }
        assert_eq!(histogram.quantile_ms(0.5), Some(50.0));
        assert_eq!(histogram.quantile_ms(0.99), Some(99.0));
        histogram.record(10_000_000_000);
        assert_eq!(histogram.quantile_ms(1.0), Some(100.0 + 4901.0));
        assert_eq!(histogram.buckets.len(), FINE_BUCKETS + COARSE_BUCKETS + 1);
    }

    #[test]
    fn totals_and_loss_sum_the_tracks() {
        let mut recorder = Recorder::default();
        for seq in [10_u16, 11, 13] {
            video(&mut recorder, seq, 0, &[]);
        }
        let (tracks, delay) = recorder.snapshot(&[TrackInfo {
            mid: "1".to_owned(),
            participant: ParticipantId(9),
            source: TrackSource::Camera,
        }]);
        let stats = BotStats::new(None, None, tracks, &delay, SendStats::default());
        assert_eq!(stats.tracks[0].participant, Some(ParticipantId(9)));
        assert_eq!((stats.packets, stats.seq_gaps), (3, 1));
        assert!((stats.loss - 0.25).abs() < 1e-9);
        assert_eq!(stats.of(ParticipantId(9)).count(), 1);
        recorder.reset();
        assert_eq!(only(&recorder).seq_gaps, 0, "a window with nothing yet has no gaps");
        video(&mut recorder, 14, 0, &[]);
        let track = only(&recorder);
        assert_eq!((track.packets, track.seq_gaps), (1, 0));
    }
}
