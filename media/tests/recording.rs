//! The recorder's file path with real media: clips encoded by ffmpeg (VP8 and H.264, as browsers send
//! them), packetized into RTP by str0m and shuffled a little, put back into frames and written as live-mode
//! WebM/Matroska, then read by ffprobe and decoded by ffmpeg, whole and cut off mid-file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod clips;

use std::{path::Path, process::Command};

use clips::{FPS, Packet, SECONDS, encoded, packetize, run};
use convene_media::recording::{
    frames::{FrameAssembler, TrackCodec, vp8_keyframe_size},
    webm::{TrackFormat, WebmWriter},
};

/// Puts `packets` back into frames and writes them to `file` in `dir`; answers its path and the frames
/// written.
fn record(codec: TrackCodec, packets: &[Packet], dir: &Path, file: &str) -> (std::path::PathBuf, usize) {
    let mut assembler = FrameAssembler::new(codec);
    let mut writer: Option<WebmWriter> = None;
    let mut out = Vec::new();
    let mut written = 0;
    for (seq, timestamp, marker, payload, arrived) in packets {
        assembler.push(*seq, *timestamp, *marker, payload, *arrived);
        while let Some(frame) = assembler.pop() {
            if writer.is_none() {
                let format = match codec {
                    TrackCodec::Vp8 => {
                        let (width, height) = vp8_keyframe_size(&frame.data).expect("a keyframe first");
                        TrackFormat::Vp8 { width, height }
                    }
                    _ => TrackFormat::h264(&frame.data).expect("parameter sets in the first keyframe"),
                };
                let (new, header) = WebmWriter::new(&format);
                out.extend(header);
                writer = Some(new);
            }
            let at_ms = u64::try_from(frame.at.as_millis()).unwrap();
            writer.as_mut().unwrap().frame(at_ms, frame.keyframe, &frame.data, &mut out);
            written += 1;
        }
    }
    let path = dir.join(file);
    std::fs::write(&path, out).unwrap();
    (path, written)
}

fn probe(path: &Path) -> (String, String, f64) {
    let path = path.display().to_string();
    let stream = String::from_utf8(run(
        "ffprobe",
        &["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", &path],
    ))
    .unwrap();
    let times = String::from_utf8(run(
        "ffprobe",
        &["-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", &path],
    ))
    .unwrap();
    let last = times.lines().filter_map(|line| line.trim().parse::<f64>().ok()).fold(0.0, f64::max);
    let mut fields = stream.trim().split(',');
    let codec = fields.next().unwrap_or_default().to_owned();
    (codec, fields.filter(|field| !field.is_empty()).collect::<Vec<_>>().join("x"), last)
}

fn decodes_cleanly(path: &Path) {
    let output =
        Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(["-f", "null", "-"]).output().unwrap();
    assert!(output.status.success() && output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn vp8_and_h264_tracks_become_files_that_play_whole_and_cut_short() {
    for (codec, name) in [(TrackCodec::Vp8, "vp8"), (TrackCodec::H264, "h264")] {
        let dir = tempfile::tempdir().unwrap();
        let frames = encoded(codec, dir.path());
        assert_eq!(frames.len(), (FPS * SECONDS) as usize);
        let mut packets = packetize(codec, &frames);
        for swapped in packets.chunks_mut(7).filter(|chunk| chunk.len() > 2) {
            swapped.swap(1, 2);
        }
        let extension = if codec == TrackCodec::Vp8 { "webm" } else { "mkv" };
        let (file, written) = record(codec, &packets, dir.path(), &format!("track.{extension}"));
        assert_eq!(written, frames.len(), "every frame comes out, in order, none lost to the reordering");
        let (found, size, last) = probe(&file);
        assert_eq!((found.as_str(), size.as_str()), (name, "320x240"));
        let expected = f64::from(SECONDS) - 1.0 / f64::from(FPS);
        assert!((last - expected).abs() < 0.05, "{name}: the last frame at {last} s, not {expected}");
        decodes_cleanly(&file);

        // A crash mid-write: the file ends inside a block; what came before still plays.
        let bytes = std::fs::read(&file).unwrap();
        let cut = dir.path().join(format!("cut.{}", file.extension().unwrap().to_str().unwrap()));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let (_, _, last_cut) = probe(&cut);
        assert!(last_cut > 1.0 && last_cut < last, "{name}: {last_cut} s survive of {last} s");
        let output =
            Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&cut).args(["-f", "null", "-"]).output().unwrap();
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn a_lossy_network_costs_frames_but_never_writes_one_that_cannot_be_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let frames = encoded(TrackCodec::Vp8, dir.path());
    let sent = packetize(TrackCodec::Vp8, &frames);
    // A seeded generator: the same losses every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut chance = move |percent: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % 100 < percent
    };
    let mut received: Vec<Packet> = Vec::new();
    for packet in sent {
        if chance(4) {
            continue;
        }
        // Padding a sender adds to probe bandwidth: no payload, the last frame's timestamp.
        if chance(5) {
            received.push((packet.0.wrapping_sub(1), packet.1, false, Vec::new(), packet.4));
        }
        let duplicate = chance(3).then(|| packet.clone());
        received.push(packet);
        received.extend(duplicate);
        if chance(10) && received.len() > 3 {
            let last = received.len() - 1;
            received.swap(last, last - 2);
        }
    }
    let (file, written) = record(TrackCodec::Vp8, &received, dir.path(), "lossy.webm");
    assert!(written > frames.len() / 4 && written < frames.len(), "{written} of {} frames", frames.len());
    decodes_cleanly(&file);
}
