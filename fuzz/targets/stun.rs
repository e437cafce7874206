//! The node's own STUN handling: answering binding requests on the media port (before any session knows
//! the sender) and reading the mapped address of a probe's answer.
#![no_main]

use std::net::SocketAddr;

use convene_media::stun::{self, MAX_REPLY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from = SocketAddr::from(([127, 0, 0, 2], 5000));
    let mut reply = [0u8; MAX_REPLY_LEN];
    if let Ok(length) = stun::answer_binding(data, from, &mut reply) {
        assert!(length <= MAX_REPLY_LEN);
    }
    let transaction = data.get(8..20).and_then(|id| <[u8; 12]>::try_from(id).ok()).unwrap_or_default();
    let _ = stun::mapped_address(data, &transaction);
});
