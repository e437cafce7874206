//! RTP on the phone leg (RFC 3550), sans-IO: the fixed header read and written, CSRCs, header extensions
//! and padding skipped. The leg is plain RTP/AVP, so a packet is this header and 20 ms of audio.

/// One received packet's header fields and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The payload type (which codec, or telephone-event).
    pub payload_type: u8,
    /// Start of a talkspurt (or of a key press).
    pub marker: bool,
    /// The sequence number.
    pub sequence: u16,
    /// The sampling instant of the first sample.
    pub timestamp: u32,
    /// The sender's stream.
    pub ssrc: u32,
    /// The audio or event.
    pub payload: &'a [u8],
}

/// The fixed header's length.
const HEADER: usize = 12;

impl<'a> RtpPacket<'a> {
    /// Reads a packet; `None` for anything that is not RTP version 2 with a consistent length (RTCP, which
    /// shares the port on some trunks, uses payload types 72–76 with the marker set and is left out too).
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let header = bytes.get(..HEADER)?;
        let [first, second, sequence_high, sequence_low, ..] = *header else { return None };
        if first >> 6 != 2 {
            return None;
        }
        let payload_type = second & 0x7F;
        if (72..=76).contains(&payload_type) {
            return None;
        }
        let csrcs = usize::from(first & 0x0F) * 4;
        let mut start = HEADER + csrcs;
        if first & 0x10 != 0 {
            let extension = bytes.get(start..start + 4)?;
            let words = usize::from(u16::from_be_bytes([extension[2], extension[3]]));
            start += 4 + words * 4;
        }
        let mut end = bytes.len();
        if first & 0x20 != 0 {
            let padding = usize::from(*bytes.last()?);
            end = end.checked_sub(padding)?;
        }
        let payload = bytes.get(start..end)?;
        Some(Self {
            payload_type,
            marker: second & 0x80 != 0,
            sequence: u16::from_be_bytes([sequence_high, sequence_low]),
            timestamp: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
            ssrc: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
            payload,
        })
    }

    /// Writes the packet into `out` (cleared first), with no CSRCs, extension or padding.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(if self.marker { 0x80 } else { 0 } | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_packet_reads_back() {
        let packet = RtpPacket {
            payload_type: 8,
            marker: true,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 42,
            payload: &[1, 2, 3],
        };
        let mut bytes = Vec::new();
        packet.write(&mut bytes);
        assert_eq!(bytes.len(), 15);
        assert_eq!(RtpPacket::parse(&bytes), Some(packet));
    }

    #[test]
    fn csrcs_extensions_and_padding_are_skipped() {
        let mut bytes = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0, 0, 0, 7]); // one CSRC
        bytes.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // a one-word extension
        bytes.extend_from_slice(&[0xFF, 0xFE]); // the payload
        bytes.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!((packet.sequence, packet.timestamp, packet.ssrc, packet.payload), (1, 160, 9, &[0xFF, 0xFE][..]));
    }

    #[test]
    fn what_is_not_rtp_is_left_out() {
        let mut rtcp = vec![0x80, 200, 0, 6];
        rtcp.extend_from_slice(&[0; 24]);
        for bytes in [
            &[][..],
            &[0x80, 0, 0][..],
            &[0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..], // version 1
            &rtcp[..],
            &[0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..], // a CSRC that is not there
            &[0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 9][..], // a longer extension than the packet
            &[0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 200][..], // more padding than the packet
        ] {
            assert_eq!(RtpPacket::parse(bytes), None, "{bytes:?}");
        }
    }
}
