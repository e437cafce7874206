//! The keys a caller presses, from a trunk's bytes: RFC 4733 telephone-event payloads (a 4-byte RTP
//! timestamp, then the payload), SIP INFO bodies, and the same bytes as the trunk's audio packets (put back
//! in order, decoded as G.722 or Opus as the first byte says, listened to for keypad tones). Nothing a trunk sends may panic the gateway.
#![no_main]

use convene_media::phone::{
    dtmf::{KeyReader, info_key},
    reorder::Reorder,
    sdp::Codec,
    tones::InbandKeys,
    voice::{NARROW_FRAME, Voice},
};
use libfuzzer_sys::fuzz_target;

fn is_key(key: char) -> bool {
    key.is_ascii_digit() || "*#ABCD".contains(key)
}

fuzz_target!(|data: &[u8]| {
    let mut reader = KeyReader::default();
    for packet in data.chunks(8) {
        let (timestamp, payload) = packet.split_at(packet.len().min(4));
        let timestamp = u32::from_be_bytes(<[u8; 4]>::try_from(timestamp).unwrap_or_default());
        if let Some(key) = reader.on_packet(timestamp, payload) {
            assert!(is_key(key));
        }
    }
    if let Some(key) = info_key(&String::from_utf8_lossy(data)) {
        assert!(is_key(key));
    }
    let codec = if data.first().is_some_and(|byte| byte & 0x80 != 0) { Codec::Opus } else { Codec::G722 };
    let (mut reorder, mut voice, mut samples) = (Reorder::default(), Voice::new(codec), Vec::new());
    for (index, packet) in data.chunks(40).enumerate() {
        let sequence = u16::from_be_bytes([packet[0], packet.get(1).copied().unwrap_or_default()]);
        reorder.push((u32::from(packet[0] & 1), sequence), 9, (index * NARROW_FRAME) as u32, packet);
        while let Some(ordered) = reorder.pop() {
            voice.decode(&ordered.payload, &mut samples);
        }
    }
    let mut inband = InbandKeys::default();
    let mut narrow = [0; NARROW_FRAME];
    for frame in samples.chunks_exact(voice.frame()) {
        if let Some(key) = inband.on_frame(voice.to_narrow(frame, &mut narrow)) {
            assert!(is_key(key));
        }
    }
});
