//! The phone leg's session description, sans-IO: what a trunk's offer asks for (where to send audio, in
//! which codecs, whether the call is on hold) and the answer the gateway gives. The leg is plain RTP/AVP;
//! the answer is written from a template, naming one codec and the telephone-event for keys.

use std::net::IpAddr;

/// The codecs the gateway speaks on the phone leg, best first when the offer leaves the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 (wideband, 16 kHz; its RTP clock and rtpmap say 8000, RFC 3551).
    G722,
    /// Opus (RFC 7587: a 48 kHz clock whatever the audio's rate; the gateway runs it at 16 kHz).
    Opus,
}

impl Codec {
    /// Every codec, in the order the gateway's own offers prefer them: wideband first, G.722 before Opus
    /// for its lower cost per call, Opus before G.711 for its bandwidth and its resilience to loss.
    pub const ALL: [Self; 4] = [Self::G722, Self::Opus, Self::Pcmu, Self::Pcma];

    /// Samples a second the call runs at (G.722's clock says 8000, but it is 16 kHz audio).
    pub fn rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8_000,
            Self::G722 | Self::Opus => 16_000,
        }
    }

    /// The RTP clock's ticks in 20 ms.
    pub fn clock_step(self) -> u32 {
        self.clock() / 50
    }

    fn clock(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8_000,
            Self::Opus => 48_000,
        }
    }

    /// The static payload type RFC 3551 gives it (Opus has none).
    fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::G722 => Some(9),
            Self::Opus => None,
        }
    }

    /// The payload type the gateway's own offers give it: its static one, else a dynamic one.
    pub fn offered_payload_type(self) -> u8 {
        self.static_payload_type().unwrap_or(OFFERED_OPUS)
    }

    /// Its `a=rtpmap` encoding: name, clock and, for Opus, the two channels RFC 7587 requires it to declare.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU/8000",
            Self::Pcma => "PCMA/8000",
            Self::G722 => "G722/8000",
            Self::Opus => "opus/48000/2",
        }
    }

    /// Its format parameters, if any: an Opus sender need not encode what a 16 kHz call cannot play.
    fn fmtp(self) -> Option<&'static str> {
        (self == Self::Opus).then_some("maxplaybackrate=16000;sprop-maxcapturerate=16000")
    }

    fn from_rtpmap(name: &str, rate: &str) -> Option<Self> {
        let clock = rate.split('/').next()?;
        Self::ALL.into_iter().find(|codec| {
            let (own_name, own_rate) = codec.rtpmap().split_once('/').unwrap_or_default();
            own_name.eq_ignore_ascii_case(name) && own_rate.split('/').next() == Some(clock)
        })
    }
}

/// Which way audio flows, as the offer's attribute says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The caller only sends (it holds us).
    SendOnly,
    /// The caller only receives.
    RecvOnly,
    /// Neither (on hold).
    Inactive,
}

impl Direction {
    fn parse(attribute: &str) -> Option<Self> {
        match attribute {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// The direction that answers this one.
    fn answered(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "recvonly",
            Self::RecvOnly => "sendonly",
            Self::Inactive => "inactive",
        }
    }

    /// Whether the caller wants our audio.
    pub fn caller_listens(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }
}

/// A media line the gateway does not take (video, a second audio, secure RTP); the answer refuses it with
/// port 0, keeping the lines in the offer's order as RFC 3264 requires.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused {
    line: String,
}

/// A trunk's offer, as far as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where to send the caller's audio (`None` when the offer says `0.0.0.0`: on hold, RFC 2543 style).
    pub destination: Option<(IpAddr, u16)>,
    /// The codec chosen and the payload type the offer gave it.
    pub codec: (Codec, u8),
    /// The payload type of `telephone-event` at the audio's clock (RFC 4733 §2.1), if offered.
    pub events: Option<u8>,
    /// Which way audio flows.
    pub direction: Direction,
    /// Media lines before and after the audio one, refused in the answer.
    refused: (Vec<Refused>, Vec<Refused>),
}

/// Why an offer cannot be answered (the gateway replies 488 Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not a session description the gateway can read.
    #[error("the offer is not a session description: {0}")]
    Malformed(&'static str),
    /// No plain RTP audio line with a codec the gateway speaks.
    #[error("no audio in G722, Opus, PCMU or PCMA over RTP/AVP is offered")]
    NoCommonCodec,
}

/// Offers larger than this are refused unread (a real one is under 2 KB).
const MAX_OFFER: usize = 16 * 1024;

impl Offer {
    /// Reads an offer; chooses the first codec the offer lists that the gateway speaks.
    pub fn parse(sdp: &str) -> Result<Self, SdpError> {
        Self::parse_preferring(sdp, None)
    }

    /// Reads an offer made within a call: `current` is kept when the offer still lists it (a hold or a
    /// session refresh does not switch codecs), else the first the gateway speaks.
    pub fn parse_preferring(sdp: &str, current: Option<Codec>) -> Result<Self, SdpError> {
        if sdp.len() > MAX_OFFER {
            return Err(SdpError::Malformed("it is too long"));
        }
        if !sdp.trim_start().starts_with("v=0") {
            return Err(SdpError::Malformed("it does not start with v=0"));
        }
        let mut session_address = None;
        let mut session_direction = Direction::SendRecv;
        // Each media line with the lines under it.
        let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in sdp.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let Some((kind, value)) = line.split_once('=') else {
                return Err(SdpError::Malformed("a line has no '='"));
            };
            match (kind, sections.last_mut()) {
                ("m", _) => sections.push((value, Vec::new())),
                (_, Some((_, lines))) => lines.push(line),
                ("c", None) => session_address = Some(connection_address(value)?),
                ("a", None) => session_direction = Direction::parse(value).unwrap_or(session_direction),
                _ => {}
            }
        }
        let mut refused = (Vec::new(), Vec::new());
        let mut audio = None;
        for (media, lines) in sections {
            let chosen = if audio.is_none() { audio_line(media, &lines, session_direction, current)? } else { None };
            match chosen {
                Some(found) => audio = Some(found),
                None => {
                    let side = if audio.is_none() { &mut refused.0 } else { &mut refused.1 };
                    side.push(Refused { line: media.to_owned() });
                }
            }
        }
        let (port, codec, events, direction, media_address) = audio.ok_or(SdpError::NoCommonCodec)?;
        let address = media_address.or(session_address).ok_or(SdpError::Malformed("no connection address"))?;
        let destination = address.filter(|ip| !ip.is_unspecified()).map(|ip| (ip, port));
        let direction = if destination.is_none() { Direction::Inactive } else { direction };
        Ok(Self { destination, codec, events, direction, refused })
    }

    /// The answer: our address and port, the chosen codec and the telephone-event, the direction that
    /// answers the offer's. `version` goes up when the answer changes within the call (RFC 3264 §8).
    pub fn answer(&self, address: IpAddr, port: u16, session: u64, version: u64) -> String {
        let family = if address.is_ipv4() { "IP4" } else { "IP6" };
        let (codec, payload_type) = self.codec;
        let mut sdp = format!("v=0\r\no=convene {session} {version} IN {family} {address}\r\ns=Convene\r\n");
        sdp += &format!("c=IN {family} {address}\r\nt=0 0\r\n");
        for refused in &self.refused.0 {
            sdp += &refusal(refused);
        }
        let formats = match self.events {
            Some(events) => format!("{payload_type} {events}"),
            None => payload_type.to_string(),
        };
        sdp += &format!("m=audio {port} RTP/AVP {formats}\r\n");
        sdp += &codec_lines(codec, payload_type);
        if let Some(events) = self.events {
            sdp += &event_lines(events, codec.clock());
        }
        sdp += &format!("a=ptime:20\r\na={}\r\n", self.direction.answered());
        for refused in &self.refused.1 {
            sdp += &refusal(refused);
        }
        sdp
    }
}

/// The payload types the gateway's own offers give Opus and telephone-event (at 8 kHz for G.711 and
/// G.722, at 48 kHz for Opus).
const OFFERED_OPUS: u8 = 111;
const OFFERED_EVENTS: [(u8, u32); 2] = [(101, 8_000), (110, 48_000)];

/// The gateway's offer when it calls a phone: audio at `address`:`port` in every codec it speaks, with keys.
pub fn offer(address: IpAddr, port: u16, session: u64) -> String {
    let family = if address.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!("v=0\r\no=convene {session} 1 IN {family} {address}\r\ns=Convene\r\n");
    sdp += &format!("c=IN {family} {address}\r\nt=0 0\r\n");
    let formats: Vec<String> = (Codec::ALL.iter().map(|codec| codec.offered_payload_type()))
        .chain(OFFERED_EVENTS.iter().map(|(payload_type, _)| *payload_type))
        .map(|payload_type| payload_type.to_string())
        .collect();
    sdp += &format!("m=audio {port} RTP/AVP {}\r\n", formats.join(" "));
    for codec in Codec::ALL {
        sdp += &codec_lines(codec, codec.offered_payload_type());
    }
    for (payload_type, clock) in OFFERED_EVENTS {
        sdp += &event_lines(payload_type, clock);
    }
    sdp + "a=ptime:20\r\na=sendrecv\r\n"
}

/// A codec's `a=rtpmap` line, and its `a=fmtp` if it has one.
fn codec_lines(codec: Codec, payload_type: u8) -> String {
    let mut lines = format!("a=rtpmap:{payload_type} {}\r\n", codec.rtpmap());
    if let Some(parameters) = codec.fmtp() {
        lines += &format!("a=fmtp:{payload_type} {parameters}\r\n");
    }
    lines
}

/// telephone-event's lines at `clock`: the 16 keys' events.
fn event_lines(payload_type: u8, clock: u32) -> String {
    format!("a=rtpmap:{payload_type} telephone-event/{clock}\r\na=fmtp:{payload_type} 0-15\r\n")
}

/// A media line refused: the same media and protocol, port 0, its first format (RFC 3264 §6).
fn refusal(refused: &Refused) -> String {
    let mut parts = refused.line.split_whitespace();
    let media = parts.next().unwrap_or("audio");
    let protocol = parts.nth(1).unwrap_or("RTP/AVP");
    let format = parts.next().unwrap_or("0");
    format!("m={media} 0 {protocol} {format}\r\n")
}

/// `IN IP4 192.0.2.1` (a TTL or count after a slash is ignored).
fn connection_address(value: &str) -> Result<Option<IpAddr>, SdpError> {
    let mut parts = value.split_whitespace();
    let (Some("IN"), Some("IP4" | "IP6"), Some(address)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SdpError::Malformed("a connection line is not IN IP4/IP6 <address>"));
    };
    let address = address.split('/').next().unwrap_or(address);
    // A host name instead of an address is legal but unusable for media.
    Ok(address.parse().ok())
}

type AudioLine = (u16, (Codec, u8), Option<u8>, Direction, Option<Option<IpAddr>>);

/// The audio line's port, chosen codec (`current` if listed), telephone-event and direction, if it is one
/// the gateway takes.
fn audio_line(
    media: &str,
    lines: &[&str],
    session_direction: Direction,
    current: Option<Codec>,
) -> Result<Option<AudioLine>, SdpError> {
    let mut parts = media.split_whitespace();
    let (Some("audio"), Some(port), Some("RTP/AVP")) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let Ok(port) = port.split('/').next().unwrap_or(port).parse::<u16>() else {
        return Err(SdpError::Malformed("the audio port is not a number"));
    };
    if port == 0 {
        return Ok(None);
    }
    let formats: Vec<u8> = parts.filter_map(|format| format.parse().ok()).collect();
    let mut direction = session_direction;
    let mut address = None;
    let mut names: Vec<(u8, &str, &str)> = Vec::new();
    for line in lines {
        if let Some(value) = line.strip_prefix("c=") {
            address = Some(connection_address(value)?);
        } else if let Some(value) = line.strip_prefix("a=rtpmap:") {
            let Some((payload_type, encoding)) = value.split_once(' ') else { continue };
            let (Ok(payload_type), Some((name, rate))) = (payload_type.parse(), encoding.trim().split_once('/')) else {
                continue;
            };
            names.push((payload_type, name, rate));
        } else if let Some(found) = line.strip_prefix("a=").and_then(Direction::parse) {
            direction = found;
        }
    }
    let named = |payload_type: u8| names.iter().find(|(named, ..)| *named == payload_type);
    let offered: Vec<(Codec, u8)> = formats
        .iter()
        .filter_map(|&payload_type| {
            let codec = match named(payload_type) {
                Some((_, name, rate)) => Codec::from_rtpmap(name, rate),
                // Static payload types need no rtpmap.
                None => Codec::ALL.into_iter().find(|codec| codec.static_payload_type() == Some(payload_type)),
            };
            codec.map(|codec| (codec, payload_type))
        })
        .collect();
    let codec = offered.iter().find(|(codec, _)| Some(*codec) == current).or(offered.first()).copied();
    let Some(codec) = codec else { return Ok(None) };
    let clock = codec.0.clock().to_string();
    let events = formats.iter().copied().find(|&payload_type| {
        named(payload_type).is_some_and(|(_, name, rate)| {
            name.eq_ignore_ascii_case("telephone-event") && rate.split('/').next() == Some(clock.as_str())
        })
    });
    Ok(Some((port, codec, events, direction, address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trunk's offer: PCMA first, PCMU, G.722 and telephone-event.
    const TRUNK: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 40000 RTP/AVP 8 0 9 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";

    #[test]
    fn the_first_offered_codec_we_speak_is_answered_with_the_telephone_event() {
        let offer = Offer::parse(TRUNK).unwrap();
        assert_eq!(offer.destination, Some(("192.0.2.10".parse().unwrap(), 40000)));
        assert_eq!((offer.codec, offer.events, offer.direction), ((Codec::Pcma, 8), Some(101), Direction::SendRecv));
        let answer = offer.answer("198.51.100.1".parse().unwrap(), 30000, 7, 1);
        assert!(answer.starts_with("v=0\r\no=convene 7 1 IN IP4 198.51.100.1\r\n"), "{answer}");
        assert!(answer.contains("c=IN IP4 198.51.100.1\r\n"));
        assert!(answer.contains("m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"), "{answer}");
        assert!(answer.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));
        assert!(answer.ends_with("a=ptime:20\r\na=sendrecv\r\n"));
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_dynamic_ones_are_read_by_name() {
        let bare = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 0\n";
        assert_eq!(Offer::parse(bare).unwrap().codec, (Codec::Pcmu, 0));
        let renamed = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 96 8\na=rtpmap:96 pcmu/8000\n";
        assert_eq!(Offer::parse(renamed).unwrap().codec, (Codec::Pcmu, 96));
        let wideband = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 96\na=rtpmap:96 PCMU/16000\n";
        assert_eq!(Offer::parse(wideband), Err(SdpError::NoCommonCodec));
        let both = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 9 0\n";
        assert_eq!(Offer::parse_preferring(both, Some(Codec::Pcmu)).unwrap().codec, (Codec::Pcmu, 0), "kept");
        assert_eq!(Offer::parse_preferring(both, Some(Codec::Pcma)).unwrap().codec, (Codec::G722, 9), "gone");
        let g722 = both;
        let offer = Offer::parse(g722).unwrap();
        assert_eq!(offer.codec, (Codec::G722, 9));
        let answer = offer.answer("10.0.0.2".parse().unwrap(), 7000, 1, 1);
        assert!(answer.contains("m=audio 7000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"), "{answer}");
    }

    #[test]
    fn hold_is_read_from_the_attribute_or_an_unspecified_address_and_answered_in_kind() {
        let held = TRUNK.replace("a=sendrecv", "a=sendonly");
        let offer = Offer::parse(&held).unwrap();
        assert_eq!(offer.direction, Direction::SendOnly);
        assert!(!offer.direction.caller_listens());
        assert!(offer.answer("10.0.0.2".parse().unwrap(), 1, 1, 2).ends_with("a=recvonly\r\n"));
        let old_style = TRUNK.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let offer = Offer::parse(&old_style).unwrap();
        assert_eq!((offer.destination, offer.direction), (None, Direction::Inactive));
    }

    #[test]
    fn other_media_lines_are_refused_in_place_and_a_media_address_overrides_the_session_one() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 6000 RTP/AVP 96\r\nm=audio 5000 RTP/SAVP 0\r\n\
            m=audio 5002 RTP/AVP 0\r\nc=IN IP4 10.0.0.9\r\nm=audio 5004 RTP/AVP 8\r\n";
        let offer = Offer::parse(offer).unwrap();
        assert_eq!(offer.destination, Some(("10.0.0.9".parse().unwrap(), 5002)));
        let answer = offer.answer("10.0.0.2".parse().unwrap(), 7000, 1, 1);
        let media: Vec<&str> = answer.lines().filter(|line| line.starts_with("m=")).collect();
        assert_eq!(
            media,
            ["m=video 0 RTP/AVP 96", "m=audio 0 RTP/SAVP 0", "m=audio 7000 RTP/AVP 0", "m=audio 0 RTP/AVP 8"]
        );
    }

    #[test]
    fn bad_offers_are_refused_with_a_reason() {
        for (sdp, expected) in [
            ("", SdpError::Malformed("it does not start with v=0")),
            ("v=0\nm=audio 5000 RTP/AVP 0\n", SdpError::Malformed("no connection address")),
            ("v=0\nc=IN IP4 1.2.3.4\nm=audio x RTP/AVP 0\n", SdpError::Malformed("the audio port is not a number")),
            (
                "v=0\nc=IN\nm=audio 5000 RTP/AVP 0\n",
                SdpError::Malformed("a connection line is not IN IP4/IP6 <address>"),
            ),
            ("v=0\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/SAVP 0\n", SdpError::NoCommonCodec),
            ("v=0\nc=IN IP4 1.2.3.4\nm=video 5000 RTP/AVP 0\n", SdpError::NoCommonCodec),
            ("v=0\ngarbage\n", SdpError::Malformed("a line has no '='")),
        ] {
            assert_eq!(Offer::parse(sdp), Err(expected), "{sdp:?}");
        }
        assert_eq!(Offer::parse(&format!("v=0\n{}", "a=x\n".repeat(5000))), Err(SdpError::Malformed("it is too long")));
    }

    #[test]
    fn the_gateways_own_offer_reads_back_as_g722_with_keys_both_ways() {
        let sdp = offer("192.0.2.1".parse().expect("an address"), 30000, 7);
        let read = Offer::parse(&sdp).expect("our offer is an offer");
        assert_eq!(read.destination, Some(("192.0.2.1".parse().expect("an address"), 30000)));
        assert_eq!((read.codec, read.events, read.direction), ((Codec::G722, 9), Some(101), Direction::SendRecv));
        assert!(sdp.contains("m=audio 30000 RTP/AVP 9 111 0 8 101 110\r\na=rtpmap:9 G722/8000\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 maxplaybackrate=16000;"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:110 telephone-event/48000\r\n"), "{sdp}");
        // A phone that takes only Opus answers with it and the events at Opus's clock.
        let opus_only = sdp.replace(" 9 111 0 8 101 110", " 111 110");
        assert_eq!(Offer::parse(&opus_only).unwrap().codec, (Codec::Opus, 111));
        assert_eq!(Offer::parse(&opus_only).unwrap().events, Some(110));
    }

    #[test]
    fn opus_is_read_at_its_48_khz_clock_with_the_events_at_the_same_clock() {
        let webrtc_like = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 96 126 101\r\n\
            a=rtpmap:96 OPUS/48000/2\r\na=fmtp:96 minptime=10;useinbandfec=1\r\n\
            a=rtpmap:126 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let offer = Offer::parse(webrtc_like).unwrap();
        assert_eq!((offer.codec, offer.events), ((Codec::Opus, 96), Some(126)));
        let answer = offer.answer("10.0.0.2".parse().unwrap(), 7000, 1, 1);
        assert!(answer.contains("m=audio 7000 RTP/AVP 96 126\r\na=rtpmap:96 opus/48000/2\r\n"), "{answer}");
        assert!(answer.contains("a=fmtp:96 maxplaybackrate=16000;sprop-maxcapturerate=16000\r\n"), "{answer}");
        assert!(answer.contains("a=rtpmap:126 telephone-event/48000\r\na=fmtp:126 0-15\r\n"), "{answer}");
        // Events at another clock than the audio's are not the call's: keys are then heard in the audio.
        let slow_events = webrtc_like.replace(" 96 126 101", " 96 101");
        assert_eq!(Offer::parse(&slow_events).unwrap().events, None);
        let g711_with_fast_events = webrtc_like.replace(" 96 126 101", " 0 126");
        assert_eq!(Offer::parse(&g711_with_fast_events).unwrap().codec, (Codec::Pcmu, 0));
        assert_eq!(Offer::parse(&g711_with_fast_events).unwrap().events, None);
        // Opus at any other clock is not Opus as RFC 7587 has it.
        let wrong_clock = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 96\na=rtpmap:96 opus/16000/1\n";
        assert_eq!(Offer::parse(wrong_clock), Err(SdpError::NoCommonCodec));
        assert_eq!((Codec::Opus.clock_step(), Codec::G722.clock_step(), Codec::Pcmu.clock_step()), (960, 160, 160));
    }
}
