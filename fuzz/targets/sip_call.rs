//! A trunk's SIP datagram, as the gateway reads it: rsipstack's parser, then what the gateway takes from a
//! request (the number dialled, the caller) and its SDP offer, answered. Nothing a trunk sends may panic it.
#![no_main]

use convene_media::{gateway::CallFacts, phone::sdp::Offer};
use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(SipMessage::Request(request)) = SipMessage::try_from(data) {
        let facts = CallFacts::of(&request);
        assert!(facts.caller.as_deref().is_none_or(|caller| !caller.is_empty()));
        if let Ok(offer) = Offer::parse(&String::from_utf8_lossy(&request.body)) {
            let answer = offer.answer(std::net::Ipv4Addr::LOCALHOST.into(), 30_000, 1, 1);
            assert!(answer.starts_with("v=0\r\n") && answer.contains("m=audio 30000 RTP/AVP "));
        }
    }
});
