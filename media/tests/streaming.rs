//! A live stream with real media: a camera, a screen shared a moment later and a voice (VP8 and Opus from
//! ffmpeg, packetized by str0m) go through the live muxer into the stream's own ffmpeg, which pushes RTMP to
//! an ffmpeg listening on loopback. What arrives is 720p H.264 and AAC, as long as what was sent, and the
//! screen was asked onto the stage.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod clips;

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use clips::{SECONDS, encoded, packetize, run, voice};
use convene_media::{
    recording::frames::TrackCodec,
    sfu::{RecordedPacket, allocator::Layer},
    streaming::{StreamTarget, encoder, mux::LiveMux},
};
use convene_signal::{ParticipantId, TrackSource};
use str0m::format::Codec;
use tokio::io::AsyncWriteExt;

/// Whether something listens on loopback TCP `port` (read from the kernel, so the listener's one
/// connection is not spent on a probe).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1).is_some_and(|local| local.ends_with(&format!(":{port:04X}"))) && fields.get(3) == Some(&"0A")
    })
}

#[tokio::test]
async fn a_camera_a_shared_screen_and_a_voice_reach_an_rtmp_server_as_720p_h264_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    let camera = packetize(TrackCodec::Vp8, &encoded(TrackCodec::Vp8, dir.path()));
    let voice = voice(dir.path());
    let start = Instant::now();
    let tapped =
        |who: u64, source: TrackSource, codec: Codec, (seq, timestamp, marker, payload, arrived)| RecordedPacket {
            participant: ParticipantId(who),
            source,
            codec,
            layer: Layer::Medium,
            seq: u64::from(seq),
            timestamp,
            marker,
            payload: Arc::from(payload),
            audio_level: (codec == Codec::Opus).then_some(-30),
            at: start + arrived,
        };
    let mut packets: Vec<RecordedPacket> =
        camera.iter().cloned().map(|packet| tapped(1, TrackSource::Camera, Codec::Vp8, packet)).collect();
    // Person 2 shares a screen from 1.5 s: mid-clip, so it waits for the keyframe at 2 s.
    packets.extend(
        camera
            .iter()
            .filter(|packet| packet.4 >= Duration::from_millis(1500))
            .cloned()
            .map(|packet| tapped(2, TrackSource::Screen, Codec::Vp8, packet)),
    );
    packets.extend(voice.into_iter().enumerate().map(|(index, payload)| {
        let n = u32::try_from(index).unwrap();
        let packet = (u16::try_from(n).unwrap(), n * 960, false, payload, Duration::from_millis(u64::from(n) * 20));
        tapped(1, TrackSource::Microphone, Codec::Opus, packet)
    }));
    packets.sort_by_key(|packet| packet.at);

    // The RTMP service: an ffmpeg listening on a loopback port, saving what it receives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = dir.path().join("received.flv");
    let mut service = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-f", "flv", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/the-key"))
        .args(["-c", "copy"])
        .arg(&received)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if listening(port) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listening(port), "the RTMP service listens");

    let target = StreamTarget::parse(&format!("rtmp://127.0.0.1:{port}/live"), "the-key").unwrap();
    let mut stream = encoder(target.url()).spawn().unwrap();
    let mut stdin = stream.stdin.take().unwrap();
    let mut mux = LiveMux::new(start);
    let mut asked = Vec::new();
    let mut next = packets.iter().peekable();
    let end = u64::from(SECONDS) * 1000 + 200;
    for ms in (0..=end).step_by(20) {
        let now = start + Duration::from_millis(ms);
        while let Some(packet) = next.next_if(|packet| packet.at <= now) {
            mux.handle_packet(packet);
        }
        mux.handle_timeout(now);
        asked.extend(std::iter::from_fn(|| mux.poll_keyframe_request()));
        stdin.write_all(&mux.take_output()).await.unwrap();
    }
    drop(stdin);
    let encoded = tokio::time::timeout(Duration::from_secs(60), stream.wait()).await.expect("the stream ends");
    assert!(encoded.unwrap().success(), "the stream's ffmpeg succeeds");
    let saved = tokio::time::timeout(Duration::from_secs(60), service.wait()).await.expect("the service ends");
    assert!(saved.unwrap().success(), "the service took the stream");

    assert!(asked.contains(&(ParticipantId(2), TrackSource::Screen)), "the screen came on stage: {asked:?}");
    let path = received.display().to_string();
    let streams = String::from_utf8(run(
        "ffprobe",
        &["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", &path],
    ))
    .unwrap();
    let streams: Vec<&str> = streams.lines().map(|line| line.trim_end_matches(',')).collect();
    assert!(streams.contains(&"h264,1280,720") && streams.contains(&"aac"), "{streams:?}");
    let times = String::from_utf8(run(
        "ffprobe",
        &["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0", &path],
    ))
    .unwrap();
    let last = times.lines().filter_map(|line| line.trim().parse::<f64>().ok()).fold(0.0, f64::max);
    assert!(last > f64::from(SECONDS) - 1.0, "the stream lasts as long as the meeting: {last} s");
}
