//! G.711 (ITU-T): 16-bit linear samples to and from µ-law (North America, Japan) and A-law (elsewhere), a
//! byte a sample at 8 kHz. The classic segment arithmetic (Sun's reference `g711.c`), no tables to keep.

/// µ-law adds this before finding the segment, so small samples keep their resolution.
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude µ-law encodes; louder samples are clipped to it.
const ULAW_CLIP: i32 = 32_635;

/// Encodes a linear sample as µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment is where the highest set bit is, from bit 7 (segment 0) to bit 14 (segment 7).
    let segment = (7..=14).rev().find(|bit| magnitude & (1 << bit) != 0).map_or(0, |bit| bit - 7);
    let mantissa = (magnitude >> (segment + 3)) & 0x0F;
    // Bytes on the wire are inverted, so silence is 0xFF rather than a run of zeros.
    !((sign | (segment << 4) | mantissa) as u8)
}

/// Decodes a µ-law byte to a linear sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    let code = !byte;
    let segment = (code >> 4) & 0x07;
    let mantissa = i32::from(code & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    // At most 32,124: always an i16.
    let magnitude = i16::try_from(magnitude).unwrap_or(i16::MAX);
    if code & 0x80 != 0 { -magnitude } else { magnitude }
}

/// The top of each A-law segment, on 13-bit magnitudes.
const ALAW_SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Encodes a linear sample as A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample) >> 3;
    // Even bits are inverted on the wire (0x55), and the sign bit is set for positive samples.
    let mask = if magnitude >= 0 {
        0xD5
    } else {
        magnitude = -magnitude - 1;
        0x55
    };
    let Some(segment) = ALAW_SEGMENT_ENDS.iter().position(|end| magnitude <= *end) else {
        return 0x7F ^ mask;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let code = ((segment as i32) << 4) | ((magnitude >> shift) & 0x0F);
    (code as u8) ^ mask
}

/// Decodes an A-law byte to a linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let code = byte ^ 0x55;
    let segment = (code >> 4) & 0x07;
    let mut magnitude = i32::from(code & 0x0F) << 4;
    magnitude = match segment {
        0 => magnitude + 8,
        1 => magnitude + 0x108,
        _ => (magnitude + 0x108) << (segment - 1),
    };
    // At most 32,256: always an i16.
    let magnitude = i16::try_from(magnitude).unwrap_or(i16::MAX);
    if code & 0x80 != 0 { magnitude } else { -magnitude }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_the_extremes_are_the_reference_codes() {
        assert_eq!((ulaw_encode(0), ulaw_decode(0xFF), ulaw_decode(0x00)), (0xFF, 0, -32_124));
        assert_eq!((alaw_encode(0), alaw_decode(0xD5), alaw_decode(0x2A)), (0xD5, 8, -32_256));
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn every_code_decodes_to_a_sample_that_encodes_back_to_it() {
        for byte in 0..=u8::MAX {
            assert_eq!(alaw_encode(alaw_decode(byte)), byte, "A-law {byte:#04x}");
            // 0x7F is µ-law's negative zero, which decodes to the same 0 as 0xFF.
            if byte != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(byte)), byte, "µ-law {byte:#04x}");
            }
        }
    }

    #[test]
    fn the_error_grows_with_the_sample_as_a_logarithmic_code_should() {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            // A segment's step is 1/16 of its top, so the error stays within about 1/32 of the sample,
            // plus the finest step near zero and the clipping at the very top.
            let bound = i32::from(sample).abs() / 16 + 136;
            let ulaw = i32::from(ulaw_decode(ulaw_encode(sample))) - i32::from(sample);
            let alaw = i32::from(alaw_decode(alaw_encode(sample))) - i32::from(sample);
            assert!(ulaw.abs() <= bound && alaw.abs() <= bound, "{sample}: µ-law {ulaw}, A-law {alaw}");
        }
    }
}
