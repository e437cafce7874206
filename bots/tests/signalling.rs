//! A bot against a scripted node: a WebSocket that speaks the protocol and a webrtc-rs peer in the node's place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use convene_bots::payload::{self, AUDIO_LAYER, Trailer};
use convene_bots::{Admission, Bot, BotError, BotOptions, LayerProfile, VideoProfile};
use convene_signal::{
    ClientMessage, MediaQuality, PROTOCOL_VERSION, ParticipantId, ParticipantInfo, Refusal, RoomInfo, ServerMessage,
    TrackInfo, TrackSource,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpHeaderExtensionCapability, RTPCodecType};
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

type Ws = WebSocketStream<TcpStream>;

/// Accepts one WebSocket, returning it with the request's `Host` header and path.
#[allow(clippy::result_large_err)] // tungstenite's callback type, not ours
async fn accept(listener: &TcpListener) -> (Ws, String, String) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut seen = (String::new(), String::new());
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |request: &Request, response: Response| {
        seen.0 = request.headers().get("host").unwrap().to_str().unwrap().to_owned();
        seen.1 = request.uri().path().to_owned();
        Ok(response)
    })
    .await
    .unwrap();
    (ws, seen.0, seen.1)
}

async fn send(ws: &mut Ws, message: &ServerMessage) {
    ws.send(Message::text(message.to_json())).await.unwrap();
}

async fn receive(ws: &mut Ws) -> ClientMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(text) = frame {
            return ClientMessage::parse(text.as_str()).unwrap();
        }
    }
}

fn participant(id: u64) -> ParticipantInfo {
    ParticipantInfo {
        id: ParticipantId(id),
        name: format!("p{id}"),
        moderator: false,
        audio_muted: false,
        video_muted: false,
        hand_raised: false,
    }
}

fn welcome(you: u64) -> ServerMessage {
    ServerMessage::Welcome {
        version: PROTOCOL_VERSION,
        you: ParticipantId(you),
        room: RoomInfo {
            name: "standup".to_owned(),
            locked: false,
            lobby: true,
            end_to_end_encryption: false,
            fixed_display_names: false,
            recording: false,
            live_streaming: false,
            dial_out: false,
            quality: MediaQuality::default(),
        },
        participants: vec![participant(you)],
        lobby: vec![],
        resume: String::new(),
    }
}

async fn node_peer() -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    for uri in ["urn:ietf:params:rtp-hdrext:sdes:mid", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"] {
        let extension = RTCRtpHeaderExtensionCapability { uri: uri.to_owned() };
        media.register_header_extension(extension.clone(), RTPCodecType::Video, None).unwrap();
        media.register_header_extension(extension, RTPCodecType::Audio, None).unwrap();
    }
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Arc::new(api.new_peer_connection(RTCConfiguration::default()).await.unwrap())
}

async fn gathered(pc: &RTCPeerConnection, description: RTCSessionDescription) -> String {
    let mut done = pc.gathering_complete_promise().await;
    pc.set_local_description(description).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), done.recv()).await.unwrap();
    pc.local_description().await.unwrap().sdp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_waits_in_the_lobby_then_publishes_receives_and_is_kicked() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut options = BotOptions::new(format!("ws://127.0.0.1:{port}/_signal/standup"), "meet.localhost:9", "a.b.c");
    options.video = Some(VideoProfile::single(LayerProfile { width: 320, height: 180, bitrate_bps: 200_000 }));
    options.password = Some("secret".to_owned());
    let connecting = tokio::spawn(Bot::connect(options));

    let (mut ws, host, path) = accept(&listener).await;
    assert_eq!((host.as_str(), path.as_str()), ("meet.localhost:9", "/_signal/standup"));
    assert_eq!(
        receive(&mut ws).await,
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            token: "a.b.c".to_owned(),
            password: Some("secret".to_owned()),
            name: None,
            resume: None,
        }
    );
    send(&mut ws, &ServerMessage::Lobby { you: ParticipantId(7) }).await;
    let bot = connecting.await.unwrap().unwrap();
    assert_eq!((bot.admission(), bot.id()), (Admission::Lobby, ParticipantId(7)));
    assert_eq!(bot.wait_admitted(Duration::from_millis(200)).await, Err(BotError::Timeout));

    // Admitted: the bot offers its media, with candidates, and the node answers.
    send(&mut ws, &welcome(7)).await;
    bot.wait_admitted(Duration::from_secs(1)).await.unwrap();
    let ClientMessage::Offer { sdp, screen: None, publish_only: false } = receive(&mut ws).await else {
        panic!("no offer")
    };
    assert!(sdp.contains("m=audio") && sdp.contains("m=video") && sdp.contains("typ host"), "{sdp}");
    let node = node_peer().await;
    let from_bot = Arc::new(AtomicU64::new(0));
    let counter = from_bot.clone();
    node.on_track(Box::new(move |track, _, _| {
        let counter = counter.clone();
        Box::pin(async move {
            tokio::spawn(async move {
                while let Ok((packet, _)) = track.read_rtp().await {
                    let bot_packet = payload::parse_vp8(&packet.payload).and_then(|info| info.trailer).is_some()
                        || payload::parse_audio(&packet.payload).is_some();
                    counter.fetch_add(u64::from(bot_packet), Ordering::Relaxed);
                }
            });
        })
    }));
    node.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
    let answer = gathered(&node, node.create_answer(None).await.unwrap()).await;
    send(&mut ws, &ServerMessage::Answer { sdp: answer }).await;
    bot.wait_media_connected(Duration::from_secs(5)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while from_bot.load(Ordering::Relaxed) <= 20 {
        assert!(tokio::time::Instant::now() < deadline, "the node receives the bot's media");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Someone else's microphone: the node offers it, the bot answers and attributes what arrives.
    let microphone = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            ..Default::default()
        },
        "microphone".to_owned(),
        "p9".to_owned(),
    ));
    let transceiver = node.add_transceiver_from_track(microphone.clone(), None).await.unwrap();
    let offer = gathered(&node, node.create_offer(None).await.unwrap()).await;
    let mid = transceiver.mid().unwrap().to_string();
    let tracks = vec![TrackInfo { mid: mid.clone(), participant: ParticipantId(9), source: TrackSource::Microphone }];
    send(&mut ws, &ServerMessage::Offer { sdp: offer, tracks: tracks.clone() }).await;
    let ClientMessage::Answer { sdp } = receive(&mut ws).await else { panic!("no answer") };
    node.set_remote_description(RTCSessionDescription::answer(sdp).unwrap()).await.unwrap();
    assert_eq!(bot.tracks(), tracks);
    for n in 0..50_u16 {
        let trailer = Trailer { layer: AUDIO_LAYER, sent_us: now_us(), frame: n.into(), packet: 0 };
        let packet = Packet {
            header: Header {
                version: 2,
                sequence_number: 1000 + n,
                timestamp: 960 * u32::from(n),
                ..Default::default()
            },
            payload: payload::audio_payload(100, &trailer),
        };
        microphone.write_rtp(&packet).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = bot.stats();
    let heard = stats.of(ParticipantId(9)).next().expect("the microphone is attributed");
    assert_eq!((heard.mid.as_str(), heard.source, heard.layer), (mid.as_str(), Some(TrackSource::Microphone), Some(3)));
    assert!(heard.packets >= 40 && heard.seq_gaps == 0, "{heard:?}");
    assert!(stats.time_to_join.is_some() && stats.delay_p50_ms.is_some(), "{stats:?}");
    assert!(stats.sent.keyframes[0] >= 1 && stats.sent.audio_packets > 20, "{:?}", stats.sent);

    // Messages: wait_for picks the one asked for and leaves the rest queued; the bot's own go out.
    send(&mut ws, &ServerMessage::ParticipantJoined { participant: participant(9) }).await;
    let chat = ServerMessage::Chat { from: ParticipantId(9), text: "hi".to_owned(), private: false, to: None };
    send(&mut ws, &chat).await;
    assert_eq!(bot.wait_for(Duration::from_secs(2), |m| matches!(m, ServerMessage::Chat { .. })).await, Ok(chat));
    assert!(matches!(bot.next_message(Duration::from_secs(1)).await, Ok(ServerMessage::Lobby { .. })));
    assert!(matches!(bot.next_message(Duration::from_secs(1)).await, Ok(ServerMessage::Welcome { .. })));
    assert!(matches!(bot.next_message(Duration::from_secs(1)).await, Ok(ServerMessage::ParticipantJoined { .. })));
    bot.send(ClientMessage::Pin { participant: Some(ParticipantId(9)) }).await.unwrap();
    assert_eq!(receive(&mut ws).await, ClientMessage::Pin { participant: Some(ParticipantId(9)) });

    // Kicked: the refusal is readable, then the bot is gone and says why.
    let kicked = ServerMessage::Refused { reason: Refusal::Kicked, message: "bye".to_owned() };
    send(&mut ws, &kicked).await;
    assert_eq!(bot.wait_for(Duration::from_secs(2), |m| matches!(m, ServerMessage::Refused { .. })).await, Ok(kicked));
    let gone = BotError::Refused { reason: Refusal::Kicked, message: "bye".to_owned() };
    assert_eq!(bot.next_message(Duration::from_secs(1)).await, Err(gone.clone()));
    assert!(bot.is_gone());
    assert_eq!(bot.send(ClientMessage::Leave).await, Err(gone));
    bot.leave().await;
    let _ = node.close().await;
}

#[tokio::test]
async fn a_refusal_fails_the_connect_and_a_closed_socket_ends_the_bot() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = BotOptions::new(format!("ws://127.0.0.1:{port}/_signal/x"), "meet.localhost", "t");
    let connecting = tokio::spawn(Bot::connect(options.clone()));
    let (mut ws, _, _) = accept(&listener).await;
    receive(&mut ws).await;
    send(&mut ws, &ServerMessage::Refused { reason: Refusal::Locked, message: "locked".to_owned() }).await;
    assert_eq!(
        connecting.await.unwrap().unwrap_err(),
        BotError::Refused { reason: Refusal::Locked, message: "locked".to_owned() }
    );

    let connecting = tokio::spawn(Bot::connect(BotOptions { audio: false, video: None, ..options }));
    let (mut ws, _, _) = accept(&listener).await;
    receive(&mut ws).await;
    send(&mut ws, &welcome(3)).await;
    let bot = connecting.await.unwrap().unwrap();
    assert_eq!(bot.admission(), Admission::InRoom);
    drop(ws);
    assert!(matches!(
        bot.wait_for(Duration::from_secs(2), |m| matches!(m, ServerMessage::Chat { .. })).await,
        Err(BotError::Closed | BotError::Signal(_))
    ));
    assert!(bot.is_gone());
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros().try_into().unwrap()
}
