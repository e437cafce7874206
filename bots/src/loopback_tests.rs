//! Two webrtc-rs peers on loopback, no node: one publishes with the real generators, the other measures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

use crate::media::{self, LayerProfile, MediaOptions, Publisher, SendShared, VideoProfile};
use crate::stats::Recorder;

async fn gathered(pc: &RTCPeerConnection, description: RTCSessionDescription) -> RTCSessionDescription {
    let mut done = pc.gathering_complete_promise().await;
    pc.set_local_description(description).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), done.recv()).await.unwrap();
    pc.local_description().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_publication_arrives_on_every_layer_without_gaps_and_answers_pli() {
    let cancel = CancellationToken::new();
    let sender =
        Arc::new(media::build_api(true).unwrap().new_peer_connection(RTCConfiguration::default()).await.unwrap());
    let receiver =
        Arc::new(media::build_api(true).unwrap().new_peer_connection(RTCConfiguration::default()).await.unwrap());
    let state = media::watch_state(&sender);
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    media::receive_into(&receiver, recorder.clone(), cancel.clone());

    // A lighter 720p profile: the same packet shapes, less work for a 2-core machine.
    let mut profile = VideoProfile::p720();
    for layer in &mut profile.layers {
        layer.bitrate_bps /= 3;
    }
    profile.layers[2] = LayerProfile { bitrate_bps: 1_000_000, ..profile.layers[2] };
    let options =
        MediaOptions { video: Some(profile), audio: true, fps: 30, keyframe_interval: Duration::from_secs(60) };
    let publisher = Publisher::add_to(&sender, &options).await.unwrap();

    let offer = gathered(&sender, sender.create_offer(None).await.unwrap()).await;
    assert!(offer.sdp.contains("a=simulcast:send q;h;f"), "{}", offer.sdp);
    assert!(offer.sdp.contains("urn:ietf:params:rtp-hdrext:ssrc-audio-level"));
    assert!(offer.sdp.contains("typ host"), "candidates are in the offer: {}", offer.sdp);
    receiver.set_remote_description(offer).await.unwrap();
    let answer = gathered(&receiver, receiver.create_answer(None).await.unwrap()).await;
    sender.set_remote_description(answer).await.unwrap();

    let shared = Arc::new(SendShared::default());
    shared.speaking.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.start(&shared, &state, &cancel);

    // Wait for every layer and audio, then ask for a keyframe on the middle layer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (tracks, _) = recorder.lock().unwrap().snapshot(&[]);
        if tracks.len() == 4 && tracks.iter().all(|t| t.packets > 20) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not every track arrived: {tracks:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (tracks, _) = recorder.lock().unwrap().snapshot(&[]);
    let middle = tracks.iter().find(|t| t.rid.as_deref() == Some("h")).unwrap().ssrc;
    let keyframes_before = shared.snapshot().keyframes;
    receiver.write_rtcp(&[Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: middle })]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let sent = shared.snapshot();
    let (tracks, delay) = recorder.lock().unwrap().snapshot(&[]);
    cancel.cancel();
    let _ = sender.close().await;
    let _ = receiver.close().await;

    assert_eq!(sent.keyframe_requests, [0, 1, 0], "{sent:?}");
    assert_eq!(sent.keyframes[1], keyframes_before[1] + 1, "{sent:?}");
    assert_eq!((sent.keyframes[0], sent.keyframes[2]), (keyframes_before[0], keyframes_before[2]));
    let mut layers = Vec::new();
    for track in &tracks {
        assert_eq!(track.seq_gaps, 0, "{track:?}");
        assert_eq!(track.pid_discontinuities, 0, "{track:?}");
        assert_eq!(track.ts_backwards, 0, "{track:?}");
        assert_eq!(track.layer_switches, 0, "{track:?}");
        assert_eq!(track.bot_packets, track.packets, "{track:?}");
        layers.push((track.mid.clone(), track.rid.clone(), track.layer));
        if track.kind == convene_signal::MediaKind::Video {
            assert!(track.frames >= 30, "{track:?}");
        }
    }
    assert_eq!(tracks[0].audio_level, Some(25), "speaking, with the audio-level extension");
    assert_eq!(tracks[1].audio_level, None);
    let rid = |r: &str| Some(r.to_owned());
    assert_eq!(
        layers,
        vec![
            ("0".to_owned(), None, Some(3)),
            ("1".to_owned(), rid("f"), Some(2)),
            ("1".to_owned(), rid("h"), Some(1)),
            ("1".to_owned(), rid("q"), Some(0)),
        ]
    );
    let keyframes: Vec<u64> = tracks.iter().map(|t| t.keyframes).collect();
    assert_eq!(keyframes, vec![0, 1, 2, 1], "the first keyframe of each layer, and the one asked for");
    let p99 = delay.quantile_ms(0.99).unwrap();
    assert!(p99 < 200.0, "loopback delay p99 {p99} ms");
}
