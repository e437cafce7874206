//! A call's audio in its codec, both ways: G.711 (µ-law, A-law; 8 kHz, a byte a sample) or G.722
//! (wideband: 16 kHz samples at 64 kbit/s, through `audio-codec`'s pure-Rust port of the ITU-T reference).
//! The call works in linear samples at the codec's rate; prompts, recorded at 8 kHz, are doubled up for
//! wideband calls, and key detection hears every call at 8 kHz.

use audio_codec::{
    Decoder, Encoder,
    g722::{G722Decoder, G722Encoder},
};

use super::{g711, sdp::Codec, tones};

/// Samples in 20 ms at 8 kHz, the RTP clock step of every codec here (G.722's clock is 8 kHz too, RFC 3551).
pub const NARROW_FRAME: usize = 160;
/// Samples in 20 ms at the highest rate a call runs at.
pub const MAX_FRAME: usize = 2 * NARROW_FRAME;

/// The codec state of one call.
pub struct Voice {
    codec: Codec,
    /// G.722 is adaptive: each direction carries its own state.
    wideband: Option<Box<(G722Encoder, G722Decoder)>>,
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
        let wideband = (codec == Codec::G722).then(|| Box::new((G722Encoder::new(), G722Decoder::new())));
        Self { codec, wideband, last_narrow: 0 }
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

    /// Encodes `samples` (at [`Voice::rate`]) into `out` (cleared first).
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match (&mut self.wideband, self.codec) {
            (Some(state), _) => {
                out.resize(state.0.max_encode_bytes(samples.len()), 0);
                let written = state.0.encode_into(samples, out).unwrap_or(0);
                out.truncate(written);
            }
            (None, Codec::Pcma) => out.extend(samples.iter().map(|&sample| g711::alaw_encode(sample))),
            (None, _) => out.extend(samples.iter().map(|&sample| g711::ulaw_encode(sample))),
        }
    }

    /// Decodes a payload, appending its samples (at [`Voice::rate`]) to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match (&mut self.wideband, self.codec) {
            (Some(state), _) => {
                let start = out.len();
                out.resize(start + state.1.max_decode_samples(payload.len()), 0);
                let written = state.1.decode_into(payload, &mut out[start..]).unwrap_or(0);
                out.truncate(start + written);
            }
            (None, Codec::Pcma) => out.extend(payload.iter().map(|&byte| g711::alaw_decode(byte))),
            (None, _) => out.extend(payload.iter().map(|&byte| g711::ulaw_decode(byte))),
        }
    }

    /// 20 ms recorded at 8 kHz, at the call's rate: as is, or with a sample interpolated between each two.
    pub fn from_narrow<'a>(&mut self, narrow: &'a [i16; NARROW_FRAME], wide: &'a mut [i16; MAX_FRAME]) -> &'a [i16] {
        if self.wideband.is_none() {
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
        if self.wideband.is_none() {
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
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
            let share = round_trip(codec, 1_000.0);
            assert!(share > 0.8, "{codec:?}: {share}");
        }
        assert_eq!((Voice::new(Codec::G722).rate(), Voice::new(Codec::G722).frame()), (16_000, MAX_FRAME));
        assert_eq!((Voice::new(Codec::Pcmu).rate(), Voice::new(Codec::Pcma).frame()), (8_000, NARROW_FRAME));
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
    fn keys_typed_on_a_wideband_phone_are_heard_after_g722() {
        let (mut phone, mut gateway) = (Voice::new(Codec::G722), Voice::new(Codec::G722));
        let mut keys = tones::InbandKeys::default();
        let (mut wide, mut payload, mut decoded, mut narrow) =
            ([0; MAX_FRAME], Vec::new(), Vec::new(), [0; NARROW_FRAME]);
        let mut heard = String::new();
        for key in ['1', '5', '#'] {
            for frame in 0..10 {
                let said = if frame < 5 { tones::key_tone(key, frame).unwrap() } else { [0; NARROW_FRAME] };
                let samples = phone.from_narrow(&said, &mut wide).to_vec();
                phone.encode(&samples, &mut payload);
                decoded.clear();
                gateway.decode(&payload, &mut decoded);
                heard.extend(keys.on_frame(gateway.to_narrow(&decoded, &mut narrow)));
            }
        }
        assert_eq!(heard, "15#");
    }

    #[test]
    fn g722_payloads_of_any_length_decode_without_panicking() {
        let mut voice = Voice::new(Codec::G722);
        let mut out = Vec::new();
        for length in [0, 1, 7, 160, 1_400] {
            out.clear();
            voice.decode(&vec![0xA5; length], &mut out);
            assert_eq!(out.len(), 2 * length);
        }
    }
}
