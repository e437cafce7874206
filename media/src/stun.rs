//! STUN (RFC 8489) Binding, sans-IO: just enough to answer reachability probes and to build them.
//!
//! Every length read from the wire is checked against the buffer before use: a datagram from the internet
//! can claim anything.

use std::net::{IpAddr, SocketAddr};

/// Fixed header size.
pub const HEADER_LEN: usize = 20;
/// Identifies STUN among the protocols multiplexed on one port (RFC 8489 §6).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// A Binding success response with an IPv6 XOR-MAPPED-ADDRESS: the largest message this module writes.
pub const MAX_REPLY_LEN: usize = HEADER_LEN + 4 + 20;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Ports are XOR-ed with the cookie's high half.
const COOKIE_HIGH: u16 = 0x2112;
const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// The 96-bit id that pairs a response with its request.
pub type TransactionId = [u8; 12];

/// Why a datagram got no reply. Counted in metrics by [`Dropped::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Not STUN at all (RTP, DTLS, noise).
    NotStun,
    /// Claims to be STUN but its lengths or attributes do not add up.
    Malformed,
    /// STUN, but not a Binding request.
    NotBindingRequest,
    /// A Binding request with USERNAME: an ICE connectivity check for a peer, which only the SFU can answer.
    IceCheck,
}

impl Dropped {
    /// A short, stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::NotStun => "not_stun",
            Dropped::Malformed => "malformed",
            Dropped::NotBindingRequest => "not_binding_request",
            Dropped::IceCheck => "ice_check",
        }
    }
}

/// Answers a credential-less Binding request from `from` by writing a success response into `out`,
/// returning its length. `out` must hold [`MAX_REPLY_LEN`] bytes.
pub fn answer_binding(packet: &[u8], from: SocketAddr, out: &mut [u8; MAX_REPLY_LEN]) -> Result<usize, Dropped> {
    let (message_type, transaction, attributes) = split(packet)?;
    if message_type != BINDING_REQUEST {
        return Err(Dropped::NotBindingRequest);
    }
    for attribute in Attributes(attributes) {
        if attribute?.0 == ATTR_USERNAME {
            return Err(Dropped::IceCheck);
        }
    }
    Ok(write_message(out, BINDING_SUCCESS, &transaction, Some(from)))
}

/// Writes a Binding request with the given transaction id into `out`, returning its length.
pub fn binding_request(transaction: &TransactionId, out: &mut [u8; MAX_REPLY_LEN]) -> usize {
    write_message(out, BINDING_REQUEST, transaction, None)
}

/// Reads the mapped address from a Binding success response to `transaction`; `None` for anything else.
pub fn mapped_address(packet: &[u8], transaction: &TransactionId) -> Option<SocketAddr> {
    let (message_type, id, attributes) = split(packet).ok()?;
    if message_type != BINDING_SUCCESS || &id != transaction {
        return None;
    }
    Attributes(attributes)
        .map_while(Result::ok)
        .find(|(kind, _)| *kind == ATTR_XOR_MAPPED_ADDRESS)
        .and_then(|(_, value)| decode_xor_address(value, transaction))
}

/// Checks the header and returns (type, transaction id, attribute bytes).
fn split(packet: &[u8]) -> Result<(u16, TransactionId, &[u8]), Dropped> {
    let Some((header, body)) = packet.split_first_chunk::<HEADER_LEN>() else {
        return Err(Dropped::NotStun);
    };
    let message_type = u16::from_be_bytes([header[0], header[1]]);
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    // The two top bits of every STUN message are zero; that and the cookie tell STUN from RTP and DTLS.
    if message_type & 0xC000 != 0 || cookie != MAGIC_COOKIE {
        return Err(Dropped::NotStun);
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if length != body.len() || length % 4 != 0 {
        return Err(Dropped::Malformed);
    }
    let mut transaction = [0; 12];
    transaction.copy_from_slice(&header[8..HEADER_LEN]);
    Ok((message_type, transaction, body))
}

/// Iterates `(type, value)` over attributes, padded to four bytes; yields `Err` once on a bad length.
struct Attributes<'a>(&'a [u8]);

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(u16, &'a [u8]), Dropped>;

    fn next(&mut self) -> Option<Self::Item> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let padded = length.next_multiple_of(4);
        if padded > rest.len() {
            self.0 = &[];
            return Some(Err(Dropped::Malformed));
        }
        let (value, remaining) = rest.split_at(padded);
        self.0 = remaining;
        Some(Ok((kind, &value[..length])))
    }
}

fn write_message(
    out: &mut [u8; MAX_REPLY_LEN],
    message_type: u16,
    transaction: &TransactionId,
    mapped: Option<SocketAddr>,
) -> usize {
    out[0..2].copy_from_slice(&message_type.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..HEADER_LEN].copy_from_slice(transaction);
    let mut end = HEADER_LEN;
    if let Some(address) = mapped {
        end += encode_xor_address(&mut out[HEADER_LEN..], address, transaction);
    }
    let body_len = u16::try_from(end - HEADER_LEN).unwrap_or(u16::MAX);
    out[2..4].copy_from_slice(&body_len.to_be_bytes());
    end
}

/// The XOR key for addresses: the cookie, then the transaction id (only IPv6 uses the id).
fn xor_key(transaction: &TransactionId) -> [u8; 16] {
    let mut key = [0; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(transaction);
    key
}

fn encode_xor_address(out: &mut [u8], address: SocketAddr, transaction: &TransactionId) -> usize {
    let key = xor_key(transaction);
    let mut octets = [0; 16];
    let (family, ip_len) = match address.ip() {
        IpAddr::V4(ip) => {
            octets[..4].copy_from_slice(&ip.octets());
            (FAMILY_IPV4, 4)
        }
        IpAddr::V6(ip) => {
            octets = ip.octets();
            (FAMILY_IPV6, 16)
        }
    };
    let value_len = 4 + ip_len;
    out[0..2].copy_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
    out[2..4].copy_from_slice(&u16::try_from(value_len).unwrap_or(0).to_be_bytes());
    out[4] = 0;
    out[5] = family;
    out[6..8].copy_from_slice(&(address.port() ^ COOKIE_HIGH).to_be_bytes());
    for (index, (byte, mask)) in octets.iter().zip(key).take(ip_len).enumerate() {
        out[8 + index] = byte ^ mask;
    }
    4 + value_len
}

fn decode_xor_address(value: &[u8], transaction: &TransactionId) -> Option<SocketAddr> {
    let key = xor_key(transaction);
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ COOKIE_HIGH;
    let raw = value.get(4..)?;
    let unmask = |bytes: &mut [u8]| bytes.iter_mut().zip(key).for_each(|(byte, mask)| *byte ^= mask);
    let ip = match (family, raw.len()) {
        (FAMILY_IPV4, 4) => {
            let mut octets: [u8; 4] = raw.try_into().ok()?;
            unmask(&mut octets);
            IpAddr::from(octets)
        }
        (FAMILY_IPV6, 16) => {
            let mut octets: [u8; 16] = raw.try_into().ok()?;
            unmask(&mut octets);
            IpAddr::from(octets)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: TransactionId = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    fn request() -> Vec<u8> {
        let mut buffer = [0; MAX_REPLY_LEN];
        let len = binding_request(&ID, &mut buffer);
        buffer[..len].to_vec()
    }

    fn answer(packet: &[u8], from: SocketAddr) -> Result<Vec<u8>, Dropped> {
        let mut out = [0; MAX_REPLY_LEN];
        answer_binding(packet, from, &mut out).map(|len| out[..len].to_vec())
    }

    #[test]
    fn a_binding_request_gets_the_senders_address_back() {
        for from in ["192.0.2.7:54321", "[2001:db8::7]:5000"] {
            let from: SocketAddr = from.parse().unwrap_or_else(|error| panic!("{error}"));
            let reply = answer(&request(), from).unwrap_or_else(|dropped| panic!("{dropped:?}"));
            assert_eq!(mapped_address(&reply, &ID), Some(from));
            assert_eq!(mapped_address(&reply, &[0; 12]), None, "another transaction's reply is not ours");
        }
    }

    #[test]
    fn the_reply_matches_the_rfc_5769_layout() {
        let from: SocketAddr = "192.0.2.1:32853".parse().unwrap_or_else(|error| panic!("{error}"));
        let reply = answer(&request(), from).unwrap_or_else(|dropped| panic!("{dropped:?}"));
        // RFC 5769 §2.2: port 32853 and 192.0.2.1 XOR-ed with the cookie.
        assert_eq!(&reply[0..4], &[0x01, 0x01, 0x00, 0x0c]);
        assert_eq!(&reply[HEADER_LEN..], &[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
    }

    #[test]
    fn ice_checks_are_left_to_the_sfu() {
        let mut packet = request();
        packet.extend_from_slice(&[0x00, 0x06, 0x00, 0x05, b'a', b'b', b':', b'c', b'd', 0, 0, 0]);
        packet[3] = 12;
        assert_eq!(answer(&packet, "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}"))), Err(Dropped::IceCheck));
    }

    #[test]
    fn bad_datagrams_are_dropped_with_a_reason() {
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|error| panic!("{error}"));
        let mut wrong_cookie = request();
        wrong_cookie[4] = 0;
        let mut rtp_like = request();
        rtp_like[0] = 0x80;
        let mut long_claim = request();
        long_claim[3] = 8;
        let mut attribute_overflow = request();
        attribute_overflow.extend_from_slice(&[0x80, 0x22, 0x00, 0xff]);
        attribute_overflow[3] = 4;
        let mut response = request();
        response[0] = 0x01;
        let cases = [
            (vec![], Dropped::NotStun),
            (request()[..19].to_vec(), Dropped::NotStun),
            (wrong_cookie, Dropped::NotStun),
            (rtp_like, Dropped::NotStun),
            (long_claim, Dropped::Malformed),
            (attribute_overflow, Dropped::Malformed),
            (response, Dropped::NotBindingRequest),
        ];
        for (packet, expected) in cases {
            assert_eq!(answer(&packet, from), Err(expected), "{packet:02x?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A bounded, deterministic sweep of noise: lengths 0..64, xorshift bytes, with a valid header prefix
        // half of the time so that attribute parsing is exercised too.
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|error| panic!("{error}"));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..20_000 {
            let mut packet: Vec<u8> = (0..round % 64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            if round % 2 == 0 && packet.len() >= HEADER_LEN {
                packet[..HEADER_LEN].copy_from_slice(&request()[..HEADER_LEN]);
                let body = u16::try_from(packet.len() - HEADER_LEN).unwrap_or(0);
                packet[2..4].copy_from_slice(&body.to_be_bytes());
            }
            let _ = answer(&packet, from);
            let _ = mapped_address(&packet, &ID);
        }
    }
}
