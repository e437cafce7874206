//! The keys a caller presses, from a trunk's bytes: RFC 4733 telephone-event payloads (a 4-byte RTP
//! timestamp, then the payload) and SIP INFO bodies. Nothing a trunk sends may panic the gateway.
#![no_main]

use convene_media::phone::dtmf::{KeyReader, info_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = KeyReader::default();
    for packet in data.chunks(8) {
        let (timestamp, payload) = packet.split_at(packet.len().min(4));
        let timestamp = u32::from_be_bytes(<[u8; 4]>::try_from(timestamp).unwrap_or_default());
        if let Some(key) = reader.on_packet(timestamp, payload) {
            assert!(key.is_ascii_digit() || "*#ABCD".contains(key));
        }
    }
    if let Some(key) = info_key(&String::from_utf8_lossy(data)) {
        assert!(key.is_ascii_digit() || "*#ABCD".contains(key));
    }
});
