//! Session descriptions as the SFU takes them from signalling: a first offer, a renegotiation, and an
//! answer, in ordinary and end-to-end encrypted rooms, from participants who receive or only publish.
#![no_main]

use std::{net::SocketAddr, time::Instant};

use convene_media::sfu::{OfferTerms, PeerKey, Sfu, SfuConfig};
use convene_signal::ParticipantId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, sdp)) = data.split_first() else { return };
    let Ok(sdp) = std::str::from_utf8(sdp) else { return };
    let now = Instant::now();
    let address = SocketAddr::from(([127, 0, 0, 1], 10000));
    let config = SfuConfig { address, initial_estimate: 2_000_000, trust_bwe: true, last_n: 25, top_height: 720 };
    let mut sfu = Sfu::new(config);
    let key = PeerKey { room: 1, participant: ParticipantId(1) };
    let terms = OfferTerms {
        screen: (flags & 1 != 0).then_some("1"),
        end_to_end_encrypted: flags & 2 != 0,
        publish_only: flags & 4 != 0,
    };
    if sfu.handle_offer(key, sdp, terms, now).is_ok() {
        let _ = sfu.handle_offer(key, sdp, terms, now);
        let _ = sfu.handle_answer(key, sdp, now);
    }
    while sfu.poll_output().is_some() {}
    sfu.handle_timeout(now);
});
