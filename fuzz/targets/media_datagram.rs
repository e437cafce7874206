//! Datagrams on the media port, from a participant's address and from a stranger's: STUN, DTLS and
//! whatever else arrives, through the SFU's demultiplexing and session lookup.
#![no_main]
// A fixture that does not load must stop the run loudly, not be fuzzed around.
#![allow(clippy::expect_used)]

use std::{net::SocketAddr, time::Instant};

use convene_media::sfu::{OfferTerms, PeerKey, Sfu, SfuConfig};
use convene_signal::ParticipantId;
use libfuzzer_sys::fuzz_target;
use str0m::{Candidate, Rtc, media::Direction, media::MediaKind};

const NODE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)), 10000);
const PARTICIPANT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)), 5000);
const STRANGER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3)), 5000);

/// An SFU with one participant whose offer (audio and video, as a browser sends) was accepted.
fn sfu_with_a_participant(now: Instant) -> Sfu {
    let config = SfuConfig { address: NODE, initial_estimate: 2_000_000, trust_bwe: true, last_n: 25, top_height: 720 };
    let mut sfu = Sfu::new(config);
    let mut client = Rtc::builder().build(now);
    client.add_local_candidate(Candidate::host(PARTICIPANT, "udp").expect("a host candidate"));
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
    let (offer, _pending) = change.apply().expect("an offer");
    let key = PeerKey { room: 1, participant: ParticipantId(1) };
    sfu.handle_offer(key, &offer.to_sdp_string(), OfferTerms::default(), now)
        .expect("the SFU accepts a browser's offer");
    while sfu.poll_output().is_some() {}
    sfu
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut sfu = sfu_with_a_participant(now);
    for source in [PARTICIPANT, STRANGER] {
        sfu.handle_receive(now, source, data);
        while sfu.poll_output().is_some() {}
    }
    sfu.handle_timeout(now);
});
