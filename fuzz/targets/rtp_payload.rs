//! What the SFU reads from forwarded RTP: the VP8 and H.264 payload headers that tell keyframes, and the
//! sequence numbers, timestamps and VP8 picture ids it rewrites when switching simulcast layers.
#![no_main]

use convene_media::sfu::{
    rewrite::{Incoming, Rewriter},
    starts_keyframe,
};
use libfuzzer_sys::{
    arbitrary::{self, Arbitrary},
    fuzz_target,
};
use str0m::format::Codec;

/// str0m extends 16-bit sequence numbers by counting rollovers: 2^48 would take 2^32 of them.
const EXTENDED_SEQ_LIMIT: u64 = 1 << 48;

#[derive(Debug, Arbitrary)]
struct Packet {
    seq: u64,
    time: u32,
    picture_id: Option<u16>,
    tl0_pic_idx: Option<u8>,
}

impl Packet {
    fn incoming(&self) -> Incoming {
        Incoming {
            seq: self.seq % EXTENDED_SEQ_LIMIT,
            time: self.time,
            picture_id: self.picture_id.map(|id| id & 0x7fff),
            tl0_pic_idx: self.tl0_pic_idx,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Step {
    Switch { first: Packet, elapsed_ticks: u32 },
    Forward(Packet),
    Stop,
}

#[derive(Debug, Arbitrary)]
struct Input {
    payload: Vec<u8>,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    for codec in [Codec::Vp8, Codec::H264] {
        let _ = starts_keyframe(codec, &input.payload);
    }
    let mut rewriter = Rewriter::new();
    for step in input.steps.iter().take(1000) {
        match step {
            Step::Switch { first, elapsed_ticks } => rewriter.switch(first.incoming(), *elapsed_ticks),
            Step::Forward(packet) => {
                let _ = rewriter.rewrite(packet.incoming());
            }
            Step::Stop => rewriter.stop(),
        }
    }
});
