//! Media end to end: webrtc-rs bots (a WebRTC stack independent of the node's str0m) join rooms of the `up`
//! role over loopback with real tokens, publish simulcast VP8 and Opus, and report what reaches them.
//! Bitrates are a tenth of real ones: the layer choices do not depend on them and debug builds stay quick.

use std::time::Duration;

use convene_bots::{Admission, Bot, BotError, BotOptions, BotStack, BotStats, LayerProfile, VideoProfile};
use convene_signal::{ClientMessage, ParticipantId, Refusal, ServerMessage, TrackSource};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, call, spawn_app, spawn_configured, tenant_key};

const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn light_video() -> VideoProfile {
    let layer = |width, height, bitrate_bps| LayerProfile { width, height, bitrate_bps };
    VideoProfile { layers: vec![layer(320, 180, 30_000), layer(640, 360, 90_000), layer(1280, 720, 330_000)] }
}

pub(crate) async fn bot(app: &TestApp, key: &str, room: &str, name: &str, moderator: bool) -> BotOptions {
    let body = json!({ "room": room, "user": { "name": name }, "moderator": moderator });
    let (status, minted) = call(app, Method::POST, "/v1/meeting-tokens", key, Some(body)).await;
    assert_eq!(status, 201, "{minted}");
    let signal_url = format!("{}/_signal/{room}", app.address.replace("http://", "ws://"));
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut options = BotOptions::new(signal_url, host, minted["token"].as_str().unwrap());
    options.video = Some(light_video());
    options.keyframe_interval = Duration::from_secs(30);
    options
}

/// The layer of `from`'s camera as `stats` last received it.
pub(crate) fn camera_layer(stats: &BotStats, from: ParticipantId) -> Option<u8> {
    stats.of(from).find(|track| track.source == Some(TrackSource::Camera)).and_then(|track| track.layer)
}

/// Waits until `check` holds for every bot's stats, or fails with the last stats.
pub(crate) async fn until(bots: &[&Bot], what: &str, check: impl Fn(&Bot, &BotStats) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if bots.iter().all(|bot| check(bot, &bot.stats())) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let stats: Vec<BotStats> = bots.iter().map(|bot| bot.stats()).collect();
            panic!("never: {what}\n{stats:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn in_a_meeting_of_ten_the_speaker_arrives_in_high_the_others_in_low_and_the_stage_follows_the_voice() {
    meeting_of_ten(BotStack::WebRtc).await;
}

/// The benchmark's light bots (str0m) see the same meeting as the webrtc-rs ones.
#[tokio::test]
async fn light_bots_in_a_meeting_of_ten_see_the_speaker_in_high_and_the_others_in_low() {
    meeting_of_ten(BotStack::Light).await;
}

async fn meeting_of_ten(stack: BotStack) {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let mut bots = Vec::new();
    // The customer's meeting: ten people, each publishing three layers.
    let names = ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo"];
    for (index, name) in names.into_iter().enumerate() {
        let mut options = bot(&app, &key, "standup", name, index == 0).await;
        options.speaking = name == "Bob";
        options.stack = stack;
        bots.push(Bot::join(options).await.unwrap_or_else(|error| panic!("{name}: {error}")));
    }
    let ids: Vec<ParticipantId> = bots.iter().map(Bot::id).collect();
    let everyone: Vec<&Bot> = bots.iter().collect();
    let bob = ids[1];
    until(&everyone, "everyone sees Bob in high and the others in low", |me, stats| {
        ids.iter().filter(|id| **id != me.id()).all(|other| {
            let expected = if *other == bob { 2 } else { 0 };
            camera_layer(stats, *other) == Some(expected)
        })
    })
    .await;
    for me in &bots {
        let layers: Vec<Option<u8>> =
            ids.iter().filter(|id| **id != me.id()).map(|id| camera_layer(&me.stats(), *id)).collect();
        let high = layers.iter().filter(|layer| **layer == Some(2)).count();
        let low = layers.iter().filter(|layer| **layer == Some(0)).count();
        let expected = if me.id() == bob { (0, 9) } else { (1, 8) };
        assert_eq!((high, low), expected, "one stage in high, every thumbnail in low: {layers:?}");
    }
    // The node's figures: one room of 6-10 people, media flows out; no label names the tenant or the room.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = app.metrics().await;
        let line = |prefix: &str| metrics.lines().find(|line| line.starts_with(prefix)).map(str::to_owned);
        let sized = metrics.lines().any(|line| {
            line.starts_with("convene_media_rooms{") && line.contains(r#"participants="6-10""#) && line.ends_with(" 1")
        });
        let out = line(r#"convene_media_rtp_packets_total{direction="out"}"#).is_some_and(|line| !line.ends_with(" 0"));
        if sized && out {
            assert!(!metrics.contains("standup"), "a room's name is in the metrics: {metrics}");
            let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
            assert!(!metrics.contains(tenant["id"].as_str().unwrap()), "a tenant id is in the metrics");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no room metrics: {metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let heard = bots[0].wait_for(PATIENCE, |message| matches!(message, ServerMessage::DominantSpeaker { .. })).await;
    assert!(matches!(heard, Ok(ServerMessage::DominantSpeaker { participant }) if participant == bob), "{heard:?}");
    for me in &bots {
        let stats = me.stats();
        let heard_bob = stats.of(bob).filter(|track| track.source == Some(TrackSource::Microphone)).count();
        assert!(me.id() == bob || heard_bob == 1, "Bob is heard");
        let silent = ids.iter().filter(|id| **id != bob && **id != me.id());
        for other in silent {
            let audio: u64 = stats
                .of(*other)
                .filter(|track| track.source == Some(TrackSource::Microphone))
                .map(|track| track.packets)
                .sum();
            assert_eq!(audio, 0, "silent people are not forwarded");
        }
    }

    // Cy speaks up: the stage moves to Cy, whose camera switches up, and Bob's down, as continuous streams.
    bots[1].set_speaking(false);
    bots[2].set_speaking(true);
    let cy = ids[2];
    until(&everyone, "everyone sees Cy in high and Bob in low", |me, stats| {
        (me.id() == cy || camera_layer(stats, cy) == Some(2)) && (me.id() == bob || camera_layer(stats, bob) == Some(0))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for me in &bots {
        let stats = me.stats();
        for track in stats.tracks.iter().filter(|track| track.source == Some(TrackSource::Camera)) {
            assert_eq!(track.pid_discontinuities, 0, "picture ids continue across switches: {track:?}");
            assert_eq!(track.ts_backwards, 0, "timestamps never go back: {track:?}");
            assert!(track.keyframes >= 1, "{track:?}");
        }
        assert!(stats.loss < 0.01, "no loss on loopback: {}", stats.loss);
    }
    for bot in bots {
        bot.leave().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_node_bound_to_every_interface_carries_media_at_its_public_address() {
    let app = spawn_configured(&[
        ("CONVENE_MEDIA_UDP_ADDR", "0.0.0.0:0".to_owned()),
        ("CONVENE_MEDIA_PUBLIC_IP", "127.0.0.1".to_owned()),
    ])
    .await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let ann = Bot::join(bot(&app, &key, "everywhere", "Ann", true).await).await.unwrap();
    let bob = Bot::join(bot(&app, &key, "everywhere", "Bob", false).await).await.unwrap();
    let (ann_id, bob_id) = (ann.id(), bob.id());
    until(&[&ann, &bob], "each sees the other's camera", |me, stats| {
        camera_layer(stats, if me.id() == ann_id { bob_id } else { ann_id }).is_some()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_lobby_holds_a_bot_until_admitted_and_a_kicked_bot_is_gone() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "town-hall", "lobby": true }))).await;
    let host = Bot::join(bot(&app, &key, "town-hall", "Host", true).await).await.unwrap();
    let guest = Bot::connect(bot(&app, &key, "town-hall", "Guest", false).await).await.unwrap();
    assert!(matches!(guest.admission(), Admission::Lobby));
    let knock = host
        .wait_for(PATIENCE, |message| matches!(message, ServerMessage::LobbyChanged { waiting } if !waiting.is_empty()))
        .await;
    let Ok(ServerMessage::LobbyChanged { waiting }) = knock else { panic!("{knock:?}") };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(host.stats().tracks.is_empty(), "nothing of the guest reaches the room while it waits");
    assert!(!guest.media_connected(), "a waiting guest has no media session");

    host.send(ClientMessage::Admit { participant: waiting[0].id }).await.unwrap();
    guest.wait_admitted(PATIENCE).await.unwrap();
    let guest_id = guest.id();
    until(&[&host, &guest], "host and guest see each other", |me, stats| {
        let other = if me.id() == guest_id { host.id() } else { guest_id };
        camera_layer(stats, other).is_some()
    })
    .await;

    host.send(ClientMessage::Kick { participant: guest_id }).await.unwrap();
    let refused = guest.wait_for(PATIENCE, |message| matches!(message, ServerMessage::Refused { .. })).await;
    assert!(matches!(refused, Ok(ServerMessage::Refused { reason: Refusal::Kicked, .. })), "{refused:?}");
    let gone = guest.wait_for(Duration::from_secs(5), |_| false).await;
    assert!(matches!(gone, Err(BotError::Refused { reason: Refusal::Kicked, .. })), "{gone:?}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while host.tracks().iter().any(|track| track.participant == guest_id) {
        assert!(tokio::time::Instant::now() < deadline, "the guest's tracks never left: {:?}", host.tracks());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.leave().await;
    app.stop().await;
}
