//! Keys a caller presses heard in the audio itself (in-band DTMF), for trunks that send neither RFC 4733
//! events nor SIP INFO: the Goertzel algorithm measures the eight DTMF frequencies in each 20 ms frame, and
//! a key is a frame whose energy sits almost all in one row and one column tone (speech spreads its energy
//! wider), twice in a row (ITU-T Q.24's shortest valid tone is 40 ms). The same tables make the tones the
//! gateway presses on lines that take no events.

use super::voice::narrow_tone;

/// The row tones (Hz), low group.
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// The column tones (Hz), high group.
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keys by row and column.
const KEYS: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];
/// The rate frames are analysed at.
pub const RATE: f32 = 8_000.0;
/// Share of a frame's energy the two tones must hold (a clean key holds nearly all of it; G.711's noise
/// and a trunk's filtering take a little).
const MIN_SHARE: f32 = 0.75;
/// Neither tone may be this much weaker than the other (Q.24 allows 8 dB of twist; 0.16 ≈ -8 dB).
const MAX_TWIST: f32 = 0.16;
/// Quieter frames (mean square, 16-bit samples) are not keys: about -50 dBov, below any real keypad.
const MIN_POWER: f32 = 100.0;
/// Frames in a row a key must be heard in.
const FRAMES_TO_PRESS: u8 = 2;

/// 20 ms of `key`'s two tones at 8 kHz (`frame` counts from the press, so the sines run on), each about
/// -15 dBov, or `None` for a character that is no key.
pub fn key_tone(key: char, frame: usize) -> Option<[i16; super::voice::NARROW_FRAME]> {
    let (row, column) =
        KEYS.iter().enumerate().find_map(|(row, keys)| Some((row, keys.iter().position(|&k| k == key)?)))?;
    let (low, high) = (narrow_tone(ROWS[row], 6_000.0, frame), narrow_tone(COLUMNS[column], 6_000.0, frame));
    Some(std::array::from_fn(|i| low[i].saturating_add(high[i])))
}

/// The power of `frequency` in `samples` (taken at `rate`), as a share of the frame's energy: a pure tone at
/// `frequency` gives about 1, silence or other frequencies about 0.
pub fn tone_share(samples: &[i16], frequency: f32, rate: f32) -> f32 {
    let energy: f32 = samples.iter().map(|&sample| f32::from(sample) * f32::from(sample)).sum();
    if energy <= 0.0 {
        return 0.0;
    }
    goertzel(samples, frequency, rate) * 2.0 / (samples.len() as f32 * energy)
}

/// The squared magnitude of the signal's DFT at `frequency` (generalised Goertzel: any frequency, not
/// only a bin's).
fn goertzel(samples: &[i16], frequency: f32, rate: f32) -> f32 {
    let coefficient = 2.0 * (2.0 * std::f32::consts::PI * frequency / rate).cos();
    let (mut previous, mut before) = (0.0f32, 0.0f32);
    for &sample in samples {
        let current = f32::from(sample) + coefficient * previous - before;
        before = previous;
        previous = current;
    }
    previous * previous + before * before - coefficient * previous * before
}

/// The key whose two tones fill `samples` (20 ms at [`RATE`]), if one does.
fn key_in(samples: &[i16]) -> Option<char> {
    let energy: f32 = samples.iter().map(|&sample| f32::from(sample) * f32::from(sample)).sum();
    if energy < MIN_POWER * samples.len() as f32 {
        return None;
    }
    let strongest = |tones: &[f32; 4]| {
        tones
            .iter()
            .map(|&tone| tone_share(samples, tone, RATE))
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0))
    };
    let ((row, row_share), (column, column_share)) = (strongest(&ROWS), strongest(&COLUMNS));
    let twist_ok = row_share.min(column_share) >= MAX_TWIST * row_share.max(column_share);
    (row_share + column_share >= MIN_SHARE && twist_ok).then_some(KEYS[row][column])
}

/// Turns the caller's audio, frame by frame, into key presses, each reported once when it has lasted long
/// enough; the same key again needs a gap between.
#[derive(Debug, Default)]
pub struct InbandKeys {
    /// The key heard in the last frames and for how many.
    heard: Option<(char, u8)>,
    /// The key already reported and still held.
    held: Option<char>,
}

impl InbandKeys {
    /// One 20 ms frame at [`RATE`]; the key it completes, if any.
    pub fn on_frame(&mut self, samples: &[i16]) -> Option<char> {
        let Some(key) = key_in(samples) else {
            self.heard = None;
            self.held = None;
            return None;
        };
        let count = match self.heard {
            Some((previous, count)) if previous == key => count.saturating_add(1),
            _ => 1,
        };
        self.heard = Some((key, count));
        if count >= FRAMES_TO_PRESS && self.held != Some(key) {
            self.held = Some(key);
            return Some(key);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::g711;

    const FRAME: usize = 160;

    /// `frames` of 20 ms holding `tones` (Hz) at `amplitude` each, from sample `start`, through µ-law as
    /// a trunk would carry them.
    fn frames(tones: &[f32], amplitude: f32, start: usize, frames: usize) -> Vec<Vec<i16>> {
        (0..frames)
            .map(|frame| {
                (0..FRAME)
                    .map(|i| {
                        let t = (start + frame * FRAME + i) as f32 / RATE;
                        let sample: f32 =
                            tones.iter().map(|tone| amplitude * (2.0 * std::f32::consts::PI * tone * t).sin()).sum();
                        g711::ulaw_decode(g711::ulaw_encode(sample as i16))
                    })
                    .collect()
            })
            .collect()
    }

    fn pressed(reader: &mut InbandKeys, audio: &[Vec<i16>]) -> String {
        audio.iter().filter_map(|frame| reader.on_frame(frame)).collect()
    }

    #[test]
    fn every_key_is_heard_once_however_long_it_is_held() {
        let mut reader = InbandKeys::default();
        let mut heard = String::new();
        for (row, keys) in KEYS.iter().enumerate() {
            for (column, key) in keys.iter().enumerate() {
                // Held for 100 ms, then 60 ms of silence.
                let mut audio = frames(&[ROWS[row], COLUMNS[column]], 6_000.0, 0, 5);
                audio.extend(frames(&[], 0.0, 0, 3));
                assert_eq!(pressed(&mut reader, &audio), key.to_string());
                heard.push(*key);
            }
        }
        assert_eq!(heard, "123A456B789C*0#D");
    }

    #[test]
    fn the_same_key_twice_needs_a_gap_and_a_twenty_millisecond_blip_is_not_a_key() {
        let mut reader = InbandKeys::default();
        let five = frames(&[770.0, 1336.0], 5_000.0, 0, 3);
        let gap = frames(&[], 0.0, 0, 2);
        let audio: Vec<Vec<i16>> = [five.clone(), gap.clone(), five].concat();
        assert_eq!(pressed(&mut reader, &audio), "55");
        let blip = frames(&[770.0, 1336.0], 5_000.0, 0, 1);
        assert_eq!(pressed(&mut reader, &[blip, gap].concat()), "");
    }

    #[test]
    fn speech_like_sound_single_tones_quiet_keys_and_twisted_keys_press_nothing() {
        let mut reader = InbandKeys::default();
        // A voice: a fundamental and its harmonics.
        let voice = frames(&[180.0, 360.0, 540.0, 720.0, 900.0, 1_260.0], 2_000.0, 0, 10);
        // A dial tone's single frequency, a key far below any keypad, and one tone 14 dB under the other.
        let single = frames(&[941.0], 8_000.0, 0, 5);
        let quiet = frames(&[697.0, 1209.0], 5.0, 0, 5);
        let twisted: Vec<Vec<i16>> = frames(&[697.0], 8_000.0, 0, 5)
            .iter()
            .zip(frames(&[1209.0], 1_600.0, 0, 5))
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x.saturating_add(y)).collect())
            .collect();
        for audio in [voice, single, quiet, twisted] {
            assert_eq!(pressed(&mut reader, &audio), "");
        }
    }

    #[test]
    fn the_tones_the_gateway_presses_are_heard_as_their_keys() {
        let mut reader = InbandKeys::default();
        let mut heard = String::new();
        for key in "159*0#AD".chars() {
            for frame in 0..5 {
                heard.extend(reader.on_frame(&key_tone(key, frame).unwrap()));
            }
            heard.extend(reader.on_frame(&[0; FRAME]));
        }
        assert_eq!(heard, "159*0#AD");
        assert_eq!(key_tone('x', 0), None);
    }

    #[test]
    fn tone_share_is_near_one_for_the_tone_and_near_zero_elsewhere() {
        let tone = &frames(&[1_000.0], 8_000.0, 0, 1)[0];
        assert!(tone_share(tone, 1_000.0, RATE) > 0.9);
        assert!(tone_share(tone, 1_500.0, RATE) < 0.05);
        assert_eq!(tone_share(&[0; FRAME], 1_000.0, RATE), 0.0);
    }
}
