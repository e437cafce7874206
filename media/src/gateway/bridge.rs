//! A caller's audio in the room, sans-IO: a str0m WebRTC session with the node's SFU, negotiated through
//! the focus like a browser's, that publishes the caller's voice as Opus (with the RFC 6464 level the
//! SFU ranks speakers by) at the phone leg's own rate (8 kHz for G.711, 16 kHz for G.722), so nothing is
//! resampled. What the caller hears comes from the meeting's mixer ([`super::mix`]), which decodes each
//! voice once for all the meeting's callers; what the SFU forwards to this session is not decoded.

use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use opus_rs::OpusEncoder;
use str0m::{
    Candidate, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    format::Codec,
    media::{Direction, MediaKind, MediaTime, Mid, Pt},
    net::{Protocol, Receive},
};

use crate::phone::voice::{MAX_FRAME, OPUS_MAX_PACKET, opus_encoder};

/// Opus's RTP clock, whatever the sample rate.
const OPUS_CLOCK: u64 = 48_000;
/// A frame at or below this level (in -dBov) counts as silence for the SFU's speaker ranking.
const SILENT_LEVEL: i8 = 50;

/// Why the room leg could not be set up or negotiated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the caller's audio could not join the room: {0}")]
pub struct BridgeError(String);

fn error(what: impl std::fmt::Display) -> BridgeError {
    BridgeError(what.to_string())
}

/// The caller's WebRTC session.
pub struct RoomLeg {
    rtc: Rtc,
    /// The microphone section, and its offer until answered.
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    /// Where the node's media socket is reached from here (its candidates may name a public address).
    node_ip: IpAddr,
    encoder: OpusEncoder,
    opus: Option<Pt>,
    /// Samples in 20 ms at the phone leg's rate.
    frame: usize,
    /// The caller's media clock (48 kHz ticks).
    sent: u64,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    next_timeout: Option<Instant>,
    encoded: Vec<u8>,
}

impl RoomLeg {
    /// A session from `local` (the leg's socket) whose offer publishes one microphone at `rate` (8 or 16 kHz);
    /// `node_ip` replaces the address in the node's candidates. Boxed: a session is large, and callers hold it
    /// across awaits.
    pub fn new(
        local: SocketAddr,
        node_ip: IpAddr,
        rate: u32,
        now: Instant,
    ) -> Result<(Box<Self>, String), BridgeError> {
        let rate = i32::try_from(rate).map_err(error)?;
        let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(error)?);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or_else(|| error("no offer was made"))?;
        let encoder = opus_encoder(rate).map_err(error)?;
        let leg = Box::new(Self {
            rtc,
            mid,
            pending: Some(pending),
            node_ip,
            encoder,
            opus: None,
            frame: usize::try_from(rate / 50).map_err(error)?.min(MAX_FRAME),
            sent: 0,
            transmits: VecDeque::new(),
            next_timeout: Some(now),
            encoded: vec![0; OPUS_MAX_PACKET],
        });
        Ok((leg, offer.to_sdp_string()))
    }

    /// The node's answer to our offer.
    pub fn answered(&mut self, sdp: &str) -> Result<(), BridgeError> {
        let pending = self.pending.take().ok_or_else(|| error("an answer came without an offer"))?;
        let answer = SdpAnswer::from_sdp_string(&self.reachable(sdp)).map_err(error)?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(error)?;
        self.opus = self.opus_payload_type();
        Ok(())
    }

    /// The node's offer (others' tracks came or went); the answer to send back.
    pub fn offered(&mut self, sdp: &str) -> Result<String, BridgeError> {
        let offer = SdpOffer::from_sdp_string(&self.reachable(sdp)).map_err(error)?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(error)?;
        self.opus = self.opus_payload_type();
        Ok(answer.to_sdp_string())
    }

    fn opus_payload_type(&mut self) -> Option<Pt> {
        let writer = self.rtc.writer(self.mid)?;
        writer.payload_params().find(|params| params.spec().codec == Codec::Opus).map(|params| params.pt())
    }

    /// The node's candidates at the address it is reached at from this process.
    fn reachable(&self, sdp: &str) -> String {
        sdp.lines()
            .map(|line| match line.strip_prefix("a=candidate:") {
                Some(candidate) => {
                    let mut fields: Vec<&str> = candidate.split(' ').collect();
                    let address = self.node_ip.to_string();
                    if let Some(field) = fields.get_mut(4) {
                        *field = &address;
                    }
                    format!("a=candidate:{}\r\n", fields.join(" "))
                }
                None => format!("{line}\r\n"),
            })
            .collect()
    }

    /// A datagram from the node.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, bytes: &[u8]) {
        let Ok(contents) = bytes.try_into() else { return };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination, contents });
        if self.rtc.accepts(&input) && self.rtc.handle_input(input).is_ok() {
            self.drain();
        }
    }

    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_timeout.is_some_and(|due| due <= now) && self.rtc.handle_input(Input::Timeout(now)).is_ok() {
            self.drain();
        }
    }

    /// When [`RoomLeg::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// The next datagram to send to the node.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    fn drain(&mut self) {
        while let Ok(output) = self.rtc.poll_output() {
            match output {
                Output::Timeout(at) => {
                    self.next_timeout = Some(at);
                    return;
                }
                Output::Transmit(transmit) => {
                    self.transmits.push_back((transmit.destination, transmit.contents.into()))
                }
                Output::Event(_) => {}
            }
        }
        // A failed session has nothing more to do.
        self.next_timeout = None;
    }

    /// The caller's audio skips `frames` of 20 ms (lost on the trunk): the room's receivers conceal them.
    pub fn skip(&mut self, frames: u16) {
        self.sent += OPUS_CLOCK / 50 * u64::from(frames);
    }

    /// 20 ms of the caller's voice (muted callers send silence, so the stream stays continuous).
    pub fn speak(&mut self, frame: &[i16], now: Instant) {
        let Some(pt) = self.opus else { return };
        let samples = self.frame.min(frame.len());
        let Ok(length) = self.encoder.encode_i16(&frame[..samples], samples, &mut self.encoded) else { return };
        let level = audio_level(&frame[..samples]);
        let time = MediaTime::new(self.sent, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        self.sent += OPUS_CLOCK / 50;
        let Some(writer) = self.rtc.writer(self.mid) else { return };
        let packet = self.encoded[..length].to_vec();
        if writer.audio_level(-level, level < SILENT_LEVEL).write(pt, now, time, packet).is_ok() {
            self.drain();
        }
    }
}

/// A frame's level as RFC 6464 has it: -dBov from 0 (loudest) to 127 (silence).
pub fn audio_level(frame: &[i16]) -> i8 {
    let energy: f64 = frame.iter().map(|&sample| f64::from(sample) * f64::from(sample)).sum();
    let rms = (energy / frame.len().max(1) as f64).sqrt() / 32_768.0;
    if rms <= 0.0 {
        return 127;
    }
    // The cast saturates, and the clamp keeps it in RFC 6464's range.
    (-20.0 * rms.log10()).clamp(0.0, 127.0) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::voice::NARROW_FRAME;

    #[test]
    fn levels_follow_loudness_from_full_scale_to_silence() {
        assert_eq!(audio_level(&[0; NARROW_FRAME]), 127);
        assert_eq!(audio_level(&[i16::MAX; NARROW_FRAME]), 0);
        let quiet = [300i16; NARROW_FRAME];
        assert!((38..=42).contains(&audio_level(&quiet)), "{}", audio_level(&quiet));
    }
}
