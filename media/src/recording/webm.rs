//! A minimal WebM (Matroska) writer, in live mode as browsers' MediaRecorder writes (a recording's one-track
//! files, a live stream's several tracks):
//! the Segment and each Cluster have unknown sizes, so the file is only ever appended to and a file cut off
//! anywhere still plays up to its last whole block. Opus and VP8 make WebM; H.264 makes Matroska with the
//! parameter sets of its first keyframe as `avcC`.
//!
//! EBML is written by hand: the handful of elements needed here are an id, a size and a body each.

/// How the track's frames are coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackFormat {
    /// Opus at 48 kHz.
    Opus {
        /// Channels (2 for stereo decoding of any Opus stream).
        channels: u8,
    },
    /// VP8, from its first keyframe's size.
    Vp8 {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// H.264 in length-prefixed NAL units, with the `avcC` record its decoder needs.
    H264 {
        /// The AVC decoder configuration record (ISO 14496-15 §5.2.4.1).
        avc_config: Vec<u8>,
    },
}

impl TrackFormat {
    /// H.264's format from a keyframe in length-prefixed NAL units (4-byte lengths): its first sequence and
    /// picture parameter sets make the `avcC` record. `None` when the frame has not both.
    pub fn h264(frame: &[u8]) -> Option<Self> {
        const SPS: u8 = 7;
        const PPS: u8 = 8;
        let (mut sps, mut pps) = (None, None);
        let mut rest = frame;
        while let [a, b, c, d, body @ ..] = rest {
            let length = usize::try_from(u32::from_be_bytes([*a, *b, *c, *d])).ok()?;
            let nal = body.get(..length)?;
            match nal.first().map(|header| header & 0x1f) {
                Some(SPS) if sps.is_none() => sps = Some(nal),
                Some(PPS) if pps.is_none() => pps = Some(nal),
                _ => {}
            }
            rest = &body[length..];
        }
        let (sps, pps) = (sps?, pps?);
        let [_, profile, compatibility, level, ..] = sps else { return None };
        let (profile, compatibility, level) = (*profile, *compatibility, *level);
        let mut avc_config = vec![1, profile, compatibility, level, 0xff, 0xe1];
        avc_config.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
        avc_config.extend_from_slice(sps);
        avc_config.push(1);
        avc_config.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
        avc_config.extend_from_slice(pps);
        Some(Self::H264 { avc_config })
    }

    fn is_video(&self) -> bool {
        !matches!(self, Self::Opus { .. })
    }
}

/// Element ids (Matroska's EBML schema).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
}

/// An element size that says "until the parent ends": the live mode's Segment and Clusters.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// A cluster's blocks are timed relative to it in 16 signed bits of milliseconds.
const MAX_CLUSTER_SPAN_MS: u64 = 30_000;
/// Audio clusters start this often, so a player can seek in sound alone.
const AUDIO_CLUSTER_MS: u64 = 5_000;
/// A video cluster starts at a keyframe once the current one is this old.
const VIDEO_CLUSTER_MS: u64 = 1_000;
/// Opus's decoder delay at 48 kHz (RFC 7845 §4.2: 3.75 ms ... 80 ms; libopus' usual 312 samples).
const OPUS_PRE_SKIP: u16 = 312;

/// Writes one Matroska file: one track for a recording, several for a live stream.
#[derive(Debug)]
pub struct WebmWriter {
    /// Each track's kind (video?) and when its last block was, once there is one; track `n` is at `n - 1`.
    tracks: Vec<(bool, Option<u64>)>,
    /// When the current cluster starts, once one has.
    cluster: Option<u64>,
}

impl WebmWriter {
    /// The writer of a one-track file, and the bytes that start it.
    pub fn new(format: &TrackFormat) -> (Self, Vec<u8>) {
        Self::with_tracks(std::slice::from_ref(format))
    }

    /// The writer, and the bytes that start the file: the EBML header, the Segment (of unknown size), its
    /// Info (millisecond timestamps) and Tracks, numbered from 1 in the order given (at most 126).
    pub fn with_tracks(formats: &[TrackFormat]) -> (Self, Vec<u8>) {
        let any_h264 = formats.iter().any(|format| matches!(format, TrackFormat::H264 { .. }));
        let doc_type: &[u8] = if any_h264 { b"matroska" } else { b"webm" };
        let mut header = Vec::new();
        let ebml = [
            uint(id::EBML_VERSION, 1),
            uint(id::EBML_READ_VERSION, 1),
            uint(id::EBML_MAX_ID_LENGTH, 4),
            uint(id::EBML_MAX_SIZE_LENGTH, 8),
            element(id::DOC_TYPE, doc_type),
            uint(id::DOC_TYPE_VERSION, 4),
            uint(id::DOC_TYPE_READ_VERSION, 2),
        ]
        .concat();
        header.extend(element(id::EBML, &ebml));
        header.extend(id_bytes(id::SEGMENT));
        header.extend(UNKNOWN_SIZE);
        let info = [
            uint(id::TIMESTAMP_SCALE, 1_000_000),
            element(id::MUXING_APP, b"convene"),
            element(id::WRITING_APP, b"convene"),
        ]
        .concat();
        header.extend(element(id::INFO, &info));
        let entries: Vec<u8> = formats
            .iter()
            .zip(1..=MAX_TRACKS)
            .flat_map(|(format, number)| element(id::TRACK_ENTRY, &track_entry(format, number)))
            .collect();
        header.extend(element(id::TRACKS, &entries));
        let tracks = formats.iter().take(usize::from(MAX_TRACKS)).map(|format| (format.is_video(), None)).collect();
        (Self { tracks, cluster: None }, header)
    }

    /// Appends to `out` what one frame of the first track at `at_ms` adds.
    pub fn frame(&mut self, at_ms: u64, keyframe: bool, data: &[u8], out: &mut Vec<u8>) {
        self.track_frame(1, at_ms, keyframe, data, out);
    }

    /// Appends to `out` what one frame of track `track` at `at_ms` adds: a new Cluster when one is due, then
    /// its SimpleBlock (nothing for a track the file does not have). A track's block times only increase:
    /// a frame at or before its last one (two frames in one millisecond, or a timeline that started again a
    /// little behind) is written a millisecond after it, as players and muxers refuse two frames at one time.
    pub fn track_frame(&mut self, track: u8, at_ms: u64, keyframe: bool, data: &[u8], out: &mut Vec<u8>) {
        let has_video = self.tracks.iter().any(|(video, _)| *video);
        let Some((video, last)) = self.tracks.get_mut(usize::from(track).wrapping_sub(1)) else { return };
        let video = *video;
        let at_ms = last.map_or(at_ms, |last| at_ms.max(last + 1));
        *last = Some(at_ms);
        let due = match self.cluster {
            None => true,
            // A block up to a cluster's span before it still fits (block times are signed): a track a little
            // behind the one that started the cluster goes in it.
            Some(start) => {
                let age = at_ms.saturating_sub(start);
                let interval = if has_video { VIDEO_CLUSTER_MS } else { AUDIO_CLUSTER_MS };
                age > MAX_CLUSTER_SPAN_MS
                    || start.saturating_sub(at_ms) > MAX_CLUSTER_SPAN_MS
                    || (age >= interval && ((video && keyframe) || !has_video))
            }
        };
        if due {
            out.extend(id_bytes(id::CLUSTER));
            out.extend(UNKNOWN_SIZE);
            out.extend(uint(id::TIMESTAMP, at_ms));
            self.cluster = Some(at_ms);
        }
        let start = self.cluster.unwrap_or(at_ms);
        let relative = i16::try_from(i128::from(at_ms) - i128::from(start)).unwrap_or(i16::MAX);
        // The track, the time within the cluster, and the keyframe flag (every Opus frame starts anew).
        let flags = if keyframe || !video { 0x80 } else { 0x00 };
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x80 | track);
        block.extend(relative.to_be_bytes());
        block.push(flags);
        block.extend_from_slice(data);
        out.extend(element(id::SIMPLE_BLOCK, &block));
    }
}

/// Tracks a file may have: their numbers are written in one byte.
const MAX_TRACKS: u8 = 126;

/// A TrackEntry's body.
fn track_entry(format: &TrackFormat, number: u8) -> Vec<u8> {
    let mut track = [
        uint(id::TRACK_NUMBER, u64::from(number)),
        uint(id::TRACK_UID, u64::from(number)),
        uint(id::TRACK_TYPE, if format.is_video() { 1 } else { 2 }),
    ]
    .concat();
    match format {
        TrackFormat::Opus { channels } => {
            track.extend(element(id::CODEC_ID, b"A_OPUS"));
            track.extend(element(id::CODEC_PRIVATE, &opus_head(*channels)));
            track.extend(uint(id::CODEC_DELAY, u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / 48_000));
            track.extend(uint(id::SEEK_PRE_ROLL, 80_000_000));
            let audio =
                [element(id::SAMPLING_FREQUENCY, &48_000f64.to_be_bytes()), uint(id::CHANNELS, u64::from(*channels))]
                    .concat();
            track.extend(element(id::AUDIO, &audio));
        }
        TrackFormat::Vp8 { width, height } => {
            track.extend(element(id::CODEC_ID, b"V_VP8"));
            let video = [uint(id::PIXEL_WIDTH, u64::from(*width)), uint(id::PIXEL_HEIGHT, u64::from(*height))].concat();
            track.extend(element(id::VIDEO, &video));
        }
        TrackFormat::H264 { avc_config } => {
            track.extend(element(id::CODEC_ID, b"V_MPEG4/ISO/AVC"));
            track.extend(element(id::CODEC_PRIVATE, avc_config));
        }
    }
    track
}

/// RFC 7845 §5.1: the Opus identification header, as Matroska's CodecPrivate for A_OPUS.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(channels);
    head.extend(OPUS_PRE_SKIP.to_le_bytes());
    head.extend(48_000u32.to_le_bytes());
    head.extend(0i16.to_le_bytes());
    head.push(0);
    head
}

/// An element id's bytes (the id carries its own length marker).
fn id_bytes(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|byte| **byte == 0).count().min(3);
    bytes[skip..].to_vec()
}

/// An element: id, size (as a variable-length integer) and body.
fn element(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    let size = body.len() as u64;
    // The shortest length whose all-ones value (reserved for "unknown") stays above the size.
    let length = (1..=8u32).find(|length| size < (1u64 << (7 * length)) - 1).unwrap_or(8);
    let marked = size | (1u64 << (7 * length));
    out.extend(&marked.to_be_bytes()[(8 - length as usize)..]);
    out.extend_from_slice(body);
    out
}

/// An unsigned integer element, in as few bytes as it takes.
fn uint(id: u32, value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|byte| **byte == 0).count().min(7);
    element(id, &bytes[skip..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_carry_their_sizes_in_the_shortest_form() {
        assert_eq!(element(0xA3, &[]), [0xA3, 0x80]);
        assert_eq!(element(0xA3, &[7; 126])[..2], [0xA3, 0xFE]);
        // 127 would read as "unknown" in one byte: two bytes it is.
        assert_eq!(element(0xA3, &[7; 127])[..3], [0xA3, 0x40, 0x7F]);
        assert_eq!(uint(0xE7, 0), [0xE7, 0x81, 0x00]);
        assert_eq!(uint(0x2A_D7B1, 1_000_000), [0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
        assert_eq!(id_bytes(id::SEGMENT), [0x18, 0x53, 0x80, 0x67]);
    }

    #[test]
    fn clusters_start_at_keyframes_every_second_and_before_block_times_overflow() {
        let (mut video, _) = WebmWriter::new(&TrackFormat::Vp8 { width: 640, height: 360 });
        let clusters = |writer: &mut WebmWriter, frames: &[(u64, bool)]| -> usize {
            frames
                .iter()
                .filter(|(at, keyframe)| {
                    let mut out = Vec::new();
                    writer.frame(*at, *keyframe, &[0], &mut out);
                    out.starts_with(&id_bytes(id::CLUSTER))
                })
                .count()
        };
        assert_eq!(clusters(&mut video, &[(0, true), (500, true), (900, false), (1200, false), (1300, true)]), 2);
        assert_eq!(clusters(&mut video, &[(40_000, false)]), 1, "the block time would overflow");
        let (mut audio, _) = WebmWriter::new(&TrackFormat::Opus { channels: 2 });
        let frames: Vec<(u64, bool)> = (0..600).map(|index| (index * 20, true)).collect();
        assert_eq!(clusters(&mut audio, &frames), 3, "12 s of sound: a cluster every 5 s");
    }

    #[test]
    fn block_times_only_increase() {
        let (mut video, _) = WebmWriter::new(&TrackFormat::Vp8 { width: 640, height: 360 });
        let mut times = Vec::new();
        for at in [0, 33, 33, 20, 66] {
            let mut out = Vec::new();
            video.frame(at, at == 0, &[0], &mut out);
            // The block's relative time is the 2 bytes after the SimpleBlock's id, size and track number.
            let block = out.len() - 5;
            times.push(i16::from_be_bytes([out[block + 1], out[block + 2]]));
        }
        assert_eq!(times, [0, 33, 34, 35, 66]);
    }

    #[test]
    fn h264_takes_its_decoder_configuration_from_a_keyframe() {
        let nal = |bytes: &[u8]| [&u32::try_from(bytes.len()).unwrap().to_be_bytes()[..], bytes].concat();
        let frame = [nal(&[0x67, 0x42, 0xC0, 0x1F, 0xAA]), nal(&[0x68, 0xCE]), nal(&[0x65, 0x88, 0x84])].concat();
        let Some(TrackFormat::H264 { avc_config }) = TrackFormat::h264(&frame) else { panic!("parameter sets") };
        assert_eq!(
            avc_config,
            [1, 0x42, 0xC0, 0x1F, 0xFF, 0xE1, 0, 5, 0x67, 0x42, 0xC0, 0x1F, 0xAA, 1, 0, 2, 0x68, 0xCE]
        );
        assert!(TrackFormat::h264(&nal(&[0x65, 0x88])).is_none(), "no parameter sets");
        assert!(TrackFormat::h264(&[0, 0, 0, 9, 0x67]).is_none(), "a length past the end");
    }
}
