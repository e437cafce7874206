//! Bots in a room of a real Janus (Debian's `janus`, which `cargo xtask test` installs), all on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use convene_bots::{
    BotStack, BotStats, JanusBot, JanusConfig, JanusOptions, JanusServer, JanusServerError, LayerProfile, TrackStats,
    VideoProfile,
};
use convene_signal::{MediaKind, ParticipantId, TrackSource};
use tokio::time::Instant;

const ROOM: u64 = 4242;
const STAGE: &str = "stage";
/// Janus picks its ICE ports from here; another Janus on the machine may share the range.
const RTP_PORTS: (u16, u16) = (42_000, 42_999);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Three light layers: the shapes of 720p simulcast at a tenth of its bitrate.
fn light_profile() -> VideoProfile {
    VideoProfile {
        layers: vec![
            LayerProfile { width: 320, height: 180, bitrate_bps: 30_000 },
            LayerProfile { width: 640, height: 360, bitrate_bps: 90_000 },
            LayerProfile { width: 1280, height: 720, bitrate_bps: 330_000 },
        ],
    }
}

fn track(stats: &BotStats, of: ParticipantId, source: TrackSource) -> Option<&TrackStats> {
    stats.of(of).find(|track| track.source == Some(source))
}

/// Whether `stats` has `others`' microphones and cameras with `packets` each, the cameras in the layer the
/// stage rule asks for.
fn receives_everyone(stats: &BotStats, others: &[(ParticipantId, u8)], packets: u64) -> bool {
    others.iter().all(|(other, layer)| {
        let microphone = track(stats, *other, TrackSource::Microphone);
        let camera = track(stats, *other, TrackSource::Camera);
        microphone.is_some_and(|mic| mic.kind == MediaKind::Audio && mic.packets >= packets)
            && camera.is_some_and(|camera| camera.packets >= packets && camera.layer == Some(*layer))
    })
}

async fn start_janus(dir: &std::path::Path) -> JanusServer {
    JanusServer::start(JanusConfig::new(dir, free_port(), RTP_PORTS)).await.expect("janus starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bots_receive_each_other_with_the_stage_in_high_and_the_rest_in_low() {
    three_bots_in_a_room(BotStack::WebRtc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_light_bots_receive_each_other_with_the_stage_in_high_and_the_rest_in_low() {
    three_bots_in_a_room(BotStack::Light).await;
}

/// Three bots on `stack` join, receive each other in the layers the stage rule asks for, and one leaves.
async fn three_bots_in_a_room(stack: BotStack) {
    let dir = tempfile::tempdir().unwrap();
    let janus = start_janus(dir.path()).await;
    assert!(std::path::Path::new(&format!("/proc/{}/stat", janus.pid())).exists());
    janus.create_room(ROOM).await.unwrap();

    let mut bots = Vec::new();
    for (index, display) in [STAGE, "left", "right"].into_iter().enumerate() {
        let mut options = JanusOptions::new(janus.url(), ROOM, display);
        options.video = Some(light_profile());
        options.speaking = index == 0;
        options.stage = Some(STAGE.to_owned());
        options.stack = stack;
        bots.push(JanusBot::join(options).await.unwrap());
    }
    let mut ids: Vec<ParticipantId> = bots.iter().map(JanusBot::id).collect();
    let stage = ids[0];
    // Everyone but `bot`, each with the layer its camera should arrive in.
    let expected = |ids: &[ParticipantId], bot: &JanusBot| -> Vec<(ParticipantId, u8)> {
        ids.iter().filter(|id| **id != bot.id()).map(|id| (*id, if *id == stage { 2 } else { 0 })).collect()
    };

    let deadline = Instant::now() + Duration::from_secs(30);
    while !bots.iter().all(|bot| receives_everyone(&bot.stats(), &expected(&ids, bot), 50)) {
        let all: Vec<BotStats> = bots.iter().map(JanusBot::stats).collect();
        assert!(Instant::now() < deadline, "not everyone receives everyone in the right layer: {all:#?}");
        assert!(bots.iter().all(|bot| bot.failure().is_none()), "{bots:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A clean window: no loss on loopback, sane delays, the layers held.
    for bot in &bots {
        bot.reset_stats();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for bot in &bots {
        let stats = bot.stats();
        assert!(receives_everyone(&stats, &expected(&ids, bot), 30), "{stats:#?}");
        assert!(stats.loss < 0.01, "loss {} in {stats:#?}", stats.loss);
        let p99 = stats.delay_p99_ms.expect("delays were measured");
        assert!(p99 < 200.0, "delay p99 {p99} ms in {stats:#?}");
        assert!(stats.time_to_join.is_some_and(|time| time < Duration::from_secs(30)), "{stats:#?}");
        assert!(stats.sent.frames[2] > 0 && stats.sent.audio_packets > 0, "{stats:#?}");
    }

    // One leaves: the others' subscriptions drop its m-lines, and nothing more arrives on them.
    let leaver = bots.pop().unwrap();
    let gone = leaver.id();
    ids.retain(|id| *id != gone);
    let its_mids: Vec<Vec<String>> =
        bots.iter().map(|bot| bot.stats().of(gone).map(|track| track.mid.clone()).collect()).collect();
    let received_on_its_mids = |bots: &[JanusBot]| -> Vec<u64> {
        bots.iter()
            .zip(&its_mids)
            .map(|(bot, mids)| bot.stats().tracks.iter().filter(|t| mids.contains(&t.mid)).map(|t| t.packets).sum())
            .collect()
    };
    leaver.leave().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bots.iter().any(|bot| bot.stats().of(gone).next().is_some()) {
        let all: Vec<BotStats> = bots.iter().map(JanusBot::stats).collect();
        assert!(Instant::now() < deadline, "the bot that left is still subscribed to: {all:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = received_on_its_mids(&bots);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received_on_its_mids(&bots), before, "media still arrives from the bot that left");
    for bot in &bots {
        let stats = bot.stats();
        assert!(receives_everyone(&stats, &expected(&ids, bot), 50), "the others still flow: {stats:#?}");
        assert!(bot.failure().is_none(), "{bot:?}");
    }
    for bot in bots {
        bot.leave().await;
    }
    janus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_a_missing_binary_or_an_early_exit_fail_at_once() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = JanusServer::start(JanusConfig::new(dir.path(), port, RTP_PORTS)).await.unwrap_err();
    assert!(matches!(error, JanusServerError::PortTaken { port: p } if p == port), "{error}");

    let mut missing = JanusConfig::new(dir.path(), free_port(), RTP_PORTS);
    missing.binary = dir.path().join("no-janus-here");
    let error = JanusServer::start(missing).await.unwrap_err();
    assert!(matches!(&error, JanusServerError::NotInstalled { path } if path.ends_with("no-janus-here")), "{error}");

    // A process that exits at once, as Janus does when it refuses its configuration.
    let mut exits = JanusConfig::new(dir.path(), free_port(), RTP_PORTS);
    exits.binary = "/bin/false".into();
    let error = JanusServer::start(exits).await.unwrap_err();
    assert!(matches!(&error, JanusServerError::Exited { log, .. } if log.ends_with("janus.log")), "{error}");
    assert!(error.to_string().contains("janus.log"), "{error}");

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}
