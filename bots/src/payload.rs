//! The synthetic media the bots send: VP8-shaped RTP payloads (a real payload descriptor and frame header, so
//! an SFU can find keyframes and rewrite picture ids) and Opus-shaped audio, each carrying a trailer that says
//! which layer, frame and packet it is and when it was sent.

use bytes::{BufMut, Bytes, BytesMut};

/// Marks a bot's packet: the trailer starts with it.
pub const MAGIC: [u8; 4] = *b"CNVB";
/// The layer byte of audio packets (video layers are 0, 1 and 2).
pub const AUDIO_LAYER: u8 = 3;
/// The largest RTP payload the bots send, in bytes.
pub const MAX_PAYLOAD: usize = 1100;
/// The trailer's size: magic, layer, send time, frame number, packet index.
pub const TRAILER_LEN: usize = 4 + 1 + 8 + 4 + 2;
/// Picture ids are 15 bits.
pub const PICTURE_ID_MODULO: u16 = 1 << 15;

/// The VP8 payload descriptor of the bots' packets: X, I and a 15-bit picture id.
const DESCRIPTOR_LEN: usize = 4;
/// The VP8 frame tag (3 bytes) and, on keyframes, the start code and dimensions (7 bytes).
const FRAME_TAG_LEN: usize = 3;
const KEYFRAME_HEADER_LEN: usize = 7;
/// The Opus TOC byte of a 20 ms CELT fullband frame (config 31, mono, one frame).
const OPUS_TOC: u8 = 0xf8;

/// What a bot's packet says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// 0 (q), 1 (h) or 2 (f) for video, [`AUDIO_LAYER`] for audio.
    pub layer: u8,
    /// When the frame was sent, in microseconds since the UNIX epoch.
    pub sent_us: u64,
    /// The frame number (the same across layers for the same captured frame).
    pub frame: u32,
    /// The packet's index within its frame.
    pub packet: u16,
}

impl Trailer {
    fn write(&self, buf: &mut BytesMut) {
        buf.put_slice(&MAGIC);
        buf.put_u8(self.layer);
        buf.put_u64(self.sent_us);
        buf.put_u32(self.frame);
        buf.put_u16(self.packet);
    }

    /// Reads a trailer at the start of `bytes`.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let bytes = bytes.get(..TRAILER_LEN)?;
        if bytes[..4] != MAGIC {
            return None;
        }
        let u64_at =
            |at: usize| bytes.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
        let u32_at =
            |at: usize| bytes.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
        let u16_at =
            |at: usize| bytes.get(at..at + 2).and_then(|b| <[u8; 2]>::try_from(b).ok()).map(u16::from_be_bytes);
        Some(Self { layer: bytes[4], sent_us: u64_at(5)?, frame: u32_at(13)?, packet: u16_at(17)? })
    }
}

/// One video frame of one layer, before packetisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Frame {
    /// 0 (q), 1 (h) or 2 (f).
    pub layer: u8,
    /// The layer's picture id for this frame (15 bits).
    pub picture_id: u16,
    /// A keyframe or a delta frame.
    pub keyframe: bool,
    /// The frame's width in pixels (written into keyframes).
    pub width: u16,
    /// The frame's height in pixels.
    pub height: u16,
    /// The frame number, shared by the layers.
    pub frame: u32,
    /// The VP8 bitstream's size in bytes (the descriptors come on top).
    pub size: usize,
}

/// Splits a frame into RTP payloads of at most [`MAX_PAYLOAD`] bytes, of as even a size as possible.
pub fn packetize_vp8(frame: &Vp8Frame, sent_us: u64) -> Vec<Bytes> {
    let chunk_max = MAX_PAYLOAD - DESCRIPTOR_LEN;
    let header_len = FRAME_TAG_LEN + if frame.keyframe { KEYFRAME_HEADER_LEN } else { 0 };
    // Every packet carries a trailer, the first also the frame header.
    let size = frame.size.max(header_len + TRAILER_LEN);
    let count = size.div_ceil(chunk_max).max(1);
    let (base, extra) = (size / count, size % count);
    let picture_id = frame.picture_id % PICTURE_ID_MODULO;
    let mut packets = Vec::with_capacity(count);
    for index in 0..count {
        let first = index == 0;
        let chunk = (base + usize::from(index < extra)).max(TRAILER_LEN + if first { header_len } else { 0 });
        let mut buf = BytesMut::with_capacity(DESCRIPTOR_LEN + chunk);
        // X=1, S=1 on the frame's first packet, partition index 0; then I=1 and the 15-bit picture id.
        buf.put_u8(if first { 0x90 } else { 0x80 });
        buf.put_u8(0x80);
        buf.put_u16(0x8000 | picture_id);
        if first {
            // The frame tag as real VP8 writes it: P (inverse keyframe), version 0, show_frame, then the first
            // partition's size (19 bits); the size is nominal.
            let partition = u32::try_from(chunk.min(0x7ffff)).unwrap_or(0x7ffff);
            let tag = u32::from(!frame.keyframe) | 0x10 | (partition << 5);
            buf.put_slice(&tag.to_le_bytes()[..3]);
            if frame.keyframe {
                buf.put_slice(&[0x9d, 0x01, 0x2a]);
                buf.put_u16_le(frame.width & 0x3fff);
                buf.put_u16_le(frame.height & 0x3fff);
            }
        }
        let packet = u16::try_from(index).unwrap_or(u16::MAX);
        Trailer { layer: frame.layer, sent_us, frame: frame.frame, packet }.write(&mut buf);
        buf.resize(DESCRIPTOR_LEN + chunk, 0);
        packets.push(buf.freeze());
    }
    packets
}

/// What a received VP8 payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Info {
    /// The first packet of a frame (S=1, partition 0).
    pub frame_start: bool,
    /// The picture id, when the descriptor has one (7 or 15 bits).
    pub picture_id: Option<u16>,
    /// On a frame's first packet: whether the frame is a keyframe.
    pub keyframe: Option<bool>,
    /// The bot trailer, when the packet is a bot's.
    pub trailer: Option<Trailer>,
}

/// Reads a VP8 RTP payload (RFC 7741 descriptor, then on a frame's first packet the frame tag). Never panics.
pub fn parse_vp8(payload: &[u8]) -> Option<Vp8Info> {
    let first = *payload.first()?;
    let mut at = 1;
    let mut picture_id = None;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            let b = *payload.get(at)?;
            at += 1;
            if b & 0x80 != 0 {
                picture_id = Some((u16::from(b & 0x7f) << 8) | u16::from(*payload.get(at)?));
                at += 1;
            } else {
                picture_id = Some(u16::from(b));
            }
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    let frame_start = first & 0x10 != 0 && first & 0x07 == 0;
    let mut keyframe = None;
    if frame_start {
        let is_key = payload.get(at)? & 0x01 == 0;
        keyframe = Some(is_key);
        at += FRAME_TAG_LEN + if is_key { KEYFRAME_HEADER_LEN } else { 0 };
    }
    let trailer = payload.get(at..).and_then(Trailer::read);
    Some(Vp8Info { frame_start, picture_id, keyframe, trailer })
}

/// One 20 ms audio packet of `size` bytes: a TOC byte, the trailer, padding.
pub fn audio_payload(size: usize, trailer: &Trailer) -> Bytes {
    let size = size.max(1 + TRAILER_LEN);
    let mut buf = BytesMut::with_capacity(size);
    buf.put_u8(OPUS_TOC);
    trailer.write(&mut buf);
    buf.resize(size, 0);
    buf.freeze()
}

/// The trailer of a bot's audio packet.
pub fn parse_audio(payload: &[u8]) -> Option<Trailer> {
    payload.get(1..).and_then(Trailer::read).filter(|trailer| trailer.layer == AUDIO_LAYER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(keyframe: bool, size: usize, picture_id: u16) -> Vp8Frame {
        Vp8Frame { layer: 1, picture_id, keyframe, width: 640, height: 360, frame: 42, size }
    }

    #[test]
    fn a_keyframe_is_split_evenly_with_real_vp8_headers_and_a_trailer_in_every_packet() {
        let packets = packetize_vp8(&frame(true, 5000, 0x1234), 1_700_000_000_000_000);
        assert_eq!(packets.len(), 5);
        assert!(packets.iter().all(|p| p.len() <= MAX_PAYLOAD));
        assert_eq!(packets.iter().map(|p| p.len() - DESCRIPTOR_LEN).sum::<usize>(), 5000);
        let first = &packets[0];
        assert_eq!(&first[..4], &[0x90, 0x80, 0x80 | 0x12, 0x34]);
        assert_eq!(first[4] & 0x01, 0, "keyframe bit");
        assert_eq!(&first[7..10], &[0x9d, 0x01, 0x2a]);
        assert_eq!(&first[10..14], &[0x80, 0x02, 0x68, 0x01]);
        assert_eq!(&packets[1][..4], &[0x80, 0x80, 0x92, 0x34]);
        for (index, packet) in packets.iter().enumerate() {
            let info = parse_vp8(packet).unwrap();
            assert_eq!(info.frame_start, index == 0);
            assert_eq!(info.picture_id, Some(0x1234));
            assert_eq!(info.keyframe, (index == 0).then_some(true));
            let trailer = info.trailer.unwrap();
            assert_eq!(
                trailer,
                Trailer { layer: 1, sent_us: 1_700_000_000_000_000, frame: 42, packet: u16::try_from(index).unwrap() }
            );
        }
    }

    #[test]
    fn a_delta_frame_has_the_inverse_keyframe_bit_set() {
        let packets = packetize_vp8(&frame(false, 300, 7), 5);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0][4] & 0x01, 1);
        let info = parse_vp8(&packets[0]).unwrap();
        assert_eq!(info.keyframe, Some(false));
        assert_eq!(info.trailer.unwrap().sent_us, 5);
    }

    #[test]
    fn picture_ids_are_fifteen_bits_and_tiny_frames_still_fit_their_headers() {
        let packets = packetize_vp8(&frame(true, 1, PICTURE_ID_MODULO + 3), 0);
        assert_eq!(parse_vp8(&packets[0]).unwrap().picture_id, Some(3));
        let packets = packetize_vp8(&frame(false, 0, PICTURE_ID_MODULO - 1), 0);
        assert_eq!(parse_vp8(&packets[0]).unwrap().picture_id, Some(0x7fff));
        assert!(parse_vp8(&packets[0]).unwrap().trailer.is_some());
    }

    #[test]
    fn audio_round_trips_and_foreign_or_short_payloads_are_ignored() {
        let trailer = Trailer { layer: AUDIO_LAYER, sent_us: 99, frame: 7, packet: 0 };
        let payload = audio_payload(100, &trailer);
        assert_eq!(payload.len(), 100);
        assert_eq!(parse_audio(&payload), Some(trailer));
        assert_eq!(parse_audio(&payload[..10]), None);
        assert_eq!(parse_audio(&[0xf8; 60]), None);
        assert_eq!(parse_vp8(&[]), None);
        assert_eq!(parse_vp8(&[0x90, 0x80]), None);
        // A browser's packet: descriptor and frame, no trailer.
        assert_eq!(parse_vp8(&[0x90, 0x80, 0x81, 0x00, 0x31, 0, 0, 0, 0]).unwrap().trailer, None);
        // 7-bit picture id, TL0PICIDX and TID present (as an SFU might forward them).
        let mut rewritten = vec![0x90, 0xe0, 0x05, 0x11, 0x22, 0x01, 0, 0];
        rewritten.extend_from_slice(&MAGIC);
        rewritten.extend_from_slice(&[2; TRAILER_LEN - 4]);
        let info = parse_vp8(&rewritten).unwrap();
        assert_eq!((info.picture_id, info.keyframe), (Some(5), Some(false)));
        assert_eq!(info.trailer.unwrap().layer, 2);
    }
}
