//! One continuous outgoing stream from a source whose packets come from several incoming streams: simulcast
//! layers (each with its own sequence numbers, timestamps and VP8 picture ids) and audio with silent stretches
//! left out. A receiver must see one stream with no gaps, so on every switch the rewriter rebases sequence
//! numbers, timestamps and picture ids to continue where the last forwarded packet ended.

/// VP8 picture ids are 15 bits.
const PICTURE_ID_MODULO: u32 = 1 << 15;
/// Incoming packets this much older than the newest forwarded one are late retransmissions of an earlier
/// layer or silence and are not forwarded (their place in the outgoing numbering is gone).
const LATE: u64 = 1000;

/// What to write for one forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended outgoing sequence number (starts low, so the SRTP rollover counter starts at zero).
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub time: u32,
    /// Outgoing VP8 picture id, when the packet had one.
    pub picture_id: Option<u16>,
    /// Outgoing VP8 TL0PICIDX, when the packet had one.
    pub tl0_pic_idx: Option<u8>,
}

/// An incoming packet's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// Extended sequence number within its incoming stream.
    pub seq: u64,
    /// RTP timestamp.
    pub time: u32,
    /// VP8 picture id.
    pub picture_id: Option<u16>,
    /// VP8 TL0PICIDX.
    pub tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Base {
    seq: u64,
    out_seq: u64,
    time_offset: u32,
    picture_offset: u32,
    tl0_offset: u8,
}

/// The state of one outgoing stream.
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    base: Option<Base>,
    /// The highest outgoing sequence number used.
    last_seq: u64,
    last_time: u32,
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
    /// The highest incoming sequence number forwarded since the last switch.
    highest_in: u64,
}

impl Rewriter {
    /// A stream that has sent nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts forwarding from another incoming stream (or after a gap that must not show) with `first`;
    /// `elapsed_ticks` is the time since the last forwarded packet in the clock rate, so timestamps keep
    /// pace with real time.
    pub fn switch(&mut self, first: Incoming, elapsed_ticks: u32) {
        let started = self.last_seq > 0;
        let out_seq = self.last_seq + 1;
        let out_time = if started { self.last_time.wrapping_add(elapsed_ticks.max(1)) } else { first.time };
        let picture_offset = match (self.last_picture_id, first.picture_id) {
            (Some(last), Some(incoming)) => {
                (u32::from(last) + 1 + PICTURE_ID_MODULO - u32::from(incoming)) % PICTURE_ID_MODULO
            }
            _ => 0,
        };
        let tl0_offset = match (self.last_tl0, first.tl0_pic_idx) {
            (Some(last), Some(incoming)) => last.wrapping_add(1).wrapping_sub(incoming),
            _ => 0,
        };
        self.base = Some(Base {
            seq: first.seq,
            out_seq,
            time_offset: out_time.wrapping_sub(first.time),
            picture_offset,
            tl0_offset,
        });
        self.highest_in = first.seq;
    }

    /// Continues on the current incoming stream; `None` for a packet from before the last switch (or much
    /// older than the newest), which has no place in the outgoing numbering.
    pub fn rewrite(&mut self, packet: Incoming) -> Option<Rewritten> {
        let base = self.base?;
        if packet.seq < base.seq || packet.seq + LATE < self.highest_in {
            return None;
        }
        self.highest_in = self.highest_in.max(packet.seq);
        let seq = base.out_seq + (packet.seq - base.seq);
        let time = packet.time.wrapping_add(base.time_offset);
        let picture_id = packet.picture_id.map(|id| {
            let rewritten = (u32::from(id) + base.picture_offset) % PICTURE_ID_MODULO;
            u16::try_from(rewritten).unwrap_or_default()
        });
        let tl0_pic_idx = packet.tl0_pic_idx.map(|tl0| tl0.wrapping_add(base.tl0_offset));
        if seq > self.last_seq {
            self.last_seq = seq;
            self.last_time = time;
            self.last_picture_id = picture_id.or(self.last_picture_id);
            self.last_tl0 = tl0_pic_idx.or(self.last_tl0);
        }
        Some(Rewritten { seq, time, picture_id, tl0_pic_idx })
    }

    /// Whether packets are being forwarded (a switch happened and no stop since).
    pub fn is_forwarding(&self) -> bool {
        self.base.is_some()
    }

    /// Stops forwarding; the numbering is kept so the next [`switch`](Self::switch) continues it.
    pub fn stop(&mut self) {
        self.base = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u64, time: u32, picture_id: u16) -> Incoming {
        Incoming { seq, time, picture_id: Some(picture_id), tl0_pic_idx: None }
    }

    #[test]
    fn a_layer_switch_continues_sequence_time_and_picture_id() {
        let mut stream = Rewriter::new();
        stream.switch(packet(40_000, 1_000_000, 100), 0);
        let first = stream.rewrite(packet(40_000, 1_000_000, 100)).unwrap();
        assert_eq!(first.seq, 1, "outgoing numbering starts low whatever the incoming stream's");
        let second = stream.rewrite(packet(40_001, 1_003_000, 101)).unwrap();
        assert_eq!((second.seq, second.time, second.picture_id), (2, 1_003_000, Some(101)));

        // The high layer has its own numbering; the receiver must not notice.
        stream.switch(packet(7, 55, 32_760), 3000);
        let switched = stream.rewrite(packet(7, 55, 32_760)).unwrap();
        assert_eq!((switched.seq, switched.time, switched.picture_id), (3, 1_006_000, Some(102)));
        let next = stream.rewrite(packet(8, 3055, 32_761)).unwrap();
        assert_eq!((next.seq, next.time, next.picture_id), (4, 1_009_000, Some(103)));
        // Picture ids wrap at 15 bits on the incoming side without a jump outgoing.
        assert_eq!(stream.rewrite(packet(9, 6055, 32_767)).unwrap().picture_id, Some(109));
        assert_eq!(stream.rewrite(packet(10, 9055, 0)).unwrap().picture_id, Some(110));
    }

    #[test]
    fn packets_of_the_old_layer_after_a_switch_are_not_forwarded() {
        let mut stream = Rewriter::new();
        stream.switch(packet(10, 0, 1), 0);
        assert!(stream.rewrite(packet(10, 0, 1)).is_some());
        stream.switch(packet(500, 90, 9), 3000);
        assert_eq!(stream.rewrite(packet(499, 0, 8)), None);
        assert!(stream.rewrite(packet(500, 90, 9)).is_some());
        assert_eq!(stream.rewrite(packet(500 - 1, 90, 9)), None);
    }

    #[test]
    fn reordered_packets_keep_their_place_and_do_not_move_the_end() {
        let mut stream = Rewriter::new();
        stream.switch(packet(100, 0, 1), 0);
        assert_eq!(stream.rewrite(packet(100, 0, 1)).unwrap().seq, 1);
        assert_eq!(stream.rewrite(packet(102, 0, 1)).unwrap().seq, 3);
        assert_eq!(stream.rewrite(packet(101, 0, 1)).unwrap().seq, 2);
        stream.switch(packet(7, 0, 1), 10);
        assert_eq!(stream.rewrite(packet(7, 0, 1)).unwrap().seq, 4);
    }

    #[test]
    fn leaving_out_silence_leaves_no_gap() {
        let mut audio = Rewriter::new();
        let opus =
            |seq: u64| Incoming { seq, time: u32::try_from(seq).unwrap() * 960, picture_id: None, tl0_pic_idx: None };
        audio.switch(opus(1), 0);
        assert_eq!(audio.rewrite(opus(1)).unwrap().seq, 1);
        assert_eq!(audio.rewrite(opus(2)).unwrap().seq, 2);
        // Packets 3..=50 were silence and not sent; the next one follows directly, its time keeps pace.
        audio.switch(opus(51), 49 * 960);
        let resumed = audio.rewrite(opus(51)).unwrap();
        assert_eq!((resumed.seq, resumed.time), (3, 51 * 960));
    }
}
