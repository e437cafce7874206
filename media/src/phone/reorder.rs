//! The trunk's packets put back in order before their audio is decoded (G.722's adaptive state, key
//! events and the room's timestamps all need it), sans-IO. A packet that comes early waits, up to
//! [`DEPTH`] packets, for the ones before it; then they are given up for lost (the gap shows in the RTP
//! timestamps), so a lost packet costs at most [`DEPTH`] packets of delay and an in-order stream none. Late
//! packets are dropped. Timing jitter is left to the receivers' own jitter buffers (browsers', the mixer's).

use std::collections::BTreeMap;

/// Packets held at most while one before them is missing (60 ms of audio).
pub const DEPTH: usize = 3;
/// A jump in sequence numbers larger than this is a new stream (a re-INVITE, a trunk failover), not loss.
const RESTART: u16 = 100;
/// A packet this far behind cannot be a late one (its gap was given up after [`DEPTH`]): it starts a new
/// stream that reuses numbers (a recording replayed, a trunk that restarts them without a new SSRC).
const LATE: u16 = 2 * DEPTH as u16;

/// A packet ready to be used, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
    /// Its payload type.
    pub payload_type: u8,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Holds early packets until the gap before them fills or is given up.
#[derive(Debug, Default)]
pub struct Reorder {
    /// The stream's SSRC and the sequence number expected next.
    ssrc: u32,
    expected: Option<u16>,
    /// Early packets, by their distance from `expected`.
    held: BTreeMap<u16, Ordered>,
    /// Packets released, oldest first.
    ready: std::collections::VecDeque<Ordered>,
}

impl Reorder {
    /// A packet from the trunk: its SSRC and sequence number, payload type, timestamp and payload.
    pub fn push(&mut self, (ssrc, sequence): (u32, u16), payload_type: u8, timestamp: u32, payload: &[u8]) {
        let packet = Ordered { payload_type, timestamp, payload: payload.to_vec() };
        let expected = match self.expected {
            Some(expected) if ssrc == self.ssrc => expected,
            _ => {
                // The first packet, or another stream: what was held goes out first.
                while !self.held.is_empty() {
                    self.give_up_gap();
                }
                self.ssrc = ssrc;
                sequence
            }
        };
        self.expected = Some(expected);
        let ahead = sequence.wrapping_sub(expected);
        if ahead == 0 {
            self.release(packet);
        } else if ahead < RESTART {
            // Early: the distance cannot collide, a duplicate replaces its twin.
            self.held.insert(ahead, packet);
            if self.held.len() > DEPTH {
                self.give_up_gap();
            }
        } else if ahead > u16::MAX - LATE {
            // Late (already released or given up) or a duplicate: dropped.
        } else {
            // A new stream: what was held goes out first, then counting starts again.
            while !self.held.is_empty() {
                self.give_up_gap();
            }
            self.expected = Some(sequence);
            self.release(packet);
        }
    }

    /// The next packet in order, if one is ready.
    pub fn pop(&mut self) -> Option<Ordered> {
        self.ready.pop_front()
    }

    /// Releases `packet` (the expected one) and those held right behind it.
    fn release(&mut self, packet: Ordered) {
        self.ready.push_back(packet);
        self.advance(1);
        while let Some(next) = self.held.remove(&0) {
            self.ready.push_back(next);
            self.advance(1);
        }
    }

    /// Moves `expected` on by `steps`, keeping the held packets' distances true.
    fn advance(&mut self, steps: u16) {
        self.expected = self.expected.map(|expected| expected.wrapping_add(steps));
        self.held = std::mem::take(&mut self.held).into_iter().map(|(ahead, packet)| (ahead - steps, packet)).collect();
    }

    /// The first held packet's predecessors are lost: it goes out.
    fn give_up_gap(&mut self) {
        let Some((ahead, packet)) = self.held.pop_first() else { return };
        self.advance(ahead);
        self.release(packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sequences: &[u16]) -> Vec<u16> {
        run_streams(&sequences.iter().map(|&sequence| (1, sequence)).collect::<Vec<_>>())
    }

    fn run_streams(packets: &[(u32, u16)]) -> Vec<u16> {
        let mut reorder = Reorder::default();
        let mut out = Vec::new();
        for &(ssrc, sequence) in packets {
            reorder.push((ssrc, sequence), 0, u32::from(sequence) * 160, &sequence.to_be_bytes());
            while let Some(packet) = reorder.pop() {
                assert_eq!(packet.timestamp, u32::from_be_bytes([0, 0, packet.payload[0], packet.payload[1]]) * 160);
                out.push(u16::from_be_bytes([packet.payload[0], packet.payload[1]]));
            }
        }
        out
    }

    #[test]
    fn in_order_packets_pass_at_once_and_swapped_ones_are_put_back() {
        assert_eq!(run(&[10, 11, 12]), [10, 11, 12]);
        assert_eq!(run(&[10, 12, 11, 13]), [10, 11, 12, 13]);
        assert_eq!(run(&[65_534, 0, 65_535, 1]), [65_534, 65_535, 0, 1], "across the wrap");
    }

    #[test]
    fn a_lost_packet_is_given_up_after_the_depth() {
        assert_eq!(run(&[1, 3, 4, 5]), [1], "still waiting for 2");
        assert_eq!(run(&[1, 3, 4, 5, 6]), [1, 3, 4, 5, 6]);
        assert_eq!(run(&[1, 3, 4, 5, 6, 2]), [1, 3, 4, 5, 6], "too late for 2");
        assert_eq!(run(&[1, 3, 5, 6, 7, 8]), [1, 3, 5, 6, 7, 8], "two gaps, each given up in turn");
    }

    #[test]
    fn duplicates_are_dropped_and_a_new_stream_starts_over() {
        assert_eq!(run(&[1, 2, 2, 1, 3]), [1, 2, 3]);
        assert_eq!(run(&[1, 3, 3, 2]), [1, 2, 3]);
        assert_eq!(run(&[1, 2, 4, 5_000, 5_001]), [1, 2, 4, 5_000, 5_001]);
        // Recordings replayed one after another, each numbered from the same start.
        assert_eq!(
            run(&[100, 101, 102, 103, 104, 105, 106, 100, 101, 102]),
            [100, 101, 102, 103, 104, 105, 106, 100, 101, 102]
        );
        assert_eq!(run_streams(&[(1, 10), (1, 12), (2, 10), (2, 11)]), [10, 12, 10, 11], "a new SSRC starts over");
    }
}
