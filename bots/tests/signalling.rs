//! A bot against a scripted node: a WebSocket that speaks the protocol and a str0m peer in the node's place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_bots::payload::{self, AUDIO_LAYER, Trailer};
use convene_bots::{Admission, Bot, BotError, BotOptions, LayerProfile, VideoProfile};
use convene_signal::{
    ClientMessage, MediaQuality, PROTOCOL_VERSION, ParticipantId, ParticipantInfo, Refusal, RoomInfo, ServerMessage,
    TrackInfo, TrackSource,
};
use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

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

/// The node's side of the media: str0m in RTP mode and ICE-lite, as the real node, on a loopback socket of its
/// own, driven by a task. (A webrtc-rs answerer lost whole tracks when the bot's first packets beat its
/// receivers, which it starts on a task of its own once DTLS is up: the undeclared-stream probe took them.)
struct NodePeer {
    state: Arc<Mutex<NodeState>>,
    wake: Arc<Notify>,
    driver: tokio::task::JoinHandle<()>,
}

struct NodeState {
    rtc: Rtc,
    /// Packets that came from the bot's generators (its payloads carry a trailer).
    from_bot: u64,
}

impl NodePeer {
    fn start() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder().set_ice_lite(true).set_rtp_mode(true).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let state = Arc::new(Mutex::new(NodeState { rtc, from_bot: 0 }));
        let wake = Arc::new(Notify::new());
        let driver = tokio::spawn(drive_node(socket, state.clone(), wake.clone()));
        Self { state, wake, driver }
    }

    /// Works on the node's str0m, then lets the driver send what that set off.
    fn with<R>(&self, work: impl FnOnce(&mut Rtc) -> R) -> R {
        let result = work(&mut self.state.lock().unwrap().rtc);
        self.wake.notify_one();
        result
    }

    fn packets_from_bot(&self) -> u64 {
        self.state.lock().unwrap().from_bot
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Feeds the node's str0m what arrives and when it is due, and sends what it gives (on loopback a send does
/// not block; tokio's would wait for a readiness event first).
async fn drive_node(socket: std::net::UdpSocket, state: Arc<Mutex<NodeState>>, wake: Arc<Notify>) {
    let local = socket.local_addr().unwrap();
    let sender = socket.try_clone().unwrap();
    let socket = UdpSocket::from_std(socket).unwrap();
    let mut buffer = vec![0; 2000];
    loop {
        let due = {
            let mut state = state.lock().unwrap();
            loop {
                match state.rtc.poll_output().unwrap() {
                    Output::Timeout(due) => break due,
                    Output::Transmit(out) => {
                        let _ = sender.send_to(&out.contents, out.destination);
                    }
                    Output::Event(Event::RtpPacket(packet)) => {
                        let bot_packet = payload::parse_vp8(&packet.payload).and_then(|info| info.trailer).is_some()
                            || payload::parse_audio(&packet.payload).is_some();
                        state.from_bot += u64::from(bot_packet);
                    }
                    Output::Event(_) => {}
                }
            }
        };
        let input = tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let (length, source) = received.unwrap();
                Some((source, length))
            }
            () = tokio::time::sleep_until(due.into()) => None,
            () = wake.notified() => continue,
        };
        let mut state = state.lock().unwrap();
        let now = Instant::now();
        match input {
            Some((source, length)) => {
                let Ok(contents) = buffer[..length].try_into() else { continue };
                let receive = Receive { proto: Protocol::Udp, source, destination: local, contents };
                let _ = state.rtc.handle_input(Input::Receive(now, receive));
            }
            None => state.rtc.handle_input(Input::Timeout(now)).unwrap(),
        }
    }
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
    let node = NodePeer::start();
    let answer = node.with(|rtc| rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap()).unwrap());
    send(&mut ws, &ServerMessage::Answer { sdp: answer.to_sdp_string() }).await;
    bot.wait_media_connected(Duration::from_secs(5)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.packets_from_bot() <= 20 {
        assert!(tokio::time::Instant::now() < deadline, "the node receives the bot's media");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Someone else's microphone: the node offers it, the bot answers and attributes what arrives.
    let (offer, pending, mid) = node.with(|rtc| {
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, Some("p9".to_owned()), None, None);
        let (offer, pending) = change.apply().unwrap();
        (offer, pending, mid)
    });
    let tracks =
        vec![TrackInfo { mid: mid.to_string(), participant: ParticipantId(9), source: TrackSource::Microphone }];
    send(&mut ws, &ServerMessage::Offer { sdp: offer.to_sdp_string(), tracks: tracks.clone() }).await;
    let ClientMessage::Answer { sdp } = receive(&mut ws).await else { panic!("no answer") };
    let opus = node.with(|rtc| {
        rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&sdp).unwrap()).unwrap();
        *rtc.media(mid).unwrap().remote_pts().first().unwrap()
    });
    assert_eq!(bot.tracks(), tracks);
    for n in 0..50_u16 {
        let trailer = Trailer { layer: AUDIO_LAYER, sent_us: now_us(), frame: n.into(), packet: 0 };
        let payload = payload::audio_payload(100, &trailer);
        node.with(|rtc| {
            let mut api = rtc.direct_api();
            let stream = api.stream_tx_by_mid(mid, None).expect("the microphone's stream");
            stream.write_rtp(RtpWrite::new(
                opus,
                u64::from(1000 + n).into(),
                960 * u32::from(n),
                Instant::now(),
                &payload[..],
            ));
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = bot.stats();
    let heard = stats.of(ParticipantId(9)).next().expect("the microphone is attributed");
    assert_eq!(
        (heard.mid.as_str(), heard.source, heard.layer),
        (mid.to_string().as_str(), Some(TrackSource::Microphone), Some(3))
    );
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
