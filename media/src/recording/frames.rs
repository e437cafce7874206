//! One recorded track's RTP packets put back into media frames: in sequence order (a small reorder window;
//! duplicates, latecomers and padding dropped, a gap that does not fill declared lost, a sender that numbers
//! afresh followed), a video frame from every packet of its timestamp up to the marker bit (a frame missing a
//! packet is dropped, and so is everything after it until the next keyframe), an Opus packet as one frame.
//! Frames are timed by their RTP timestamps from the first one's arrival, and again from arrival after a new
//! stream or a jump.
//!
//! Everything here comes from a sender: buffers are bounded and no input can panic.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use str0m::{
    format::CodecExtra,
    unversioned::{Depacketizer, H264Depacketizer, Vp8Depacketizer},
};

/// Packets held waiting for an earlier one.
const MAX_PENDING: usize = 128;
/// How long a gap may stay open before what is missing counts as lost.
const REORDER_WINDOW: Duration = Duration::from_millis(200);
/// A packet this far behind the next expected one is not late: the sender numbers afresh.
const MAX_MISORDER: u64 = 1_000;
/// The largest frame kept; a larger one is dropped (no camera sends one).
const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Frames put together but not yet taken.
const MAX_READY: usize = 256;
/// A timestamp this far from the arrival time starts a new timeline (a sender that restarted its clock).
const MAX_DRIFT: Duration = Duration::from_secs(10);

/// A recorded track's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackCodec {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// H.264 video.
    H264,
}

impl TrackCodec {
    fn clock_rate(self) -> u64 {
        match self {
            Self::Opus => 48_000,
            Self::Vp8 | Self::H264 => 90_000,
        }
    }

    fn is_video(self) -> bool {
        self != Self::Opus
    }
}

/// A whole media frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When it belongs, since the recording started.
    pub at: Duration,
    /// A video frame that decoding can start at (every audio frame is).
    pub keyframe: bool,
    /// The frame: Opus as sent, VP8 as RFC 6386 frames, H.264 as NAL units with 4-byte big-endian lengths
    /// (AVC, as Matroska stores them).
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Packet {
    timestamp: u64,
    marker: bool,
    payload: Vec<u8>,
    arrived: Duration,
}

/// Puts one track's packets back into frames.
#[derive(Debug)]
pub struct FrameAssembler {
    codec: TrackCodec,
    /// Packets received ahead of the next expected one, by extended sequence number.
    pending: BTreeMap<u64, Packet>,
    /// The extended sequence number expected next.
    next_seq: Option<u64>,
    /// The latest extended sequence number and RTP timestamp, to extend the next ones from.
    last_seq: Option<u64>,
    last_timestamp: Option<u64>,
    /// The video frame being put together, packet by packet, and its payload bytes.
    partial: Vec<Packet>,
    partial_bytes: usize,
    ready: VecDeque<Frame>,
    /// RTP time and arrival of the timeline's start.
    anchor: Option<(u64, Duration)>,
    last_at: Duration,
    /// Video frames are dropped until a keyframe.
    waiting_for_keyframe: bool,
    /// Media was dropped while waiting for a keyframe.
    starved: bool,
}

impl FrameAssembler {
    /// An assembler for a track of `codec`.
    pub fn new(codec: TrackCodec) -> Self {
        Self {
            codec,
            pending: BTreeMap::new(),
            next_seq: None,
            last_seq: None,
            last_timestamp: None,
            partial: Vec::new(),
            partial_bytes: 0,
            ready: VecDeque::new(),
            anchor: None,
            last_at: Duration::ZERO,
            waiting_for_keyframe: codec.is_video(),
            starved: false,
        }
    }

    /// One RTP packet; `arrived` is its arrival time as an offset from the recording's start.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8], arrived: Duration) {
        let mut extended_seq = extend(self.last_seq, u64::from(seq), 16);
        if self.next_seq.is_some_and(|next| next.saturating_sub(extended_seq) > MAX_MISORDER) {
            self.restart_numbering();
            self.lost();
            extended_seq = u64::from(seq);
        }
        let timestamp = extend(self.last_timestamp, u64::from(timestamp), 32);
        self.last_seq = Some(self.last_seq.map_or(extended_seq, |last| last.max(extended_seq)));
        self.last_timestamp = Some(timestamp);
        let next = *self.next_seq.get_or_insert(extended_seq);
        if extended_seq < next || self.pending.contains_key(&extended_seq) {
            return;
        }
        self.pending.insert(extended_seq, Packet { timestamp, marker, payload: payload.to_vec(), arrived });
        self.drain(arrived);
    }

    /// The next complete frame, in order.
    pub fn pop(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// The sender's stream changed (another simulcast layer or SSRC): sequence numbers and RTP timestamps
    /// start afresh, timing starts again from arrival, and video waits for a keyframe.
    pub fn new_stream(&mut self) {
        self.restart_numbering();
        self.anchor = None;
        self.waiting_for_keyframe = self.codec.is_video();
    }

    /// Video only: data was lost since the last keyframe, so frames are dropped until one comes; the
    /// recorder asks the sender for one.
    pub fn needs_keyframe(&self) -> bool {
        self.waiting_for_keyframe && self.starved
    }

    fn restart_numbering(&mut self) {
        self.pending.clear();
        self.clear_partial();
        self.next_seq = None;
        self.last_seq = None;
        self.last_timestamp = None;
    }

    /// Moves the packets that are in order (or whose gap has waited long enough) into frames.
    fn drain(&mut self, now: Duration) {
        loop {
            let Some(next) = self.next_seq else { return };
            if let Some(packet) = self.pending.remove(&next) {
                self.next_seq = Some(next + 1);
                self.take(packet);
                continue;
            }
            let Some((&first, oldest)) = self.pending.first_key_value() else { return };
            let waited = now.saturating_sub(oldest.arrived) >= REORDER_WINDOW;
            if self.pending.len() < MAX_PENDING && !waited {
                return;
            }
            // What is missing is lost: go on from what came after it.
            self.next_seq = Some(first);
            self.lost();
        }
    }

    /// Media was lost: the frame being put together goes, and video waits for a keyframe.
    fn lost(&mut self) {
        self.clear_partial();
        if self.codec.is_video() {
            self.waiting_for_keyframe = true;
            self.starved = true;
        }
    }

    fn clear_partial(&mut self) {
        self.partial.clear();
        self.partial_bytes = 0;
    }

    fn take(&mut self, packet: Packet) {
        // Padding: it only fills its place in the sequence.
        if packet.payload.is_empty() {
            return;
        }
        if !self.codec.is_video() {
            self.emit(packet.timestamp, packet.arrived, true, packet.payload);
            return;
        }
        // A new timestamp before the marker: the sender left the last frame without one; it was whole.
        if self.partial.last().is_some_and(|last| last.timestamp != packet.timestamp) {
            self.complete();
        }
        self.partial_bytes += packet.payload.len();
        let marker = packet.marker;
        self.partial.push(packet);
        // A frame that never ends (no marker, one timestamp) is not kept growing.
        if self.partial_bytes > MAX_FRAME_BYTES {
            self.lost();
        } else if marker {
            self.complete();
        }
    }

    /// Unpacks the video frame put together so far.
    fn complete(&mut self) {
        let packets = std::mem::take(&mut self.partial);
        self.partial_bytes = 0;
        let Some(first) = packets.first() else { return };
        let (timestamp, arrived) = (first.timestamp, first.arrived);
        let unpacked = match self.codec {
            TrackCodec::Vp8 => unpack(Vp8Depacketizer::default(), &packets),
            TrackCodec::H264 => unpack(avc_depacketizer(), &packets),
            TrackCodec::Opus => None,
        };
        // A frame whose start went with a loss, or that does not parse, cannot be decoded.
        let Some((data, keyframe)) = unpacked else {
            self.lost();
            return;
        };
        if self.waiting_for_keyframe && !keyframe {
            self.starved = true;
            return;
        }
        self.waiting_for_keyframe = false;
        self.starved = false;
        self.emit(timestamp, arrived, keyframe, data);
    }

    fn emit(&mut self, timestamp: u64, arrived: Duration, keyframe: bool, data: Vec<u8>) {
        let at = self.time_of(timestamp, arrived);
        if self.ready.len() >= MAX_READY {
            // Nobody takes frames: this one goes, as a full queue upstream would drop packets.
            self.lost();
            return;
        }
        self.ready.push_back(Frame { at, keyframe, data });
    }

    /// When a frame with RTP time `timestamp` that arrived at `arrived` belongs: on the timeline its RTP
    /// clock gives, started afresh at arrival when there is none or it strayed; never before the last.
    fn time_of(&mut self, timestamp: u64, arrived: Duration) -> Duration {
        let clock = self.codec.clock_rate();
        let duration_of = |ticks: u64| Duration::from_micros(ticks.saturating_mul(1_000_000) / clock);
        let on_timeline = self.anchor.and_then(|(start, start_at)| {
            let at = match timestamp.checked_sub(start) {
                Some(ahead) => start_at.checked_add(duration_of(ahead)),
                None => start_at.checked_sub(duration_of(start - timestamp)),
            }?;
            (at.abs_diff(arrived) <= MAX_DRIFT).then_some(at)
        });
        let at = on_timeline.unwrap_or_else(|| {
            self.anchor = Some((timestamp, arrived));
            arrived
        });
        self.last_at = self.last_at.max(at);
        self.last_at
    }
}

/// A video frame's payload and whether it is a keyframe, from all its packets in order; `None` when it
/// does not start at the start of a frame or does not parse. A fresh depacketizer per frame: nothing a
/// broken frame left behind reaches the next.
fn unpack(mut depacketizer: impl Depacketizer, packets: &[Packet]) -> Option<(Vec<u8>, bool)> {
    if !depacketizer.is_partition_head(&packets.first()?.payload) {
        return None;
    }
    let mut data = Vec::with_capacity(packets.iter().map(|packet| packet.payload.len()).sum());
    let mut extra = CodecExtra::None;
    for packet in packets {
        depacketizer.depacketize(&packet.payload, &mut data, &mut extra).ok()?;
    }
    let keyframe = match extra {
        CodecExtra::Vp8(extra) => extra.is_keyframe,
        CodecExtra::H264(extra) => extra.is_keyframe,
        _ => false,
    };
    (!data.is_empty()).then_some((data, keyframe))
}

/// An H.264 depacketizer that writes length-prefixed NAL units, as Matroska stores them, not Annex B.
fn avc_depacketizer() -> H264Depacketizer {
    let mut depacketizer = H264Depacketizer::default();
    depacketizer.is_avc = true;
    depacketizer
}

/// Extends a `bits`-wide wrapping counter to 64 bits, nearest to the last value seen.
fn extend(last: Option<u64>, value: u64, bits: u32) -> u64 {
    let Some(last) = last else { return value };
    let cycle = 1u64 << bits;
    let candidate = (last & !(cycle - 1)) | value;
    let half = cycle / 2;
    if candidate + half < last {
        candidate + cycle
    } else if candidate > last + half && candidate >= cycle {
        candidate - cycle
    } else {
        candidate
    }
}

/// A VP8 keyframe's width and height (RFC 6386 §9.1: a 3-byte frame tag, the start code, then two 14-bit
/// sizes with 2-bit scales), or `None` for anything else.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let [tag, _, _, 0x9d, 0x01, 0x2a, width_low, width_high, height_low, height_high, ..] = frame else {
        return None;
    };
    if tag & 1 != 0 {
        return None;
    }
    let width = u16::from_le_bytes([*width_low, *width_high]) & 0x3fff;
    let height = u16::from_le_bytes([*height_low, *height_high]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A VP8 payload descriptor starting a partition (S bit), then a frame's first bytes: a keyframe tag
    /// and 640×360, or an interframe tag.
    fn vp8(keyframe: bool, start: bool, bytes: &[u8]) -> Vec<u8> {
        let mut payload = vec![if start { 0x10 } else { 0x00 }];
        if start {
            if keyframe {
                payload.extend_from_slice(&[0x50, 0x2c, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
            } else {
                payload.extend_from_slice(&[0x51, 0x2c, 0x00]);
            }
        }
        payload.extend_from_slice(bytes);
        payload
    }

    fn frames(assembler: &mut FrameAssembler) -> Vec<Frame> {
        std::iter::from_fn(|| assembler.pop()).collect()
    }

    #[test]
    fn opus_packets_come_out_in_order_once_each_timed_by_their_clock() {
        let mut opus = FrameAssembler::new(TrackCodec::Opus);
        // 20 ms apart in RTP time; 2 and 1 swapped, 2 repeated; the clock starts near its wrap.
        let base = u32::MAX - 960;
        for (seq, step) in [(0u16, 0u32), (2, 2), (1, 1), (2, 2), (3, 3)] {
            opus.push(seq, base.wrapping_add(step * 960), false, &[step as u8], Duration::from_millis(500) + MS * step);
        }
        let out = frames(&mut opus);
        assert_eq!(out.iter().map(|frame| frame.data[0]).collect::<Vec<_>>(), [0, 1, 2, 3]);
        let at: Vec<Duration> = out.iter().map(|frame| frame.at).collect();
        assert_eq!(at, [500, 520, 540, 560].map(|ms| ms * MS));
        assert!(!opus.needs_keyframe());
    }

    #[test]
    fn a_video_frame_missing_a_packet_is_dropped_and_the_next_keyframe_starts_again() {
        /// Sends a frame in three packets (the middle one lost if `skip_second`).
        fn send(video: &mut FrameAssembler, seq: &mut u16, frame: u32, keyframe: bool, skip_second: bool) {
            for part in 0..3u16 {
                let (start, marker) = (part == 0, part == 2);
                if !(skip_second && part == 1) {
                    let payload = vp8(keyframe, start, &[frame as u8; 100]);
                    video.push(*seq, frame * 3000, marker, &payload, MS * (frame * 33 + u32::from(part)));
                }
                *seq = seq.wrapping_add(1);
            }
        }
        let mut video = FrameAssembler::new(TrackCodec::Vp8);
        let mut seq = 0u16;
        // An interframe first cannot be decoded: dropped, and a keyframe is wanted.
        send(&mut video, &mut seq, 0, false, false);
        assert!(frames(&mut video).is_empty());
        assert!(video.needs_keyframe());
        send(&mut video, &mut seq, 1, true, false);
        send(&mut video, &mut seq, 2, false, false);
        let out = frames(&mut video);
        assert_eq!(out.iter().map(|frame| frame.keyframe).collect::<Vec<_>>(), [true, false]);
        assert_eq!(vp8_keyframe_size(&out[0].data), Some((640, 360)));
        assert_eq!(out[1].at - out[0].at, Duration::from_micros(33_333));
        // Frame 3 loses its middle packet; the gap is declared lost once the window passes.
        send(&mut video, &mut seq, 3, false, true);
        send(&mut video, &mut seq, 4, false, false);
        video.push(seq, 5 * 3000, true, &vp8(false, true, &[5]), MS * 400);
        seq = seq.wrapping_add(1);
        assert!(frames(&mut video).is_empty(), "nothing decodable after a loss");
        assert!(video.needs_keyframe());
        send(&mut video, &mut seq, 6, true, false);
        assert_eq!(frames(&mut video).iter().map(|frame| frame.keyframe).collect::<Vec<_>>(), [true]);
        assert!(!video.needs_keyframe());
    }

    #[test]
    fn a_new_stream_restarts_numbering_and_timing_from_arrival() {
        let mut video = FrameAssembler::new(TrackCodec::Vp8);
        video.push(100, 90_000, true, &vp8(true, true, &[1]), Duration::from_secs(1));
        video.new_stream();
        // Another layer: its own sequence and clock; its first frame belongs when it arrived.
        video.push(7, 5, true, &vp8(true, true, &[2]), Duration::from_secs(3));
        video.push(8, 3005, true, &vp8(false, true, &[3]), Duration::from_secs(3) + 40 * MS);
        let at: Vec<Duration> = frames(&mut video).iter().map(|frame| frame.at).collect();
        assert_eq!(
            at,
            [Duration::from_secs(1), Duration::from_secs(3), Duration::from_secs(3) + Duration::from_micros(33_333)]
        );
        // A clock that jumps far from the arrival time starts a new timeline; time never goes back.
        video.push(9, 3005 + 90_000 * 600, true, &vp8(false, true, &[4]), Duration::from_secs(4));
        video.push(10, 3005, true, &vp8(false, true, &[5]), Duration::from_secs(4) + MS);
        let later: Vec<Duration> = frames(&mut video).iter().map(|frame| frame.at).collect();
        assert_eq!(later[0], Duration::from_secs(4));
        assert!(later[1] >= later[0]);
    }

    #[test]
    fn buffers_stay_bounded_and_garbage_never_panics() {
        let mut video = FrameAssembler::new(TrackCodec::Vp8);
        video.push(0, 0, true, &vp8(true, true, &[0]), Duration::ZERO);
        // A gap that never fills, then thousands of packets behind it: at most MAX_PENDING wait.
        for seq in 2..3000u16 {
            video.push(seq, u32::from(seq) * 3000, true, &vp8(false, true, &[1]), Duration::ZERO);
            assert!(video.pending.len() <= MAX_PENDING);
        }
        let _ = frames(&mut video);
        // Junk payloads, empty payloads, huge frames.
        for (seq, payload) in [(5000u16, vec![]), (5001, vec![0xff; 3]), (5002, vec![0x10])] {
            video.push(seq, 1, true, &payload, Duration::from_secs(1));
        }
        // A frame that never ends, or ends too large, is dropped whole.
        let mut endless = FrameAssembler::new(TrackCodec::Vp8);
        for seq in 0..100u16 {
            endless.push(seq, 7, false, &vp8(seq == 0, seq == 0, &[0; 60_000]), Duration::ZERO);
            assert!(endless.partial.len() <= MAX_FRAME_BYTES / 60_000 + 1);
        }
        assert!(frames(&mut endless).is_empty() && endless.needs_keyframe());
        for codec in [TrackCodec::H264, TrackCodec::Opus] {
            let mut other = FrameAssembler::new(codec);
            for (seq, payload) in [(0u16, vec![]), (1, vec![28]), (2, vec![24, 0, 9]), (3, vec![0x7c, 0x85])] {
                other.push(seq, 0, true, &payload, Duration::ZERO);
            }
            let _ = frames(&mut other);
        }
        assert!(vp8_keyframe_size(&[0x50, 0x2c]).is_none() && vp8_keyframe_size(&[]).is_none());
    }

    #[test]
    fn video_packets_out_of_order_repeated_or_padding_still_make_whole_frames() {
        let mut video = FrameAssembler::new(TrackCodec::Vp8);
        let keyframe = [vp8(true, true, &[1, 2]), vp8(true, false, &[3, 4]), vp8(true, false, &[5])];
        for (seq, marker) in [(0u16, false), (2, true), (1, false), (1, false), (2, true)] {
            video.push(seq, 3000, marker, &keyframe[usize::from(seq)], MS * u32::from(seq));
        }
        // Padding takes a sequence number and carries nothing: no loss.
        video.push(3, 3000, false, &[], MS * 3);
        video.push(4, 6000, true, &vp8(false, true, &[6]), MS * 33);
        let out = frames(&mut video);
        assert_eq!(out.len(), 2);
        assert!(out[0].data.ends_with(&[1, 2, 3, 4, 5]) && out[0].keyframe && !out[1].keyframe);
        assert!(!video.needs_keyframe());
    }

    #[test]
    fn a_sender_numbering_afresh_is_followed_and_time_never_goes_back() {
        let mut opus = FrameAssembler::new(TrackCodec::Opus);
        opus.push(40_000, 96_000, false, &[1], MS * 100);
        opus.push(40_001, 96_960, false, &[2], MS * 120);
        // Far behind the sequence: not a latecomer but a restart; its clock went back a little.
        opus.push(20_000, 96_000, false, &[3], MS * 140);
        opus.push(20_001, 96_960 + 1920, false, &[4], MS * 160);
        let out = frames(&mut opus);
        assert_eq!(out.iter().map(|frame| frame.data[0]).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(out.iter().map(|frame| frame.at).collect::<Vec<_>>(), [100, 120, 120, 160].map(|ms| ms * MS));
    }

    #[test]
    fn frames_nobody_takes_stay_bounded() {
        let mut opus = FrameAssembler::new(TrackCodec::Opus);
        for seq in 0..2000u16 {
            opus.push(seq, u32::from(seq) * 960, false, &[0], MS * 20 * u32::from(seq));
        }
        assert_eq!(frames(&mut opus).len(), MAX_READY);
    }

    #[test]
    fn counters_extend_across_their_wrap_both_ways() {
        assert_eq!(extend(None, 5, 16), 5);
        assert_eq!(extend(Some(65_535), 2, 16), 65_538);
        assert_eq!(extend(Some(65_538), 65_534, 16), 65_534);
        assert_eq!(extend(Some(10), 65_530, 16), 65_530, "no negative numbers near the start");
        assert_eq!(extend(Some(u64::from(u32::MAX)), 10, 32), u64::from(u32::MAX) + 11);
    }
}
