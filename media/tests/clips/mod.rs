//! Media clips for the tests that need real frames: pictures and sound encoded by ffmpeg, packetized into
//! RTP by str0m as a browser would send them.
#![allow(dead_code)] // Each test binary uses its share of the clips.

use std::{path::Path, process::Command, time::Duration};

use convene_media::recording::frames::TrackCodec;
use str0m::unversioned::{H264Packetizer, Packetizer, Vp8Packetizer};

/// Frames a second of the clips.
pub const FPS: u32 = 15;
/// The clips' length.
pub const SECONDS: u32 = 3;

pub fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} runs (cargo xtask test installs ffmpeg): {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Runs ffmpeg with a command line of words without spaces.
pub fn ffmpeg(line: &str) {
    run("ffmpeg", &line.split_whitespace().collect::<Vec<_>>());
}

/// A test picture encoded by ffmpeg, one entry per frame.
pub fn encoded(codec: TrackCodec, dir: &Path) -> Vec<Vec<u8>> {
    let source = format!("testsrc=size=320x240:rate={FPS}");
    match codec {
        TrackCodec::Vp8 => {
            let file = dir.join("clip.ivf").display().to_string();
            ffmpeg(&format!("-v error -y -f lavfi -i {source} -t {SECONDS} -c:v libvpx -g 15 {file}"));
            // IVF: a 32-byte header, then each frame after a 12-byte header holding its size.
            let bytes = std::fs::read(&file).unwrap();
            let mut frames = Vec::new();
            let mut rest = &bytes[32..];
            while rest.len() >= 12 {
                let size = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                frames.push(rest[12..12 + size].to_vec());
                rest = &rest[12 + size..];
            }
            frames
        }
        TrackCodec::H264 => {
            let file = dir.join("clip.h264").display().to_string();
            ffmpeg(&format!(
                "-v error -y -f lavfi -i {source} -t {SECONDS} -c:v libx264 -profile:v baseline -pix_fmt yuv420p \
                 -g 15 -x264-params aud=1 -f h264 {file}"
            ));
            // Annex B with an access unit delimiter (NAL type 9) before each frame.
            let bytes = std::fs::read(&file).unwrap();
            let starts: Vec<usize> = (0..bytes.len().saturating_sub(4))
                .filter(|&at| bytes[at..at + 4] == [0, 0, 0, 1] && bytes[at + 4] & 0x1f == 9)
                .chain([bytes.len()])
                .collect();
            starts.windows(2).map(|pair| bytes[pair[0]..pair[1]].to_vec()).collect()
        }
        TrackCodec::Opus => unreachable!("video only"),
    }
}

/// One RTP packet: sequence number, timestamp, marker, payload, arrival.
pub type Packet = (u16, u32, bool, Vec<u8>, Duration);

/// `frames` packetized into RTP by str0m, as a sender would send them.
pub fn packetize(codec: TrackCodec, frames: &[Vec<u8>]) -> Vec<Packet> {
    let mut packetizer: Box<dyn Packetizer> = match codec {
        TrackCodec::Vp8 => Box::new(Vp8Packetizer::default()),
        _ => Box::new(H264Packetizer::default()),
    };
    let mut packets = Vec::new();
    for (index, frame) in frames.iter().enumerate() {
        let payloads = packetizer.packetize(1200, frame).unwrap();
        let count = payloads.len();
        for (part, payload) in payloads.into_iter().enumerate() {
            let timestamp = index as u32 * (90_000 / FPS);
            let arrived = Duration::from_millis(index as u64 * 1000 / u64::from(FPS));
            // Sequence numbers start near the wrap, as a sender's random start may.
            let seq = (packets.len() as u16).wrapping_add(65_500);
            packets.push((seq, timestamp, part + 1 == count, payload, arrived));
        }
    }
    packets
}

/// A tone encoded by ffmpeg as Opus in 20 ms packets, as browsers send it: one entry per packet.
pub fn voice(dir: &Path) -> Vec<Vec<u8>> {
    let file = dir.join("voice.ogg").display().to_string();
    ffmpeg(&format!(
        "-v error -y -f lavfi -i sine=frequency=440:sample_rate=48000 -t {SECONDS} -c:a libopus -b:a 32k \
         -frame_duration 20 {file}"
    ));
    // Ogg (RFC 3533): pages of segments; a packet ends at a segment shorter than 255 bytes.
    let bytes = std::fs::read(&file).unwrap();
    let mut packets = Vec::new();
    let mut packet = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 27 && rest.starts_with(b"OggS") {
        let segments = usize::from(rest[26]);
        let table = &rest[27..27 + segments];
        let mut body = &rest[27 + segments..];
        for &length in table {
            packet.extend_from_slice(&body[..usize::from(length)]);
            body = &body[usize::from(length)..];
            if length < 255 {
                packets.push(std::mem::take(&mut packet));
            }
        }
        rest = body;
    }
    // The identification and comment headers are not sound.
    packets.split_off(2)
}
