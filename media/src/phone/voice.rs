//! A call's audio in its codec, both ways: G.711 (µ-law, A-law; 8 kHz, a byte a sample), G.722
//! (wideband: 16 kHz samples at 64 kbit/s, through `audio-codec`'s pure-Rust port of the ITU-T reference) or
//! Opus (run at 16 kHz, as the room leg runs wideband calls, through `opus-rs`). The call works in linear
//! samples at the codec's rate; prompts, recorded at 8 kHz, are doubled up for wideband calls, and key
//! detection hears every call at 8 kHz.

use audio_codec::{
    Decoder, Encoder,
    g722::{G722Decoder, G722Encoder},
};
use opus_rs::{Application, OpusDecoder, OpusEncoder};

use super::{g711, sdp::Codec, tones};

/// Samples in 20 ms at 8 kHz.
pub const NARROW_FRAME: usize = 160;
/// Samples in 20 ms at the highest rate a call runs at.
pub const MAX_FRAME: usize = 2 * NARROW_FRAME;
/// Voice at the phone's bandwidth needs no more (Opus's default is 64 kbit/s, for music).
const OPUS_BITRATE: i32 = 24_000;
/// Encoder effort. Through Opus at 8 kHz and 24 kbit/s, the spoken greeting comes back within 0.1 dB of the
/// same waveform match (11.1–11.2 dB SNR) at every complexity from 0 to 9, while encoding takes a third as
/// long at 1 as at the default 9 (no delayed-decision quantiser, no warped analysis).
const OPUS_COMPLEXITY: i32 = 1;
/// Encoded frames are at most this long (phone voice is tens of bytes).
pub const OPUS_MAX_PACKET: usize = 400;
/// The longest Opus packet (120 ms) in samples at the highest rate a call runs at.
const OPUS_MAX_SAMPLES: usize = 6 * MAX_FRAME;

/// An Opus encoder set for a phone's voice at `rate` (8 or 16 kHz).
pub fn opus_encoder(rate: i32) -> Result<OpusEncoder, &'static str> {
    let mut encoder = OpusEncoder::new(rate, 1, Application::Voip)?;
    encoder.bitrate_bps = OPUS_BITRATE;
    encoder.complexity = OPUS_COMPLEXITY;
    Ok(encoder)
}

/// A decoded Opus sample as PCM16: the cast saturates, so loud samples clip rather than wrap.
pub fn opus_sample(sample: f32) -> i16 {
    (sample * 32_768.0) as i16
}

/// Each codec's state; G.722 and Opus are adaptive, so each direction carries its own.
enum State {
    Narrow,
    G722(Box<(G722Encoder, G722Decoder)>),
    Opus(Box<(OpusEncoder, OpusDecoder)>),
}

/// The codec state of one call.
pub struct Voice {
    codec: Codec,
    state: State,
    /// The last prompt sample, to interpolate the first of the next frame from.
    last_narrow: i16,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Voice").field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl Voice {
    /// Fresh state for `codec`.
    pub fn new(codec: Codec) -> Self {
        let rate = codec.rate() as i32;
        let state = match codec {
            Codec::Pcmu | Codec::Pcma => State::Narrow,
            Codec::G722 => State::G722(Box::new((G722Encoder::new(), G722Decoder::new()))),
            // Both rates are ones Opus takes, so neither can fail.
            Codec::Opus => match (opus_encoder(rate), OpusDecoder::new(rate, 1)) {
                (Ok(encoder), Ok(decoder)) => State::Opus(Box::new((encoder, decoder))),
                _ => unreachable!("Opus runs at {rate} Hz"),
            },
        };
        Self { codec, state, last_narrow: 0 }
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Samples a second.
    pub fn rate(&self) -> u32 {
        self.codec.rate()
    }

    /// Samples in 20 ms.
    pub fn frame(&self) -> usize {
        if self.codec.rate() > 8_000 { MAX_FRAME } else { NARROW_FRAME }
    }

    /// Encodes `samples` (20 ms at [`Voice::rate`]) into `out` (cleared first).
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match &mut self.state {
            State::G722(state) => {
                out.resize(state.0.max_encode_bytes(samples.len()), 0);
                let written = state.0.encode_into(samples, out).unwrap_or(0);
                out.truncate(written);
            }
            State::Opus(state) => {
                out.resize(OPUS_MAX_PACKET, 0);
                let written = state.0.encode_i16(samples, samples.len(), out).unwrap_or(0);
                out.truncate(written);
            }
            State::Narrow if self.codec == Codec::Pcma => {
                out.extend(samples.iter().map(|&sample| g711::alaw_encode(sample)));
            }
            State::Narrow => out.extend(samples.iter().map(|&sample| g711::ulaw_encode(sample))),
        }
    }

    /// Decodes a payload, appending its samples (at [`Voice::rate`]) to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match &mut self.state {
            State::G722(state) => {
                let start = out.len();
                out.resize(start + state.1.max_decode_samples(payload.len()), 0);
                let written = state.1.decode_into(payload, &mut out[start..]).unwrap_or(0);
                out.truncate(start + written);
            }
            // A packet of a byte or none is silence the sender left out (DTX): nothing to play.
            State::Opus(_) if payload.len() < 2 => {}
            State::Opus(state) => {
                let mut decoded = [0f32; OPUS_MAX_SAMPLES];
                let count = state.1.decode(payload, OPUS_MAX_SAMPLES, &mut decoded).unwrap_or(0);
                out.extend(decoded[..count.min(OPUS_MAX_SAMPLES)].iter().map(|&sample| opus_sample(sample)));
            }
            State::Narrow if self.codec == Codec::Pcma => {
                out.extend(payload.iter().map(|&byte| g711::alaw_decode(byte)));
            }
            State::Narrow => out.extend(payload.iter().map(|&byte| g711::ulaw_decode(byte))),
        }
    }

    /// 20 ms recorded at 8 kHz, at the call's rate: as is, or with a sample interpolated between each two.
    pub fn from_narrow<'a>(&mut self, narrow: &'a [i16; NARROW_FRAME], wide: &'a mut [i16; MAX_FRAME]) -> &'a [i16] {
        if self.rate() == 8_000 {
            return narrow;
        }
        let mut previous = self.last_narrow;
        for (pair, &sample) in wide.chunks_exact_mut(2).zip(narrow) {
            pair[0] = ((i32::from(previous) + i32::from(sample)) / 2) as i16;
            pair[1] = sample;
            previous = sample;
        }
        self.last_narrow = previous;
        wide
    }

    /// 20 ms at the call's rate as 8 kHz for key detection (wideband: each pair averaged, which also keeps
    /// what lies above 4 kHz from folding down onto the keypad's tones).
    pub fn to_narrow<'a>(&self, samples: &'a [i16], narrow: &'a mut [i16; NARROW_FRAME]) -> &'a [i16] {
        if self.rate() == 8_000 {
            return samples;
        }
        for (out, pair) in narrow.iter_mut().zip(samples.chunks_exact(2)) {
            *out = ((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16;
        }
        narrow
    }
}

/// 20 ms of a tone at 8 kHz, as tests and the benchmark make them.
pub fn narrow_tone(frequency: f32, amplitude: f32, frame_index: usize) -> [i16; NARROW_FRAME] {
    std::array::from_fn(|i| {
        let t = (frame_index * NARROW_FRAME + i) as f32 / tones::RATE;
        (amplitude * (2.0 * std::f32::consts::PI * frequency * t).sin()) as i16
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tone's share of the decoded audio after `frames` frames through `codec` and back.
    fn round_trip(codec: Codec, frequency: f32) -> f32 {
        let (mut sender, mut receiver) = (Voice::new(codec), Voice::new(codec));
        let (mut payload, mut decoded) = (Vec::new(), Vec::new());
        let mut wide = [0; MAX_FRAME];
        for frame in 0..20 {
            let narrow = narrow_tone(frequency, 8_000.0, frame);
            let samples = sender.from_narrow(&narrow, &mut wide).to_vec();
            sender.encode(&samples, &mut payload);
            decoded.clear();
            receiver.decode(&payload, &mut decoded);
            assert_eq!(decoded.len(), sender.frame(), "{codec:?}: 20 ms in, 20 ms out");
        }
        tones::tone_share(&decoded, frequency, receiver.rate() as f32)
    }

    #[test]
    fn a_tone_comes_through_every_codec_at_its_rate() {
        for codec in Codec::ALL {
            let share = round_trip(codec, 1_000.0);
            assert!(share > 0.8, "{codec:?}: {share}");
        }
        assert_eq!((Voice::new(Codec::G722).rate(), Voice::new(Codec::G722).frame()), (16_000, MAX_FRAME));
        assert_eq!((Voice::new(Codec::Opus).rate(), Voice::new(Codec::Opus).frame()), (16_000, MAX_FRAME));
        assert_eq!((Voice::new(Codec::Pcmu).rate(), Voice::new(Codec::Pcma).frame()), (8_000, NARROW_FRAME));
    }

    #[test]
    fn opus_stays_near_the_bitrate_set_and_keeps_a_tones_energy_at_the_phones_rates() {
        for rate in [8_000, 16_000] {
            let frame = rate as usize / 50;
            let mut encoder = opus_encoder(rate).unwrap();
            let mut decoder = OpusDecoder::new(rate, 1).unwrap();
            let (mut packet, mut decoded) = (vec![0; OPUS_MAX_PACKET], vec![0f32; frame]);
            let mut energy = (0.0, 0.0);
            for index in 0..50 {
                let tone: Vec<i16> = (0..frame)
                    .map(|i| {
                        let t = (index * frame + i) as f64 / f64::from(rate);
                        (8_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin()) as i16
                    })
                    .collect();
                let length = encoder.encode_i16(&tone, frame, &mut packet).unwrap();
                assert!(length * 8 * 50 <= OPUS_BITRATE as usize * 2, "{rate}: {length} bytes is near the rate set");
                assert_eq!(decoder.decode(&packet[..length], frame, &mut decoded).unwrap(), frame);
                if index >= 10 {
                    energy.0 += tone.iter().map(|&s| f64::from(s) / 32_768.0).map(|s| s * s).sum::<f64>();
                    energy.1 += decoded.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
                }
            }
            let ratio = energy.1 / energy.0;
            assert!((0.5..2.0).contains(&ratio), "{rate}: the tone's energy came through: {ratio}");
        }
    }

    #[test]
    fn wideband_frames_go_back_to_narrow_with_their_tone() {
        let mut voice = Voice::new(Codec::G722);
        let mut wide = [0; MAX_FRAME];
        let narrow = narrow_tone(941.0, 8_000.0, 3);
        let widened = voice.from_narrow(&narrow, &mut wide).to_vec();
        assert_eq!(widened.len(), MAX_FRAME);
        let mut back = [0; NARROW_FRAME];
        let narrowed = voice.to_narrow(&widened, &mut back);
        assert!(tones::tone_share(narrowed, 941.0, tones::RATE) > 0.9);
    }

    #[test]
    fn keys_typed_on_a_wideband_phone_are_heard_after_g722_and_opus() {
        for codec in [Codec::G722, Codec::Opus] {
            assert_eq!(keys_heard_through(codec, "15#"), "15#", "{codec:?}");
        }
    }

    /// The keys `typed` as tones on a phone speaking `codec`, as the gateway's detector hears them.
    fn keys_heard_through(codec: Codec, typed: &str) -> String {
        let (mut phone, mut gateway) = (Voice::new(codec), Voice::new(codec));
        let mut keys = tones::InbandKeys::default();
        let (mut wide, mut payload, mut decoded, mut narrow) =
            ([0; MAX_FRAME], Vec::new(), Vec::new(), [0; NARROW_FRAME]);
        let mut heard = String::new();
        for key in typed.chars() {
            for frame in 0..10 {
                let said = if frame < 5 { tones::key_tone(key, frame).unwrap() } else { [0; NARROW_FRAME] };
                let samples = phone.from_narrow(&said, &mut wide).to_vec();
                phone.encode(&samples, &mut payload);
                decoded.clear();
                gateway.decode(&payload, &mut decoded);
                heard.extend(keys.on_frame(gateway.to_narrow(&decoded, &mut narrow)));
            }
        }
        heard
    }

    #[test]
    fn payloads_of_any_length_and_content_decode_without_panicking() {
        let mut voice = Voice::new(Codec::G722);
        let mut out = Vec::new();
        for length in [0, 1, 7, 160, 1_400] {
            out.clear();
            voice.decode(&vec![0xA5; length], &mut out);
            assert_eq!(out.len(), 2 * length);
        }
        let mut voice = Voice::new(Codec::Opus);
        for length in [0, 1, 2, 7, 160, 1_400] {
            for fill in [0x00, 0xA5, 0xFF] {
                out.clear();
                voice.decode(&vec![fill; length], &mut out);
                assert!(out.len() <= OPUS_MAX_SAMPLES, "{length} bytes of {fill:#x}: {}", out.len());
            }
        }
    }
}
