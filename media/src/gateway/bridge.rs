//! A caller's audio in the room, sans-IO: a str0m WebRTC session with the node's SFU, negotiated through
//! the focus like a browser's, that publishes the caller's voice as Opus (with the RFC 6464 level the
//! SFU ranks speakers by) and receives the others' audio. The SFU forwards only the speakers and never a
//! participant's own voice, so the mix of what arrives is already "the loudest few, minus me".
//!
//! Opus runs at the phone leg's own rate both ways (8 kHz for G.711, 16 kHz for G.722), so nothing is
//! resampled. Each speaker's frames wait in a small playout buffer that starts once it holds two frames
//! and starts over after running dry, so network jitter costs 20 ms of delay instead of gaps.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use opus_rs::{OpusDecoder, OpusEncoder};
use str0m::{
    Candidate, Event, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    format::Codec,
    media::{Direction, MediaKind, MediaTime, Mid, Pt},
    net::{Protocol, Receive},
};

use crate::phone::voice::{MAX_FRAME, OPUS_MAX_PACKET, opus_encoder, opus_sample};

/// Opus's RTP clock, whatever the sample rate.
const OPUS_CLOCK: u64 = 48_000;
/// A speaker's frames waiting to be mixed at most: more means the sender's clock runs fast, and the
/// oldest go.
const QUEUE: usize = 4;
/// Frames a speaker's playout waits for before it starts (or starts again after running dry).
const PREBUFFER: usize = 2;
/// Ticks a speaker's queue may stay above [`PREBUFFER`] before a frame is dropped to catch up: a burst of
/// jitter fills the queue, and without this the delay it added would stay for the rest of the call.
const CATCH_UP_TICKS: u16 = 50;
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
    /// The phone leg's sample rate and samples in 20 ms at it.
    rate: i32,
    frame: usize,
    /// The caller's media clock (48 kHz ticks).
    sent: u64,
    speakers: HashMap<Mid, Speaker>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    next_timeout: Option<Instant>,
    encoded: Vec<u8>,
}

impl RoomLeg {
    /// A session from `local` (the leg's socket) whose offer publishes one microphone and receives the
    /// others' at `rate` (8 or 16 kHz); `node_ip` replaces the address in the node's candidates. Boxed: a
    /// session is large, and callers hold it across awaits.
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
            rate,
            frame: usize::try_from(rate / 50).map_err(error)?.min(MAX_FRAME),
            sent: 0,
            speakers: HashMap::new(),
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
                Output::Event(Event::MediaData(data)) => self.heard(data.mid, &data.data),
                Output::Event(_) => {}
            }
        }
        // A failed session has nothing more to do.
        self.next_timeout = None;
    }

    /// Another participant's voice: decoded now, queued for the next mixes.
    fn heard(&mut self, mid: Mid, packet: &[u8]) {
        if mid == self.mid {
            return;
        }
        let (rate, frame) = (self.rate, self.frame);
        let Some(speaker) = (match self.speakers.entry(mid) {
            std::collections::hash_map::Entry::Occupied(entry) => Some(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => OpusDecoder::new(rate, 1)
                .ok()
                .map(|decoder| entry.insert(Speaker { decoder, queue: VecDeque::new(), playing: false, ahead: 0 })),
        }) else {
            return;
        };
        let mut samples = [0f32; MAX_FRAME * 6];
        let Ok(count) = speaker.decoder.decode(packet, frame * 6, &mut samples) else { return };
        // Frames longer than 20 ms (Opus allows up to 120) are cut into 20 ms ones.
        for chunk in samples[..count.min(frame * 6)].chunks_exact(frame) {
            let mut decoded = [0i16; MAX_FRAME];
            for (out, sample) in decoded.iter_mut().zip(chunk) {
                *out = opus_sample(*sample);
            }
            if speaker.queue.len() == QUEUE {
                speaker.queue.pop_front();
            }
            speaker.queue.push_back(decoded);
        }
    }

    /// The next 20 ms of everyone the caller hears, summed (`None` when nobody is speaking), at the leg's
    /// rate: the first 20 ms of samples count.
    pub fn mix(&mut self) -> Option<[i16; MAX_FRAME]> {
        let mut sum = [0i32; MAX_FRAME];
        let mut any = false;
        for speaker in self.speakers.values_mut() {
            if let Some(frame) = speaker.next() {
                any = true;
                for (total, sample) in sum.iter_mut().zip(frame) {
                    *total += i32::from(sample);
                }
            }
        }
        any.then(|| sum.map(|total| total.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16))
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

/// Another participant's voice waiting to be mixed.
struct Speaker {
    decoder: OpusDecoder,
    queue: VecDeque<[i16; MAX_FRAME]>,
    /// The playout has started: frames are taken one a tick until the queue runs dry.
    playing: bool,
    /// Ticks in a row the queue held more than it needs.
    ahead: u16,
}

impl Speaker {
    /// The frame for this tick, if the playout has one.
    fn next(&mut self) -> Option<[i16; MAX_FRAME]> {
        if !self.playing && self.queue.len() < PREBUFFER {
            return None;
        }
        self.ahead = if self.queue.len() > PREBUFFER { self.ahead + 1 } else { 0 };
        if self.ahead > CATCH_UP_TICKS {
            self.queue.pop_front();
            self.ahead = 0;
        }
        let frame = self.queue.pop_front();
        self.playing = frame.is_some();
        frame
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

    #[test]
    fn a_speakers_playout_waits_for_two_frames_and_again_after_running_dry() {
        let mut speaker =
            Speaker { decoder: OpusDecoder::new(8_000, 1).unwrap(), queue: VecDeque::new(), playing: false, ahead: 0 };
        let frame = |value: i16| [value; MAX_FRAME];
        speaker.queue.push_back(frame(1));
        assert_eq!(speaker.next(), None, "one frame is not enough to start");
        speaker.queue.push_back(frame(2));
        assert_eq!(speaker.next().map(|f| f[0]), Some(1));
        // Started: a single frame plays on until the queue is empty.
        assert_eq!(speaker.next().map(|f| f[0]), Some(2));
        assert_eq!(speaker.next(), None);
        speaker.queue.push_back(frame(3));
        assert_eq!(speaker.next(), None, "dry: it waits for two again");

        // A burst left five frames queued: after a second of it, one is dropped to catch up.
        speaker.queue.extend((10..14).map(frame));
        assert_eq!(speaker.queue.len(), 5);
        let mut played = Vec::new();
        for tick in 0..=CATCH_UP_TICKS {
            played.extend(speaker.next().map(|f| f[0]));
            speaker.queue.push_back(frame(20 + tick as i16));
        }
        assert_eq!(speaker.queue.len(), 4, "one frame fewer than the burst left");
        assert_eq!(&played[..3], [3, 10, 11]);
        assert!(played.windows(2).any(|pair| pair[1] == pair[0] + 2), "one frame was skipped: {played:?}");
    }
}
